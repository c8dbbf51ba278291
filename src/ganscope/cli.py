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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__, options
from .config import RESUMABLE, SECTIONS, RunConfig, TrainConfig
from .errors import GanscopeError

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
        return " ".join(map(str, default))
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
    from . import distributed, recipe
    from .training import resume, train

    command = ["ganscope", *argv]
    opts: options.TrainOptions = options_from(args, options.TrainOptions)
    if opts.resume:
        flags = {
            (section, field.name): options.flag_of(field)
            for section, cls in SECTIONS.items()
            for field in dataclasses.fields(cls)
            if field.metadata.get("cli", True)
        }
        fixed = (
            [
                flag
                for (section, name), flag in flags.items()
                if getattr(args, f"{section}.{name}", None) is not None
                and RESUMABLE.get(name) != section
            ]
            + (["--out"] if opts.out else [])
            + (["--per-rank-batch"] if opts.per_rank_batch else [])
        )
        if fixed:
            resumable = [flag for (s, name), flag in flags.items() if RESUMABLE.get(name) == s]
            raise GanscopeError(
                f"--resume continues a run with its saved settings; {', '.join(fixed)} cannot "
                f"change (only {', '.join(resumable)} can)"
            )
        args.interrupt_hint = f"continue with: ganscope train --resume {opts.resume}"
        changes = {
            name: getattr(args, f"{section}.{name}", None) for name, section in RESUMABLE.items()
        }
        if changes.get("data_dir"):
            changes["data_dir"] = str(Path(changes["data_dir"]).expanduser().resolve())
        run = resume(opts.resume, command=command, progress=opts.progress, **changes)
    else:
        sections = {name: options_from(args, cls, f"{name}.") for name, cls in SECTIONS.items()}
        given = {
            f.name
            for f in dataclasses.fields(TrainConfig)
            if getattr(args, f"train.{f.name}", None) is not None
        }
        sections["model"].validate()  # an unknown model is named before any preset
        sections["train"] = recipe.with_preset(sections["train"], sections["model"].name, given)
        if opts.per_rank_batch:  # the config holds the global batch, whatever the launch
            sections["train"] = dataclasses.replace(
                sections["train"],
                batch_size=sections["train"].batch_size * distributed.launched_size(),
            )
        config = RunConfig(**sections)
        if config.data.data_dir is not None:  # stored absolute: later commands run elsewhere
            resolved = str(Path(config.data.data_dir).expanduser().resolve())
            config = dataclasses.replace(
                config, data=dataclasses.replace(config.data, data_dir=resolved)
            )
        config.validate()
        out = opts.out or f"runs/{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        args.interrupt_hint = (
            f"training is saved up to its last checkpoint; continue with: "
            f"ganscope train --resume {out}"
        )
        run = train(config, out, command=command, progress=opts.progress)
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
    from .gallery import write_samples
    from .runs import load_run

    return _paths(args, write_samples(load_run(args.run_dir), args.options))


def _cmd_traverse(args: argparse.Namespace, argv: list[str]) -> int:
    from .gallery import write_traversals
    from .runs import load_run

    return _paths(args, write_traversals(load_run(args.run_dir), args.options))


def _cmd_interpolate(args: argparse.Namespace, argv: list[str]) -> int:
    from .gallery import write_interpolation
    from .runs import load_run

    return _paths(args, [write_interpolation(load_run(args.run_dir), args.options)])


def _cmd_animate(args: argparse.Namespace, argv: list[str]) -> int:
    from .gallery import write_progress_gif
    from .runs import load_run

    return _paths(args, [write_progress_gif(load_run(args.run_dir), args.options)])


def _cmd_export(args: argparse.Namespace, argv: list[str]) -> int:
    from .export import export_generator
    from .runs import load_run

    result = export_generator(load_run(args.run_dir), args.options)
    return _print_result(
        args,
        result,
        lambda: (
            f"wrote {result['path']}\n"
            + "\n".join(f"  {key}: {value}" for key, value in result["metadata"].items())
        ),
    )


_SUMMARY_KEYS = (
    "fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classes_covered",
    "class_entropy", "class_kl_to_real", "classifier_score", "memorisation_share", "seconds",
)  # fmt: skip


def _cmd_evaluate(args: argparse.Namespace, argv: list[str]) -> int:
    from .evaluation import evaluate_run
    from .runs import load_run

    opts = args.options
    if args.json:
        opts = dataclasses.replace(opts, progress=False)
    result = evaluate_run(load_run(args.run_dir), opts)

    def text() -> str:
        weights = " (G's own weights)" if result.get("weights") == "trained" else ""
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
    from .analysis import analyze_run
    from .runs import load_run

    result = analyze_run(load_run(args.run_dir), args.options)
    return _print_result(
        args,
        {k: v for k, v in result.items() if k != "summary"},
        lambda: (
            f"{result['summary']}\n({result['seconds']:.1f} s) written: "
            f"{Path(result['paths'][0]).parent}"
        ),
    )


# -- the report -------------------------------------------------------------------------------
def _cmd_reproduce(args: argparse.Namespace, argv: list[str]) -> int:
    from .reproduce import reproduce

    args.interrupt_hint = "finished steps are kept; run the same command again to continue"
    paths = reproduce(args.options)
    return _print_result(args, paths, lambda: f"report: {paths['html']}\n        {paths['md']}")


def _cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from .reproduce import report

    paths = report(args.run_dirs, args.options)
    return _print_result(args, paths, lambda: f"report: {paths['html']}\n        {paths['md']}")


def _cmd_serve(args: argparse.Namespace, argv: list[str]) -> int:
    from .web import serve

    args.interrupt_hint = "the explorer stopped"
    serve(args.run_dirs, args.options)
    return 0


# -- tools ------------------------------------------------------------------------------------
def _cmd_classifier_train(args: argparse.Namespace, argv: list[str]) -> int:
    from .classifier import ClassifierRecipe, train_classifier

    opts: options.ClassifierTrainOptions = args.options
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
    from .bench import run_benchmarks

    results = run_benchmarks(args.options, progress=not args.json)
    return _print_result(args, results, lambda: "\n".join(r["line"] for r in results))


# -- the parser -------------------------------------------------------------------------------
RUN_DIR_HELP = "a run folder written by train"

#: name -> (handler, options class, positional arguments); the help and the description are
#: the options class's docstring.
COMMANDS: dict[str, tuple[Callable, type, str | None]] = {
    "sample": (_cmd_sample, options.SampleOptions, "run_dir"),
    "traverse": (_cmd_traverse, options.TraverseOptions, "run_dir"),
    "interpolate": (_cmd_interpolate, options.InterpolateOptions, "run_dir"),
    "animate": (_cmd_animate, options.AnimateOptions, "run_dir"),
    "export": (_cmd_export, options.ExportOptions, "run_dir"),
    "evaluate": (_cmd_evaluate, options.EvaluateOptions, "run_dir"),
    "analyze": (_cmd_analyze, options.AnalyzeOptions, "run_dir"),
    "reproduce": (_cmd_reproduce, options.ReproduceOptions, None),
    "report": (_cmd_report, options.ReportOptions, "run_dirs"),
    "bench": (_cmd_bench, options.BenchOptions, None),
    "serve": (_cmd_serve, options.ServeOptions, "run_dirs"),
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
        "Defaults are the lab report's: Adam lr 2e-4, batch 64, 10 epochs.",
    )
    for name, cls in SECTIONS.items():
        add_options(parser, cls, f"{name}.")
    add_options(parser, options.TrainOptions)
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
    train = _add_command(actions, "train", options.ClassifierTrainOptions)
    add_options(train, options.ClassifierTrainOptions)
    _add_json(train)
    train.set_defaults(handler=_cmd_classifier_train, options_class=options.ClassifierTrainOptions)


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
        elif positional == "run_dirs":
            command.add_argument(
                "run_dirs", metavar="RUN_DIR", nargs="+", help="run folders written by train"
            )
        add_options(command, cls)
        if name != "serve":  # a server has no result to print
            _add_json(command)
        command.set_defaults(handler=handler, options_class=cls)
    _add_classifier_parser(sub)
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
