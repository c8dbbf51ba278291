"""What training records as it goes: the per-step statistics and each epoch's record.

The training loop (``training``) computes; this module turns its numbers into records.
Per-step statistics stay on the device and are read back in batches (:class:`StepLog`); after
every epoch :func:`epoch_record` builds the epoch's line of ``metrics.jsonl``. Where records
are written is the caller's (``trainer.RunRecorder``): this module writes no file. With
several processes only rank 0 writes (the others still read the statistics back, so that
every rank notices a divergence at the same step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .distributed import World, shared_error
from .errors import TrainingDiverged
from .state import TrainState

#: Names of the per-step statistics, in the order the training step returns them.
STEP_STATS = ("loss_D", "loss_G", "D(x)", "D(G(z))")

Records = list[dict[str, Any]]


class StepLog:
    """Per-step statistics kept on the device, handed to ``write`` in batches (rank 0).

    ``flush`` is the one host-device synchronisation per log interval (and, with several
    processes, the one all-reduce that averages the ranks' statistics); it raises
    TrainingDiverged on the first non-finite value, after logging it, naming ``last_good()``.
    """

    def __init__(
        self,
        state: TrainState,
        epoch: int,
        world: World,
        *,
        write: Callable[[Records], None],
        last_good: Callable[[], str],
    ) -> None:
        self.state, self.epoch, self.world = state, epoch, world
        self.write, self.last_good = write, last_good
        self._pending: list[torch.Tensor] = []
        #: Every flushed step's statistics of this epoch, as Python floats.
        self.values: list[list[float]] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, stats: torch.Tensor) -> None:
        self._pending.append(stats)

    def flush(self) -> list[float]:
        """Write pending steps (the last of which is ``state.step``); return the latest."""
        rows = self.world.mean(torch.stack(self._pending)).cpu().tolist()
        first_step = self.state.step - len(rows) + 1
        self._pending.clear()
        records = [
            {
                "kind": "step",
                "epoch": self.epoch,
                "step": first_step + offset,
                **dict(zip(STEP_STATS, row)),
            }
            for offset, row in enumerate(rows)
        ]
        if self.world.main:
            self.write(records)
        for record in records:
            if not all(math.isfinite(record[key]) for key in STEP_STATS):
                raise shared_error(
                    f"training diverged: loss became non-finite at step {record['step']} "
                    f"(epoch {self.epoch}; loss_D={record['loss_D']}, "
                    f"loss_G={record['loss_G']}). The last good state is "
                    f"{self.last_good()}; try a lower --lr or another --seed",
                    self.world,
                    TrainingDiverged,
                )
        self.values.extend(rows)
        return rows[-1]


def epoch_record(
    state: TrainState,
    values: Sequence[Sequence[float]],
    *,
    seconds: float,
    images: int,
    device: torch.device,
    cuda_graph: bool,
    processes: int,
) -> dict[str, Any]:
    """The epoch's record: the means of its steps' statistics (``values``), its time and
    speed (``images`` trained on in ``seconds``), and how it ran."""
    means = [sum(column) / len(column) for column in zip(*values)]
    return {
        "kind": "epoch",
        "epoch": state.epoch,
        "step": state.step,
        **dict(zip(STEP_STATS, means)),
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 1),
        "device": str(device),
        "precision": state.precision,
        "cuda_graph": cuda_graph,
        "processes": processes,
    }


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """The one line a finished epoch prints."""
    processes = record.get("processes", 1)
    return (
        f"epoch {record['epoch']}/{epochs}  "
        + "  ".join(f"{k} {record[k]:.3f}" for k in STEP_STATS)
        + f"  ({record['seconds']:.1f} s, {record['images_per_second']:.0f} img/s on "
        + f"{record['device']}"
        + (f" x {processes} processes" if processes > 1 else "")
        + f", {record['precision']}"
        + (", CUDA graph)" if record["cuda_graph"] else ")")
    )


def restored_epoch_record(
    state: TrainState, epochs: Records, steps: Records
) -> dict[str, Any] | None:
    """The record of ``state.epoch`` rebuilt from its step records, when a kill between the
    checkpoint and the record left it missing (its timing is lost, so ``seconds`` is 0);
    None when there is nothing to rebuild. ``epochs``, ``steps``: the log's records."""
    if state.epoch == 0 or any(r.get("epoch") == state.epoch for r in epochs):
        return None
    steps = [r for r in steps if r.get("epoch") == state.epoch]
    if not steps:
        return None
    means = {key: sum(r[key] for r in steps) / len(steps) for key in STEP_STATS}
    return {
        "kind": "epoch",
        "epoch": state.epoch,
        "step": state.step,
        **means,
        "seconds": 0.0,
        "images_per_second": None,
        "device": None,
        "precision": state.precision,
        "reconstructed": True,
    }
