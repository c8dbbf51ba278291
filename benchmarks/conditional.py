"""Class-conditional GANs against the unconditional ones: train, evaluate, print the table.

    python benchmarks/conditional.py --out /tmp/conditional --models mlp --presets seed improved \
        --conditionings none projection concat acgan --seeds 0 1 2 [--cas projection] [--table]

For each network, preset, conditioning and seed: the run (``OUT/runs/MODEL-PRESET-COND-seedS``,
trained as ``ganscope train --model MODEL --preset PRESET --conditional COND --seed S`` would;
reused when it exists with the same method), its evaluation of 10,000 samples (latent seed 0,
class-balanced for a conditional run: FID, label agreement overall and per class, intra-class
FID) and, for the conditionings named by ``--cas``, the Classification Accuracy Score. One JSON
line per run goes to OUT/results.jsonl; ``--table`` prints docs/conditional.md's tables from
it: mean ± std over the seeds, each variant's seconds per epoch against the unconditional run
of the same preset, seeds and changes to the preset's recipe (``--lr`` and the like), and the
per-class agreement of each variant (and its per-class CAS where it was scored), then each
CAS-scored variant's CAS per class beside the classifier's accuracy on real images. ``--grids`` also
writes OUT/grids/RUN.png: 8 latent vectors of seed 0, one row per class (a row for an
unconditional run), the figures of docs/conditional.md. Seconds per
epoch are part of the result: run it alone on the machine (or with OMP_NUM_THREADS=1 beside
one other job, and say so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch

from ganscope import atomic, evaluation, runs
from ganscope.bench import device_name
from ganscope.config import LOSSES, DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.data import get_dataset
from ganscope.gallery import same_z_png
from ganscope.objective import EMA_RAMP
from ganscope.presets import with_preset
from ganscope.reproduce import ensure_trained

CLASSES = get_dataset("fashion-mnist").classes  # the per-class tables' rows and columns
KEYS = (
    "fid", "label_agreement", "label_agreement_worst_gap", "intra_fid", "class_precision",
    "class_recall", "cas",
)  # fmt: skip


def run_config(model: str, preset: str, conditioning: str, seed: int, args) -> RunConfig:
    train = TrainConfig(epochs=args.epochs, seed=seed, preset=preset, device=args.device)
    train = with_preset(train, model)
    train = dataclasses.replace(
        train,
        class_weight=args.class_weight,
        mode_seeking=args.mode_seeking,
        ema=train.ema if args.ema is None else args.ema,
        ema_ramp=train.ema_ramp if args.ema_ramp is None else args.ema_ramp,
        loss=train.loss if args.loss is None else args.loss,
        r1_gamma=train.r1_gamma if args.r1_gamma is None else args.r1_gamma,
        lr=train.lr if args.lr is None else args.lr,
        lr_d=train.lr_d if args.lr_d is None else args.lr_d,
        spectral_norm=train.spectral_norm if args.spectral_norm is None else args.spectral_norm,
    )
    return RunConfig(
        data=DataConfig(data_dir=args.data_dir),
        model=ModelConfig(model, conditioning=conditioning),
        train=train,
    ).validate()


def variant(
    conditioning: str, class_weight: float, mode_seeking: float = 0.0, changes: str = ""
) -> str:
    """The conditioning's name in the tables: with its class-loss weight where not 1, its
    mode-seeking weight where not 0 and its other changes to the preset's recipe
    (:func:`recipe_change`)."""
    name = conditioning if class_weight == 1 else f"{conditioning}, class weight {class_weight:g}"
    name = name if not mode_seeking else f"{name}, mode seeking {mode_seeking:g}"
    return f"{name}, {changes}" if changes else name


def recipe_change(train: TrainConfig, model: str) -> str:
    """``EMA 0.9999, ramp 2`` where the run's moving average is not its preset's, then
    ``hinge loss``, ``R1 γ 1``, ``lr 0.0003, D 0.0006``, ``spectral norm`` (or ``no spectral
    norm``) and ``20 epochs`` where the loss, R1's weight, the learning rates, D's spectral
    normalisation and the epochs are not; "" for none."""
    preset = with_preset(TrainConfig(preset=train.preset), model)
    parts = []
    if train.ema != preset.ema or train.ema_ramp != preset.ema_ramp:
        parts.append(f"EMA {train.ema:g}, ramp {train.ema_ramp:g}")
    if train.loss != preset.loss:
        parts.append(f"{train.loss} loss")
    if train.r1_gamma != preset.r1_gamma:
        parts.append(f"R1 γ {train.r1_gamma:g}")
    if train.lr != preset.lr or train.lr_d != preset.lr_d:
        parts.append(f"lr {train.lr:g}, D {train.lr_d or train.lr:g}")
    if train.spectral_norm != preset.spectral_norm:
        parts.append("spectral norm" if train.spectral_norm else "no spectral norm")
    if train.epochs != preset.epochs:  # outside the 10 epochs: another recipe
        parts.append(f"{train.epochs} epochs")
    return ", ".join(parts)


def suffix(args) -> str:
    """The run folder's name after the conditioning: ``-wW``, ``-msM``, ``-emaE-rR``,
    ``-LOSS``, ``-r1gG``, ``-lrL``, ``-lrdL``, ``-sn`` (or ``-nosn``) and ``-eEPOCHS`` where
    they apply."""
    name = "" if args.class_weight == 1 else f"-w{args.class_weight:g}"
    name += "" if not args.mode_seeking else f"-ms{args.mode_seeking:g}"
    name += "" if args.ema is None else f"-ema{args.ema:g}"
    name += "" if args.ema_ramp is None else f"-r{args.ema_ramp:g}"
    name += "" if args.loss is None else f"-{args.loss}"
    name += "" if args.r1_gamma is None else f"-r1g{args.r1_gamma:g}"
    name += "" if args.lr is None else f"-lr{args.lr:g}"
    name += "" if args.lr_d is None else f"-lrd{args.lr_d:g}"
    name += "" if args.spectral_norm is None else ("-sn" if args.spectral_norm else "-nosn")
    return name + ("" if args.epochs == TrainConfig.epochs else f"-e{args.epochs}")


def measure(path: Path, config: RunConfig, cas: bool, n: int) -> dict:
    run = ensure_trained(path, config, progress=True)
    epochs = run.metrics("epoch")
    wanted = {"epoch": run.latest_epoch(), "n": n, "seed": 0}
    record = run.find_evaluation(**wanted)
    if record is None or (cas and "cas" not in record):
        record = evaluation.evaluate_run(run, n=n, seed=0, cas=cas, progress=True)
    changes = recipe_change(config.train, config.model.name)
    return {
        "model": config.model.name,
        "preset": config.train.preset,
        "conditioning": variant(
            config.model.conditioning,
            config.train.class_weight,
            config.train.mode_seeking,
            changes,
        ),
        "changes": changes,
        "class_weight": config.train.class_weight,
        "mode_seeking": config.train.mode_seeking,
        "ema": config.train.ema,
        "ema_ramp": config.train.ema_ramp,
        "seed": config.train.seed,
        "epochs": len(epochs),
        "seconds_per_epoch": statistics.mean(r["seconds"] for r in epochs),
        "precision": epochs[-1].get("precision"),
        "device": epochs[-1].get("device"),
        "threads": torch.get_num_threads(),
        "cpu": device_name(torch.device("cpu")),  # the CPU's model name, and torch's threads
        "n": n,
        **{k: record.get(k) for k in KEYS},
        "label_agreement_per_class": record.get("label_agreement_per_class"),
        "classifier_accuracy_per_class": record.get("classifier_accuracy_per_class"),
        "intra_fid_per_class": record.get("intra_fid_per_class"),
        "class_precision_per_class": record.get("class_precision_per_class"),
        "class_recall_per_class": record.get("class_recall_per_class"),
        "cas_per_class": record.get("cas_per_class"),
        "cas_real": record.get("cas_real"),
    }


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _unconditional(groups: dict[tuple, list[dict]], model: str, preset: str, row: dict):
    """The unconditional runs a variant's seconds are set against: those with the same
    changes to the preset's recipe (``lr 0.0008, D 0.0008``); a result line written before
    the lines said their changes is set against the preset's own unconditional runs."""
    return groups.get((model, preset, variant("none", 1.0, 0.0, row.get("changes", ""))), [])


def _by_variant(results: list[dict]) -> dict[tuple, list[dict]]:
    """Result lines grouped by (model, preset, conditioning), in order."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["model"], r["preset"], r["conditioning"]), []).append(r)
    return groups


def table(results: list[dict]) -> str:
    groups = _by_variant(results)
    lines = [
        "| network | preset | conditioning | seeds | FID ↓ | label agreement ↑ | worst class "
        "gap ↓ | intra-class FID ↓ | class precision ↑ | class recall ↑ | CAS ↑ | s/epoch | "
        "× unconditional |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, preset, cond), rows in sorted(groups.items()):
        seeds = sorted(r["seed"] for r in rows)
        plain = [r for r in _unconditional(groups, model, preset, rows[0]) if r["seed"] in seeds]
        speed = statistics.mean(r["seconds_per_epoch"] for r in rows)
        ratio = (
            f"{speed / statistics.mean(r['seconds_per_epoch'] for r in plain):.2f}"
            if plain and cond.split(",")[0] != "none"
            else "–"
        )
        cells = [_mean_std([r.get(k) for r in rows]) for k in KEYS]
        lines.append(
            f"| {model} | {preset} | {cond} | {','.join(map(str, seeds))} | "
            + " | ".join(cells)
            + f" | {speed:.1f} | {ratio} |"
        )
    device = {(r["device"], r["precision"], r["threads"], r["cpu"]) for r in results}
    lines.append("")
    lines.append(
        f"Device, precision, torch threads, CPU: {sorted(device)}; n = 10,000 "
        "samples per evaluation (latent seed 0); printed by benchmarks/conditional.py."
    )
    return "\n".join(lines)


def cas_table(results: list[dict]) -> str:
    """Each variant's CAS per class (mean over its seeds with a per-class CAS), beside the
    shipped classifier's accuracy on each class's real test images: which garments a
    classifier trained on generated images misses. "" when no line has a per-class CAS."""
    groups = _by_variant([r for r in results if r.get("cas_per_class")])
    if not groups:
        return ""
    first = next(iter(groups.values()))[0]
    real, real_cas = first["classifier_accuracy_per_class"], first.get("cas_real")
    lines = [
        "| network | preset | conditioning | seeds | CAS | " + " | ".join(CLASSES) + " |",
        "|---|---|---|---|---|" + "---|" * len(CLASSES),
        "| – | – | real images (the shipped classifier) | – | "
        + (f"{real_cas:.3f}" if real_cas is not None else "–")
        + " | "
        + " | ".join(f"{a:.3f}" for a in real)
        + " |",
    ]
    for (model, preset, cond), rows in sorted(groups.items()):
        cells = [statistics.mean(column) for column in zip(*(r["cas_per_class"] for r in rows))]
        lines.append(
            f"| {model} | {preset} | {cond} | {','.join(str(r['seed']) for r in rows)} | "
            f"{statistics.mean(r['cas'] for r in rows):.3f} | "
            + " | ".join(f"{a:.3f}" for a in cells)
            + " |"
        )
    return "\n".join(lines)


def per_class(results: list[dict], model: str, preset: str, cond: str) -> str:
    rows = [
        r
        for r in results
        if (r["model"], r["preset"], r["conditioning"]) == (model, preset, cond)
        and r["label_agreement_per_class"]
    ]
    if not rows:
        return ""
    lines = [
        f"{model}, {preset} preset, {cond}: per class, mean over seeds "
        f"{','.join(str(r['seed']) for r in rows)}",
        "",
        "| class | label agreement | classifier on real images | gap | intra-class FID | "
        "class precision | class recall | CAS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c, name in enumerate(CLASSES):
        agree = statistics.mean(r["label_agreement_per_class"][c] for r in rows)
        real = rows[0]["classifier_accuracy_per_class"][c]
        intra = statistics.mean(r["intra_fid_per_class"][c] for r in rows)
        manifold = [  # lines written before a key was recorded: "–"
            _mean_std([(r.get(key) or [None] * len(CLASSES))[c] for r in rows])
            for key in ("class_precision_per_class", "class_recall_per_class", "cas_per_class")
        ]
        lines.append(
            f"| {name} | {agree:.3f} | {real:.3f} | {real - agree:+.3f} | {intra:.2f} | "
            + " | ".join(manifold)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["mlp"])
    parser.add_argument("--presets", nargs="+", default=["seed"])
    parser.add_argument("--conditionings", nargs="+", default=["none", "projection"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--cas", nargs="*", default=[], help="conditionings to score by CAS")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument(
        "--class-weight", type=float, default=1.0, help="of acgan, dual, tac and adc's class loss"
    )
    parser.add_argument(
        "--mode-seeking", type=float, default=0.0, help="weight of MSGAN's term (0: off)"
    )
    parser.add_argument(
        "--ema", type=float, default=None, help="decay of G's moving average (default: preset's)"
    )
    parser.add_argument(
        "--ema-ramp",
        type=float,
        default=None,
        help=f"the average's ramp constant (default: preset's; ganscope's own {EMA_RAMP:g})",
    )
    parser.add_argument(
        "--loss", choices=LOSSES, default=None, help="the GAN objective (default: preset's)"
    )
    parser.add_argument(
        "--r1-gamma", type=float, default=None, help="R1's weight (default: preset's)"
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="G's learning rate (default: preset's)"
    )
    parser.add_argument(
        "--lr-d", type=float, default=None, help="D's learning rate (default: preset's)"
    )
    parser.add_argument(
        "--spectral-norm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="spectral normalisation of D's layers on or off (default: preset's)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--table", action="store_true", help="only print the tables")
    parser.add_argument("--grids", action="store_true", help="write OUT/grids/RUN.png")
    args = parser.parse_args()
    results_path = args.out / "results.jsonl"
    if not args.table:
        for model in args.models:
            for preset in args.presets:
                for cond in args.conditionings:
                    for seed in args.seeds:
                        config = run_config(model, preset, cond, seed, args)
                        name = f"{model}-{preset}-{cond}{suffix(args)}-seed{seed}"
                        path = args.out / "runs" / name
                        result = measure(path, config, cond in args.cas, args.n)
                        runs.append_metrics(results_path, [result])
                        if args.grids:
                            png = same_z_png(runs.load_run(path))
                            atomic.write_bytes(args.out / "grids" / f"{path.name}.png", png)
                        print(json.dumps({k: result[k] for k in ("model", "preset",
                              "conditioning", "seed", *KEYS)}), flush=True)  # fmt: skip
    lines = results_path.read_text().splitlines() if results_path.is_file() else []
    results = [json.loads(line) for line in lines if line.strip()]
    latest = {(r["model"], r["preset"], r["conditioning"], r["seed"]): r for r in results}
    results = list(latest.values())
    print(table(results))
    variants = {(r["model"], r["preset"], r["conditioning"]) for r in results}
    for model, preset, cond in sorted(v for v in variants if v[2] != "none"):
        print()
        print(per_class(results, model, preset, cond))
    if cas := cas_table(results):
        print(f"\nCAS per class, mean over each variant's seeds:\n\n{cas}")


if __name__ == "__main__":
    main()
