"""Typed, frozen run configuration: defaults are written here once and shared by CLI and API.

A run folder stores the nested :class:`RunConfig` as ``config.json``; :func:`RunConfig.from_dict`
reads it back, so every later command needs only the folder's path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import GanscopeError

#: Version of the run-folder layout and checkpoint format; bumped on incompatible changes.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DataConfig:
    """Which images to train on."""

    dataset: str = "fashion-mnist"
    #: Folder holding the IDX files; None means $GANSCOPE_DATA_DIR, then the user cache.
    data_dir: str | None = None
    #: Use only the first N training images (smoke runs, tests); None means all of them.
    limit: int | None = None

    def validate(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise GanscopeError(f"--limit must be at least 1 image, got {self.limit}")


@dataclass(frozen=True)
class ModelConfig:
    """Which GAN family (see ``ganscope.models``) and its latent size."""

    name: str = "mlp"
    z_dim: int = 100

    def validate(self) -> None:
        if self.z_dim < 1:
            raise GanscopeError(f"z_dim must be at least 1, got {self.z_dim}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation procedure. Defaults are the lab report's: Adam, lr 2e-4, 10 epochs."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    #: auto | cpu | cuda | cuda:N | mps
    device: str = "auto"
    #: auto | fp32 | bf16 (autocast); auto is bf16 for convolutional models on hardware with
    #: native bf16 matrix instructions, fp32 otherwise (see training.resolve_precision).
    precision: str = "auto"
    #: Read the per-step losses back from the device every this many steps.
    log_every: int = 50
    #: Quality metrics (FID, precision/recall, ...) every this many epochs; 0 turns them off.
    eval_every: int = 0
    #: Generated images per evaluation during training.
    eval_samples: int = 2000
    #: On CUDA, record the whole training step once as a CUDA graph and replay it (False:
    #: eager kernel launches). Ignored on other devices.
    cuda_graph: bool = True
    #: Within an epoch, save the full training state at most this often (minutes), so that
    #: an interrupted run loses less than this; 0 saves at epoch ends only.
    checkpoint_minutes: float = 5.0

    def validate(self) -> None:
        if self.epochs < 1:
            raise GanscopeError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise GanscopeError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.lr > 0 or self.lr != self.lr or self.lr == float("inf"):
            raise GanscopeError(f"--lr must be a positive finite number, got {self.lr}")
        for name, beta in (("--beta1", self.beta1), ("--beta2", self.beta2)):
            if not 0 <= beta < 1:
                raise GanscopeError(f"{name} must be in [0, 1), got {beta}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise GanscopeError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.eval_every < 0:
            raise GanscopeError(f"--eval-every must be 0 (off) or more, got {self.eval_every}")
        if self.eval_samples < 10:
            raise GanscopeError(f"--eval-samples must be at least 10, got {self.eval_samples}")
        if not 0 <= self.checkpoint_minutes < float("inf"):
            raise GanscopeError(
                f"--checkpoint-minutes must be 0 (epoch ends only) or more, "
                f"got {self.checkpoint_minutes}"
            )
        if self.log_every < 1:
            raise GanscopeError(f"log_every must be at least 1, got {self.log_every}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run; saved as ``config.json`` in its folder."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        self.data.validate()
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """Rebuild from ``to_dict`` output; unknown keys are an error, missing ones default."""
        parts = {}
        for part in dataclasses.fields(cls):
            part_cls = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}[part.name]
            values = dict(raw.get(part.name, {}))
            known = {f.name for f in dataclasses.fields(part_cls)}
            unknown = set(values) - known
            if unknown:
                raise GanscopeError(
                    f"config.json has unknown {part.name} settings {sorted(unknown)}; "
                    "was it written by a newer ganscope?"
                )
            parts[part.name] = part_cls(**values)
        return cls(**parts)
