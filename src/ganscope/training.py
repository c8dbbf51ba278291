"""Training, the method: the GAN objective, one explicit training step, the epoch loop.

The loop keeps the whole training split on the device as uint8, shuffles with its own seeded
``torch.Generator``, and reads the per-step statistics back only every ``log_every`` steps.
After every epoch it writes the fixed-noise grid, the curves and an atomic checkpoint, so an
interrupted run resumes where it stopped (bit-exact on the CPU) and a diverging run (NaN)
stops with its last good state on disk. How fast it runs is decided elsewhere: device,
precision and memory layout in ``devices``, CUDA-graph replay in ``cuda_graph``; the
checkpoint format is ``checkpoints``'.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import checkpoints, runs
from . import progress as report_progress
from .checkpoints import TrainState
from .config import RunConfig
from .cuda_graph import CapturedStep, CudaGraphBackend, GraphBackend
from .data import Split, load_split, to_model_range, to_uint8
from .devices import (
    adam_mechanics,
    autocast,
    prepare_module,
    resolve_device,
    resolve_precision,
    wants_cuda_graph,
)
from .errors import GanscopeError, TrainingDiverged
from .models import build_discriminator, build_generator
from .sampling import generate

#: Names of the per-step statistics, in the order ``train_step`` returns them.
STEP_STATS = ("loss_D", "loss_G", "D(x)", "D(G(z))")
FIXED_Z_SIZE = 64


def init_state(config: RunConfig, device: torch.device, fast: bool = True) -> TrainState:
    """Fresh models, optimisers and RNGs, all determined by ``config.train.seed``.

    ``fast`` (ganscope's path) keeps convolutional models in channels_last memory and uses
    the fused Adam kernel; ``fast=False`` is the textbook set-up (NCHW, per-tensor-list Adam)
    that the benchmark compares against. Both compute the same function.
    """
    seed = config.train.seed
    # Weight initialisation draws from torch's global RNG; fork it so that building a model
    # neither depends on nor disturbs anyone else's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = build_generator(config.model.name, config.model.z_dim)
        discriminator = build_discriminator(config.model.name)
    for network in (generator, discriminator):
        # The textbook set-up keeps NCHW; ganscope's path decides the layout in one place.
        (prepare_module(network, config.model.name, device) if fast else network.to(device))
        network.train()
    adam = {
        "lr": config.train.lr,
        "betas": (config.train.beta1, config.train.beta2),
        **adam_mechanics(fast, fast and wants_cuda_graph(config.train.cuda_graph, device)),
    }
    opt_G = torch.optim.Adam(generator.parameters(), **adam)
    opt_D = torch.optim.Adam(discriminator.parameters(), **adam)
    data_rng = torch.Generator().manual_seed(seed)
    noise_rng = torch.Generator(device=device).manual_seed(seed + 1)
    fixed_z = torch.randn(
        FIXED_Z_SIZE, config.model.z_dim, generator=torch.Generator().manual_seed(seed + 2)
    ).to(device)
    precision = resolve_precision(config.train.precision, device, config.model.name)
    return TrainState(
        generator, discriminator, opt_G, opt_D, data_rng, noise_rng, fixed_z, precision=precision
    )


def train_step(state: TrainState, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """One D update then one G update on a batch. Returns ``STEP_STATS`` as a (4,) tensor.

    ``real``: ``(B, 1, 28, 28)`` in [-1, 1]; ``z``: ``(B, z_dim)``. Nothing is read back to the
    host here, so the caller decides when to synchronise.
    """
    G, D = state.generator, state.discriminator
    fake = G(z)  # (B, 1, 28, 28)

    # ---- (1) Update D: maximise log D(x) + log(1 - D(G(z))) -----------------------------
    d_real = D(real)  # (B, 1) logits
    d_fake = D(fake.detach())  # detach: this step must not push gradients into G
    loss_D = F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    state.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    state.opt_D.step()

    # ---- (2) Update G: maximise log D(G(z)) (the non-saturating objective) -------------
    # D's weights are frozen for this backward: G's loss must not compute (or leave) D grads.
    # (Frozen weights are also never served from bf16 autocast's cast cache, which still
    # holds D's weights from before opt_D.step().)
    D.requires_grad_(False)
    d_fake_for_G = D(fake)
    loss_G = F.binary_cross_entropy_with_logits(d_fake_for_G, torch.ones_like(d_fake_for_G))
    state.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    state.opt_G.step()
    D.requires_grad_(True)

    return torch.stack(
        [loss_D, loss_G, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]
    ).detach()


StepFunction = Callable[..., torch.Tensor]


def make_step(
    state: TrainState,
    images: torch.Tensor,
    device: torch.device,
    backend: GraphBackend | None = None,
) -> StepFunction:
    """The loop's step: ``step(index=..., z=...)`` trains on ``images[index]`` and latent ``z``.

    ``images``: the device-resident training set, ``(N, 28, 28)`` uint8; ``index``: ``(B,)``
    int64 on the device; returns ``STEP_STATS`` as a (4,) tensor. With a graph ``backend``
    (on CUDA: :class:`~ganscope.cuda_graph.CudaGraphBackend`) the whole step, data gather
    included, is captured once and replayed; without one it runs eagerly.
    """

    def body(inputs: dict[str, torch.Tensor], cache_casts: bool = True) -> torch.Tensor:
        real = to_model_range(images.index_select(0, inputs["index"]))  # (B, 1, 28, 28)
        with autocast(state.precision, device, cache_casts=cache_casts):
            return train_step(state, real, inputs["z"])

    if backend is None:
        return lambda **inputs: body(inputs)

    def reset_step_state() -> None:
        # Capture must start with no gradients (backward then allocates them in the graph's
        # memory pool), and a failed capture must not leave D frozen.
        state.opt_D.zero_grad(set_to_none=True)
        state.opt_G.zero_grad(set_to_none=True)
        state.discriminator.requires_grad_(True)

    return CapturedStep(
        lambda inputs: body(inputs, cache_casts=False),
        backend,
        reset=reset_step_state,
    )


def _graph_backend(config: RunConfig, device: torch.device) -> GraphBackend | None:
    return CudaGraphBackend(device) if wants_cuda_graph(config.train.cuda_graph, device) else None


@torch.no_grad()
def render_fixed_grid(state: TrainState) -> torch.Tensor:
    """G's images for the fixed latent batch, in eval mode (BatchNorm uses running stats)."""
    return to_uint8(generate(state.generator, state.fixed_z))


EpochCallback = Callable[[runs.Run, TrainState, dict[str, Any]], None]


def _loop(
    run: runs.Run,
    state: TrainState,
    split: Split,
    device: torch.device,
    *,
    progress: bool,
    callbacks: Sequence[EpochCallback],
) -> None:
    cfg = run.config
    batch_size, z_dim = cfg.train.batch_size, cfg.model.z_dim
    # The last incomplete batch is dropped: fixed batch shapes keep BatchNorm statistics
    # comparable and allow graph capture.
    steps_per_epoch = len(split) // batch_size
    images = split.images.to(device)  # (N, 28, 28) uint8, resident on the device
    step = make_step(state, images, device, _graph_backend(cfg, device))
    evaluator = _evaluator(cfg, split, progress)
    partial_every = cfg.train.checkpoint_minutes * 60
    last_saved = time.monotonic()

    for epoch in range(state.epoch + 1, cfg.train.epochs + 1):
        started = time.perf_counter()
        epoch_data_rng = state.data_rng.get_state()  # a mid-epoch checkpoint redraws `order`
        order = torch.randperm(len(split), generator=state.data_rng).to(device)
        start, state.position = state.position, 0  # > 0: resumed from a mid-epoch checkpoint
        log = StepLog(run, state, epoch)
        if start:
            log.values = [
                [r[key] for key in STEP_STATS] for r in run.metrics("step") if r["epoch"] == epoch
            ]
        with report_progress.bar(
            total=steps_per_epoch,
            initial=start,
            desc=f"epoch {epoch}/{cfg.train.epochs}",
            enabled=progress,
            unit="step",
        ) as bar:
            for index in range(start, steps_per_epoch):
                batch = order[index * batch_size : (index + 1) * batch_size]  # (B,)
                z = torch.randn(batch_size, z_dim, device=device, generator=state.noise_rng)
                log.add(step(index=batch, z=z))
                state.step += 1
                bar.update(1)
                if log.pending >= cfg.train.log_every or index == steps_per_epoch - 1:
                    latest = log.flush()  # every step up to here is logged and finite
                    bar.set_postfix({k: f"{v:.3f}" for k, v in zip(STEP_STATS, latest)})
                    due = partial_every and time.monotonic() - last_saved >= partial_every
                    if due and index < steps_per_epoch - 1:
                        checkpoints.save_partial(
                            state, cfg, run.partial_checkpoint_path, index + 1, epoch_data_rng
                        )
                        last_saved = time.monotonic()
        seconds = time.perf_counter() - started
        state.epoch = epoch
        means = [sum(column) / len(column) for column in zip(*log.values)]
        epoch_record = {
            "kind": "epoch",
            "epoch": epoch,
            "step": state.step,
            **dict(zip(STEP_STATS, means)),
            "seconds": round(seconds, 3),
            "images_per_second": round((steps_per_epoch - start) * batch_size / seconds, 1),
            "device": str(device),
            "precision": state.precision,
            "cuda_graph": getattr(step, "mode", None) == "captured",
        }
        _finish_epoch(run, state, epoch_record, progress=progress)
        for hook in ([evaluator] if evaluator is not None else []) + [_write_figures, *callbacks]:
            hook(run, state, epoch_record)


def _finish_epoch(
    run: runs.Run, state: TrainState, record: dict[str, Any], *, progress: bool
) -> None:
    """The fixed-noise grid, the checkpoint, then the epoch's record in the log."""
    from .plots import save_grid

    save_grid(render_fixed_grid(state), run.sample_grid_path(state.epoch), nrow=8, scale=2)
    # Checkpoint before the epoch record: a record in the log always has its checkpoint.
    checkpoints.save_epoch(state, run.config, run.checkpoint_path, run.snapshot_path(state.epoch))
    run.partial_checkpoint_path.unlink(missing_ok=True)  # older than last.pt now
    runs.append_metrics(run.metrics_path, [record])
    report_progress.say(
        f"epoch {state.epoch}/{run.config.train.epochs}  "
        + "  ".join(f"{k} {record[k]:.3f}" for k in STEP_STATS)
        + f"  ({record['seconds']:.1f} s, {record['images_per_second']:.0f} img/s on "
        + f"{record['device']}, {state.precision}"
        + (", CUDA graph)" if record["cuda_graph"] else ")"),
        enabled=progress,
    )


def _write_figures(run: runs.Run, state: TrainState, record: dict[str, Any]) -> None:
    """Loss curves (with any evaluation records) and the progress GIF, after every epoch."""
    from .gallery import write_progress_gif
    from .plots import plot_training_curves

    cfg = run.config
    plot_training_curves(
        run.metrics(), run.losses_figure, title=f"{cfg.model.name} GAN on {cfg.data.dataset}"
    )
    write_progress_gif(run)


class StepLog:
    """Per-step statistics kept on the device, written to the metrics file in batches.

    ``flush`` is the one host-device synchronisation per log interval; it also raises
    TrainingDiverged on the first non-finite value, after logging it.
    """

    def __init__(self, run: runs.Run, state: TrainState, epoch: int) -> None:
        self.run, self.state, self.epoch = run, state, epoch
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
        rows = torch.stack(self._pending).cpu().tolist()
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
        runs.append_metrics(self.run.metrics_path, records)
        for record in records:
            if not all(math.isfinite(record[key]) for key in STEP_STATS):
                raise TrainingDiverged(
                    f"training diverged: loss became non-finite at step {record['step']} "
                    f"(epoch {self.epoch}; loss_D={record['loss_D']}, "
                    f"loss_G={record['loss_G']}). The last good state is "
                    f"{_last_good(self.run, self.state)}; try a lower --lr or another --seed"
                )
        self.values.extend(rows)
        return rows[-1]


def _restore_epoch_record(run: runs.Run, state: TrainState) -> None:
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


def _evaluator(config: RunConfig, split: Split, progress: bool) -> EpochCallback | None:
    """The quality-metrics hook for ``--eval-every``, or None when it is off."""
    if not config.train.eval_every:
        return None
    from .evaluation import EvaluateDuringTraining

    return EvaluateDuringTraining(config, split.images, progress)


def _last_good(run: runs.Run, state: TrainState) -> str:
    if run.partial_checkpoint_path.is_file():
        return f"{run.partial_checkpoint_path} (within epoch {state.epoch + 1})"
    if run.has_checkpoint():
        return f"{run.checkpoint_path} (epoch {state.epoch})"
    return "none: no epoch finished before the divergence"


def _check_fits(split: Split, config: RunConfig) -> None:
    if len(split) < config.train.batch_size:
        raise GanscopeError(
            f"the training set has {len(split)} images, fewer than one batch of "
            f"{config.train.batch_size}; lower --batch-size or raise --limit"
        )


def train(
    config: RunConfig,
    out: str | Path,
    *,
    command: list[str] | None = None,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    split: Split | None = None,
) -> runs.Run:
    """Train a new run into folder ``out`` and return it.

    Every check (names, ranges, device, precision, data) happens before the folder is made.
    ``split`` lets a caller pass training data already in memory (e.g. tests); by default it
    is loaded as ``config.data`` says.
    """
    config.validate()
    runs.check_new_run_folder(out)
    device = resolve_device(config.train.device)
    resolve_precision(config.train.precision, device, config.model.name)
    split = split if split is not None else _load_training_split(config, progress)
    _check_fits(split, config)
    state = init_state(config, device)
    with runs.writer_lock(out, command):
        run = runs.create_run(out, config, command)
        report_progress.say(f"training into {run.path}", enabled=progress)
        _loop(run, state, split, device, progress=progress, callbacks=callbacks)
    return run


def resume(
    run_dir: str | Path,
    *,
    split: Split | None = None,
    command: list[str] | None = None,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] = (),
    **changes: Any,
) -> runs.Run:
    """Continue a run from its last checkpoint (a mid-epoch one if that is newer).

    ``changes`` may set the train settings in ``config.RESUMABLE`` (``epochs`` to train
    further, and the mechanics: ``device``, ``cuda_graph``, ``checkpoint_minutes``, ...);
    None leaves a setting as saved. Nothing in the folder changes until every check passed.
    """
    from .config import RESUMABLE

    changes = {key: value for key, value in changes.items() if value is not None}
    fixed = sorted(set(changes) - set(RESUMABLE))
    if fixed:
        raise GanscopeError(
            f"a resumed run keeps its settings; {', '.join(fixed)} cannot change "
            f"(only {', '.join(RESUMABLE)} can)"
        )
    runs.load_run(run_dir)  # a clear error for a folder that is not a run, before locking it
    with runs.writer_lock(run_dir, command):
        return _resume_locked(runs.load_run(run_dir), changes, command, progress, callbacks, split)


def _resume_locked(
    run: runs.Run,
    changes: dict[str, Any],
    command: list[str] | None,
    progress: bool,
    callbacks: Sequence[EpochCallback],
    split: Split | None,
) -> runs.Run:
    config = run.config.with_changes(**changes)
    config.validate()
    target_device = resolve_device(config.train.device)
    state = init_state(config, target_device)
    if run.has_checkpoint():
        # Loaded on the CPU: RNG states must stay CPU byte tensors; load_state_dict copies
        # weights and optimiser moments onto the training device.
        state.load_state_dict(run.load_checkpoint(map_location="cpu"))
    partial = run.load_partial_checkpoint(map_location="cpu")
    if partial is not None and int(partial["step"]) > state.step:
        state.load_state_dict(partial)
    if state.epoch >= config.train.epochs:
        _restore_epoch_record(run, state)  # a kill may have come between checkpoint and record
        raise GanscopeError(
            f"run {run.path} already finished {state.epoch} of {config.train.epochs} epochs; "
            f"pass --epochs N (N > {state.epoch}) to train further"
        )
    split = split if split is not None else _load_training_split(config, progress)
    _check_fits(split, config)
    report_progress.say(f"resuming {run.path} after step {state.step}", enabled=progress)
    run.save_config(config, command)
    runs.truncate_metrics(run.metrics_path, state.step)
    _restore_epoch_record(run, state)
    _loop(run, state, split, target_device, progress=progress, callbacks=callbacks)
    return run


def _load_training_split(config: RunConfig, progress: bool) -> Split:
    return load_split(
        config.data.dataset,
        "train",
        config.data.data_dir,
        limit=config.data.limit,
        progress=progress,
    )
