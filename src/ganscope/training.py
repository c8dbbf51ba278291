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

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from . import checkpoints, distributed, logbook, recipe, runs
from . import progress as report_progress
from .checkpoints import TrainState
from .config import RunConfig
from .cuda_graph import CapturedForms, CapturedStep, CudaGraphBackend, GraphBackend
from .data import Split, load_split, to_model_range
from .devices import (
    adam_mechanics,
    autocast,
    prepare_module,
    resolve_precision,
    wants_cuda_graph,
)
from .distributed import SINGLE, World
from .errors import GanscopeError
from .logbook import STEP_STATS
from .models import build_discriminator, build_generator

FIXED_Z_SIZE = 64


def init_state(
    config: RunConfig, device: torch.device, fast: bool = True, world: World = SINGLE
) -> TrainState:
    """Fresh models, optimisers and RNGs, all determined by ``config.train.seed``.

    ``fast`` (ganscope's path) keeps convolutional models in channels_last memory and uses
    the fused Adam kernel; ``fast=False`` is the textbook set-up (NCHW, per-tensor-list Adam)
    that the benchmark compares against. Both compute the same function. In a torchrun
    ``world`` BatchNorm is synchronised and the step calls DDP replicas (``distributed``).
    """
    seed = config.train.seed
    # Weight initialisation draws from torch's global RNG; fork it so that building a model
    # neither depends on nor disturbs anyone else's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = build_generator(config.model.name, config.model.z_dim)
        discriminator = build_discriminator(config.model.name)
        if config.train.spectral_norm:
            recipe.add_spectral_norm(discriminator)
    for network in (generator, discriminator):
        # The textbook set-up keeps NCHW; ganscope's path decides the layout in one place.
        (prepare_module(network, config.model.name, device) if fast else network.to(device))
        network.train()
    lr_d = config.train.lr_d if config.train.lr_d is not None else config.train.lr
    adam = {
        "lr": config.train.lr,
        "betas": (config.train.beta1, config.train.beta2),
        # Adam steps that a graph captures keep their state on the device (capturable)
        **adam_mechanics(fast, fast and _captures(config, device, world)),
    }
    opt_G = torch.optim.Adam(generator.parameters(), **adam)
    opt_D = torch.optim.Adam(discriminator.parameters(), **{**adam, "lr": lr_d})
    data_rng = torch.Generator().manual_seed(seed)
    noise_rng = torch.Generator(device=device).manual_seed(seed + 1)
    fixed_z = torch.randn(
        FIXED_Z_SIZE, config.model.z_dim, generator=torch.Generator().manual_seed(seed + 2)
    ).to(device)
    precision = resolve_precision(config.train.precision, device, config.model.name)
    state = TrainState(
        generator, discriminator, opt_G, opt_D, data_rng, noise_rng, fixed_z, precision=precision
    )
    state.train = config.train
    if config.train.d_dropout:
        recipe.add_dropout(discriminator, config.train.d_dropout, noise_rng)
    if config.train.ema:
        state.ema_generator = recipe.make_ema(generator)
    if world.joined:
        # In place: the optimisers keep the same parameter tensors.
        state.generator = distributed.sync_batchnorm(generator, device)
        state.discriminator = distributed.sync_batchnorm(discriminator, device)
        state.replicas = (
            distributed.replicate(state.generator, device),
            distributed.replicate(state.discriminator, device),
        )
    return state


def train_step(
    state: TrainState,
    real: torch.Tensor,
    z: torch.Tensor,
    *,
    r1: bool | None = None,
    ema_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """One D update then one G update on a batch. Returns ``STEP_STATS`` as a (4,) tensor.

    ``real``: ``(B, 1, 28, 28)`` in [-1, 1]; ``z``: ``(B, z_dim)``. Nothing is read back to the
    host here, so the caller decides when to synchronise. ``state.train`` says which of
    ``recipe``'s techniques apply (none in the report's recipe). Two of them change from step
    to step, and by default follow ``state.step``: whether the lazy R1 penalty is due (``r1``)
    and the moving average's weight (``ema_weight``, a 0-dim tensor on the device); a CUDA
    graph, which cannot read ``state.step``, passes both (``make_step``).
    """
    G, D = state.replicas or (state.generator, state.discriminator)
    t = state.train
    fake = G(z)  # (B, 1, 28, 28)
    real_in, fake_in = _noisy(state, real), _noisy(state, fake.detach())
    r1 = recipe.r1_due(t, state.step) if r1 is None else r1
    if r1:
        real_in = real_in.detach().requires_grad_(True)

    # ---- (1) Update D: maximise log D(x) + log(1 - D(G(z))) -----------------------------
    with recipe.weights_once(t):  # spectral norm: one power iteration per D update
        d_real = D(real_in)  # (B, 1) logits
        d_fake = D(fake_in)  # detached: this step must not push gradients into G
    loss_D = recipe.d_loss(t, d_real, d_fake)
    objective = (
        loss_D + t.r1_gamma / 2 * t.r1_every * recipe.r1_penalty(d_real, real_in) if r1 else loss_D
    )
    state.opt_D.zero_grad(set_to_none=True)
    objective.backward()
    state.opt_D.step()

    # ---- (2) Update G: maximise log D(G(z)) (the non-saturating objective) -------------
    # D's weights are frozen for this backward: G's loss must not compute (or leave) D grads.
    # The plain module even when D is replicated: G's loss needs no all-reduce of D's grads.
    state.discriminator.requires_grad_(False)
    d_fake_for_G = state.discriminator(_noisy(state, fake))
    loss_G = recipe.g_loss(t, d_fake_for_G)
    state.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    state.opt_G.step()
    state.discriminator.requires_grad_(True)
    if state.ema_generator is not None:
        weight = 1 - recipe.ema_decay(t.ema, state.step) if ema_weight is None else ema_weight
        recipe.update_ema(state.ema_generator, state.generator, weight)

    return torch.stack(
        [loss_D, loss_G, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]
    ).detach()


def _noisy(state: TrainState, images: torch.Tensor) -> torch.Tensor:
    """``images`` plus this epoch's instance noise (drawn from the run's noise stream)."""
    if not state.noise_std:
        return images
    noise = torch.randn(
        images.shape, device=images.device, generator=state.noise_rng, dtype=images.dtype
    )
    return images + state.noise_std * noise


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
    included, is captured once and replayed; without one it runs eagerly. A step that changes
    from step to step is captured once per form: with lazy R1, one graph with the penalty
    and one without; with ``--ema``, the average's weight is an input read from a table on
    the device (``recipe.EmaWeights``).
    """

    def body(inputs: dict[str, torch.Tensor], **plan: Any) -> torch.Tensor:
        real = to_model_range(images.index_select(0, inputs["index"]))  # (B, 1, 28, 28)
        with autocast(state.precision, device):  # the same casts eager and captured
            return train_step(state, real, inputs["z"], **plan)

    if backend is None:
        return lambda **inputs: body(inputs)
    t = state.train
    ema_weights = recipe.EmaWeights(t.ema, device) if state.ema_generator is not None else None

    def reset_step_state() -> None:
        # Capture must start with no gradients (backward then allocates them in the graph's
        # memory pool), and a failed capture must not leave D frozen.
        state.opt_D.zero_grad(set_to_none=True)
        state.opt_G.zero_grad(set_to_none=True)
        state.discriminator.requires_grad_(True)

    def captured(r1: bool) -> CapturedStep:
        def form(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            weight = {"ema_weight": inputs["ema_weight"]} if ema_weights is not None else {}
            return body(inputs, r1=r1, **weight)

        return CapturedStep(form, backend, reset=reset_step_state)

    def per_step() -> dict[str, torch.Tensor]:
        return {"ema_weight": ema_weights[state.step]} if ema_weights is not None else {}

    return CapturedForms(captured, lambda: recipe.r1_due(t, state.step), per_step)


def _captures(config: RunConfig, device: torch.device, world: World = SINGLE) -> bool:
    """Whether the loop captures its step as a CUDA graph (``_graph_backend`` says why not)."""
    t = config.train
    return (
        wants_cuda_graph(t.cuda_graph, device)
        and not (t.instance_noise or t.d_dropout)
        and not world.joined
    )


def _graph_backend(
    config: RunConfig, device: torch.device, world: World = SINGLE, *, progress: bool = True
) -> GraphBackend | None:
    if _captures(config, device, world):
        return CudaGraphBackend(device)
    if wants_cuda_graph(config.train.cuda_graph, device):
        # --cuda-graph is on by default: a note, not a warning, for the steps it cannot take
        t = config.train
        why = (
            "with --instance-noise or --d-dropout (the step draws from the run's noise stream, "
            "which ganscope does not capture yet)"
            if t.instance_noise or t.d_dropout
            else "under torchrun (capturing DDP's NCCL all-reduce needs a set-up ganscope has "
            "not verified on GPUs yet)"
        )
        report_progress.say(
            f"CUDA graph: not used {why}; the step runs eagerly", enabled=progress and world.main
        )
    return None


EpochCallback = Callable[[runs.Run, TrainState, dict[str, Any]], None]


def _loop(
    run: runs.Run,
    state: TrainState,
    split: Split,
    device: torch.device,
    *,
    progress: bool,
    callbacks: Sequence[EpochCallback],
    world: World = SINGLE,
) -> None:
    cfg = run.config
    batch_size, z_dim = cfg.train.batch_size, cfg.model.z_dim
    rows = world.slice(batch_size)  # this rank's rows of every global batch
    # The last incomplete batch is dropped: fixed batch shapes keep BatchNorm statistics
    # comparable and allow graph capture.
    steps_per_epoch = len(split) // batch_size
    images = split.images.to(device)  # (N, 28, 28) uint8, resident on the device
    step = make_step(state, images, device, _graph_backend(cfg, device, world, progress=progress))
    evaluator = _evaluator(cfg, split, progress) if world.main else None
    partial_every = cfg.train.checkpoint_minutes * 60 if world.main else 0
    last_saved = time.monotonic()
    board = _tensorboard(run, state, world)
    with contextlib.closing(board) if board else contextlib.nullcontext():
        for epoch in range(state.epoch + 1, cfg.train.epochs + 1):
            started = time.perf_counter()
            state.noise_std = recipe.noise_std(cfg.train, epoch)
            epoch_data_rng = state.data_rng.get_state()  # a mid-epoch checkpoint redraws `order`
            order = torch.randperm(len(split), generator=state.data_rng).to(device)
            start, state.position = state.position, 0  # > 0: resumed from a mid-epoch checkpoint
            log = logbook.StepLog(run, state, epoch, world, board)
            if start and world.main:
                log.values = [
                    [r[key] for key in STEP_STATS]
                    for r in run.metrics("step")
                    if r["epoch"] == epoch
                ]
            with report_progress.bar(
                total=steps_per_epoch,
                initial=start,
                desc=f"epoch {epoch}/{cfg.train.epochs}",
                enabled=progress,
                unit="step",
            ) as bar:
                for index in range(start, steps_per_epoch):
                    batch = order[index * batch_size : (index + 1) * batch_size][rows]  # (b,)
                    # Every rank draws the whole global latent batch: one shared noise stream.
                    z = torch.randn(batch_size, z_dim, device=device, generator=state.noise_rng)
                    log.add(step(index=batch, z=z[rows]))
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
            if state.ema_generator is not None:  # before it is saved, sampled or evaluated
                recipe.standing_statistics(state.ema_generator, z_dim, batch_size)
            if not world.main:
                continue
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
                "processes": world.size,
            }
            logbook.finish_epoch(run, state, epoch_record, progress=progress)
            hooks = [h for h in (evaluator, board and board.epoch) if h is not None]
            for hook in [*hooks, logbook.write_figures, *callbacks]:
                hook(run, state, epoch_record)


def _tensorboard(run: runs.Run, state: TrainState, world: World):
    """The run's TensorBoard log (rank 0, ``--tensorboard``), or None."""
    if not (run.config.train.tensorboard and world.main):
        return None
    from .tensorboard_log import TensorBoardLog

    return TensorBoardLog(run, resume_step=state.step)


def _evaluator(config: RunConfig, split: Split, progress: bool) -> EpochCallback | None:
    """The quality-metrics hook for ``--eval-every``, or None when it is off."""
    if not config.train.eval_every:
        return None
    from .evaluation import EvaluateDuringTraining

    return EvaluateDuringTraining(config, split.images, progress)


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
            world.agree(lambda: stack.enter_context(runs.writer_lock(folder, command)))
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
) -> runs.Run:
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
                run = runs.Run(Path(out), config, {})
            _loop(run, state, split, device, progress=progress, callbacks=callbacks, world=world)
        world.barrier()  # every rank ends when rank 0 has written the last epoch's files
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
    A run resumes with any number of processes, whatever number wrote its checkpoint.
    """
    from .config import RESUMABLE

    changes = {key: value for key, value in changes.items() if value is not None}
    fixed = sorted(set(changes) - set(RESUMABLE))
    if fixed:
        raise GanscopeError(
            f"a resumed run keeps its settings; {', '.join(fixed)} cannot change "
            f"(only {', '.join(RESUMABLE)} can)"
        )
    config = runs.load_run(run_dir).config.with_changes(**changes).validate()
    with distributed.session(config.train.device) as (world, device):
        with _writing(world, run_dir, command):
            run = runs.load_run(run_dir)  # read again under the lock
            _resume_locked(
                run, config, device, world, command, progress and world.main, callbacks, split
            )
    return run


def _resume_locked(
    run: runs.Run,
    config: RunConfig,
    device: torch.device,
    world: World,
    command: list[str] | None,
    progress: bool,
    callbacks: Sequence[EpochCallback],
    split: Split | None,
) -> None:
    state = init_state(config, device, world=world)

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
                logbook.restore_epoch_record(run, state)
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
        logbook.restore_epoch_record(run, state)
    run.config = config
    _loop(run, state, split, device, progress=progress, callbacks=callbacks, world=world)
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
