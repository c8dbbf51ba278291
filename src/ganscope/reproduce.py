"""The main job: the lab report's experiment end to end (``ganscope reproduce``), and the report
from existing runs (``ganscope report``).

Each step reuses what an earlier, possibly interrupted, call left, under one rule: a result is
reused only when its header equals what is asked for (the run's method for training; epoch,
n, seed, dimensions, deltas and classifier checksum for evaluations and analyses); otherwise it
is computed again, and the progress line says why.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import progress as report_progress
from .analysis import analyze_run
from .atomic import read_json
from .classifier import default_weights_path, metadata_path
from .config import (
    MODEL_NAMES,
    PRESET_NAMES,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    option,
    preset_recipes,
)
from .document import write_document
from .errors import GanscopeError
from .evaluation import evaluate_run
from .methods import compare_run
from .models import CONDITIONINGS
from .options import (
    MAX_SEED,
    AnalyzeOptions,
    Checked,
    EvaluateOptions,
    data_dir_option,
    device_option,
    lang_option,
    out_option,
    progress_option,
    resolve,
)
from .presets import preset_values, with_preset
from .readings import analysis_header, is_complete, parse_dims
from .report import build_blocks
from .runs import CONFIG_FILE, Run, load_run
from .summary import summarise
from .text import TEXT
from .trainer import resume, train

#: The latent seed of every evaluation and analysis in a report: evaluate's default.
RESULT_SEED = EvaluateOptions.seed


@dataclass(frozen=True)
class Profile:
    """How much work a reproduction does. ``full`` is the report's experiment; every size
    not set here is the command defaults' (``options``)."""

    name: str
    epochs: int = TrainConfig.epochs
    #: Train on the first N images only (None: all of them).
    limit: int | None = None
    #: Generated images per quality evaluation during training (every epoch).
    eval_samples: int = TrainConfig.eval_samples
    #: Generated images for the final metrics table.
    eval_n: int = EvaluateOptions.n
    analysis_n: int = AnalyzeOptions.n
    analysis_dims: tuple[str, ...] | tuple[int, ...] = AnalyzeOptions.dims
    sefa: int = AnalyzeOptions.sefa
    #: The classifier boundaries' fitting vectors and the methods comparison's base vectors.
    boundary_n: int = AnalyzeOptions.boundary_n
    compare_n: int = AnalyzeOptions.compare_n
    #: The Classification Accuracy Score of conditional runs: images per class, epochs.
    cas_per_class: int = EvaluateOptions.cas_per_class
    cas_epochs: int = EvaluateOptions.cas_epochs

    def analysis(self, lang: str, progress: bool) -> AnalyzeOptions:
        return AnalyzeOptions(
            dims=tuple(str(d) for d in self.analysis_dims),
            n=self.analysis_n,
            seed=RESULT_SEED,
            lang=lang,
            sefa=self.sefa,
            progress=progress,
            boundary_n=self.boundary_n,
            compare_n=self.compare_n,
        )


PROFILES = {
    "full": Profile("full"),
    # Smoke profile: about 2 minutes on a 2-core CPU (README). Clearly marked in the report.
    "quick": Profile(
        "quick",
        epochs=2,
        limit=6400,
        eval_samples=1000,
        eval_n=2000,
        analysis_n=64,
        sefa=3,
        boundary_n=2000,
        compare_n=64,
        cas_per_class=300,
        cas_epochs=2,
    ),  # fmt: skip
}


@dataclass(frozen=True)
class ReproduceOptions(Checked):
    """the whole lab report from one command (the main job)

    Train the report's MLP GAN and CNN GAN (Adam 2e-4, batch 64, 10 epochs) for each seed,
    evaluate them, analyse their latent dimensions, and write OUT/report.html (self-contained:
    opens from disk) and OUT/report.md. With --presets seed improved each network is also
    trained with the improved recipe and the report compares the two side by side. Finished
    steps are reused and an interrupted reproduction continues where it stopped.
    """

    out: str = out_option("reproduce", "the report and its runs")
    device: str = device_option("auto")
    seeds: tuple[int, ...] = option(
        (0,), "one run per model, preset and seed", minimum=0, maximum=MAX_SEED
    )
    presets: tuple[str, ...] = option(
        ("seed",),
        "training presets; several are trained and compared side by side in the report, e.g. "
        "--presets seed improved (docs/presets.md)",
        choices=PRESET_NAMES,
        detail=preset_recipes,
    )
    models: tuple[str, ...] = option(
        ("mlp", "cnn"), "the report's networks to train (both: the report)", choices=MODEL_NAMES
    )
    conditional: tuple[str, ...] = option(
        (),
        "also train these class-conditional variants of every network, preset and seed "
        "(projection, concat, acgan, dual, tac, adc; train --conditional), score them with the "
        "Classification Accuracy Score too, and add a section beside the unconditional runs",
        choices=lambda: [c for c in CONDITIONINGS if c != "none"],
        type=str,
    )
    lang: str = lang_option("the report")
    quick: bool = option(
        False,
        f"smoke profile: {PROFILES['quick'].epochs} epochs on {PROFILES['quick'].limit:,} "
        "images, fewer samples (about 2 minutes on a 2-core CPU; marked as such in the report)",
    )
    tensorboard: bool = option(
        False,
        "log every run to TensorBoard under its folder's tensorboard/ (as train --tensorboard;"
        " needs pip install 'ganscope[tensorboard]')",
    )
    data_dir: str | None = data_dir_option("$GANSCOPE_DATA_DIR, else the cache")
    progress: bool = progress_option()

    def check(self) -> None:
        for flag, values in (
            ("--seeds", self.seeds),
            ("--presets", self.presets),
            ("--models", self.models),
        ):
            if not values:
                raise GanscopeError(f"{flag} needs at least one value")
            if len(set(values)) != len(values):
                raise GanscopeError(f"{flag} has repeats: {' '.join(map(str, values))}")


@dataclass(frozen=True)
class ReportOptions(Checked):
    """rebuild the HTML/Markdown report from existing run folders

    Write report.html and report.md (with its figures in report_files/) from run folders made
    by train or reproduce. Each run's evaluation with the most samples of its latest epoch is
    used; a run never evaluated, or without an analysis of all dimensions with analyze's
    defaults, is evaluated or analysed first.
    """

    out: str = out_option("report", "the report")
    lang: str = lang_option("the report")
    progress: bool = progress_option()


def run_config(
    model: str,
    seed: int,
    profile: Profile,
    device: str,
    data_dir: str | None,
    tensorboard: bool = False,
    preset: str = "seed",
    conditioning: str = "none",
) -> RunConfig:

    train = TrainConfig(
        epochs=profile.epochs,
        seed=seed,
        device=device,
        eval_every=1,
        eval_samples=profile.eval_samples,
        tensorboard=tensorboard,
        preset=preset,
    )
    return RunConfig(
        data=DataConfig(data_dir=data_dir, limit=profile.limit),
        model=ModelConfig(model, conditioning=conditioning),
        train=with_preset(train, model),
    )


def run_folder(out: Path, model: str, preset: str, seed: int, conditioning: str = "none") -> Path:
    """Where a reproduction keeps a run: ``runs/mlp-seed0`` for the report's recipe (as
    before presets existed), ``runs/mlp-improved-seed0`` for another preset,
    ``runs/mlp-projection-seed0`` for a conditional run."""
    name = model if preset == "seed" else f"{model}-{preset}"
    name += "" if conditioning == "none" else f"-{conditioning}"
    return out / "runs" / f"{name}-seed{seed}"


def ensure_trained(path: Path, config: RunConfig, progress: bool) -> Run:
    """The run at ``path``, trained (or resumed) to ``config``; refused when the folder holds
    a run with another method (see ``RunConfig.method``)."""

    command = ["ganscope", "reproduce"]
    if not (path / CONFIG_FILE).is_file():
        return train(config, path, command=command, progress=progress)
    run = load_run(path)
    if run.config.method() != config.method():
        raise GanscopeError(
            f"{path} holds a run with other settings than this reproduction; choose another "
            "--out or remove that folder"
        )
    done = run.latest_epoch() if run.has_checkpoint() else 0
    if done < config.train.epochs:
        return resume(
            path,
            device=config.train.device,
            data_dir=config.data.data_dir,
            tensorboard=config.train.tensorboard or None,
            command=command,
            progress=progress,
        )
    return run


@functools.cache
def _classifier_sha256() -> str:
    """The shipped classifier's checksum from its record (no weights loaded; the evaluation
    and analysis that use the classifier verify the weights against it)."""

    record = read_json(metadata_path(default_weights_path()), "classifier metadata")
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise GanscopeError("the shipped classifier's metadata record is damaged")
    return record["sha256"]


def ensure_evaluated(
    run: Run, n: int | None, progress: bool, cas: Profile | None = None
) -> dict[str, Any]:
    """The evaluation of the run's latest epoch (latent seed 0, the shipped classifier) with
    ``n`` samples; ``n=None`` takes the one with the most samples there is. Computed when
    missing; with ``cas`` (a conditional run's), one that holds the Classification Accuracy
    Score of ``cas``'s sizes."""
    wanted = {"epoch": run.latest_epoch(), "seed": RESULT_SEED}
    wanted["classifier_sha256"] = _classifier_sha256()
    if n is not None:
        wanted["n"] = n
    found = run.find_evaluation(**wanted)
    sizes = (
        {} if cas is None else {"cas_per_class": cas.cas_per_class, "cas_epochs": cas.cas_epochs}
    )
    if found is not None and _has_cas(found, sizes):
        return found
    if found is not None:  # there, but without the asked Classification Accuracy Score
        return _evaluate(run, found["n"], progress, sizes)
    n = n if n is not None else EvaluateOptions.n
    report_progress.say(
        f"[reproduce] {run.path}: no saved evaluation of epoch {wanted['epoch']} with {n} "
        "samples, seed 0 and this classifier",
        enabled=progress,
    )
    return _evaluate(run, n, progress, sizes)


def _has_cas(record: dict[str, Any], sizes: dict[str, int]) -> bool:
    """Whether ``record`` holds the Classification Accuracy Score of ``sizes`` (if any)."""
    return not sizes or (
        record.get("cas_samples_per_class") == sizes["cas_per_class"]
        and record.get("cas_epochs") == sizes["cas_epochs"]
    )


def _evaluate(
    run: Run, n: int, progress: bool, cas: dict[str, int] | None = None
) -> dict[str, Any]:

    return evaluate_run(run, n=n, seed=RESULT_SEED, progress=progress, cas=bool(cas), **(cas or {}))


def ensure_analysed(run: Run, wanted: AnalyzeOptions) -> dict[str, Any]:
    """The run's analysis when its header equals what ``wanted`` would compute for the latest
    epoch; otherwise analysed again (saying what differed)."""

    record = run.analysis_record()
    epoch = run.latest_epoch()
    dims = parse_dims(wanted.dims, run.config.model.z_dim)
    expected = analysis_header(run, epoch, wanted, dims, _classifier_sha256())
    expected.pop("run")  # a moved folder keeps its results
    differs = [key for key in expected if record is None or record.get(key) != expected[key]]
    if not differs and is_complete(record):
        return record
    if record is None:
        reason = "none saved"
    elif differs:
        reason = f"the saved one differs in {', '.join(differs)}"
    else:
        reason = "the saved one is damaged"
    report_progress.say(
        f"[reproduce] {run.path}: no analysis to reuse ({reason})", enabled=wanted.progress
    )
    return analyze_run(run, wanted)


def ensure_compared(
    run: Run, analysis: dict[str, Any], wanted: AnalyzeOptions
) -> dict[str, Any] | None:
    """The run's scored comparison of direction methods (``methods``) for this analysis,
    reused when its header matches, else computed; None where the analysis has no fitted
    boundary (a conditional run, ``--boundary-n 0``, a generator that draws one garment)."""
    if not any(b.get("normal") for b in analysis.get("boundaries") or []):
        return None
    path = run.analysis.table("methods", ".json")
    try:
        record = read_json(path) if path.is_file() else None
    except GanscopeError:
        record = None
    same = ("epoch", "seed", "n", "boundary_n", "classifier_sha256")
    if (
        isinstance(record, dict)
        and all(record.get(key) == analysis.get(key) for key in same)
        and record.get("compare_n") == wanted.compare_n
        and isinstance(record.get("rows"), list)
    ):
        return record
    say = f"[reproduce] {run.path}: scoring the direction methods"
    report_progress.say(say, enabled=wanted.progress)
    return compare_run(run, replace(wanted, compare_methods=True))


def reproduce(
    options: ReproduceOptions | None = None, *, profile: Profile | None = None, **overrides: Any
) -> dict[str, Path]:
    """Run the lab report's experiment end to end; returns the report's paths.

    ``profile`` defaults to ``quick`` or ``full`` as ``options.quick`` says.
    """
    opts = resolve(ReproduceOptions, options, overrides)
    profile = profile or PROFILES["quick" if opts.quick else "full"]
    out = Path(opts.out)
    data_dir = str(Path(opts.data_dir).expanduser().resolve()) if opts.data_dir else None

    for model in opts.models:  # a preset without a recipe for a model: say how to go on
        for preset in opts.presets:
            try:
                preset_values(preset, model)
            except GanscopeError as error:
                others = [m for m in opts.models if m != model]
                hint = f"; --models {' '.join(others)} leaves it out" if others else ""
                raise GanscopeError(f"{error}{hint}") from None
    # Every configuration is made (and refused) before anything trains.
    configs = {
        (model, preset, seed, cond): run_config(
            model, seed, profile, opts.device, data_dir, opts.tensorboard, preset, cond
        ).validate()
        for model in opts.models
        for preset in opts.presets
        for seed in opts.seeds
        for cond in ("none", *opts.conditional)
    }
    started = time.perf_counter()
    runs = []
    for (model, preset, seed, cond), config in configs.items():
        path = run_folder(out, model, preset, seed, cond)
        told = "" if cond == "none" else f", conditional ({cond})"
        report_progress.say(
            f"[reproduce] {model} GAN, {preset} preset{told}, seed {seed}: {path}",
            enabled=opts.progress,
        )
        run = ensure_trained(path, config, opts.progress)
        ensure_evaluated(run, profile.eval_n, opts.progress, profile if cond != "none" else None)
        wanted = profile.analysis(opts.lang, opts.progress)
        ensure_compared(run, ensure_analysed(run, wanted), wanted)
        runs.append(run)
    return write_report(
        runs,
        ReportOptions(out=str(out), lang=opts.lang, progress=opts.progress),
        profile=profile,
        seconds=time.perf_counter() - started,
    )


def report(
    run_dirs: Sequence[str | Path], options: ReportOptions | None = None, **overrides: Any
) -> dict[str, Path]:
    """``report.html`` and ``report.md`` from existing run folders: the evaluation with the
    most samples of each run's latest epoch is used (evaluated first if there is none), and
    an analysis with the defaults of ``ganscope analyze`` (analysed first unless one with that
    header exists)."""
    opts = resolve(ReportOptions, options, overrides)
    if not run_dirs:
        raise GanscopeError("give at least one run folder")
    runs = [load_run(path) for path in run_dirs]
    for run in runs:
        run.latest_epoch()  # fails with a clear message for a run without a checkpoint
    return write_report(runs, opts)


def write_report(
    runs: Sequence[Run],
    options: ReportOptions,
    *,
    profile: Profile | None = None,
    seconds: float | None = None,
) -> dict[str, Path]:
    """Make sure each run has its evaluation and analysis, gather, build, write."""

    wanted = (profile or Profile("report")).analysis(options.lang, options.progress)
    summaries = []
    for run in runs:
        cas = profile if profile and run.config.model.conditional else None
        evaluation = ensure_evaluated(
            run, profile.eval_n if profile else None, options.progress, cas
        )
        analysis = ensure_analysed(run, wanted)
        methods = ensure_compared(run, analysis, wanted)
        summaries.append(summarise(run, evaluation, analysis, methods))
    blocks = build_blocks(summaries, options.lang, profile, seconds)
    return write_document(blocks, TEXT[options.lang]["title"], Path(options.out))
