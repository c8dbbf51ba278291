"""Screen training recipes as a study: every variant on every seed, each evaluated on 10,000
samples; print docs/presets.md's tables from the studies.

    python benchmarks/presets.py --model mlp --variants seed ema hinge --seeds 0 --epochs 10 \
        --out /tmp/presets [--limit N] [--data-dir DIR] [--workers N] [--storage URL]
    python benchmarks/presets.py --out /tmp/presets --table

Each variant is a set of TrainConfig changes (``VARIANTS`` below, or ``improved``/``seed`` for
the presets, ``improved-FIELD`` for the improved preset without one ingredient, and
``improved+FIELD=VALUE[+FIELD=VALUE...]`` for it with parts moved, e.g.
``improved+beta1=0+beta2=0.99``). The screen is a ``ganscope sweep`` study (docs/sweep.md):
the variants are the space's named [points], compared on a grid over the seeds, in
OUT/studies/NAME (NAME: the model, the epochs and the space's sha256, so the same command
joins its study and finishes what an interrupted one left, and a variant whose recipe changed
is another study). Every trial is a run folder there; after the study each is evaluated on
``--n`` samples (latent seed 0; the record stays in the run folder). ``--workers`` and
``--storage`` are the sweep's: worker processes, and a PostgreSQL server that screens on
several machines share. ``real`` trains nothing and scores N real training images instead,
the floor every generator's row is read against (OUT/results.jsonl; screens from before the
screen was a study are read from there too). ``--table`` prints the Markdown table of
docs/presets.md from the studies: FID, KID, precision, recall, coverage, the rarest class's
share, seconds per epoch, device; then each recipe against the seed preset on the seeds both
ran on one device, with the issue's targets. Train alone on the machine: seconds per epoch are
part of the result.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import statistics
from pathlib import Path

import torch

from ganscope import evaluation, presets, runs
from ganscope import sweep as sweeping
from ganscope.config import TrainConfig
from ganscope.errors import GanscopeError
from ganscope.options import EvaluateOptions
from ganscope.space import Space

#: Where the screen's studies live (one sweep folder each), and the real images' rows.
STUDIES = "studies"
RESULTS = "results.jsonl"

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


def space_toml(args) -> tuple[str, str]:
    """The screen as a sweep space (docs/sweep.md): one named point per variant, compared on a
    grid over the seeds; each trial evaluated once, at its last epoch. Returns the study's name
    (the model, the length and the space's sha256: the same command joins the same study, a
    changed variant or preset makes another) and the TOML text."""
    points = [name for name in args.variants if name != "real"]
    study = {
        "model": args.model, "preset": "seed", "epochs": args.epochs,
        "trials": len(points) * len(args.seeds), "sampler": "grid", "pruner": "none",
        "objectives": ["fid"], "seeds": list(args.seeds), "eval_every": args.epochs,
        "eval_samples": min(2000, args.n), "limit": args.limit or 0,
        "data_dir": args.data_dir or "", "device": args.device, "precision": args.precision,
    }  # fmt: skip
    lines = ["[study]", *(f"{k} = {_toml(v)}" for k, v in study.items()), "", "[points]"]
    for name in points:
        changes = ", ".join(f"{k} = {_toml(v)}" for k, v in changes_of(name, args.model).items())
        lines.append(f"{_toml(name)} = {{ {changes} }}")
    text = "\n".join(lines) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    limit = f"-l{args.limit}" if args.limit else ""
    return f"{args.model}-e{args.epochs}{limit}-{digest}", text


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)  # a string: JSON's quoting is TOML's basic string


def screen(args) -> Path:
    """Run (or join, or find finished) the screen's study in OUT/studies/NAME; every trial's
    run is then evaluated on ``args.n`` samples (the record stays in its run folder)."""
    name, text = space_toml(args)
    folder = Path(args.out) / STUDIES / name
    folder.mkdir(parents=True, exist_ok=True)
    space_path = folder / "screen.toml"
    space_path.write_text(text)
    sweeping.sweep(space_path, out=str(folder), workers=args.workers, storage=args.storage,
                   study=name, progress=False)  # fmt: skip
    for row in study_rows(folder, name, args.storage, evaluate=args):
        print(
            f"{row['model']} {row['variant']} seed {row['seed']}: FID {row['fid']:.2f} recall "
            f"{row['recall']:.3f} rarest {100 * row['rarest_share']:.1f}% classes "
            f"{row['classes_covered']} ({row['seconds_per_epoch']:.1f} s/epoch)",
            flush=True,
        )
    return folder


def study_rows(folder: Path, name: str, storage: str | None = None, evaluate=None) -> list[dict]:
    """One table row per finished trial of the study ``name`` kept for ``folder``: its
    point and seed, and the ``n``-sample evaluation of its run folder (made now when
    ``evaluate`` holds the screen's arguments, else read; a trial not evaluated yet is left
    out)."""
    import optuna  # optional: pip install 'ganscope[sweep]'

    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    study = optuna.load_study(study_name=name, storage=url)
    space = Space.from_json(study.user_attrs["space"])
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    rows, reference = [], None
    for trial in sorted(finished, key=lambda t: t.datetime_complete):
        if not (folder / trial.user_attrs["run"] / runs.CONFIG_FILE).is_file():
            continue  # trained by a worker on another machine (--storage): its folder is there
        run = runs.load_run(folder / trial.user_attrs["run"])
        wanted = {"epoch": run.latest_epoch(), "seed": 0}
        record = run.find_evaluation(**wanted, **({"n": evaluate.n} if evaluate else {}))
        if record is None and evaluate is not None:
            options = EvaluateOptions(n=evaluate.n, data_dir=evaluate.data_dir, progress=False)
            if reference is None:  # one test set for every trial: its features computed once
                reference = evaluation.load_reference(data_dir=evaluate.data_dir, progress=False)
            record = evaluation.evaluate_run(run, options, reference=reference)
        if record is None:
            continue
        epochs = run.metrics("epoch")
        rows.append({
            "model": space.model, "variant": trial.params["point"],
            "changes": space.points[trial.params["point"]], "seed": run.config.train.seed,
            "epochs": space.epochs, "limit": space.limit or None, **scores(record),
            "seconds_per_epoch": statistics.mean(r["seconds"] for r in epochs),
            "epoch_seconds": [r["seconds"] for r in epochs], "device": epochs[-1]["device"],
            "precision_mode": epochs[-1]["precision"],
            "cuda_graph": epochs[-1].get("cuda_graph", False),
            "study": name, "run": str(run.path), "n": record["n"],
        })  # fmt: skip
    return rows


def read_rows(out: Path, storage: str | None = None) -> list[dict]:
    """Every row of OUT: the lines of OUT/results.jsonl (the real images' rows, and screens
    run before the screen was a study), then every study's trials under OUT/studies."""
    path = Path(out) / RESULTS
    lines = path.read_text().splitlines() if path.is_file() else []
    rows = [json.loads(line) for line in lines if line.strip()]
    for folder in sorted((Path(out) / STUDIES).glob("*/")):
        if storage is not None or (folder / "study.db").is_file():
            rows += study_rows(folder, folder.name, storage)
    return rows


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


def table(rows: list[dict]) -> str:
    # A variant evaluated again replaces its earlier line; a name whose recipe changed (the
    # improved preset's, once a better one became it) keeps a row per recipe.
    groups: dict[tuple, list[dict]] = {}
    for row in sorted(_latest(rows, "seed"), key=lambda r: r["seed"]):
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


def against_seed(rows: list[dict]) -> str:
    """Each recipe against the seed preset on the seeds both ran on one device, at one length
    and slice (a run from one seed on two devices is two different runs), with the targets."""
    setting = {}  # (model, epochs, limit, device, precision) -> {group key: {seed: row}}
    for row in _latest(rows, "device", "precision_mode", "seed"):
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
        # two decimals: 1.99% must not read as the 2% it misses
        missed.append(f"rarest class {100 * rarest:.2f}% < {100 * target['rarest']:.0f}%")
    if recall_ratio < target.get("recall_ratio", 0.0):
        missed.append(f"recall {recall_ratio:.1f}x < {target['recall_ratio']:.0f}x")
    verdict = "not met: " + "; ".join(missed) if missed else "met"
    if n < TARGET_SEEDS:
        verdict += f" ({n} seed{'s' if n > 1 else ''}; the targets ask {TARGET_SEEDS})"
    return verdict


def _length(epochs: int | None, limit: int | None) -> str:
    """A table's epochs cell: the epochs, and the slice of the training set if one was used."""
    return f"{epochs or '-'}{'' if limit is None else f' ({limit:,} images)'}"


def _latest(rows: list[dict], *fields: str) -> list[dict]:
    """The last row of each recipe and `fields` (a run evaluated again, or trained again in a
    later study, replaces its earlier row)."""
    latest = {}
    for row in rows:
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
    parser.add_argument("--workers", type=int, default=1, help="worker processes (sweep's)")
    parser.add_argument("--storage", default=None, help="a PostgreSQL URL shared by machines")
    parser.add_argument("--table", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    out = Path(args.out)
    try:
        if args.table:
            rows = read_rows(out, args.storage)
            print(table(rows))
            print("\nAgainst the seed preset (same device, length and seeds):\n")
            print(against_seed(rows))
            return
        if any(name != "real" for name in args.variants):
            screen(args)
    except GanscopeError as error:
        raise SystemExit(f"error: {error}") from None
    if "real" in args.variants:
        out.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            row = real_row(args, seed)
            runs.append_metrics(out / RESULTS, [row])
            print(f"real seed {seed}: FID {row['fid']:.2f} recall {row['recall']:.3f}", flush=True)


if __name__ == "__main__":
    main()
