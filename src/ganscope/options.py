"""Each command's options: typed, frozen, checked, with their defaults written only here.

The Python function behind a command takes its options object (or keyword arguments that build
one, e.g. ``evaluate_run(run, n=2000)``), and ``cli`` builds the command's flags from the
fields: the help text lives in each field's metadata (``config.option``), and the shared
flags (``--out``, ``--device``, ``--seed``, ``--json``, ``--lang``, ``--no-progress``,
``--data-dir``, ``--epoch``, ``--classifier``) are declared once below. Checks that need only
the values run when the object is made (``__post_init__``), so a Python caller gets the same
errors as the command line; checks that need the run (a dimension within z_dim) run in the
function, before it writes anything.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from .config import MODEL_NAMES, PRECISIONS, option
from .errors import GanscopeError

#: The report's latent figures: these dimensions, shifted by this much.
REPORT_DIMS = (20, 50, 60, 70, 90)
REPORT_DELTA = 10.0
#: Shifts larger than this are refused: z ~ N(0, 1), so even the report's ±10 is 10 sigma.
MAX_ABS_DELTA = 1000.0
LANGS = ("en", "zh")


def _interpolation_methods() -> list[str]:
    from .sampling import INTERPOLATIONS

    return list(INTERPOLATIONS)


# -- the shared flags, declared once ------------------------------------------------------------
def out_option(default: str | None, where: str) -> Any:
    return option(default, f"where to write: {where}", type=str)


def device_option(default: str = "cpu") -> Any:
    return option(default, "device: auto, cpu, cuda, cuda:N or mps", mechanics=True)


def seed_option(what: str = "the latent vectors", default: int = 0) -> Any:
    return option(default, f"seed of {what}")


def epoch_option() -> Any:
    return option(None, "use the generator saved after this epoch (default: the latest)", type=int)


def lang_option(what: str) -> Any:
    return option("en", f"language of {what}", choices=lambda: list(LANGS))


def progress_option() -> Any:
    return option(True, "no progress bars or progress lines", flag="--no-progress")


def data_dir_option(fallback: str) -> Any:
    return option(None, f"folder with the data set's IDX files (default: {fallback})", type=str)


def classifier_option() -> Any:
    return option(
        None,
        "classifier weights (.pt with its .json record beside it; default: the shipped ones)",
        type=str,
        flag="--classifier",
    )


# -- checks ---------------------------------------------------------------------------------------
def at_least(flag: str, value: int | float | None, low: int | float) -> None:
    if value is not None and not value >= low:
        raise GanscopeError(f"{flag} must be at least {low}, got {value}")


def check_seed(flag: str, seed: int) -> None:
    if not 0 <= seed < 2**63:
        raise GanscopeError(f"{flag} must be in 0..2**63-1, got {seed}")


def check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise GanscopeError(f"--lang must be {' or '.join(LANGS)}, got {lang!r}")


def check_delta(delta: float) -> float:
    delta = float(delta)
    if not math.isfinite(delta) or abs(delta) > MAX_ABS_DELTA:
        raise GanscopeError(
            f"delta {delta} is not usable: it must be finite and at most {MAX_ABS_DELTA:g} "
            "in size (latent values are standard normal)"
        )
    return delta


def check_positive_deltas(deltas: tuple[float, ...]) -> None:
    if not deltas:
        raise GanscopeError("give at least one delta")
    for delta in deltas:
        if check_delta(delta) <= 0:
            raise GanscopeError(f"--delta must be positive (both signs are used), got {delta:g}")


Options = TypeVar("Options")


def resolve(cls: type[Options], options: Options | None, overrides: dict[str, Any]) -> Options:
    """``options`` with ``overrides`` applied (or ``cls(**overrides)``), checked again."""
    if options is None:
        return cls(**overrides)
    return dataclasses.replace(options, **overrides) if overrides else options


# -- the commands ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorOptions:
    """Which of a run's generators, on which device (every command that generates)."""

    epoch: int | None = epoch_option()
    device: str = device_option()

    def __post_init__(self) -> None:
        at_least("--epoch", self.epoch, 1)


@dataclass(frozen=True)
class SampleOptions(GeneratorOptions):
    n: int = option(64, "number of images")
    nrow: int = option(8, "images per grid row")
    seed: int = seed_option()
    out: str | None = out_option(
        None, "the grid PNG (default: RUN_DIR/samples/sample_seedS_nN.png)"
    )
    save_individual: bool = option(False, "also one PNG per image, in a folder named like the grid")
    npz: bool = option(False, "also an .npz beside the grid: images (uint8) and z")

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("--n", self.n, 1)
        at_least("--nrow", self.nrow, 1)
        check_seed("--seed", self.seed)


@dataclass(frozen=True)
class TraverseOptions(GeneratorOptions):
    dims: tuple[int, ...] = option(REPORT_DIMS, "latent dimensions", type=int)
    delta: float = option(REPORT_DELTA, "shift size")
    n: int = option(8, "base vectors")
    seed: int = seed_option("the base vectors")
    steps: int | None = option(
        None,
        "instead of three rows, sweep -delta..+delta in this many columns, one row per base vector",
        type=int,
    )
    out: str | None = out_option(None, "a folder (default: RUN_DIR/traversals)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.dims:
            raise GanscopeError("give at least one latent dimension")
        check_positive_deltas((self.delta,))
        at_least("--n", self.n, 1)
        at_least("--steps", self.steps, 2)
        check_seed("--seed", self.seed)


@dataclass(frozen=True)
class InterpolateOptions(GeneratorOptions):
    seeds: tuple[int, ...] = option((0, 1), "seeds of the end points (two or more)")
    steps: int = option(10, "images per path")
    method: str = option("slerp", "the path", choices=_interpolation_methods)
    out: str | None = out_option(
        None, "the PNG (default: RUN_DIR/figures/interpolate_SEEDS_METHOD.png)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.seeds) < 2:
            raise GanscopeError("--seeds needs at least two seeds")
        for seed in self.seeds:
            check_seed("--seeds", seed)
        at_least("--steps", self.steps, 2)
        if self.method not in _interpolation_methods():
            raise GanscopeError(
                f"unknown method {self.method!r}; choose {', '.join(_interpolation_methods())}"
            )


@dataclass(frozen=True)
class AnimateOptions:
    frame_ms: int = option(600, "milliseconds per frame")
    out: str | None = out_option(None, "the GIF (default: RUN_DIR/figures/progress.gif)")

    def __post_init__(self) -> None:
        at_least("--frame-ms", self.frame_ms, 1)


@dataclass(frozen=True)
class EvaluateOptions(GeneratorOptions):
    n: int = option(10000, "generated images")
    seed: int = seed_option()
    classifier_path: str | None = classifier_option()
    data_dir: str | None = data_dir_option("the one the run trained on")
    batch_size: int = option(256, "images per forward pass", cli=False)
    progress: bool = progress_option()

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("--n", self.n, 2)
        at_least("batch_size", self.batch_size, 1)
        check_seed("--seed", self.seed)


@dataclass(frozen=True)
class AnalyzeOptions(GeneratorOptions):
    dims: tuple[str, ...] = option(("all",), "'all' or a list of latent dimensions", type=str)
    deltas: tuple[float, ...] = option(
        (REPORT_DELTA,), "shift size(s); the first one drives the figures", flag="--delta"
    )
    n: int = option(256, "base vectors")
    seed: int = seed_option("the base vectors")
    lang: str = lang_option("the summary")
    top_k: int = option(5, "strongest dimensions to draw")
    sefa: int = option(10, "SeFa directions to label (0: none)")
    per_checkpoint: bool = option(
        False, "also measure every epoch's generator (checkpoint_n base vectors each)"
    )
    checkpoint_n: int = option(64, "base vectors per epoch for --per-checkpoint", cli=False)
    classifier_path: str | None = classifier_option()
    out: str | None = out_option(None, "a folder (default: RUN_DIR/analysis)")
    batch_size: int = option(256, "images per forward pass", cli=False)
    bootstrap: int = option(1000, "bootstrap resamples per interval", cli=False)
    progress: bool = progress_option()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "dims", tuple(str(d) for d in self.dims))
        object.__setattr__(self, "deltas", tuple(float(d) for d in self.deltas))
        check_positive_deltas(self.deltas)
        at_least("--n", self.n, 2)
        at_least("--top-k", self.top_k, 1)
        at_least("--sefa", self.sefa, 0)
        at_least("checkpoint_n", self.checkpoint_n, 2)
        at_least("batch_size", self.batch_size, 1)
        at_least("bootstrap", self.bootstrap, 1)
        check_seed("--seed", self.seed)
        check_lang(self.lang)


@dataclass(frozen=True)
class ReproduceOptions:
    out: str = out_option("reproduce", "the report and its runs")
    device: str = device_option("auto")
    seeds: tuple[int, ...] = option((0,), "one run per model and seed")
    lang: str = lang_option("the report")
    quick: bool = option(
        False,
        "smoke profile: 2 epochs on 6,400 images, fewer samples (under 2 minutes on a 2-core "
        "CPU; marked as such in the report)",
    )
    data_dir: str | None = data_dir_option("$GANSCOPE_DATA_DIR, else the cache")
    progress: bool = progress_option()

    def __post_init__(self) -> None:
        check_lang(self.lang)
        if not self.seeds:
            raise GanscopeError("--seeds needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise GanscopeError(f"--seeds has repeats: {list(self.seeds)}")
        for seed in self.seeds:
            check_seed("--seeds", seed)


@dataclass(frozen=True)
class ReportOptions:
    out: str = out_option("report", "the report")
    lang: str = lang_option("the report")
    progress: bool = progress_option()

    def __post_init__(self) -> None:
        check_lang(self.lang)


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[str, ...] = option(("mlp", "cnn"), "model families", choices=MODEL_NAMES)
    steps: int | None = option(
        None,
        "training steps per loop and trial (default on a CPU: 2000 for mlp, 100 for cnn, a few "
        "seconds to a minute each; on a GPU: 20000 and 5000)",
        type=int,
    )
    repeats: int = option(3, "trials per loop, taken in turns; each loop reports its median")
    batch_size: int = option(64, "images per step")
    device: str = device_option("auto")
    precision: str = option(
        "auto", "precision of ganscope's path", choices=lambda: list(PRECISIONS)
    )
    cuda_graph: bool = option(True, "on CUDA, ganscope's path replays its step as a CUDA graph")
    data_dir: str | None = data_dir_option("$GANSCOPE_DATA_DIR, else the cache")

    def __post_init__(self) -> None:
        from .models import get_family

        if not self.models:
            raise GanscopeError("--models needs at least one model")
        for model in self.models:
            get_family(model)
        at_least("--steps", self.steps, 1)
        at_least("--repeats", self.repeats, 1)
        at_least("--batch-size", self.batch_size, 1)
        if self.precision not in PRECISIONS:
            raise GanscopeError(
                f"--precision must be {', '.join(PRECISIONS)}, got {self.precision!r}"
            )


@dataclass(frozen=True)
class ClassifierTrainOptions:
    out: str = option(
        None,
        "weights file to write (.pt; its .json record goes beside it)",
        type=str,
        required=True,
    )
    data_dir: str | None = data_dir_option("$GANSCOPE_DATA_DIR, else the cache")
    epochs: int | None = option(None, "override the recipe's epochs", type=int)
    seed: int | None = option(None, "override the recipe's seed", type=int)
    progress: bool = progress_option()

    def __post_init__(self) -> None:
        at_least("--epochs", self.epochs, 1)
        if self.seed is not None:
            check_seed("--seed", self.seed)


@dataclass(frozen=True)
class TrainOptions:
    """What ``ganscope train`` takes beside the run's config (``config.RunConfig``)."""

    out: str | None = out_option(
        None, "the run folder to create (default: runs/MODEL-YYYYmmdd-HHMMSS)"
    )
    resume: str | None = option(
        None,
        "continue this run folder from its last checkpoint; only --epochs and the mechanics "
        "(--device, --cuda-graph, --checkpoint-minutes) may change",
        type=str,
        metavar="RUN_DIR",
    )
    progress: bool = progress_option()
