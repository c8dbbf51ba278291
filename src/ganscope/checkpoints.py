"""The checkpoint format, defined once: what a training state holds and how it is saved.

Three kinds of file, all written atomically and read with ``weights_only=True`` (no pickled
code ever runs):

* ``last.pt``: the whole :class:`TrainState` after the latest finished epoch;
* ``partial.pt``: the same within an unfinished epoch, with ``position`` (steps done in it)
  and the data RNG as it was at the epoch's start, so resuming redraws the same batches;
* ``generator_epoch_NNN.pt``: G's weights after each epoch (small; for sampling any epoch).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic
from .config import FORMAT_VERSION, RunConfig, TrainConfig
from .devices import set_adam_mechanics
from .errors import GanscopeError

#: Keys every full training-state checkpoint holds.
STATE_KEYS = (
    "format_version", "config", "epoch", "step", "position", "generator", "discriminator",
    "opt_G", "opt_D", "rng", "fixed_z",
)  # fmt: skip
#: Keys a generator snapshot holds.
SNAPSHOT_KEYS = ("format_version", "config", "epoch", "generator")


@dataclass
class TrainState:
    """Everything that changes during training; a checkpoint is exactly this."""

    generator: nn.Module
    discriminator: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    #: Shuffles the data (CPU generator, so permutations match across devices).
    data_rng: torch.Generator
    #: Draws the latent vectors (on the training device).
    noise_rng: torch.Generator
    #: The 64 latent vectors behind every per-epoch grid, ``(64, z_dim)``.
    fixed_z: torch.Tensor
    epoch: int = 0
    step: int = 0
    #: Resolved arithmetic of the training step: "fp32" or "bf16" (autocast).
    precision: str = "fp32"
    #: Steps already done in epoch ``epoch + 1``: nonzero only in a state restored from a
    #: mid-epoch checkpoint, whose ``data_rng`` is then the one from that epoch's start.
    position: int = 0
    #: What the training step calls instead of (generator, discriminator): their
    #: DistributedDataParallel wrappers when several processes train (never saved).
    replicas: tuple[nn.Module, nn.Module] | None = None
    #: The training recipe the step follows (loss, R1, label smoothing, ...: ``recipe``).
    train: TrainConfig = field(default_factory=TrainConfig)
    #: The moving average of G's weights (``--ema``), saved as the run's generator; or None.
    ema_generator: nn.Module | None = None
    #: The std of the instance noise in the current epoch (``--instance-noise``).
    noise_std: float = 0.0

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples, grids and metrics use: the moving average if any."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def state_dict(self, config: RunConfig) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "position": self.position,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": {
                "data": self.data_rng.get_state(),
                "noise": self.noise_rng.get_state(),
                "noise_device": self.noise_rng.device.type,
            },
            "fixed_z": self.fixed_z.cpu(),
        } | ({"generator_ema": self.ema_generator.state_dict()} if self.ema_generator else {})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint's content; one that does not fit these networks and
        optimisers (another model, a damaged file) is a GanscopeError."""
        try:
            self._load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise GanscopeError(
                f"the checkpoint does not fit this run's networks ({one_line(error)}); it is "
                "damaged or from another model"
            ) from None

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema_generator is not None:
            self.ema_generator.load_state_dict(state["generator_ema"])
        for optimizer, key in ((self.opt_G, "opt_G"), (self.opt_D, "opt_D")):
            # A state dict carries the saving process's Adam mechanics (fused, capturable);
            # keep this process's, which suit its device.
            mechanics = {k: optimizer.param_groups[0][k] for k in ("fused", "capturable")}
            optimizer.load_state_dict(state[key])
            set_adam_mechanics(optimizer, **mechanics)
        self.data_rng.set_state(state["rng"]["data"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.position = int(state.get("position", 0))
        if state["rng"].get("noise_device", "cpu") == self.noise_rng.device.type:
            self.noise_rng.set_state(state["rng"]["noise"])
        else:
            # CPU and CUDA generators have different states: on another device type the
            # noise stream cannot continue, so it restarts from the seed and the step.
            warnings.warn(
                f"resuming a run trained on {state['rng']['noise_device']} on "
                f"{self.noise_rng.device.type}: the latent noise continues from a new stream, "
                "so the result will not equal an uninterrupted run",
                stacklevel=2,
            )
            seed = int(state["config"]["train"]["seed"])
            self.noise_rng.manual_seed(seed + 1 + self.step)
        self.fixed_z = state["fixed_z"].to(self.fixed_z.device)

    def weights_finite(self) -> bool:
        weights = [*self.generator.parameters(), *self.discriminator.parameters()]
        return all(bool(torch.isfinite(w).all()) for w in weights)


def save_epoch(state: TrainState, config: RunConfig, last: Path, snapshot: Path) -> None:
    """After an epoch: G's snapshot, then the whole state (``last`` is replaced last: if the
    process dies before, the previous epoch's state stays)."""
    atomic.torch_save(
        {
            "format_version": FORMAT_VERSION,
            "config": config.to_dict(),
            "epoch": state.epoch,
            "generator": state.sampler.state_dict(),
        },
        snapshot,
    )
    atomic.torch_save(state.state_dict(config), last)


def save_partial(
    state: TrainState, config: RunConfig, path: Path, position: int, epoch_data_rng: torch.Tensor
) -> bool:
    """The whole state ``position`` steps into epoch ``state.epoch + 1``, with the data RNG
    as it was at the epoch's start. Skipped (False) when a weight is no longer finite: the
    run is diverging and the last good state must stay."""
    if not state.weights_finite():
        return False
    checkpoint = state.state_dict(config)
    checkpoint["position"] = position
    checkpoint["rng"]["data"] = epoch_data_rng
    atomic.torch_save(checkpoint, path)
    return True


def load(
    path: Path, map_location: str | torch.device = "cpu", keys: tuple[str, ...] = STATE_KEYS,
    *, mmap: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """A checkpoint's content, checked for its format version and ``keys``. ``mmap`` maps the
    tensors instead of reading them (for reading the small fields of a large file)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many types for a damaged file
        raise GanscopeError(f"checkpoint {path} is unreadable ({one_line(error)})") from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:
        shown = version if isinstance(version, int | str | None) else type(version).__name__
        raise GanscopeError(
            f"checkpoint {path} has format version {shown}, this ganscope reads {FORMAT_VERSION}"
        )
    missing = [key for key in keys if key not in state]
    if missing:
        raise GanscopeError(f"checkpoint {path} lacks {', '.join(missing)}: it is damaged")
    wrong = [k for k in ("epoch", "step", "position") if k in state and type(state[k]) is not int]
    if wrong:
        raise GanscopeError(f"checkpoint {path} has a damaged {', '.join(wrong)}")
    return state


def one_line(error: Exception) -> str:
    """torch's messages run long and advise ``weights_only=False``: keep the first line, and
    never that advice (it would run whatever code the file holds)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if "weights_only" not in line), "damaged file")
    return f"{type(error).__name__}: {reason}"


def load_generator(generator: nn.Module, weights: dict[str, Any], path: Path) -> nn.Module:
    """Load G's weights, with a clear error when they belong to another network."""
    try:
        generator.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise GanscopeError(
            f"checkpoint {path} holds weights of another network than this run's "
            f"({one_line(error)})"
        ) from None
    return generator
