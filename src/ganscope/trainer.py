"""Train a run folder: ``ganscope train`` and ``train --resume`` as Python functions.

``training.fit`` is the method and knows nothing of files; this module gives it a
:class:`RunRecorder` that writes what it produces into a run folder (``runs``), in an order
that keeps the folder consistent if the process dies between any two writes: the step
records, mid-epoch checkpoints, and after every epoch the fixed-noise grid, the checkpoint,
the epoch's record, then the optional evaluation (``--eval-every``), TensorBoard, the curves,
the progress GIF and any caller's callbacks. :func:`plan_config` is what ``ganscope train``
decides before training (the preset under the flags given, the global batch, absolute data
paths), so a Python caller gets the same run as the command line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoints, distributed, gallery, logbook, runs
from . import progress as report_progress
from .checks import Checked, flag_of
from .config import RESUMABLE, SECTIONS, RunConfig, option
from .data import Split, load_split
from .devices import resolve_precision
from .distributed import World
from .errors import GanscopeError
from .evaluation import EvaluateDuringTraining
from .lock import writer_lock
from .logbook import STEP_STATS
from .options import out_option, progress_option
from .presets import with_preset
from .runs import Run
from .state import TrainState, init_state
from .tensorboard_log import TensorBoardLog
from .training import fit

#: A function called after every epoch (rank 0), once the epoch's files are written.
EpochCallback = Callable[[Run, TrainState, dict[str, Any]], None]


@dataclass(frozen=True)
class TrainOptions(Checked):
    """What ``ganscope train`` takes beside the run's config (``config.RunConfig``)."""

    out: str | None = out_option(
        None, "the run folder to create (default: runs/MODEL-YYYYmmdd-HHMMSS)"
    )
    resume: str | None = option(
        None,
        "continue this run folder from its last checkpoint; only --epochs and the mechanics "
        "(--device, --cuda-graph, --tensorboard, --checkpoint-minutes, --data-dir) may "
        "change",
        type=str,
        metavar="RUN_DIR",
    )
    per_rank_batch: bool = option(
        False,
        "under torchrun, give every process a whole --batch-size (global batch: batch size x "
        "processes, saved as the run's batch size); by default the processes split one global "
        "batch and compute exactly the one-process training. Scale --lr yourself: see "
        "docs/scaling.md",
    )
    progress: bool = progress_option()

    def check(self) -> None:
        given = {"--out": self.out, "--per-rank-batch": self.per_rank_batch}
        fixed = [flag for flag, value in given.items() if value]
        if self.resume and fixed:
            raise GanscopeError(
                f"--resume continues a run with its saved settings; {', '.join(fixed)} cannot "
                f"change (only {', '.join(_flag(name) for name in RESUMABLE)} can)"
            )


def _flag(name: str) -> str:
    """The command-line flag of config field ``name``."""
    for cls in SECTIONS.values():
        for field in dataclasses.fields(cls):
            if field.name == name:
                return flag_of(field)
    return name


def plan_config(
    config: RunConfig, given: Collection[str] = (), *, per_rank_batch: bool = False
) -> RunConfig:
    """The config ``ganscope train`` trains for ``config``: ``config.train.preset``'s values
    except the train fields in ``given`` (flags a user gave override the preset's parts);
    with ``per_rank_batch`` the global batch (batch size x the processes torchrun launched);
    ``data_dir`` absolute (later commands run elsewhere). Validated."""
    config.model.validate()  # an unknown model is named before any preset
    train = with_preset(config.train, config.model.name, given)
    if per_rank_batch:  # the config holds the global batch, whatever the launch
        train = dataclasses.replace(
            train, batch_size=train.batch_size * distributed.launched_size()
        )
    data = config.data
    if data.data_dir is not None:
        data = dataclasses.replace(data, data_dir=str(Path(data.data_dir).expanduser().resolve()))
    return dataclasses.replace(config, train=train, data=data).validate()


def default_out(config: RunConfig) -> str:
    """Where ``ganscope train`` puts a run without ``--out``."""
    return f"runs/{config.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"


class RunRecorder:
    """What :func:`training.fit` produces, written into ``run`` (see the module docstring).
    ``hooks`` run after every epoch's own files, in order; ``board`` (``--tensorboard``) also
    gets every step record."""

    def __init__(
        self,
        run: Run,
        hooks: Sequence[EpochCallback] = (),
        *,
        board: TensorBoardLog | None = None,
        progress: bool = True,
    ) -> None:
        self.run, self.hooks, self.board, self.progress = run, list(hooks), board, progress

    def steps(self, records: list[dict[str, Any]]) -> None:
        runs.append_metrics(self.run.metrics_path, records)
        if self.board is not None:
            self.board.steps(records, STEP_STATS)

    def logged_steps(self, epoch: int) -> list[list[float]]:
        steps = [r for r in self.run.metrics("step") if r["epoch"] == epoch]
        return [[r[key] for key in STEP_STATS] for r in steps]

    def partial(self, state: TrainState, position: int, epoch_data_rng: torch.Tensor) -> None:
        checkpoints.save_partial(
            state, self.run.config, self.run.partial_checkpoint_path, position, epoch_data_rng
        )

    def epoch(self, state: TrainState, record: dict[str, Any]) -> None:
        run = self.run
        images = gallery.write_fixed_grid(run, state)
        # Checkpoint before the epoch record: a record in the log always has its checkpoint.
        checkpoints.save_epoch(
            state, run.config, run.checkpoint_path, run.snapshot_path(state.epoch)
        )
        run.partial_checkpoint_path.unlink(missing_ok=True)  # older than last.pt now
        runs.append_metrics(run.metrics_path, [record])
        report_progress.say(
            logbook.epoch_line(record, run.config.train.epochs), enabled=self.progress
        )
        collapsed = gallery.collapse_warning(images, state.epoch)
        if collapsed:
            report_progress.warn(collapsed)
        for hook in self.hooks:
            hook(run, state, record)

    def last_good(self, state: TrainState) -> str:
        run = self.run
        if run.partial_checkpoint_path.is_file():
            return f"{run.partial_checkpoint_path} (within epoch {state.epoch + 1})"
        if run.has_checkpoint():
            return f"{run.checkpoint_path} (epoch {state.epoch})"
        return "none: no epoch finished before the divergence"

    def restore_epoch_record(self, state: TrainState) -> None:
        """Rebuild the record of ``state.epoch`` if a kill left it missing (``logbook``)."""
        record = logbook.restored_epoch_record(
            state, self.run.metrics("epoch"), self.run.metrics("step")
        )
        if record is not None:
            runs.append_metrics(self.run.metrics_path, [record])


def _fit_into(
    run: Run,
    state: TrainState,
    split: Split,
    device: torch.device,
    *,
    world: World,
    progress: bool,
    callbacks: Sequence[EpochCallback],
) -> None:
    """``training.fit`` recording into ``run``, with the hooks its config asks for."""
    train = run.config.train
    evaluator, board = None, None
    if world.main and train.eval_every:
        evaluator = EvaluateDuringTraining(run.config, split.images, progress)
    if world.main and train.tensorboard:
        board = TensorBoardLog(run, resume_step=state.step)
    hooks = [h for h in (evaluator, board and board.epoch) if h is not None]
    hooks += [gallery.write_training_figures, *callbacks]
    recorder = RunRecorder(run, hooks, board=board, progress=progress)
    with contextlib.closing(board) if board else contextlib.nullcontext():
        fit(state, split, run.config, device, recorder, world=world, progress=progress)


def _check_fits(split: Split, config: RunConfig, world: World) -> None:
    distributed.check_batch(config.train.batch_size, world)
    if len(split) < config.train.batch_size:
        raise GanscopeError(
            f"the training set has {len(split)} images, fewer than one batch of "
            f"{config.train.batch_size}; lower --batch-size or raise --limit"
        )


@contextlib.contextmanager
def _writing(world: World, folder: str | Path, command: list[str] | None) -> Iterator[None]:
    """Rank 0 holds the run folder's writer lock for the duration; the others write nothing."""
    with contextlib.ExitStack() as stack:
        if world.main:
            world.agree(lambda: stack.enter_context(writer_lock(folder, command)))
        else:
            world.agree(lambda: None)
        yield


def train(
    config: RunConfig,
    out: str | Path,
    *,
    command: list[str] | None = None,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    split: Split | None = None,
) -> Run:
    """Train a new run into folder ``out`` and return it.

    Every check (names, ranges, device, precision, data) happens before the folder is made.
    ``split`` lets a caller pass training data already in memory (e.g. tests); by default it
    is loaded as ``config.data`` says. Started by torchrun, every process trains its slice of
    each global batch and rank 0 writes the folder (see ``distributed``).
    """
    config.validate()
    with distributed.session(config.train.device) as (world, device):
        progress = progress and world.main

        def checks() -> None:
            if world.main:
                runs.check_new_run_folder(out)
            resolve_precision(config.train.precision, device, config.model.name)

        world.agree(checks)
        split = split if split is not None else _load_training_split(config, progress, world)
        world.agree(lambda: _check_fits(split, config, world))
        state = init_state(config, device, world=world)
        with _writing(world, out, command):
            if world.main:
                run = world.agree(lambda: runs.create_run(out, config, command))
                report_progress.say(f"training into {run.path}", enabled=progress)
            else:
                world.agree(lambda: None)
                run = Run(Path(out), config, {})
            _fit_into(
                run, state, split, device, world=world, progress=progress, callbacks=callbacks
            )
    return run


def resume(
    run_dir: str | Path,
    *,
    split: Split | None = None,
    command: list[str] | None = None,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    **changes: Any,
) -> Run:
    """Continue a run from its last checkpoint (a mid-epoch one if that is newer).

    ``changes`` may set the settings in ``config.RESUMABLE`` (``epochs`` to train further,
    and the mechanics: ``device``, ``cuda_graph``, ``checkpoint_minutes``, ...); None leaves
    a setting as saved. Nothing in the folder changes until every check passed. A run
    resumes with any number of processes, whatever number wrote its checkpoint.
    """
    changes = {key: value for key, value in changes.items() if value is not None}
    fixed = [name for name in changes if name not in RESUMABLE]
    if fixed:
        raise GanscopeError(
            f"--resume continues a run with its saved settings; "
            f"{', '.join(_flag(name) for name in fixed)} cannot change "
            f"(only {', '.join(_flag(name) for name in RESUMABLE)} can)"
        )
    if changes.get("data_dir"):  # stored absolute: later commands run elsewhere
        changes["data_dir"] = str(Path(changes["data_dir"]).expanduser().resolve())
    config = runs.load_run(run_dir).config.with_changes(**changes).validate()
    with distributed.session(config.train.device) as (world, device):
        with _writing(world, run_dir, command):
            run = runs.load_run(run_dir)  # read again under the lock
            _resume_locked(
                run, config, device, world, command, progress and world.main, callbacks, split
            )
    return run


def _resume_locked(
    run: Run,
    config: RunConfig,
    device: torch.device,
    world: World,
    command: list[str] | None,
    progress: bool,
    callbacks: Sequence[EpochCallback],
    split: Split | None,
) -> None:
    state = init_state(config, device, world=world)
    recorder = RunRecorder(run)

    def restore() -> None:
        if run.has_checkpoint():
            # Loaded on the CPU: RNG states must stay CPU byte tensors; load_state_dict copies
            # weights and optimiser moments onto the training device.
            state.load_state_dict(run.load_checkpoint(map_location="cpu"))
        partial = run.load_partial_checkpoint(map_location="cpu")
        if partial is not None and int(partial["step"]) > state.step:
            state.load_state_dict(partial)
        if state.epoch >= config.train.epochs:
            if world.main:  # a kill may have come between checkpoint and record
                recorder.restore_epoch_record(state)
            raise GanscopeError(
                f"run {run.path} already finished {state.epoch} of {config.train.epochs} "
                f"epochs; pass --epochs N (N > {state.epoch}) to train further"
            )

    world.agree(restore)
    split = split if split is not None else _load_training_split(config, progress, world)
    world.agree(lambda: _check_fits(split, config, world))
    report_progress.say(f"resuming {run.path} after step {state.step}", enabled=progress)
    if world.main:
        run.save_config(config, command)
        runs.truncate_metrics(run.metrics_path, state.step)
        recorder.restore_epoch_record(state)
    run.config = config
    _fit_into(run, state, split, device, world=world, progress=progress, callbacks=callbacks)
    world.barrier()


def _load_training_split(config: RunConfig, progress: bool, world: World) -> Split:
    """The training images; with several processes rank 0 reads (and, if need be, downloads)
    them first, then the others read the same files."""

    def load() -> Split:
        return load_split(
            config.data.dataset,
            "train",
            config.data.data_dir,
            limit=config.data.limit,
            progress=progress,
        )

    first = world.agree(load if world.main else lambda: None)
    second = world.agree(lambda: first if world.main else load())
    return second
