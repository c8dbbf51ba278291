"""TensorBoard logging of a training run (``ganscope train --tensorboard``).

Event files go to the run folder's ``tensorboard/``; ``tensorboard --logdir RUN_DIR`` (or a
folder of runs) shows them. Everything is logged against the global training step: each
logged step's statistics (``step/loss_D`` ...), each epoch's means and images per second
(``epoch/...``), the quality metrics of ``--eval-every`` (``quality/fid`` ...) and the epoch's
fixed-noise grid (``samples/fixed_z``). A resumed run purges whatever an interrupted process
logged after the checkpoint it resumes from, so no step appears twice.

The ``tensorboard`` package is an optional extra: ``pip install 'ganscope[tensorboard]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .checks import require_tensorboard
from .gallery import fixed_grid
from .logbook import STEP_STATS
from .metrics import QUALITY_METRICS
from .plots import make_grid
from .state import GRID_ROW


class TensorBoardLog:
    """The run's TensorBoard writer; ``resume_step`` is the step training continues after."""

    def __init__(self, run, resume_step: int = 0) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter  # optional: ganscope[tensorboard]

        self.run = run
        self.writer = SummaryWriter(
            log_dir=str(run.tensorboard_dir), purge_step=resume_step + 1 if resume_step else None
        )

    def steps(self, records: Iterable[dict[str, Any]], names: Iterable[str]) -> None:
        """One logged step's statistics each (``records`` as written to metrics.jsonl)."""
        names = tuple(names)
        for record in records:
            for name in names:
                self.writer.add_scalar(f"step/{name}", record[name], record["step"])

    def epoch(self, run, state, record: dict[str, Any]) -> None:
        """Epoch callback: means, speed, the latest evaluation and the fixed-noise grid."""
        step = record["step"]
        for name in (*STEP_STATS, "images_per_second", "seconds"):
            if record.get(name) is not None:
                self.writer.add_scalar(f"epoch/{name}", record[name], step)
        evaluations = [r for r in run.metrics("eval") if r.get("step") == step]
        for name in QUALITY_METRICS:  # quality/NAME
            value = evaluations[-1].get(name) if evaluations else None
            if isinstance(value, int | float):
                self.writer.add_scalar(f"quality/{name}", value, step)
        grid = make_grid(fixed_grid(state), nrow=GRID_ROW)  # (H, W) uint8
        self.writer.add_image("samples/fixed_z", grid, step, dataformats="HW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
