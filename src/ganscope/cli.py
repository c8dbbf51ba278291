"""The ``ganscope`` command: a thin argparse layer over the Python API.

Every command's flags are built from its options dataclass (``options``; ``config`` for
``train``): one flag per field, its help and default quoted from there, flags default to None
so the dataclass defaults stay the only ones, and the checks run when the options object is
made, exactly as for a Python caller. User mistakes (GanscopeError) print one line on stderr
and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__, distributed, options, pretrained, trainer
from .analysis import analyze_run
from .bench import BenchOptions, run_benchmarks
from .classifier import ClassifierRecipe, ClassifierTrainOptions, train_classifier
from .config import SECTIONS, RunConfig
from .errors import GanscopeError
from .evaluation import evaluate_run
from .export import export_generator
from .gallery import write_interpolation, write_progress_gif, write_samples, write_traversals
from .importer import ImportOptions, import_generator
from .metrics import METRICS
from .reproduce import ReportOptions, ReproduceOptions, report, reproduce
from .runs import TRAINED_WEIGHTS, load_run
from .sweep import SweepOptions, load_summary, sweep
from .sweep_report import write_sweep_report
from .trainer import TrainOptions
from .web import ServeOptions, serve

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: What an interrupted command says when it has nothing to resume.
_NOTHING_LOST = "every file is written whole or not at all; run the command again"


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "yes", "true", "1"):
        return True
    if text.lower() in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def _shown(default: object) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, tuple):
        return " ".join(map(str, default)) or "none"
    return str(default)


def add_options(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One flag per field of the dataclass ``cls`` that the command line may set."""
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if "help" not in meta or not meta.get("cli", True):
            continue
        default, help_text = field.default, meta["help"]
        if meta.get("detail"):
            help_text += f" ({meta['detail']()})"
        kwargs: dict[str, Any] = {"dest": prefix + field.name, "default": None}
        if isinstance(default, bool) and options.flag_of(field).startswith("--no-"):
            kwargs["action"] = "store_false"
        elif default is False and not meta.get("on_off"):
            kwargs["action"] = "store_true"
        else:
            if isinstance(default, bool):
                kwargs.update(type=_on_off, metavar="{on,off}")
            elif isinstance(default, tuple):
                kwargs.update(nargs="+", type=meta.get("type") or type(default[0]))
            else:
                kwargs["type"] = meta.get("type") or type(default)
            names = meta["choices"]() if meta.get("choices") else None
            kwargs.setdefault(
                "metavar",
                meta.get("metavar")
                or ("{" + ",".join(names) + "}" if names else field.name.upper()),
            )
            if meta.get("required"):
                kwargs["required"] = True
            elif default is not None:
                help_text += f" (default: {_shown(default)})"
        parser.add_argument(options.flag_of(field), help=help_text, **kwargs)


def options_from(args: argparse.Namespace, cls: type, prefix: str = "") -> Any:
    """``cls`` built from the flags given on the command line (the rest keep their defaults)."""
    given = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, prefix + field.name, None)
        if value is not None:
            given[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**given)


def _print_result(args: argparse.Namespace, value: Any, text: Callable[[], str]) -> int:
    print(json.dumps(value, indent=2, default=str) if args.json else text())
    return 0


# -- train ------------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    command = ["ganscope", *argv]
    opts: TrainOptions = options_from(args, TrainOptions)
    given = {
        field.name: getattr(args, f"{section}.{field.name}")
        for section, cls in SECTIONS.items()
        for field in dataclasses.fields(cls)
        if getattr(args, f"{section}.{field.name}", None) is not None
    }
    if opts.resume:
        args.interrupt_hint = f"continue with: ganscope train --resume {opts.resume}"
        run = trainer.resume(opts.resume, command=command, progress=opts.progress, **given)
    else:
        sections = {name: options_from(args, cls, f"{name}.") for name, cls in SECTIONS.items()}
        config = trainer.plan_config(
            RunConfig(**sections), given, per_rank_batch=opts.per_rank_batch
        )
        out = opts.out or trainer.default_out(config)
        args.interrupt_hint = (
            f"training is saved up to its last checkpoint; continue with: "
            f"ganscope train --resume {out}"
        )
        run = trainer.train(config, out, command=command, progress=opts.progress)
    if not distributed.launched_rank_main():
        return 0  # rank 0 reports for all
    last = run.metrics("epoch")[-1]
    return _print_result(
        args,
        {"run": str(run.path), **last},
        lambda: (
            f"done: {run.path} (epoch {last['epoch']}, loss_D {last['loss_D']:.3f}, "
            f"loss_G {last['loss_G']:.3f}); samples in {run.sample_grid_path(1).parent}"
        ),
    )


# -- commands on a run folder ----------------------------------------------------------------
def _paths(args: argparse.Namespace, paths: list) -> int:
    return _print_result(args, [str(p) for p in paths], lambda: "\n".join(map(str, paths)))


def _cmd_sample(args: argparse.Namespace, argv: list[str]) -> int:

    return _paths(args, write_samples(load_run(args.run_dir), args.options))


def _cmd_traverse(args: argparse.Namespace, argv: list[str]) -> int:

    return _paths(args, write_traversals(load_run(args.run_dir), args.options))


def _cmd_interpolate(args: argparse.Namespace, argv: list[str]) -> int:

    return _paths(args, [write_interpolation(load_run(args.run_dir), args.options)])


def _cmd_animate(args: argparse.Namespace, argv: list[str]) -> int:

    return _paths(args, [write_progress_gif(load_run(args.run_dir), args.options)])


def _cmd_export(args: argparse.Namespace, argv: list[str]) -> int:

    result = export_generator(load_run(args.run_dir), args.options)
    return _print_result(
        args,
        result,
        lambda: (
            f"wrote {result['path']}\n"
            + "\n".join(f"  {key}: {value}" for key, value in result["metadata"].items())
        ),
    )


#: What ``evaluate`` prints: every metric, then the time it took.
_SUMMARY_KEYS = (*(metric.name for metric in METRICS), "seconds")


def _cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> int:

    opts = args.options
    if args.json:
        opts = dataclasses.replace(opts, progress=False)
    result = evaluate_run(load_run(args.run_dir), opts)

    def text() -> str:
        weights = " (G's own weights)" if result.get("weights") == TRAINED_WEIGHTS else ""
        lines = [
            f"{result['model']} run {result['run']}, epoch {result['epoch']}{weights}, "
            f"{result['n']} samples (seed {result['seed']}):"
        ]
        for key in _SUMMARY_KEYS:
            value = result.get(key)
            if value is not None:
                lines.append(
                    f"  {key:<20} {value:.4f}"
                    if isinstance(value, float)
                    else f"  {key:<20} {value}"
                )
        return "\n".join(lines)

    return _print_result(args, result, text)


def _cmd_analyze(args: argparse.Namespace, argv: list[str]) -> int:

    result = analyze_run(load_run(args.run_dir), args.options)
    text = result.get("summary", result.get("markdown"))  # an analysis, or a comparison
    return _print_result(
        args,
        {k: v for k, v in result.items() if k not in ("summary", "markdown")},
        lambda: f"{text}\n({result['seconds']:.1f} s) written: {Path(result['paths'][0]).parent}",
    )


def _cmd_import(args: argparse.Namespace, argv: list[str]) -> int:

    run = import_generator(args.models, args.options, command=["ganscope", *argv])
    source = run.config.source
    return _print_result(
        args,
        {"run": str(run.path), "z_dim": run.config.model.z_dim, **run.config.source.__dict__},
        lambda: (
            f"imported {len(source.files)} {source.format} file(s) as epoch(s) "
            f"{', '.join(map(str, source.epochs))} (z_dim {run.config.model.z_dim}): {run.path}\n"
            f"next: ganscope evaluate {run.path}; ganscope analyze {run.path}; "
            f"ganscope serve {run.path}"
        ),
    )


def _cmd_sweep(args: argparse.Namespace, argv: list[str]) -> int:

    opts = args.options
    if opts.report is not None:
        paths = write_sweep_report(load_summary(opts.report, opts.storage, opts.study), opts.report)
        return _print_result(args, paths, lambda: f"report: {paths['html']}")
    if args.space is None:
        raise GanscopeError("give the SPACE file of the study (or --report SWEEP_DIR)")
    args.interrupt_hint = (
        "finished trials are kept; the same command continues the study (the interrupted "
        "trial counts as failed and a new trial takes its place)"
    )
    result = sweep(args.space, opts)
    best = [t for t in result["trials"] if t["number"] in result["best"]]
    return _print_result(
        args,
        result,
        lambda: "\n".join(
            [f"{len(result['trials'])} trials in {opts.out}; best:"]
            + [f"  trial {t['number']}: {t['values']} {t['params']} ({t['run']})" for t in best]
        ),
    )


def _cmd_pretrained(args: argparse.Namespace, argv: list[str]) -> int:

    rows = pretrained.describe()
    return _print_result(
        args,
        rows,
        lambda: (
            "\n".join(
                f"{r['name']:<26} FID {r['fid']:7.3f} ({r['evaluation_n']:,} samples), "
                f"{r['bytes'] / 2**20:.1f} MiB: {r['command']} ({r['device']}, {r['precision']})"
                for r in rows
            )
            or "no pretrained runs are installed"
        ),
    )


# -- the report -------------------------------------------------------------------------------
def _cmd_reproduce(args: argparse.Namespace, argv: list[str]) -> int:

    args.interrupt_hint = "finished steps are kept; run the same command again to continue"
    paths = reproduce(args.options)
    return _print_result(args, paths, lambda: f"report: {paths['html']}\n        {paths['md']}")


def _cmd_report(args: argparse.Namespace, argv: list[str]) -> int:

    paths = report(args.run_dirs, args.options)
    return _print_result(args, paths, lambda: f"report: {paths['html']}\n        {paths['md']}")


def _cmd_serve(args: argparse.Namespace, argv: list[str]) -> int:

    args.interrupt_hint = "the explorer stopped"
    serve(args.run_dirs, args.options)
    return 0


# -- tools ------------------------------------------------------------------------------------
def _cmd_classifier_train(args: argparse.Namespace, argv: list[str]) -> int:

    opts: ClassifierTrainOptions = args.options
    changes = {k: getattr(opts, k) for k in ("epochs", "seed") if getattr(opts, k) is not None}
    recipe = dataclasses.replace(ClassifierRecipe(), **changes)
    record = train_classifier(opts.out, recipe, data_dir=opts.data_dir, progress=opts.progress)
    return _print_result(
        args,
        record,
        lambda: (
            f"wrote {opts.out}: test accuracy {record['test_accuracy']:.4f} "
            f"({record['train_seconds']:.0f} s)"
        ),
    )


def _cmd_bench(args: argparse.Namespace, argv: list[str]) -> int:

    results = run_benchmarks(args.options, progress=not args.json)
    return _print_result(args, results, lambda: "\n".join(r["line"] for r in results))


# -- the parser -------------------------------------------------------------------------------
RUN_DIR_HELP = "a run folder written by train or import, or pretrained:NAME (ganscope pretrained)"

#: name -> (handler, options class, positional arguments); the help and the description are
#: the options class's docstring.
COMMANDS: dict[str, tuple[Callable, type, str | None]] = {
    "sample": (_cmd_sample, options.SampleOptions, "run_dir"),
    "traverse": (_cmd_traverse, options.TraverseOptions, "run_dir"),
    "interpolate": (_cmd_interpolate, options.InterpolateOptions, "run_dir"),
    "animate": (_cmd_animate, options.AnimateOptions, "run_dir"),
    "export": (_cmd_export, options.ExportOptions, "run_dir"),
    "import": (_cmd_import, ImportOptions, "models"),
    "sweep": (_cmd_sweep, SweepOptions, "space"),
    "evaluate": (_cmd_evaluate, options.EvaluateOptions, "run_dir"),
    "analyze": (_cmd_analyze, options.AnalyzeOptions, "run_dir"),
    "reproduce": (_cmd_reproduce, ReproduceOptions, None),
    "report": (_cmd_report, ReportOptions, "run_dirs"),
    "bench": (_cmd_bench, BenchOptions, None),
    "serve": (_cmd_serve, ServeOptions, "run_dirs"),
}


def _add_command(sub: argparse._SubParsersAction, name: str, cls: type) -> argparse.ArgumentParser:
    """A subcommand whose help is the first line of ``cls``'s docstring, its description the
    rest, and whose flags are ``cls``'s fields."""
    summary, _, rest = inspect.getdoc(cls).partition("\n\n")
    parser = sub.add_parser(name, help=summary, description=" ".join(rest.split()) or summary)
    return parser


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train one of the report's GANs into a run folder",
        description="Train a GAN on Fashion-MNIST and write a self-describing run folder: "
        "config.json, metrics.jsonl, per-epoch sample grids, loss curves and checkpoints. "
        "Defaults are the lab report's (Adam lr 2e-4, 10 epochs) and, where it is silent, "
        "the DCGAN paper's (betas 0.5/0.999, batch 64).",
    )
    for name, cls in SECTIONS.items():
        add_options(parser, cls, f"{name}.")
    add_options(parser, TrainOptions)
    _add_json(parser)
    parser.set_defaults(handler=_cmd_train, options_class=None)


def _add_classifier_parser(sub: argparse._SubParsersAction) -> None:
    classifier = sub.add_parser(
        "classifier",
        help="the Fashion-MNIST classifier behind the metrics",
        description="Train the feature-space classifier with ganscope's deterministic recipe.",
    )
    actions = classifier.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    train = _add_command(actions, "train", ClassifierTrainOptions)
    add_options(train, ClassifierTrainOptions)
    _add_json(train)
    train.set_defaults(handler=_cmd_classifier_train, options_class=ClassifierTrainOptions)


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


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
    for name, (handler, cls, positional) in COMMANDS.items():
        command = _add_command(sub, name, cls)
        if positional == "run_dir":
            command.add_argument("run_dir", metavar="RUN_DIR", help=RUN_DIR_HELP)
        elif positional == "models":
            command.add_argument(
                "models", metavar="MODEL", nargs="+",
                help="generator files (one per epoch): TorchScript, ONNX or a state_dict",
            )  # fmt: skip
        elif positional == "space":
            command.add_argument(
                "space", metavar="SPACE", nargs="?", help="the study's TOML file (docs/sweep.md)"
            )
        elif positional == "run_dirs":
            command.add_argument(
                "run_dirs", metavar="RUN_DIR", nargs="*" if name == "serve" else "+",
                help="run folders written by train or import, or pretrained:NAME (ganscope "
                "pretrained lists them)" + ("; none: every shipped run" if name == "serve" else ""),
            )  # fmt: skip
        add_options(command, cls)
        if name != "serve":  # a server has no result to print
            _add_json(command)
        command.set_defaults(handler=handler, options_class=cls)
    _add_classifier_parser(sub)
    listing = sub.add_parser(
        "pretrained", help="list the trained runs shipped with ganscope (pretrained:NAME)",
        description="The runs shipped inside the package, each usable as pretrained:NAME "
        "wherever a run folder goes (a copy in $GANSCOPE_HOME, default ~/.cache/ganscope, "
        "takes the results): how each was trained, its FID and size.",
    )  # fmt: skip
    _add_json(listing)
    listing.set_defaults(handler=_cmd_pretrained, options_class=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.options_class is not None:
            args.options = options_from(args, args.options_class)
        return args.handler(args, argv)
    except GanscopeError as error:
        if not getattr(error, "shared", False):  # torchrun: rank 0 says what all ranks found
            print(f"ganscope: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", _NOTHING_LOST)
        print(f"ganscope: interrupted; {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
