"""Typed, frozen run configuration: every training default is written here once.

A run folder stores the nested :class:`RunConfig` as ``config.json``; :func:`RunConfig.from_dict`
reads it back, so every later command needs only the folder's path. Each field carries its
help text (and, where it differs from the field's name, its flag) as metadata, from which the
CLI builds ``ganscope train``'s flags: one flag per field, defaults quoted from here.

A field marked ``mechanics`` says *how* a run is computed (device, CUDA graph, checkpoint
interval, logging, where the data lies), not *what* is computed: it may change when a run is
resumed or reused (:data:`RESUMABLE`, :meth:`RunConfig.method`). All other fields are the method.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .checks import require_tensorboard
from .data import DATASETS, get_dataset
from .errors import GanscopeError, lookup
from .models import CLASSIFYING, CONDITIONINGS, MODELS, get_family
from .presets import PRESETS, describe_presets
from .source import IMPORTED, SourceConfig

#: Version of the run-folder layout and checkpoint format; bumped on incompatible changes.
FORMAT_VERSION = 1

PRECISIONS = ("auto", "fp32", "bf16")
#: The GAN objectives: the report's non-saturating binary cross-entropy, or the hinge loss.
LOSSES = ("bce", "hinge")


def option(default: Any = None, help: str = "", **spec: Any) -> Any:
    """A dataclass field with its command-line spelling: ``help`` and, optionally, ``flag``
    (default ``--field-name``), ``type``, ``metavar``, ``choices`` (a callable returning the
    registry's names, listed in the help), ``detail`` (a callable returning more help, computed
    when the help is shown), ``mechanics`` (see the module docstring), and
    ``cli=False`` for fields that only the Python API sets, ``on_off=True`` for a switch that is
    off by default but spelled ``--flag on|off``."""
    if isinstance(default, list | dict | set):
        raise TypeError("mutable defaults: use a tuple")
    return field(default=default, metadata={"help": help, **spec})


def _names(registry: Any):
    return lambda: sorted(registry)


MODEL_NAMES = _names(MODELS)
PRESET_NAMES = _names(PRESETS)
DATASET_NAMES = _names(DATASETS)


def preset_recipes() -> str:
    """Each preset's recipe as flags (the help of the options that name presets)."""
    return describe_presets(TrainConfig)


@dataclass(frozen=True)
class DataConfig:
    """Which images to train on."""

    dataset: str = option("fashion-mnist", "the data set", choices=DATASET_NAMES)
    data_dir: str | None = option(
        None,
        "folder with the IDX files (else $GANSCOPE_DATA_DIR, else ~/.cache/ganscope; missing "
        "files are downloaded)",
        type=str,
        mechanics=True,
    )
    limit: int | None = option(None, "train on the first N images only (smoke runs)", type=int)

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise GanscopeError(f"--limit must be at least 1 image, got {self.limit}")
        get_dataset(self.dataset)


@dataclass(frozen=True)
class ModelConfig:
    """Which GAN family (see ``ganscope.models``) and its latent size."""

    name: str = option("mlp", "GAN family", flag="--model", choices=MODEL_NAMES)
    z_dim: int = option(100, "length of the latent vector z", cli=False)
    conditioning: str = option(
        "none",
        "class-conditional GAN: G gets the one-hot label joined to z, D is told it by concat "
        "(input concatenation), projection (Miyato & Koyama 2018), acgan (auxiliary classifier, "
        "Odena et al. 2017), dual (projection whose class vectors also classify, Han et al. "
        "2021), tac (twin auxiliary classifiers, Gong et al. 2019) or adc (auxiliary "
        "discriminative classifier, Hou et al. 2022); none: the report's unconditional GAN",
        flag="--conditional",
        choices=lambda: list(CONDITIONINGS),
    )

    def validate(self) -> None:
        if not 1 <= self.z_dim <= 4096:
            raise GanscopeError(f"z_dim must be in 1..4096, got {self.z_dim}")
        if self.name != IMPORTED:  # an imported run's generator is its file (SourceConfig)
            get_family(self.name)
        lookup(CONDITIONINGS, self.conditioning, "conditioning")

    @property
    def conditional(self) -> bool:
        return self.conditioning != "none"


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation procedure. Defaults are the lab report's where it states them (Adam,
    lr 2e-4, 10 epochs) and the DCGAN paper's beyond (betas 0.5/0.999, batch 64)."""

    epochs: int = option(10, "number of passes over the training set")
    batch_size: int = option(64, "images per step")
    lr: float = option(2e-4, "Adam learning rate for both players")
    # The report states Adam, lr 2e-4 and 10 epochs only: the betas and the batch of 64 are
    # ganscope's choice (the DCGAN paper's and pytorch/examples' values).
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    seed: int = option(0, "seed for weights, shuffling and noise (CPU runs repeat exactly)")
    # -- beyond the report: each a standard technique, off by default (docs/presets.md) ----
    # ``preset`` names the recipe the fields below started from; the CLI fills them in from
    # it, a Python caller with ``presets.with_preset(train, model)``.
    preset: str = option(
        "seed",
        "training recipe: seed (the report's networks, Adam, lr and epochs; its betas and "
        "batch are ganscope's choice), improved (docs/presets.md) or conditional (the MLP "
        "recipe measured best with --conditional dual, docs/conditional.md); the technique "
        "flags below override its parts",
        choices=PRESET_NAMES,
        detail=preset_recipes,
    )
    loss: str = option(
        "bce",
        "GAN objective: bce (the report's: D's binary cross-entropy, G's non-saturating "
        "loss) or hinge",
        choices=lambda: list(LOSSES),
    )
    lr_d: float | None = option(
        None, "D's learning rate, for two time-scale updates (default: --lr)", type=float
    )
    ema: float = option(
        0.0,
        "decay of an exponential moving average of G's weights, which then is the saved "
        "generator (samples, metrics, exports); 0: off, e.g. 0.999",
    )
    ema_ramp: float = option(
        10.0,
        "R of --ema's warm-up: its decay at step s is min(EMA, (1 + s) / (R + s)). 10 "
        "(TensorFlow's): the average holds about the last tenth of a run's steps; 3: every "
        "step weighed by its index; 2: all alike (benchmarks/ema_window.py)",
    )
    r1_gamma: float = option(
        0.0, "weight of the R1 penalty on D's gradient at real images (0: off)"
    )
    r1_every: int = option(16, "apply R1 every N steps (lazy regularisation, scaled by N)")
    spectral_norm: bool = option(
        False, "spectral normalisation of D's layers (a training-time reparametrisation)"
    )
    label_smoothing: float = option(
        0.0, "one-sided label smoothing: D's target for real images is 1 minus this (bce)"
    )
    instance_noise: float = option(
        0.0,
        "std of Gaussian noise added to every image D sees, decaying linearly to 0 by the "
        "last epoch (0: off)",
    )
    d_dropout: float = option(
        0.0,
        "dropout probability on D's hidden features (the inputs of its layers after the "
        "first; masks drawn from the run's noise stream, so a resumed run repeats exactly); "
        "0: off",
    )
    class_weight: float = option(
        1.0, "weight of both players' class losses (acgan, dual, tac, adc)"
    )
    mode_seeking: float = option(
        0.0,
        "weight of the mode-seeking term (Mao et al. 2019): G pays for two latent vectors "
        "of a batch's halves, asked for the same class, giving alike images (0: off)",
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps", mechanics=True)
    precision: str = option(
        "auto",
        "arithmetic: fp32 (the report's), bf16 (autocast), or auto: bf16 for convolutional "
        "models on CPUs and GPUs with native bf16 units, else fp32",
        choices=lambda: list(PRECISIONS),
    )
    log_every: int = option(
        50, "read the per-step losses back every this many steps", cli=False, mechanics=True
    )
    eval_every: int = option(
        0, "quality metrics every N epochs, logged and drawn next to the losses (0: off)"
    )
    eval_samples: int = option(2000, "generated images per such evaluation")
    cuda_graph: bool = option(
        True,
        "on CUDA, capture the whole training step once as a CUDA graph and replay it (5-13x "
        "the images per second of eager steps on an H100/H200; not with --instance-noise or "
        "--d-dropout, nor under torchrun: those steps run eagerly); off launches every kernel "
        "eagerly; ignored on other devices",
        mechanics=True,
        on_off=True,
    )
    tensorboard: bool = option(
        False,
        "also log to TensorBoard under the run folder's tensorboard/: step and epoch losses, "
        "images/s, --eval-every metrics, the epoch's sample grid (needs "
        "pip install 'ganscope[tensorboard]')",
        mechanics=True,
    )
    checkpoint_minutes: float = option(
        5.0,
        "minutes between saves of the whole training state within an epoch, so that an "
        "interrupted run resumes close to where it stopped (0: at epoch ends only)",
        mechanics=True,
    )

    def validate(self) -> None:
        if self.epochs < 1:
            raise GanscopeError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise GanscopeError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise GanscopeError(f"--lr must be a positive finite number, got {self.lr}")
        for name, beta in (("--beta1", self.beta1), ("--beta2", self.beta2)):
            if not 0 <= beta < 1:
                raise GanscopeError(f"{name} must be in [0, 1), got {beta}")
        if not 0 <= self.seed < 2**63:
            raise GanscopeError(f"--seed must be in 0..2**63-1, got {self.seed}")
        if self.precision not in PRECISIONS:
            raise GanscopeError(
                f"--precision must be {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.eval_every < 0:
            raise GanscopeError(f"--eval-every must be 0 (off) or more, got {self.eval_every}")
        if self.eval_samples < 10:
            raise GanscopeError(f"--eval-samples must be at least 10, got {self.eval_samples}")
        if self.log_every < 1:
            raise GanscopeError(f"log_every must be at least 1, got {self.log_every}")
        lookup(PRESETS, self.preset, "preset")
        if self.loss not in LOSSES:
            raise GanscopeError(f"--loss must be {' or '.join(LOSSES)}, got {self.loss!r}")
        if self.lr_d is not None and not (self.lr_d > 0 and math.isfinite(self.lr_d)):
            raise GanscopeError(f"--lr-d must be a positive finite number, got {self.lr_d}")
        for flag, value in (("--r1-gamma", self.r1_gamma), ("--class-weight", self.class_weight),
                             ("--instance-noise", self.instance_noise),
                             ("--mode-seeking", self.mode_seeking),
                             ("--checkpoint-minutes", self.checkpoint_minutes)):  # fmt: skip
            if not 0 <= value < float("inf"):
                raise GanscopeError(f"{flag} must be 0 or more, got {value}")
        for flag, share in (("--ema", self.ema), ("--d-dropout", self.d_dropout),
                            ("--label-smoothing", self.label_smoothing)):  # fmt: skip
            if not 0 <= share < 1:
                raise GanscopeError(f"{flag} must be in [0, 1), got {share}")
        if not 1 <= self.ema_ramp < float("inf"):
            raise GanscopeError(f"--ema-ramp must be 1 or more, got {self.ema_ramp}")
        if self.ema_ramp != TrainConfig.ema_ramp and not self.ema:
            raise GanscopeError("--ema-ramp shapes --ema's average: give --ema too")
        if self.r1_every < 1:
            raise GanscopeError(f"--r1-every must be at least 1, got {self.r1_every}")
        if self.mode_seeking and self.batch_size < 2:
            raise GanscopeError("--mode-seeking pairs a batch's halves: --batch-size must be 2+")
        if self.tensorboard:
            require_tensorboard()


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def is_mechanics(cls: type, name: str) -> bool:
    return bool(
        next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("mechanics")
    )


#: Settings a resumed run may change (name -> config section): how far to train, and the
#: mechanics of every section.
RESUMABLE: dict[str, str] = {
    "epochs": "train",
    **{
        f.name: section
        for section, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
        if f.metadata.get("mechanics")
    },
}


#: Settings older run folders may hold that no longer change anything; read and dropped.
#: ``cuda_graph_unchecked``: the gate on capturing --ema/--r1-gamma steps, lifted once
#: benchmarks/gpu_check.sh passed on an H200 (2026-12-04; docs/benchmarks.md).
RETIRED: dict[str, tuple[str, ...]] = {"train": ("cuda_graph_unchecked",)}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; saved as ``config.json`` in its folder."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    #: An imported generator's origin (``ganscope import``); empty for a trained run.
    source: SourceConfig = field(default_factory=SourceConfig)

    def validate(self) -> RunConfig:
        """Check ranges and registered names; hardware checks come when a device is chosen."""
        self.data.validate()
        self.model.validate()
        if self.source.imported or self.model.name == IMPORTED:
            self.source.validate()
            if self.model.name != IMPORTED:
                raise GanscopeError(f"an imported run's model is named {IMPORTED!r}")
        self.train.validate()
        if self.train.class_weight != 1 and self.model.conditioning not in CLASSIFYING:
            raise GanscopeError(
                f"--class-weight is for --conditional {', '.join(CLASSIFYING[:-1])} or "
                f"{CLASSIFYING[-1]} only"
            )
        return self

    @property
    def num_classes(self) -> int:
        """The classes G and D are told (0: an unconditional run)."""
        return len(get_dataset(self.data.dataset).classes) if self.model.conditional else 0

    def method(self) -> RunConfig:
        """This config with every mechanics field at its default: two runs with equal
        ``method()`` compute the same thing, wherever and however they run."""
        parts = {}
        for name, cls in SECTIONS.items():
            part = getattr(self, name)
            defaults = {
                f.name: f.default for f in dataclasses.fields(cls) if f.metadata.get("mechanics")
            }
            parts[name] = dataclasses.replace(part, **defaults)
        return RunConfig(**parts, source=self.source)

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON data; a trained run's has no ``source`` (its files stay as
        they were before ``ganscope import`` existed)."""
        raw = dataclasses.asdict(self)
        if not self.source.imported:
            del raw["source"]
        return raw

    def with_changes(self, **changes: Any) -> RunConfig:
        """This config with ``changes`` (names of :data:`RESUMABLE`) applied to their sections."""
        parts = {name: getattr(self, name) for name in SECTIONS}
        for key, value in changes.items():
            section = RESUMABLE[key]
            parts[section] = dataclasses.replace(parts[section], **{key: value})
        return RunConfig(**parts, source=self.source)

    @classmethod
    def from_dict(cls, raw: Any) -> RunConfig:
        """Rebuild from ``to_dict`` output; unknown keys or wrong types are an error, missing
        keys default."""
        if not isinstance(raw, dict):
            raise GanscopeError("config.json: 'config' is not a JSON object")
        parts: dict[str, Any] = {}
        if "source" in raw:
            parts["source"] = SourceConfig.from_dict(raw["source"])
        for name, part_cls in SECTIONS.items():
            values = raw.get(name, {})
            if not isinstance(values, dict):
                raise GanscopeError(f"config.json: '{name}' is not a JSON object")
            known = {f.name: f for f in dataclasses.fields(part_cls)}
            values = {k: v for k, v in values.items() if k not in RETIRED.get(name, ())}
            unknown = set(values) - set(known)
            if unknown:
                raise GanscopeError(
                    f"config.json has unknown {name} settings {sorted(unknown)}; "
                    "was it written by a newer ganscope?"
                )
            for key, value in values.items():
                _check_type(f"{name}.{key}", value, known[key])
            parts[name] = part_cls(**values)
        return cls(**parts)


def _check_type(name: str, value: Any, field: dataclasses.Field) -> None:
    """JSON values must have their field's type (None where the default is None)."""
    default = field.default
    if default is None:
        expected = field.metadata.get("type", str)
        ok = value is None or (isinstance(value, expected) and not isinstance(value, bool))
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default)) and not isinstance(value, bool)
    if not ok:
        raise GanscopeError(f"config.json: {name} has the wrong type ({value!r})")
