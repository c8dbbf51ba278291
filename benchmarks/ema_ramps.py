"""One training run, one moving average of G per ramp constant: what ``--ema-ramp`` does.

G's moving average never feeds back into training: G and D take the same steps whatever
``--ema`` and ``--ema-ramp`` say (docs/conditional.md compared two runs' losses step for
step). So one run can keep an average for every ramp constant asked, each updated after
every G step with its own weight ``1 - objective.ema_decay(decay, step, R)`` and given its
own standing statistics at every epoch's end, as a run trained with ``--ema-ramp R`` would
(for the first constant the run *is* that run: ``OUT/run``). At the end every average is
scored the same way: FID and the conditional metrics of 10,000 samples of latent seed 0 and,
with ``--cas``, the Classification Accuracy Score (recipe and latent seed 0). One JSON line a
ramp, on stdout and in OUT/results.jsonl, then their table (``--table`` prints it again from
OUT/results.jsonl alone); each average's weights in OUT/ramp-R.pt.

    python benchmarks/ema_ramps.py --out OUT --model cnn --conditional projection \
        --seed 0 --ema 0.9999 --ramps 10 14 7 5 --cas

The first ramp's line equals what ``benchmarks/conditional.py`` measures for that run. A run
that stops is not resumed here (the other averages live in memory only): start again. It
trains on the CPU only: a CUDA-graph step captures the run's own average, not the extra ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ganscope import atomic, objective, runs, trainer
from ganscope.classifier import load_classifier
from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.data import load_split
from ganscope.evaluation import classification_accuracy_score, evaluate_generator, load_reference
from ganscope.presets import with_preset

#: benchmarks/conditional.py's columns and their headings.
HEADINGS = {
    "fid": "FID ↓", "label_agreement": "label agreement ↑",
    "label_agreement_worst_gap": "worst class gap ↓", "intra_fid": "intra-class FID ↓",
    "class_precision": "class precision ↑", "class_recall": "class recall ↑", "cas": "CAS ↑",
}  # fmt: skip
#: Every column but CAS, which ``--cas`` adds.
KEYS = tuple(k for k in HEADINGS if k != "cas")


#: ganscope's own moving average (``objective.MovingAverage`` names :class:`Averages` while
#: :func:`train` runs).
MovingAverage = objective.MovingAverage


class Averages(MovingAverage):
    """The run's own moving average (the first ramp) and one more per other ramp in
    :attr:`ramps`, each updated with its own ramp's weight at the same steps. Training makes
    one (``objective.MovingAverage`` is this class while :func:`train` runs)."""

    ramps: ClassVar[tuple[float, ...]] = ()
    made: ClassVar[list[Averages]] = []

    def __init__(self, generator: nn.Module, decay: float, ramp: float) -> None:
        super().__init__(generator, decay, ramp)
        self.others = {r: MovingAverage(generator, decay, r) for r in self.ramps[1:]}
        self.updates = 0  # a fresh run's steps count from 0, one update each
        Averages.made.append(self)

    def update(self, generator: nn.Module, weight: float | torch.Tensor) -> None:
        super().update(generator, weight)
        for other in self.others.values():
            other.update(generator, other.weight(self.updates))
        self.updates += 1

    def standing_statistics(self, z_dim: int, batch_size: int, batches: int = 32) -> None:
        super().standing_statistics(z_dim, batch_size, batches)
        for other in self.others.values():
            other.standing_statistics(z_dim, batch_size, batches)


def train(config: RunConfig, out: Path, ramps: tuple[float, ...]) -> dict[float, nn.Module]:
    """Train ``config`` (its ``ema_ramp`` must be ``ramps[0]``) into ``out`` and return every
    ramp's averaged generator, in eval mode."""
    if config.train.ema_ramp != ramps[0] or not config.train.ema:
        raise SystemExit("the run's own --ema-ramp is the first of --ramps, with --ema")
    Averages.ramps, Averages.made = ramps, []
    objective.MovingAverage = Averages
    try:
        run = trainer.train(config, out, progress=True)
    finally:
        objective.MovingAverage = MovingAverage
    (averages,) = Averages.made
    steps = run.metrics("epoch")[-1]["step"]
    if averages.updates != steps:
        raise SystemExit(f"{averages.updates} updates for {steps} steps: a resumed run?")
    generator, _ = run.generator_at()
    return {ramps[0]: generator, **{r: a.generator for r, a in averages.others.items()}}


def scorer(config: RunConfig, n: int, cas: bool) -> Callable[[nn.Module], dict]:
    """The metrics of ``benchmarks/conditional.py`` for a generator (latent seed 0): those of
    ``evaluate_run`` (n samples) and, with ``cas``, its CAS."""
    data = config.data
    reference = load_reference(data.dataset, data.data_dir, memorisation_check=False)
    classifier = load_classifier()
    test = load_split(data.dataset, "test", data.data_dir)

    def score(generator: nn.Module) -> dict:
        record, _ = evaluate_generator(generator, reference, classifier, n, seed=0)
        result = {k: record.get(k) for k in KEYS}
        if cas:
            result["cas"] = classification_accuracy_score(generator, test, seed=0)["cas"]
        return result

    return score


def read_results(out: Path) -> list[dict]:
    """OUT/results.jsonl's lines, in order."""
    path = out / "results.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run the screen into {out} first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(lines: list[dict]) -> str:
    """A markdown table of result lines, a row each, in their order (what the docs show)."""
    keys = [k for k in HEADINGS if any(line.get(k) is not None for line in lines)]
    head = ["network", "conditioning", "class weight", "seed", "EMA", "ramp"]
    head += [HEADINGS[k] for k in keys]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        cells = [line["model"], line["conditioning"], f"{line['class_weight']:g}", line["seed"],
                 line["ema"], f"{line['ema_ramp']:g}"]  # fmt: skip
        cells += ["–" if line.get(k) is None else f"{line[k]:.3f}" for k in keys]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    threads = sorted({line["threads"] for line in lines})
    rows += ["", f"CPU, torch threads {threads}, {lines[0]['n']:,} samples of latent seed 0 an "
             "average; printed by benchmarks/ema_ramps.py."]  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--preset", default="improved")
    parser.add_argument("--conditional", default="projection")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--class-weight", type=float, default=1.0, help="acgan/dual/tac/adc")
    parser.add_argument("--ema", type=float, default=0.9999, help="the averages' decay")
    parser.add_argument("--ramps", type=float, nargs="+", default=[10.0, 14.0, 7.0, 5.0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--cas", action="store_true", help="also score CAS (minutes each)")
    parser.add_argument("--limit", type=int, default=None, help="train on N images (tests)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--table", action="store_true", help="only print OUT's results table")
    args = parser.parse_args(argv)
    if args.table:
        print(table(read_results(args.out)))
        return 0

    train_config = with_preset(
        TrainConfig(epochs=args.epochs, seed=args.seed, preset=args.preset, device="cpu"),
        args.model,
    )
    train_config = dataclasses.replace(
        train_config, ema=args.ema, ema_ramp=args.ramps[0], class_weight=args.class_weight
    )
    config = RunConfig(
        data=DataConfig(data_dir=args.data_dir, limit=args.limit),
        model=ModelConfig(args.model, conditioning=args.conditional),
        train=train_config,
    ).validate()
    averages = train(config, args.out / "run", tuple(args.ramps))
    score = scorer(config, args.n, args.cas)
    for ramp, generator in averages.items():
        atomic.torch_save(generator.state_dict(), args.out / f"ramp-{ramp:g}.pt")
        line = {
            "model": args.model, "preset": args.preset, "conditioning": args.conditional,
            "class_weight": args.class_weight, "seed": args.seed, "epochs": args.epochs,
            "ema": args.ema, "ema_ramp": ramp,
            "n": args.n, **score(generator),
            "threads": torch.get_num_threads(),
        }  # fmt: skip
        runs.append_metrics(args.out / "results.jsonl", [line])
        print(json.dumps(line), flush=True)
    print(table(read_results(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
