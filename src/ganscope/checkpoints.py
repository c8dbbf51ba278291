"""The checkpoint format, defined once: which files hold a training state and how they are
saved and checked. What a state holds is :class:`~ganscope.state.TrainState`'s.

Three kinds of file, all written atomically and read with ``weights_only=True`` (no pickled
code ever runs):

* ``last.pt``: the whole :class:`TrainState` after the latest finished epoch;
* ``partial.pt``: the same within an unfinished epoch, with ``position`` (steps done in it)
  and the data RNG as it was at the epoch's start, so resuming redraws the same batches;
* ``generator_epoch_NNN.pt``: G's weights after each epoch (small; for sampling any epoch).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic
from .config import FORMAT_VERSION, RunConfig
from .errors import GanscopeError, load_error, one_line
from .state import TrainState

#: Keys every full training-state checkpoint holds.
STATE_KEYS = (
    "format_version", "config", "epoch", "step", "position", "generator", "discriminator",
    "opt_G", "opt_D", "rng", "fixed_z",
)  # fmt: skip
#: Keys a generator snapshot holds.
SNAPSHOT_KEYS = ("format_version", "config", "epoch", "generator")


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
        with warnings.catch_warnings():  # e.g. on a foreign pickle protocol: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many types for a damaged file
        raise GanscopeError(
            f"checkpoint {path} is unreadable: {load_error(error)}; ganscope writes "
            "checkpoints whole or not at all, so it was damaged or replaced afterwards"
        ) from None
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
