"""The ``ganscope`` command: a thin argparse layer over the Python API.

Flags default to None so that the dataclass defaults in ``config.py`` stay the only defaults;
help texts quote them from there. User mistakes (GanscopeError) print one line on stderr and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import GanscopeError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "yes", "true", "1"):
        return True
    if text.lower() in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


# flag -> (config section, field, type, help). One flag maps to exactly one config field.
_TRAIN_FLAGS = {
    "--model": ("model", "name", str, "GAN family: mlp (the report's plain GAN) or cnn"),
    "--epochs": ("train", "epochs", int, "number of passes over the training set"),
    "--batch-size": ("train", "batch_size", int, "images per step"),
    "--lr": ("train", "lr", float, "Adam learning rate for both players"),
    "--beta1": ("train", "beta1", float, "Adam beta1"),
    "--beta2": ("train", "beta2", float, "Adam beta2"),
    "--seed": (
        "train",
        "seed",
        int,
        "seed for weights, shuffling and noise (CPU runs repeat exactly)",
    ),
    "--device": ("train", "device", str, "auto, cpu, cuda, cuda:N or mps"),
    "--precision": (
        "train",
        "precision",
        str,
        "auto, fp32 (the report's arithmetic) or bf16 (autocast); auto picks bf16 "
        "for the CNN on CPUs and GPUs with native bf16 units",
    ),
    "--cuda-graph": (
        "train",
        "cuda_graph",
        _on_off,
        "on CUDA, capture the whole training step once as a CUDA graph and replay it (on); "
        "off launches every kernel eagerly; ignored on other devices",
    ),
    "--checkpoint-minutes": (
        "train",
        "checkpoint_minutes",
        float,
        "minutes between saves of the whole training state within an epoch, so that an "
        "interrupted run resumes close to where it stopped (0: at epoch ends only)",
    ),
    "--eval-every": (
        "train",
        "eval_every",
        int,
        "quality metrics every N epochs, logged and drawn next to the losses (0: off)",
    ),
    "--eval-samples": ("train", "eval_samples", int, "generated images per such evaluation"),
    "--dataset": ("data", "dataset", str, "fashion-mnist or mnist"),
    "--data-dir": (
        "data",
        "data_dir",
        str,
        "folder with the IDX files (else $GANSCOPE_DATA_DIR, else ~/.cache/ganscope; "
        "missing files are downloaded)",
    ),
    "--limit": ("data", "limit", int, "train on the first N images only (smoke runs)"),
}
_SECTION_DEFAULTS = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
_RESUMABLE = {"epochs", "device", "cuda_graph", "checkpoint_minutes"}


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train one of the report's GANs into a run folder",
        description="Train a GAN on Fashion-MNIST and write a self-describing run folder: "
        "config.json, metrics.jsonl, per-epoch sample grids, loss curves and checkpoints. "
        "Defaults are the lab report's: Adam lr 2e-4, batch 64, 10 epochs.",
    )
    for flag, (section, field, kind, text) in _TRAIN_FLAGS.items():
        default = getattr(_SECTION_DEFAULTS[section], field)
        parser.add_argument(
            flag,
            type=kind,
            default=None,
            dest=field,
            metavar="{on,off}" if kind is _on_off else flag.lstrip("-").upper().replace("-", "_"),
            help=f"{text} (default: {_shown(default)})",
        )
    parser.add_argument(
        "--out", default=None, help="run folder to create (default: runs/MODEL-YYYYmmdd-HHMMSS)"
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue this run from its last checkpoint; only --epochs, --device, "
        "--cuda-graph and --checkpoint-minutes may change",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_cmd_train)


def _shown(default: object) -> str:
    return ("on" if default else "off") if isinstance(default, bool) else str(default)


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    sections: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for section, field, _, _ in _TRAIN_FLAGS.values():
        value = getattr(args, field)
        if value is not None:
            if field == "data_dir":
                # Stored absolute: later commands may run from another folder.
                value = str(Path(value).expanduser().resolve())
            sections[section][field] = value
    return RunConfig(
        data=DataConfig(**sections["data"]),
        model=ModelConfig(**sections["model"]),
        train=TrainConfig(**sections["train"]),
    )


def _cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from .data import get_dataset
    from .models import get_family
    from .training import resume, train

    command = ["ganscope", *argv]
    progress = not args.no_progress
    if args.resume:
        fixed = [
            flag
            for flag, (_, field, _, _) in _TRAIN_FLAGS.items()
            if getattr(args, field) is not None and field not in _RESUMABLE
        ]
        fixed += ["--out"] if args.out else []
        if fixed:
            raise GanscopeError(
                f"--resume continues a run with its saved settings; {', '.join(fixed)} "
                "cannot change (only --epochs, --device, --cuda-graph and --checkpoint-minutes "
                "can)"
            )
        args.run_dir = args.resume
        _announce(args.run_dir, resumed=True)
        run = resume(
            args.run_dir,
            epochs=args.epochs,
            device=args.device,
            cuda_graph=args.cuda_graph,
            checkpoint_minutes=args.checkpoint_minutes,
            command=command,
            progress=progress,
        )
    else:
        config = _config_from_args(args)
        get_family(config.model.name)  # fail on an unknown model before touching the data
        get_dataset(config.data.dataset)
        config.validate()
        args.run_dir = args.out or f"runs/{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        _announce(args.run_dir, resumed=False)
        run = train(config, args.run_dir, command=command, progress=progress)
    last = run.metrics("epoch")[-1]
    print(
        f"done: {run.path} (epoch {last['epoch']}, loss_D {last['loss_D']:.3f}, "
        f"loss_G {last['loss_G']:.3f}); samples in {run.path / 'samples'}"
    )
    return 0


def _announce(run_dir: str, *, resumed: bool) -> None:
    # Named up front so that an interrupted user knows what to --resume.
    print(f"{'resuming' if resumed else 'training into'} {run_dir}", file=sys.stderr)


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by train")
    parser.add_argument(
        "--epoch",
        type=int,
        default=None,
        help="use the generator saved after this epoch (default: the latest)",
    )
    parser.add_argument("--device", default="cpu", help="device to generate on (default: cpu)")


def _add_sampling_parsers(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser(
        "sample",
        help="a grid of generated images",
        description="Generate N images from a trained run's generator and save them as a grid "
        "(and optionally one PNG per image and an .npz with images and latent vectors).",
    )
    _add_run_args(sample)
    sample.add_argument("--n", type=int, default=64, help="number of images (default: 64)")
    sample.add_argument("--nrow", type=int, default=8, help="images per grid row (default: 8)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the latent vectors")
    sample.add_argument(
        "--out", default=None, help="grid PNG (default: RUN_DIR/samples/sample_seedS_nN.png)"
    )
    sample.add_argument(
        "--save-individual",
        action="store_true",
        help="also one PNG per image, in a folder named like the grid",
    )
    sample.add_argument(
        "--npz", action="store_true", help="also an .npz beside the grid: images (uint8) and z"
    )
    sample.set_defaults(handler=_cmd_sample)

    traverse = sub.add_parser(
        "traverse",
        help="shift single latent dimensions, as in the report's figures",
        description="For each dimension d, one figure with three rows: the images of z with "
        "z[d] lowered by DELTA, the unchanged z, and z[d] raised by DELTA; the same base "
        "vectors for every dimension. The defaults are the report's: dims 20 50 60 70 90, "
        "delta 10. Writes dim_NNN.png per dimension and overview.png.",
    )
    _add_run_args(traverse)
    traverse.add_argument(
        "--dims",
        type=int,
        nargs="+",
        default=[20, 50, 60, 70, 90],
        help="latent dimensions (default: 20 50 60 70 90)",
    )
    traverse.add_argument("--delta", type=float, default=10.0, help="shift size (default: 10)")
    traverse.add_argument("--n", type=int, default=8, help="base vectors (default: 8)")
    traverse.add_argument("--seed", type=int, default=0, help="seed of the base vectors")
    traverse.add_argument(
        "--steps",
        type=int,
        default=None,
        help="instead of three rows, sweep -delta..+delta in this many "
        "columns, one row per base vector",
    )
    traverse.add_argument("--out", default=None, help="output folder (default: RUN_DIR/traversals)")
    traverse.set_defaults(handler=_cmd_traverse)

    interp = sub.add_parser(
        "interpolate",
        help="images along a path between latent vectors",
        description="Interpolate between the latent vectors drawn with two (or more) seeds.",
    )
    _add_run_args(interp)
    interp.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1],
        help="seeds of the end points (default: 0 1)",
    )
    interp.add_argument("--steps", type=int, default=10, help="images per path (default: 10)")
    interp.add_argument("--method", default="slerp", help="slerp (default) or lerp")
    interp.add_argument(
        "--out", default=None, help="PNG (default: RUN_DIR/figures/interpolate_SEEDS_METHOD.png)"
    )
    interp.set_defaults(handler=_cmd_interpolate)

    animate = sub.add_parser(
        "animate",
        help="a GIF of the per-epoch sample grids",
        description="Build a training-progress animation from a run's per-epoch fixed-noise "
        "grids (written after every epoch as RUN_DIR/figures/progress.gif).",
    )
    animate.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by train")
    animate.add_argument("--out", default=None, help="GIF (default: RUN_DIR/figures/progress.gif)")
    animate.add_argument("--frame-ms", type=int, default=600, help="ms per frame (default: 600)")
    animate.set_defaults(handler=_cmd_animate)


def _report_paths(paths: list) -> int:
    for path in paths:
        print(path)
    return 0


def _cmd_sample(args: argparse.Namespace, argv: list[str]) -> int:
    from .runs import load_run
    from .sampling import write_samples

    return _report_paths(
        write_samples(
            load_run(args.run_dir),
            n=args.n,
            nrow=args.nrow,
            seed=args.seed,
            out=args.out,
            save_individual=args.save_individual,
            npz=args.npz,
            epoch=args.epoch,
            device=args.device,
        )
    )


def _cmd_traverse(args: argparse.Namespace, argv: list[str]) -> int:
    from .runs import load_run
    from .sampling import write_traversals

    return _report_paths(
        write_traversals(
            load_run(args.run_dir),
            args.dims,
            delta=args.delta,
            n=args.n,
            seed=args.seed,
            steps=args.steps,
            out=args.out,
            epoch=args.epoch,
            device=args.device,
        )
    )


def _cmd_interpolate(args: argparse.Namespace, argv: list[str]) -> int:
    from .runs import load_run
    from .sampling import write_interpolation

    return _report_paths(
        [
            write_interpolation(
                load_run(args.run_dir),
                args.seeds,
                steps=args.steps,
                method=args.method,
                out=args.out,
                epoch=args.epoch,
                device=args.device,
            )
        ]
    )


def _cmd_animate(args: argparse.Namespace, argv: list[str]) -> int:
    from .runs import load_run
    from .sampling import write_progress_gif

    if args.frame_ms < 1:
        raise GanscopeError(f"--frame-ms must be at least 1, got {args.frame_ms}")
    return _report_paths([write_progress_gif(load_run(args.run_dir), args.out, args.frame_ms)])


def _add_quality_parsers(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="sample-quality metrics against the test set",
        description="Generate N images and compare them with the Fashion-MNIST test set in the "
        "shipped classifier's feature space: FID, KID (mean and std), precision/recall, "
        "density/coverage, the generated class distribution (entropy, KL to the real one, "
        "classes covered), a classifier score (IS analogue) and a memorisation check against "
        "the training set. Writes RUN_DIR/evaluation/epoch_E_seedS_nN.json and a figure of the "
        "closest generated/training pairs.",
    )
    _add_run_args(evaluate)
    evaluate.add_argument("--n", type=int, default=10000, help="generated images (default: 10000)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the latent vectors")
    evaluate.add_argument(
        "--classifier",
        default=None,
        help="classifier weights (.pt with its .json record beside it; "
        "default: the ones shipped with ganscope)",
    )
    evaluate.add_argument(
        "--data-dir",
        default=None,
        help="Fashion-MNIST folder (default: the one the run trained on)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the results as JSON")
    evaluate.set_defaults(handler=_cmd_evaluate)

    classifier = sub.add_parser(
        "classifier",
        help="the Fashion-MNIST classifier behind the metrics",
        description="Train the feature-space classifier with ganscope's deterministic recipe.",
    )
    actions = classifier.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    train = actions.add_parser(
        "train",
        help="train the classifier (a few minutes on a CPU)",
        description="Train the classifier with the fixed recipe and write its weights and "
        "their metadata record (recipe, data checksum, test accuracy, sha256).",
    )
    train.add_argument("--out", required=True, help="weights file to write (.pt; .json beside)")
    train.add_argument("--data-dir", default=None, help="Fashion-MNIST folder")
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    train.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_cmd_classifier_train)


_SUMMARY_KEYS = (
    "fid",
    "kid",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "classes_covered",
    "class_entropy",
    "class_kl_to_real",
    "classifier_score",
    "memorisation_share",
    "seconds",
)


def _cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    import json

    from .metrics import evaluate_run
    from .runs import load_run

    result = evaluate_run(
        load_run(args.run_dir),
        n=args.n,
        seed=args.seed,
        epoch=args.epoch,
        classifier_path=args.classifier,
        data_dir=args.data_dir,
        device=args.device,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['model']} run {result['run']}, epoch {result['epoch']}, "
            f"{result['n']} samples (seed {result['seed']}):"
        )
        for key in _SUMMARY_KEYS:
            value = result.get(key)
            if value is not None:
                print(
                    f"  {key:<20} {value:.4f}"
                    if isinstance(value, float)
                    else f"  {key:<20} {value}"
                )
    return 0


def _cmd_classifier_train(args: argparse.Namespace, argv: list[str]) -> int:
    import dataclasses

    from .classifier import ClassifierRecipe, train_classifier

    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    if changes.get("epochs", 1) < 1:
        raise GanscopeError(f"--epochs must be at least 1, got {args.epochs}")
    recipe = dataclasses.replace(ClassifierRecipe(), **changes)
    record = train_classifier(
        args.out, recipe, data_dir=args.data_dir, progress=not args.no_progress
    )
    print(
        f"wrote {args.out}: test accuracy {record['test_accuracy']:.4f} "
        f"({record['train_seconds']:.0f} s)"
    )
    return 0


def _add_analyze_parser(sub: argparse._SubParsersAction) -> None:
    analyze = sub.add_parser(
        "analyze",
        help="label what every latent dimension does, with confidence",
        description="Shift latent dimensions by -DELTA and +DELTA on N base vectors, classify "
        "the images with the shipped classifier, and report per dimension the class each side "
        "pushes towards, its semantic strength (TV distance), the share of flipped classes, "
        "brightness/sharpness/confidence changes, with 95%% bootstrap intervals. Also labels "
        "SeFa's closed-form directions. Writes RUN_DIR/analysis/: dims.csv, dims.json, "
        "summary.LANG.md, class_shifts.png and report-style grids.",
    )
    _add_run_args(analyze)
    analyze.add_argument(
        "--dims", nargs="+", default=["all"], help="'all' (default) or a list of dimensions"
    )
    analyze.add_argument(
        "--delta",
        type=float,
        nargs="+",
        default=[10.0],
        help="shift size(s); the first one drives figures (default: 10)",
    )
    analyze.add_argument("--n", type=int, default=256, help="base vectors (default: 256)")
    analyze.add_argument("--seed", type=int, default=0, help="seed of the base vectors")
    analyze.add_argument("--lang", default="en", help="summary language: en or zh")
    analyze.add_argument(
        "--top-k", type=int, default=5, help="strongest dimensions to draw (default: 5)"
    )
    analyze.add_argument(
        "--sefa", type=int, default=10, help="SeFa directions to label (default: 10; 0: none)"
    )
    analyze.add_argument(
        "--per-checkpoint",
        action="store_true",
        help="also measure every epoch's generator (64 base vectors each)",
    )
    analyze.add_argument("--classifier", default=None, help="classifier weights (.pt)")
    analyze.add_argument("--out", default=None, help="output folder (default: RUN_DIR/analysis)")
    analyze.add_argument("--no-progress", action="store_true", help="no progress bars")
    analyze.set_defaults(handler=_cmd_analyze)


def _cmd_analyze(args: argparse.Namespace, argv: list[str]) -> int:
    from .analysis import analyze_run
    from .runs import load_run

    result = analyze_run(
        load_run(args.run_dir),
        dims=args.dims,
        deltas=args.delta,
        n=args.n,
        seed=args.seed,
        lang=args.lang,
        top_k=args.top_k,
        sefa=args.sefa,
        epoch=args.epoch,
        per_checkpoint=args.per_checkpoint,
        classifier_path=args.classifier,
        device=args.device,
        out=args.out,
        progress=not args.no_progress,
    )
    print(result["summary"])
    print(f"({result['seconds']:.1f} s) written: {Path(result['paths'][0]).parent}")
    return 0


def _add_report_parsers(sub: argparse._SubParsersAction) -> None:
    reproduce = sub.add_parser(
        "reproduce",
        help="the whole lab report from one command (the main job)",
        description="Train the report's MLP GAN and CNN GAN (Adam 2e-4, batch 64, 10 epochs) "
        "for each seed, evaluate them, analyse their latent dimensions, and write OUT/report.html "
        "(self-contained: opens from disk) and OUT/report.md. Runs already finished are reused "
        "and an interrupted reproduction continues where it stopped.",
    )
    reproduce.add_argument(
        "--out", default="reproduce", help="output folder (default: ./reproduce)"
    )
    reproduce.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    reproduce.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one run per model and seed (default: 0)"
    )
    reproduce.add_argument("--lang", default="en", help="report language: en or zh")
    reproduce.add_argument(
        "--quick",
        action="store_true",
        help="smoke profile: 2 epochs on 6,400 images, fewer samples "
        "(under 2 minutes on a 2-core CPU; marked as such in the report)",
    )
    reproduce.add_argument(
        "--data-dir",
        default=None,
        help="Fashion-MNIST folder (else $GANSCOPE_DATA_DIR, else the cache)",
    )
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.set_defaults(handler=_cmd_reproduce)

    report = sub.add_parser(
        "report",
        help="rebuild the HTML/Markdown report from existing run folders",
        description="Write report.html and report.md from run folders made by train or "
        "reproduce; runs never evaluated or analysed are evaluated and analysed first.",
    )
    report.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run folders")
    report.add_argument("--out", default="report", help="output folder (default: ./report)")
    report.add_argument("--lang", default="en", help="report language: en or zh")
    report.add_argument("--no-progress", action="store_true", help="no progress bars")
    report.set_defaults(handler=_cmd_report)


def _cmd_reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    from .report import PROFILES, reproduce

    args.resume_hint = "run the same command again to continue"
    paths = reproduce(
        args.out,
        seeds=args.seeds,
        device=args.device,
        lang=args.lang,
        profile=PROFILES["quick" if args.quick else "full"],
        data_dir=args.data_dir,
        progress=not args.no_progress,
    )
    print(f"report: {paths['html']}\n        {paths['md']}")
    return 0


def _cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from .report import write_report

    paths = write_report(args.run_dirs, args.out, lang=args.lang, progress=not args.no_progress)
    print(f"report: {paths['html']}\n        {paths['md']}")
    return 0


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="training speed: a textbook loop against ganscope's, same process",
        description="Time a textbook GAN training loop (DataLoader, per-batch copies, fp32, "
        "a host sync every step) and ganscope's training path on the same device, data, "
        "models and seed; print images per second, the speed-up and peak memory.",
    )
    bench.add_argument(
        "--models", nargs="+", default=["mlp", "cnn"], help="model families (default: mlp cnn)"
    )
    bench.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps per loop and trial (default on a CPU: 2000 for mlp, 100 for "
        "cnn, a few seconds to a minute each; on a GPU: 20000 and 5000)",
    )
    bench.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="trials per loop, taken in turns; each loop reports its median (default: 3)",
    )
    bench.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    bench.add_argument("--device", default="auto", help="(default: auto)")
    bench.add_argument(
        "--precision",
        default="auto",
        help="precision of ganscope's path: auto, fp32 or bf16 (default: auto)",
    )
    bench.add_argument(
        "--cuda-graph",
        type=_on_off,
        default=True,
        metavar="{on,off}",
        help="on CUDA, ganscope's path replays its step as a CUDA graph (default: on)",
    )
    bench.add_argument("--data-dir", default=None, help="Fashion-MNIST folder")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace, argv: list[str]) -> int:
    import json

    from .bench import benchmark
    from .data import load_split
    from .models import get_family
    from .training import resolve_device

    if args.steps is not None and args.steps < 1:
        raise GanscopeError(f"--steps must be at least 1, got {args.steps}")
    if args.repeats < 1:
        raise GanscopeError(f"--repeats must be at least 1, got {args.repeats}")
    for model in args.models:
        get_family(model)
    on_gpu = resolve_device(args.device).type == "cuda"
    default_steps = {"mlp": 20000, "cnn": 5000} if on_gpu else {"mlp": 2000, "cnn": 100}
    split = load_split("fashion-mnist", "train", args.data_dir, progress=not args.json)
    results = []
    for model in args.models:
        if not args.json:
            print(f"timing {model}: {args.repeats} trials per loop, in turns ...", file=sys.stderr)
        result = benchmark(
            model,
            split,
            steps=args.steps or default_steps.get(model, default_steps["cnn"]),
            device=args.device,
            precision=args.precision,
            cuda_graph=args.cuda_graph,
            batch_size=args.batch_size,
            repeats=args.repeats,
        )
        results.append(result)
        if not args.json:
            print(
                f"{model} on {result['device_name']}, batch {result['batch_size']}: "
                f"textbook {result['textbook_img_per_s']:.0f} img/s, ganscope "
                f"{result['ganscope_img_per_s']:.0f} img/s ({result['precision']}"
                f"{', CUDA graph' if result['cuda_graph'] else ''}), "
                f"x{result['speedup']:.2f}; peak {result['peak_memory_kind']} "
                f"{result['textbook_peak_mb']:.0f} / {result['ganscope_peak_mb']:.0f} MB"
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ganscope",
        description="Train, inspect and explain GANs on Fashion-MNIST: the lab report's MLP "
        "and CNN GANs, with run folders that later commands read.",
    )
    parser.add_argument("--version", action="version", version=f"ganscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train_parser(sub)
    _add_sampling_parsers(sub)
    _add_quality_parsers(sub)
    _add_analyze_parser(sub)
    _add_report_parsers(sub)
    _add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, argv)
    except GanscopeError as error:
        print(f"ganscope: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        run_dir = getattr(args, "run_dir", None)
        hint = getattr(args, "resume_hint", None) or (
            f"continue with: ganscope train --resume {run_dir}" if run_dir else ""
        )
        print(
            f"ganscope: interrupted; training is saved up to its last checkpoint"
            f"{'; ' + hint if hint else ''}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
