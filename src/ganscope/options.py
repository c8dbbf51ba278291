"""Each command's options: typed, frozen, checked, with their defaults written only here.

The Python function behind a command takes its options object (or keyword arguments that build
one, e.g. ``evaluate_run(run, n=2000)``), and ``cli`` builds the command's flags from the
fields: the help text and bounds live in each field's metadata (``config.option``), the
command's help and description in the class docstring (first line, then the rest), and the
shared flags (``--out``, ``--device``, ``--seed``, ``--lang``, ``--no-progress``,
``--data-dir``, ``--epoch``, ``--classifier``) are declared once below. Checks run when the
object is made, so a Python caller gets the same errors as the command line; checks that need
the run (a dimension within z_dim) run in the function, before it writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checks import (  # noqa: F401 - the checks' names are part of this module's API
    IMAGE_BYTES,
    INTERPOLATION_METHODS,
    LANGS,
    MAX_ABS_DELTA,
    MAX_SEED,
    Checked,
    check_delta,
    check_lang,
    check_memory,
    check_positive_deltas,
    flag_of,
    resolve,
)
from .config import option
from .errors import GanscopeError

#: The report's latent figures: these dimensions, shifted by this much.
REPORT_DIMS = (20, 50, 60, 70, 90)
REPORT_DELTA = 10.0


# -- the shared flags, declared once ------------------------------------------------------------
def out_option(default: str | None, where: str) -> Any:
    return option(default, f"where to write: {where}", type=str)


def device_option(default: str = "cpu") -> Any:
    return option(default, "device: auto, cpu, cuda, cuda:N or mps", mechanics=True)


def seed_option(what: str = "the latent vectors", default: int | None = 0) -> Any:
    return option(default, f"seed of {what}", type=int, minimum=0, maximum=MAX_SEED)


def epoch_option() -> Any:
    help_text = "use the generator saved after this epoch (default: the latest)"
    return option(None, help_text, type=int, minimum=1)


def lang_option(what: str) -> Any:
    return option("en", f"language of {what}", choices=lambda: list(LANGS))


def overwrite_option() -> Any:
    return option(False, "replace the files an explicit --out names if they exist")


def progress_option() -> Any:
    return option(True, "no progress bars or progress lines", flag="--no-progress")


def data_dir_option(fallback: str) -> Any:
    return option(None, f"folder with the data set's IDX files (default: {fallback})", type=str)


def class_option(what: str = "the garment to generate") -> Any:
    return option(
        None,
        f"a conditional run's (--conditional) {what}, by name or index (e.g. Sneaker or 7)",
        type=str,
        flag="--class",
    )


def classifier_option() -> Any:
    return option(
        None,
        "classifier weights (.pt with its .json record beside it; default: the shipped ones)",
        type=str,
        flag="--classifier",
    )


# -- the commands ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorOptions(Checked):
    """Which of a run's generators, on which device (every command that generates)."""

    epoch: int | None = epoch_option()
    device: str = device_option()


@dataclass(frozen=True)
class SampleOptions(GeneratorOptions):
    """a grid of generated images

    Generate N images from a trained run's generator and save them as a grid (and optionally
    one PNG per image and an .npz with images and latent vectors).
    """

    n: int = option(64, "number of images", minimum=1)
    nrow: int | None = option(
        None,
        "images per grid row (default: 8; a conditional run's number of classes, so that "
        "without --class each column is one class)",
        type=int,
        minimum=1,
    )
    seed: int = seed_option()
    class_name: str | None = class_option("garment (default: every class in turn)")
    out: str | None = out_option(
        None, "the grid PNG (default: RUN_DIR/samples/sample_seedS_nN.png)"
    )
    overwrite: bool = overwrite_option()
    save_individual: bool = option(False, "also one PNG per image, in a folder named like the grid")
    npz: bool = option(False, "also an .npz beside the grid: images (uint8) and z")

    def check(self) -> None:
        check_memory(f"--n {self.n}", self.n * IMAGE_BYTES)


EXPORT_FORMATS = ("onnx", "torchscript")


@dataclass(frozen=True)
class ExportOptions(Checked):
    """the generator alone, as an ONNX or TorchScript file

    Write a run's generator (any saved epoch) as a file that runs without ganscope: ONNX for
    onnxruntime and other runtimes, TorchScript for torch.jit.load. The batch size is free;
    the file's metadata holds the latent size, the output range and the provenance (run
    config, epoch, ganscope and torch versions), which are also printed.
    """

    format: str = option("onnx", "file format", choices=lambda: list(EXPORT_FORMATS))
    epoch: int | None = epoch_option()
    out: str | None = out_option(
        None, "the file (default: RUN_DIR/exports/generator_epoch_NNN.onnx or .pt)"
    )
    overwrite: bool = overwrite_option()


@dataclass(frozen=True)
class TraverseOptions(GeneratorOptions):
    """shift single latent dimensions, as in the report's figures

    For each dimension d, one figure with three rows: the images of z with z[d] lowered by
    DELTA, the unchanged z, and z[d] raised by DELTA; the same base vectors for every
    dimension. The defaults are the report's. Writes dim_NNN.png per dimension and
    overview.png.
    """

    dims: tuple[int, ...] = option(REPORT_DIMS, "latent dimensions", type=int)
    delta: float = option(REPORT_DELTA, "shift size")
    n: int = option(8, "base vectors", minimum=1)
    seed: int = seed_option("the base vectors")
    class_name: str | None = class_option(
        "garment of every base vector (default: base vector k gets class k)"
    )
    steps: int | None = option(
        None,
        "instead of three rows, sweep -delta..+delta in this many columns, one row per base vector",
        type=int,
        minimum=2,
    )
    out: str | None = out_option(None, "a folder (default: RUN_DIR/traversals)")
    overwrite: bool = overwrite_option()

    def check(self) -> None:
        if not self.dims:
            raise GanscopeError("give at least one latent dimension")
        check_positive_deltas((self.delta,))
        images = len(self.dims) * self.n * (self.steps or 3)
        check_memory(
            f"{len(self.dims)} dims x --n {self.n} x {self.steps or 3} steps", images * IMAGE_BYTES
        )


@dataclass(frozen=True)
class InterpolateOptions(GeneratorOptions):
    """images along a path between latent vectors

    Interpolate between the latent vectors drawn with two (or more) seeds.
    """

    seeds: tuple[int, ...] = option(
        (0, 1), "seeds of the end points (two or more)", minimum=0, maximum=MAX_SEED
    )
    steps: int = option(10, "images per path", minimum=2)
    method: str = option("slerp", "the path", choices=lambda: list(INTERPOLATION_METHODS))
    class_name: str | None = class_option("garment at every point (default: the first class)")
    to_class: str | None = option(
        None,
        "a conditional run's garment at the path's end: the one-hot label moves linearly "
        "from --class to this one along the path",
        type=str,
    )
    out: str | None = out_option(
        None, "the PNG (default: RUN_DIR/figures/interpolate_SEEDS_METHOD.png)"
    )
    overwrite: bool = overwrite_option()

    def check(self) -> None:
        if len(self.seeds) < 2:
            raise GanscopeError("--seeds needs at least two seeds")
        images = (len(self.seeds) - 1) * self.steps
        check_memory(f"--steps {self.steps}", images * IMAGE_BYTES)


@dataclass(frozen=True)
class AnimateOptions(Checked):
    """a GIF of the per-epoch sample grids

    Build a training-progress animation from a run's per-epoch fixed-noise grids (written
    after every epoch as RUN_DIR/figures/progress.gif).
    """

    # GIF stores a frame's delay in hundredths of a second, as a 16-bit number.
    frame_ms: int = option(600, "milliseconds per frame", minimum=1, maximum=655350)
    out: str | None = out_option(None, "the GIF (default: RUN_DIR/figures/progress.gif)")
    overwrite: bool = overwrite_option()


@dataclass(frozen=True)
class EvaluateOptions(GeneratorOptions):
    """sample-quality metrics against the test set

    Generate N images and compare them with the test set in the shipped classifier's feature
    space: FID, KID (mean and std), precision/recall, density/coverage, the generated class
    distribution (entropy, KL to the real one, classes covered), a classifier score (IS
    analogue) and a memorisation check against the training set. A conditional run's samples
    are class-balanced and add label agreement (overall and per class, beside the classifier's
    accuracy on real images), intra-class FID, and class precision and recall (the share of
    each class's samples among its real images, and of its real images among its samples);
    --cas adds the Classification Accuracy
    Score. Writes RUN_DIR/evaluation/epoch_E_seedS_nN.json and a figure of the closest
    generated/training pairs.
    """

    n: int = option(10000, "generated images", minimum=2)
    seed: int = seed_option()
    classifier_path: str | None = classifier_option()
    data_dir: str | None = data_dir_option("the one the run trained on")
    batch_size: int = option(256, "images per forward pass", cli=False, minimum=1)
    progress: bool = progress_option()
    trained_weights: bool = option(
        False,
        "in a run trained with --ema: evaluate G's own weights after the latest epoch instead "
        "of their moving average (what the same run without --ema ends with; the record is "
        "kept apart, as ..._trained.json)",
    )
    cas: bool = option(
        False,
        "a conditional run's Classification Accuracy Score: train the shipped classifier's "
        "recipe on 6,000 generated images per class and test it on the real test set (about "
        "8 minutes on a 2-core CPU)",
    )
    # Fashion-MNIST's own 6,000 per class: the score compares with the recipe on the real set
    cas_per_class: int = option(6000, "generated images per class for --cas", cli=False, minimum=1)
    cas_epochs: int = option(
        12, "epochs of the classifier's recipe for --cas", cli=False, minimum=1
    )

    def check(self) -> None:
        # The samples, their features and a memorisation chunk against 60,000 training images.
        check_memory(f"--n {self.n}", self.n * 2 * IMAGE_BYTES + 512 * 60000 * 4)


@dataclass(frozen=True)
class AnalyzeOptions(GeneratorOptions):
    """label what every latent dimension does, with confidence

    Shift latent dimensions by -DELTA and +DELTA on N base vectors, classify the images with
    the shipped classifier, and report per dimension the class each side pushes towards, its
    semantic strength (TV distance), the share of flipped classes, brightness, sharpness and
    confidence changes, with 95% bootstrap intervals. Also labels SeFa's closed-form
    directions. A conditional run keeps each base vector's class on both sides of a shift
    and adds what z does once the class is given: per dimension and class, whether a shift
    keeps the class, how far it moves the image, ink area, width and brightness, the style
    dimensions named (styles.csv, styles.png). Writes RUN_DIR/analysis/: dims.csv, dims.json,
    summary.LANG.md, class_shifts.png and report-style grids.
    """

    dims: tuple[str, ...] = option(("all",), "'all' or a list of latent dimensions", type=str)
    deltas: tuple[float, ...] = option(
        (REPORT_DELTA,),
        "shift size(s); the first one drives the figures",
        flag="--delta",
        metavar="DELTA",
    )
    n: int = option(256, "base vectors", minimum=2)
    seed: int = seed_option("the base vectors")
    lang: str = lang_option("the summary")
    top_k: int = option(5, "strongest dimensions to draw", minimum=1)
    sefa: int = option(10, "SeFa directions to label (0: none)", minimum=0)
    pca: int = option(
        10,
        "GANSpace directions to label: principal components of the first layer's activations "
        "over many z, mapped back to latent directions (0: none)",
        minimum=0,
        maximum=100,
    )
    boundary_n: int = option(
        10000,
        "latent vectors (seed --seed + 1) the classifier boundaries towards each class are "
        "fitted on, a fifth held out to measure them (0: none; needs at least 100)",
        minimum=0,
    )
    compare_methods: bool = option(
        False,
        "instead of analysing: score single dimensions, SeFa, GANSpace and the classifier "
        "boundaries towards every class on the run's existing analysis (chosen on its base "
        "vectors, scored on fresh ones): methods.csv/.md/.json/.png beside it",
    )
    towards: tuple[str, ...] = option(
        (), "the classes --compare-methods scores, by name or index (none: every class)",
        type=str, metavar="CLASS",
    )  # fmt: skip
    compare_n: int = option(256, "base vectors the comparison scores on", minimum=2)
    compare_seed: int | None = seed_option(
        "the comparison's base vectors (default: the analysis's seed + 2)", default=None
    )
    lengths: tuple[float, ...] = option(
        (5.0, 10.0, 20.0),
        "edit lengths in z the comparison scores; must hold the analysis's first delta",
        flag="--length",
        metavar="L",
    )
    data_dir: str | None = data_dir_option("the one the run trained on")
    per_checkpoint: bool = option(
        False, "also measure every epoch's generator (checkpoint_n base vectors each)"
    )
    checkpoint_n: int = option(64, "base vectors per epoch", cli=False, minimum=2)
    classifier_path: str | None = classifier_option()
    out: str | None = out_option(None, "a folder (default: RUN_DIR/analysis)")
    overwrite: bool = overwrite_option()
    batch_size: int = option(256, "images per forward pass", cli=False, minimum=1)
    bootstrap: int = option(1000, "bootstrap resamples per interval", cli=False, minimum=1)
    progress: bool = progress_option()

    def check(self) -> None:
        object.__setattr__(self, "dims", tuple(str(d) for d in self.dims))
        object.__setattr__(self, "deltas", tuple(float(d) for d in self.deltas))
        object.__setattr__(self, "lengths", tuple(sorted({float(v) for v in self.lengths})))
        object.__setattr__(self, "towards", tuple(str(c) for c in self.towards))
        check_positive_deltas(self.deltas)
        if not self.lengths or not all(0 < v <= MAX_ABS_DELTA for v in self.lengths):
            raise GanscopeError(f"--length must be in (0, {MAX_ABS_DELTA:g}], got {self.lengths}")
        if 0 < self.boundary_n < 100:
            raise GanscopeError(f"--boundary-n must be 0 or at least 100, got {self.boundary_n}")
        # Per base vector: its two shifted images at a time and the bootstrap's indices.
        check_memory(f"--n {self.n}", self.n * (2 * IMAGE_BYTES + 8 * self.bootstrap))
