"""Screen training recipes: train each variant, evaluate 10,000 samples, append one JSON line.

    python benchmarks/presets.py --model mlp --variants seed ema hinge --seeds 0 --epochs 10 \
        --out /tmp/presets [--limit N] [--data-dir DIR]

Each variant is a set of TrainConfig changes (``VARIANTS`` below, or ``improved``/``seed`` for
the presets, ``improved-FIELD`` for the improved preset without one ingredient, and
``improved+FIELD=VALUE[+FIELD=VALUE...]`` for it with parts moved, e.g.
``improved+beta1=0+beta2=0.99``; a variant without ``ema`` whose recipe a kept run trained
with ``ema`` is that run's G weights, evaluated without training); ``real`` trains nothing
and scores N real training images instead, the floor that every generator's row is read
against. Results go to
OUT/results.jsonl (one line per variant and seed: FID, KID, precision, recall, coverage, the
rarest class's share, classes covered, seconds per epoch, device, CUDA graph or not);
``--table`` prints the Markdown table of docs/presets.md from that file, then each
recipe against the seed preset on the seeds both ran on one device, with the issue's
targets. Runs are kept in OUT/runs/ and reused when they exist (one that was interrupted is
resumed first, e.g. a CPU run stopped at a session's end); a run for more epochs continues a
finished shorter one of the same variant and seed (a copy resumed: training never depends on
the number of epochs asked for, so its first epochs are that run's). Train alone on the
machine: seconds per epoch are part of the result.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import shutil
import statistics
import time
from pathlib import Path

import torch

from ganscope import evaluation, presets, runs, trainer
from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.options import EvaluateOptions

#: name -> TrainConfig changes (on top of the seed preset).
VARIANTS: dict[str, dict] = {
    "seed": {},
    "ema": {"ema": 0.999},
    "ttur": {"lr_d": 4e-4},
    "hinge": {"loss": "hinge"},
    "r1": {"r1_gamma": 1.0},
    "r1-10": {"r1_gamma": 10.0},
    "sn": {"spectral_norm": True},
    "smooth": {"label_smoothing": 0.1},
    "noise": {"instance_noise": 0.1},
    "betas": {"beta1": 0.0, "beta2": 0.9},
    "ema+ttur": {"ema": 0.999, "lr_d": 4e-4},
    "ema+sn+hinge": {"ema": 0.999, "spectral_norm": True, "loss": "hinge"},
    "ema+r1": {"ema": 0.999, "r1_gamma": 1.0},
    "ema+r1+ttur": {"ema": 0.999, "r1_gamma": 1.0, "lr_d": 4e-4},
    "r1+ttur": {"r1_gamma": 1.0, "lr_d": 4e-4},
    "ema+noise": {"ema": 0.999, "instance_noise": 0.1},
    "ema+r1-10": {"ema": 0.999, "r1_gamma": 10.0},
    "ema+r1-4": {"ema": 0.999, "r1_gamma": 1.0, "r1_every": 4},
    "ema+r1+betas": {"ema": 0.999, "r1_gamma": 1.0, "beta1": 0.0, "beta2": 0.9},
    "ema-0.99+r1": {"ema": 0.99, "r1_gamma": 1.0},
    "sn-cached": {"spectral_norm": True},
    "ema+sn": {"ema": 0.999, "spectral_norm": True},
    "ema+r1+sn": {"ema": 0.999, "r1_gamma": 1.0, "spectral_norm": True},
    # The CNN GAN's next screen (docs/presets.md): the improved preset (ema+r1+ttur) with one
    # part moved, towards half the seed preset's FID.
    "ema+r1-0.1+ttur": {"ema": 0.999, "r1_gamma": 0.1, "lr_d": 4e-4},
    "ema+r1-10+ttur": {"ema": 0.999, "r1_gamma": 10.0, "lr_d": 4e-4},
    "ema+r1+ttur-3x": {"ema": 0.999, "r1_gamma": 1.0, "lr_d": 6e-4},
    "ema+r1+ttur-lr2x": {"ema": 0.999, "r1_gamma": 1.0, "lr": 4e-4, "lr_d": 8e-4},
    # Both learning rates x2 trains as fast as the preset at twice the epochs (docs/presets.md):
    # how far that goes before it breaks.
    "ema+r1+ttur-lr3x": {"ema": 0.999, "r1_gamma": 1.0, "lr": 6e-4, "lr_d": 1.2e-3},
    "ema+r1+ttur-lr4x": {"ema": 0.999, "r1_gamma": 1.0, "lr": 8e-4, "lr_d": 1.6e-3},
    "ema-0.9999+r1+ttur": {"ema": 0.9999, "r1_gamma": 1.0, "lr_d": 4e-4},
    "ema+r1+ttur+betas": {"ema": 0.999, "r1_gamma": 1.0, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.99},
    "ema+r1+ttur+hinge": {"ema": 0.999, "r1_gamma": 1.0, "lr_d": 4e-4, "loss": "hinge"},
    "dropout": {"d_dropout": 0.3},
    "ema+dropout": {"ema": 0.999, "d_dropout": 0.3},
    "ema+sn+dropout": {"ema": 0.999, "spectral_norm": True, "d_dropout": 0.3},
}
KEYS = ("fid", "kid", "precision", "recall", "coverage", "rarest_share", "classes_covered")


def changes_of(name: str, model: str) -> dict:
    if name in presets.PRESETS:
        return {"preset": name, **presets.preset_values(name, model)}
    if name.startswith("improved-"):  # the ablation: the improved preset less one ingredient
        values = presets.preset_values("improved", model)
        values.pop(name.removeprefix("improved-"))
        return values
    if name.startswith("improved+"):  # the preset with parts moved: improved+beta1=0+beta2=0.99
        values = presets.preset_values("improved", model)
        for part in name.removeprefix("improved+").split("+"):
            field, _, value = part.partition("=")
            values[field] = _typed(field, value)
        return values
    return VARIANTS[name]


def _typed(field: str, text: str):
    """``text`` as a value of TrainConfig's ``field`` (typed as the field's default is)."""
    if field not in presets.RECIPE_FIELDS:
        raise SystemExit(
            f"not a recipe field: {field!r} (one of {', '.join(presets.RECIPE_FIELDS)})"
        )
    default = getattr(TrainConfig(), field)
    if default is None:  # lr_d: None means G's rate
        return float(text)
    if isinstance(default, bool):
        return {"true": True, "false": False}[text.lower()]
    return type(default)(text)


def run_variant(args, name: str, seed: int) -> dict:
    changes = changes_of(name, args.model)
    config = RunConfig(
        DataConfig(data_dir=args.data_dir, limit=args.limit),
        ModelConfig(args.model),
        TrainConfig(
            epochs=args.epochs, seed=seed, device=args.device, precision=args.precision, **changes
        ),
    )
    folder = Path(args.out) / "runs" / f"{args.model}-{name}-s{seed}-e{args.epochs}"
    twin = None if (folder / runs.CONFIG_FILE).is_file() else averaged_twin(args, config)
    if twin is not None:  # G's own weights there are this variant's run: nothing to train
        print(f"{name} seed {seed}: G's own weights of {twin.path}", flush=True)
        folder = twin.path
    elif not (folder / runs.CONFIG_FILE).is_file():
        shorter = _shorter_run(folder, args.epochs)
        if shorter is None:
            trainer.train(config, folder, progress=False)
        else:
            check_same_recipe(runs.load_run(shorter), config.train)
            shutil.copytree(shorter, folder, ignore=shutil.ignore_patterns(".lock", ".writer"))
            trainer.resume(folder, epochs=args.epochs, progress=False)
    else:
        kept = runs.load_run(folder)
        check_same_recipe(kept, config.train)
        if not _finished(kept, args.epochs):  # interrupted: continue it
            trainer.resume(folder, epochs=args.epochs, progress=False)
    run = runs.load_run(folder)
    result = evaluation.evaluate_run(
        run,
        EvaluateOptions(
            n=args.n, data_dir=args.data_dir, progress=False, trained_weights=twin is not None
        ),
    )
    epochs = run.metrics("epoch")
    return {
        "model": args.model,
        "variant": name,
        "changes": changes,
        "seed": seed,
        "epochs": args.epochs,
        "limit": args.limit,
        **({"trained_weights_of": twin.path.name} if twin is not None else {}),
        **scores(result),
        "seconds_per_epoch": statistics.mean(r["seconds"] for r in epochs),
        "epoch_seconds": [r["seconds"] for r in epochs],
        "device": epochs[-1]["device"],
        "precision_mode": epochs[-1]["precision"],
        "cuda_graph": epochs[-1].get("cuda_graph", False),
    }


def scores(result: dict) -> dict:
    """A row's metrics from an evaluation's result."""
    histogram = result["class_histogram"]
    return {
        **{k: result[k] for k in KEYS if k in result},
        "rarest_share": min(histogram) / sum(histogram),
        "class_histogram": histogram,
    }


@functools.cache
def _real_side(data_dir: str | None) -> tuple[evaluation.Reference, torch.Tensor, torch.nn.Module]:
    """The test set (without the memorisation check), the training images, the classifier:
    loaded once for every seed of the real row."""
    from ganscope.classifier import load_classifier

    both = evaluation.load_reference(data_dir=data_dir, progress=False)
    test_only = evaluation.Reference(both.test_images, both.test_labels, None, both.num_classes)
    return test_only, both.train_images, load_classifier()


def real_row(args, seed: int) -> dict:
    """The ``real`` row: ``args.n`` training images (a draw by ``seed``) scored as if generated,
    what a generator that reproduced the training set would get."""
    reference, train_images, classifier = _real_side(args.data_dir)
    draw = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
    result = evaluation.compare(train_images[draw[: args.n]], reference, classifier, seed=seed)
    return {
        "model": args.model,
        "variant": "real",
        "changes": {"images": "the training set's"},
        "seed": seed,
        "epochs": 0,
        "limit": None,
        **scores(result),
        "seconds_per_epoch": None,
        "epoch_seconds": [],
        "device": "-",
        "precision_mode": None,
    }


def recipe_of(train: TrainConfig) -> dict:
    """The values of ``train`` that make its recipe (what a variant changes)."""
    return {field: getattr(train, field) for field in presets.RECIPE_FIELDS}


def check_same_recipe(kept: runs.Run, train: TrainConfig) -> None:
    """Stop when the ``kept`` run was trained with another recipe than ``train``'s:
    a variant's name can mean another recipe later (``improved`` once the preset changes),
    and reusing the old run would score it under the new name."""
    saved = recipe_of(kept.config.train)
    wanted = recipe_of(train)
    if saved != wanted:
        moved = ", ".join(
            f"{field} {saved[field]} there, {wanted[field]} now"
            for field in wanted
            if saved[field] != wanted[field]
        )
        raise SystemExit(
            f"{kept.path} holds a run of another recipe ({moved}); "
            "move it away or use another --out"
        )


def averaged_twin(args, config: RunConfig) -> runs.Run | None:
    """A finished run in OUT/runs that trained ``config``'s recipe with ``--ema`` added, on
    the same device, data and seed, for as many epochs; or None. The moving average never
    feeds back into training, so G's own weights there are exactly what ``config`` would
    train (``ganscope evaluate --trained-weights``; tests/test_evaluation.py checks it):
    a variant without the average, e.g. ``improved-ema``, costs an evaluation, not a run."""
    if config.train.ema:
        return None
    wanted = recipe_of(config.train)
    pattern = f"{glob.escape(args.model)}-*-s{config.train.seed}-e{args.epochs}"
    for folder in sorted((Path(args.out) / "runs").glob(pattern)):
        if not (folder / runs.CONFIG_FILE).is_file():
            continue
        other = runs.load_run(folder)
        train = other.config.train
        if not train.ema or recipe_of(dataclasses.replace(train, ema=0.0)) != wanted:
            continue
        same = (train.seed, train.device, train.precision, other.config.data.limit) == (
            config.train.seed, config.train.device, config.train.precision, config.data.limit
        )  # fmt: skip
        if same and _finished(other, args.epochs):
            return other
    return None


def _finished(run: runs.Run, epochs: int) -> bool:
    """Whether ``run`` trained all ``epochs`` (a run killed on the way has fewer)."""
    return run.has_checkpoint() and run.latest_epoch() >= epochs


def _shorter_run(folder: Path, epochs: int) -> Path | None:
    """The finished run of the same variant and seed with the most epochs below ``epochs``."""
    stem = folder.name.rsplit("-e", 1)[0]
    best, best_epochs = None, 0
    for other in folder.parent.glob(f"{glob.escape(stem)}-e*"):
        done = other.name.rsplit("-e", 1)[1]
        if done.isdigit() and best_epochs < int(done) < epochs:
            if _finished(runs.load_run(other), int(done)):
                best, best_epochs = other, int(done)
    return best


def table(path: Path) -> str:
    # A variant evaluated again replaces its earlier line; a name whose recipe changed (the
    # improved preset's, once a better one became it) keeps a row per recipe.
    groups: dict[tuple, list[dict]] = {}
    for row in _latest(path, "seed"):
        groups.setdefault(_group_key(row), []).append(row)
    lines = [
        "| model | variant | what changed | FID | KID | precision | recall | coverage "
        "| rarest class | s/epoch (mean) | s/epoch (median) | seeds | epochs | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(values: list[float], digits: int) -> str:
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    def seconds(group: list[dict]) -> str:  # per device: a GPU's and a CPU's do not average
        # the real row trains nothing, nor does one read from an averaged twin's own weights
        if group[0]["seconds_per_epoch"] is None or "trained_weights_of" in group[0]:
            return "-"
        devices = dict.fromkeys(r["device"] for r in group)
        if len(devices) == 1:
            return cell([r["seconds_per_epoch"] for r in group], 1)
        return "; ".join(
            f"{cell([r['seconds_per_epoch'] for r in group if r['device'] == d], 1)} ({d})"
            for d in devices
        )

    def median(group: list[dict]) -> str:  # of every epoch of the group's runs, per device
        if group[0]["seconds_per_epoch"] is None or "trained_weights_of" in group[0]:
            return "-"
        devices = dict.fromkeys(r["device"] for r in group)
        cells = []
        for d in devices:
            epochs = [s for r in group if r["device"] == d for s in r.get("epoch_seconds", [])]
            cells.append(f"{statistics.median(epochs):.1f}" if epochs else "?")
        if len(devices) == 1:
            return cells[0]
        return "; ".join(f"{c} ({d})" for c, d in zip(cells, devices))

    for (model, variant, _, epochs, limit), group in groups.items():
        changed = ", ".join(f"{k}={v}" for k, v in group[0]["changes"].items()) or "(report)"
        if "trained_weights_of" in group[0]:
            changed += " (G's own weights of the same runs with ema)"
        lines.append(
            f"| {model} | {variant} | {changed} | {cell([r['fid'] for r in group], 2)} "
            f"| {cell([r['kid'] for r in group], 4)} "
            f"| {cell([r['precision'] for r in group], 3)} "
            f"| {cell([r['recall'] for r in group], 3)} "
            f"| {cell([r['coverage'] for r in group], 3)} "
            f"| {cell([100 * r['rarest_share'] for r in group], 1)}% "
            f"| {seconds(group)} | {median(group)} "
            f"| {','.join(str(r['seed']) for r in group)} "
            f"| {_length(epochs, limit)} "
            f"| {', '.join(dict.fromkeys(r['device'] for r in group))} |"
        )
    return "\n".join(lines)


#: The issue's targets per model, against the seed preset on the same device and seeds: FID at
#: most this share of its FID, every class at least this share of samples, recall at least this
#: many times its recall.
TARGETS: dict[str, dict[str, float]] = {
    "cnn": {"fid_ratio": 0.5, "rarest": 0.05},
    "mlp": {"fid_ratio": 2 / 3, "rarest": 0.02, "recall_ratio": 5.0},
}
#: Seeds the targets are measured over.
TARGET_SEEDS = 3


def against_seed(path: Path) -> str:
    """Each recipe against the seed preset on the seeds both ran on one device, at one length
    and slice (a run from one seed on two devices is two different runs), with the targets."""
    setting = {}  # (model, epochs, limit, device, precision) -> {group key: {seed: row}}
    for row in _latest(path, "device", "precision_mode", "seed"):
        where = tuple(row.get(f) for f in ("model", "epochs", "limit", "device", "precision_mode"))
        setting.setdefault(where, {}).setdefault(_group_key(row), {})[row["seed"]] = row
    lines = [
        "| model | variant | epochs | device | seeds | FID (variant / seed preset) | ratio "
        "| per seed | recall ratio | rarest class | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, epochs, limit, device, precision), groups in setting.items():
        base = {}  # the seed preset's runs here, by seed
        for key, group in groups.items():
            if key[1] == "seed":
                base.update(group)
        for key, group in groups.items():
            seeds = sorted(set(group) & set(base))
            if key[1] in ("seed", "real") or not seeds:
                continue
            ours = [group[s] for s in seeds]
            theirs = [base[s] for s in seeds]
            fid = statistics.mean(r["fid"] for r in ours)
            fid_seed = statistics.mean(r["fid"] for r in theirs)
            recall_seed = statistics.mean(r["recall"] for r in theirs)
            recall = statistics.mean(r["recall"] for r in ours) / max(recall_seed, 1e-12)
            rarest = min(r["rarest_share"] for r in ours)
            per_seed = ", ".join(f"{a['fid'] / b['fid']:.2f}" for a, b in zip(ours, theirs))
            verdict = _verdict(model, fid / fid_seed, recall, rarest, len(seeds))
            lines.append(
                f"| {model} | {key[1]} | {_length(epochs, limit)} "
                f"| {device}{f' {precision}' if precision else ''} "
                f"| {','.join(map(str, seeds))} | {fid:.2f} / {fid_seed:.2f} "
                f"| {fid / fid_seed:.3f}x "
                f"| {per_seed} "
                f"| {recall:.1f}x | {100 * rarest:.1f}% | {verdict} |"
            )
    return "\n".join(lines)


def _verdict(model: str, fid_ratio: float, recall_ratio: float, rarest: float, n: int) -> str:
    target = TARGETS.get(model)
    if target is None:
        return "-"
    missed = []
    if fid_ratio > target["fid_ratio"]:
        # three digits: a ratio just over the target must not read as equal to it
        missed.append(f"FID {fid_ratio:.3f}x > {target['fid_ratio']:.3f}x")
    if rarest < target["rarest"]:
        missed.append(f"rarest class {100 * rarest:.1f}% < {100 * target['rarest']:.0f}%")
    if recall_ratio < target.get("recall_ratio", 0.0):
        missed.append(f"recall {recall_ratio:.1f}x < {target['recall_ratio']:.0f}x")
    verdict = "not met: " + "; ".join(missed) if missed else "met"
    if n < TARGET_SEEDS:
        verdict += f" ({n} seed{'s' if n > 1 else ''}; the targets ask {TARGET_SEEDS})"
    return verdict


def _length(epochs: int | None, limit: int | None) -> str:
    """A table's epochs cell: the epochs, and the slice of the training set if one was used."""
    return f"{epochs or '-'}{'' if limit is None else f' ({limit:,} images)'}"


def _latest(path: Path, *fields: str) -> list[dict]:
    """The results' lines, the last one of each recipe and `fields` (a run evaluated again
    replaces its earlier line)."""
    latest = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[(*_group_key(row), *(row.get(field) for field in fields))] = row
    return list(latest.values())


def _group_key(row: dict) -> tuple:
    """Rows of one variant, recipe, length and slice: the seeds of one table row."""
    changes = json.dumps(row["changes"], sort_keys=True)
    return row["model"], row["variant"], changes, row["epochs"], row["limit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--variants", nargs="+", default=["seed"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="fp32 to compare with CPU runs")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="presets-screen")
    parser.add_argument("--table", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    results = Path(args.out) / "results.jsonl"
    if args.table:
        print(table(results))
        print("\nAgainst the seed preset (same device, length and seeds):\n")
        print(against_seed(results))
        return
    results.parent.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        for seed in args.seeds:
            started = time.perf_counter()
            row = real_row(args, seed) if name == "real" else run_variant(args, name, seed)
            with results.open("a") as out:
                out.write(json.dumps(row) + "\n")
            per_epoch = row["seconds_per_epoch"]
            print(
                f"{args.model} {name} seed {seed}: FID {row['fid']:.2f} recall {row['recall']:.3f}"
                f" rarest {100 * row['rarest_share']:.1f}% classes {row['classes_covered']} "
                f"({'-' if per_epoch is None else f'{per_epoch:.1f}'} s/epoch; "
                f"{time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
