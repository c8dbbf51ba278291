"""What training writes into its run folder while it runs: the step log, the epoch's files.

The training loop (``training``) computes; this module records. Per-step statistics stay on
the device and are read back in batches (:class:`StepLog`); after every epoch come the
fixed-noise grid, the checkpoint, the epoch's record, the curves and the progress GIF, in an
order that keeps the folder consistent if the process dies between any two of them. With
several processes only rank 0 writes (the others still read the statistics back, so that
every rank notices a divergence at the same step).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import checkpoints, runs
from . import progress as report_progress
from .checkpoints import TrainState
from .data import to_uint8
from .distributed import World, shared_error
from .errors import TrainingDiverged
from .sampling import generate

#: Names of the per-step statistics, in the order the training step returns them.
STEP_STATS = ("loss_D", "loss_G", "D(x)", "D(G(z))")


@torch.no_grad()
def render_fixed_grid(state: TrainState) -> torch.Tensor:
    """G's images for the fixed latent batch, in eval mode (BatchNorm uses running stats)."""
    return to_uint8(generate(state.sampler, state.fixed_z))


class StepLog:
    """Per-step statistics kept on the device, written to the metrics file in batches.

    ``flush`` is the one host-device synchronisation per log interval (and, with several
    processes, the one all-reduce that averages the ranks' statistics); it raises
    TrainingDiverged on the first non-finite value, after logging it.
    """

    def __init__(
        self, run: runs.Run, state: TrainState, epoch: int, world: World, board: Any = None
    ) -> None:
        self.run, self.state, self.epoch, self.world = run, state, epoch, world
        #: A ``tensorboard_log.TensorBoardLog`` that gets every written record, or None.
        self.board = board
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
            runs.append_metrics(self.run.metrics_path, records)
            if self.board is not None:
                self.board.steps(records, STEP_STATS)
        for record in records:
            if not all(math.isfinite(record[key]) for key in STEP_STATS):
                raise shared_error(
                    f"training diverged: loss became non-finite at step {record['step']} "
                    f"(epoch {self.epoch}; loss_D={record['loss_D']}, "
                    f"loss_G={record['loss_G']}). The last good state is "
                    f"{last_good(self.run, self.state)}; try a lower --lr or another --seed",
                    self.world,
                    TrainingDiverged,
                )
        self.values.extend(rows)
        return rows[-1]


def finish_epoch(
    run: runs.Run, state: TrainState, record: dict[str, Any], *, progress: bool
) -> None:
    """The fixed-noise grid, the checkpoint, then the epoch's record in the log."""
    from .plots import save_grid

    save_grid(render_fixed_grid(state), run.sample_grid_path(state.epoch), nrow=8, scale=2)
    # Checkpoint before the epoch record: a record in the log always has its checkpoint.
    checkpoints.save_epoch(state, run.config, run.checkpoint_path, run.snapshot_path(state.epoch))
    run.partial_checkpoint_path.unlink(missing_ok=True)  # older than last.pt now
    runs.append_metrics(run.metrics_path, [record])
    processes = record.get("processes", 1)
    report_progress.say(
        f"epoch {state.epoch}/{run.config.train.epochs}  "
        + "  ".join(f"{k} {record[k]:.3f}" for k in STEP_STATS)
        + f"  ({record['seconds']:.1f} s, {record['images_per_second']:.0f} img/s on "
        + f"{record['device']}"
        + (f" x {processes} processes" if processes > 1 else "")
        + f", {state.precision}"
        + (", CUDA graph)" if record["cuda_graph"] else ")"),
        enabled=progress,
    )


def write_figures(run: runs.Run, state: TrainState, record: dict[str, Any]) -> None:
    """Loss curves (with any evaluation records) and the progress GIF, after every epoch."""
    from .gallery import write_progress_gif
    from .plots import plot_training_curves

    cfg = run.config
    plot_training_curves(
        run.metrics(), run.losses_figure, title=f"{cfg.model.name} GAN on {cfg.data.dataset}"
    )
    write_progress_gif(run)


def restore_epoch_record(run: runs.Run, state: TrainState) -> None:
    """A kill between the checkpoint and its epoch record leaves the record missing; rebuild
    it from that epoch's step records (its timing is lost, so ``seconds`` is 0)."""
    if state.epoch == 0 or any(r.get("epoch") == state.epoch for r in run.metrics("epoch")):
        return
    steps = [r for r in run.metrics("step") if r.get("epoch") == state.epoch]
    if not steps:
        return
    means = {key: sum(r[key] for r in steps) / len(steps) for key in STEP_STATS}
    record = {
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
    runs.append_metrics(run.metrics_path, [record])


def last_good(run: runs.Run, state: TrainState) -> str:
    if run.partial_checkpoint_path.is_file():
        return f"{run.partial_checkpoint_path} (within epoch {state.epoch + 1})"
    if run.has_checkpoint():
        return f"{run.checkpoint_path} (epoch {state.epoch})"
    return "none: no epoch finished before the divergence"
