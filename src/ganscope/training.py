"""Training, the method: one explicit training step and the epoch loop.

The loop keeps the whole training split on the device as uint8, shuffles with its own seeded
``torch.Generator``, and reads the per-step statistics back only every ``log_every`` steps
(``logbook``). What it produces goes to a :class:`Recorder`: the step records, a mid-epoch
checkpoint every ``checkpoint_minutes``, and each finished epoch. ``trainer.RunRecorder``
writes them into a run folder, so that an interrupted run resumes where it stopped (bit-exact
on the CPU) and a diverging run (NaN) stops with its last good state on disk; this module
knows nothing of files. The objective is ``objective``'s, the state ``state``'s; how fast it
runs is decided elsewhere: device, precision and memory layout in ``devices``, CUDA-graph
replay in ``cuda_graph``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import torch

from . import logbook, objective
from . import progress as report_progress
from .config import RunConfig
from .cuda_graph import CapturedForms, CapturedStep, CudaGraphBackend, GraphBackend
from .data import Split, to_model_range
from .devices import autocast, wants_cuda_graph
from .distributed import SINGLE, World
from .logbook import STEP_STATS
from .state import TrainState, captures

__all__ = ["STEP_STATS", "Recorder", "fit", "make_step", "train_step"]


def train_step(
    state: TrainState,
    real: torch.Tensor,
    z: torch.Tensor,
    *,
    real_labels: torch.Tensor | None = None,
    fake_labels: torch.Tensor | None = None,
    r1: bool | None = None,
    ema_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """One D update then one G update on a batch. Returns ``STEP_STATS`` as a (4,) tensor.

    ``real``: ``(B, 1, 28, 28)`` in [-1, 1]; ``z``: ``(B, z_dim)``; a conditional run's
    ``real_labels`` (the real images' classes) and ``fake_labels`` (asked of G): ``(B,)``.
    Nothing is read back to the host. ``state.train`` says which of ``objective``'s techniques
    apply. Two follow ``state.step`` by default: whether lazy R1 is due (``r1``) and the moving
    average's weight (``ema_weight``, 0-dim, on the device); a CUDA graph passes both."""
    G, D = state.replicas or (state.generator, state.discriminator)
    t = state.train
    if t.mode_seeking and fake_labels is not None:  # the halves ask for the same classes
        fake_labels = objective.paired_labels(fake_labels)
    fake = G(z) if fake_labels is None else G(z, fake_labels)  # (B, 1, 28, 28)
    real_in, fake_in = _noisy(state, real), _noisy(state, fake.detach())
    r1 = objective.r1_due(t, state.step) if r1 is None else r1
    if r1:
        real_in = real_in.detach().requires_grad_(True)

    # ---- (1) Update D: maximise log D(x) + log(1 - D(G(z))) -----------------------------
    with objective.weights_once(t):  # spectral norm: one power iteration per D update
        d_real, class_real = _judge(D, real_in, real_labels)  # (B, 1) logits
        d_fake, class_fake = _judge(D, fake_in, fake_labels, _classifies_fakes(state))  # detached
    loss_D = objective.d_loss(t, d_real, d_fake)
    loss_D = _d_class_terms(state, loss_D, class_real, real_labels, class_fake, fake_labels)
    d_objective = loss_D
    if r1:  # lazy R1: every r1_every steps, its weight scaled by r1_every
        d_objective = loss_D + t.r1_gamma / 2 * t.r1_every * objective.r1_penalty(d_real, real_in)
    state.opt_D.zero_grad(set_to_none=True)
    d_objective.backward()
    state.opt_D.step()

    # ---- (2) Update G: maximise log D(G(z)) (the non-saturating objective) -------------
    # D's weights are frozen for this backward: G's loss must not compute (or leave) D grads.
    # The plain module even when D is replicated: G's loss needs no all-reduce of D's grads.
    state.discriminator.requires_grad_(False)
    d_fake_for_G, class_for_G = _judge(state.discriminator, _noisy(state, fake), fake_labels)
    loss_G = objective.g_loss(t, d_fake_for_G)
    if class_for_G is not None:  # ACGAN, dual, TAC: G also wants D to name the asked class
        loss_G = _g_class_terms(state, loss_G, class_for_G, fake_labels)
    if t.mode_seeking:
        loss_G = loss_G + t.mode_seeking * objective.mode_seeking_loss(fake, z)
    state.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    state.opt_G.step()
    state.discriminator.requires_grad_(True)
    if state.ema is not None:
        weight = state.ema.weight(state.step) if ema_weight is None else ema_weight
        state.ema.update(state.generator, weight)
    return torch.stack(
        [loss_D, loss_G, torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()]
    ).detach()


def _judge(
    D: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None, classify: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D's logits ``(B, 1)`` of ``images``, told ``labels`` where the run is conditional, and
    an ACGAN, dual or TAC D's class logits ``(B, C)`` (TAC ``(B, 2C)``) if ``classify``
    (else None)."""
    if labels is None:
        return D(images), None
    out = D(images, labels, classify=classify)  # (B, 1), or the pair with the class logits
    return out if isinstance(out, tuple) else (out, None)


def _d_class_terms(
    state: TrainState,
    loss_D: torch.Tensor,
    class_real: torch.Tensor | None,
    real_labels: torch.Tensor | None,
    class_fake: torch.Tensor | None,
    fake_labels: torch.Tensor | None,
) -> torch.Tensor:
    """D's loss plus its class losses: on real images (ACGAN, dual, TAC, ADC), and on generated
    ones (ACGAN's classifier, TAC's twin, ADC's generated halves), each weighed by
    ``--class-weight``."""
    weight, layout = state.train.class_weight, _class_layout(state)
    if class_real is not None:
        loss_D = loss_D + _weighed(weight, _class_term(class_real, real_labels, layout, 0))
    if class_fake is not None:
        loss_D = loss_D + _weighed(weight, _class_term(class_fake, fake_labels, layout, 1))
    return loss_D


def _g_class_terms(
    state: TrainState, loss_G: torch.Tensor, class_for_G: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """G's loss plus the cross-entropy of D's classifier against the asked class, and for TAC
    and ADC minus that of the class as generated (TAC's twin, ADC's generated half): the
    classifier learns what G draws, and G paying for it to be easy to name as generated
    offsets the reward for the easiest image of each class."""
    weight, layout = state.train.class_weight, _class_layout(state)
    loss_G = loss_G + _weighed(weight, _class_term(class_for_G, labels, layout, 0))
    if layout != "single":
        loss_G = loss_G - _weighed(weight, _class_term(class_for_G, labels, layout, 1))
    return loss_G


def _weighed(weight: float, term: torch.Tensor) -> torch.Tensor:
    """``weight * term``; at weight 1 (the default) ``term`` itself, the same numbers without
    a multiplication and its backward on every step."""
    return term if weight == 1 else weight * term


def _class_term(
    logits: torch.Tensor, labels: torch.Tensor, layout: str, which: int
) -> torch.Tensor:
    """The cross-entropy of D's class logits against ``labels`` as real (``which`` 0) or as
    generated (1): TAC's classifier's or twin's half of its ``(B, 2C)``, ADC's ``2C`` classes
    with the generated ones after the real, any other D's ``(B, C)`` as they are (a slice
    would cost its backward)."""
    if layout == "twin":
        return objective.class_loss(logits.chunk(2, 1)[which], labels)
    if layout == "joint":
        return objective.class_loss(logits, labels + which * (logits.shape[1] // 2))
    return objective.class_loss(logits, labels)


def _class_layout(state: TrainState) -> str:
    """How D's class logits are laid out: ``twin`` (TAC: two sets of C), ``joint`` (ADC: one
    set of 2C) or ``single`` (C; also an unconditional D's, which has none)."""
    return getattr(state.discriminator, "class_layout", "single")


def _classifies_fakes(state: TrainState) -> bool:
    """Whether D's update also names the class of generated images (ACGAN's D, TAC's twin;
    the dual D names real images' only, so its class logits of generated ones are not
    computed)."""
    return bool(getattr(state.discriminator, "classify_fakes", False))


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
    labels: torch.Tensor | None = None,
) -> StepFunction:
    """The loop's step: ``step(index=..., z=...)`` trains on ``images[index]`` and latent ``z``
    (a conditional run: ``step(index=..., z=..., labels=...)``, G asked for ``labels``).

    ``images``: the device-resident training set, ``(N, 28, 28)`` uint8, and for a conditional
    run ``labels``, its classes ``(N,)``; ``index``: ``(B,)`` int64 on the device; returns
    ``STEP_STATS`` as a (4,) tensor. With a graph ``backend``
    (on CUDA: :class:`~ganscope.cuda_graph.CudaGraphBackend`) the whole step, data gather
    included, is captured once and replayed; without one it runs eagerly. A step that changes
    from step to step is captured once per form: with lazy R1, one graph with the penalty
    and one without; with ``--ema``, the average's weight is an input read from a table on
    the device (``objective.EmaWeights``).
    """

    def body(inputs: dict[str, torch.Tensor], **plan: Any) -> torch.Tensor:
        real = to_model_range(images.index_select(0, inputs["index"]))  # (B, 1, 28, 28)
        if labels is not None:
            plan["real_labels"] = labels.index_select(0, inputs["index"])  # (B,)
            plan["fake_labels"] = inputs["labels"]
        with autocast(state.precision, device):  # the same casts eager and captured
            return train_step(state, real, inputs["z"], **plan)

    if backend is None:
        return lambda **inputs: body(inputs)
    t = state.train
    ema_weights = state.ema.weights(device) if state.ema is not None else None

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

    return CapturedForms(captured, lambda: objective.r1_due(t, state.step), per_step)


def _graph_backend(
    config: RunConfig, device: torch.device, world: World = SINGLE, *, progress: bool = True
) -> GraphBackend | None:
    if captures(config, device, world):
        return CudaGraphBackend(device)
    if wants_cuda_graph(config.train.cuda_graph, device):
        # --cuda-graph is on by default: a note, not a warning, for the steps it cannot take
        report_progress.say(
            f"CUDA graph: not used {_why_eager(config, world)}; the step runs eagerly",
            enabled=progress and world.main,
        )
    return None


def _why_eager(config: RunConfig, world: World) -> str:
    t = config.train
    if t.instance_noise or t.d_dropout:
        return (
            "with --instance-noise or --d-dropout (the step draws from the run's noise stream, "
            "which ganscope does not capture yet)"
        )
    return (  # world.joined: captures() refuses nothing else
        "under torchrun (capturing DDP's NCCL all-reduce needs a set-up ganscope has not "
        "verified on GPUs yet)"
    )


class Recorder(Protocol):
    """Where the loop's results go; ``trainer.RunRecorder`` writes them into a run folder.
    The loop calls ``steps`` and ``epoch`` on rank 0 only."""

    def steps(self, records: list[dict[str, Any]]) -> None:
        """Step records, as they are read back (``logbook.StepLog``)."""

    def logged_steps(self, epoch: int) -> list[list[float]]:
        """The statistics of ``epoch``'s steps logged before a resume within it."""

    def partial(self, state: TrainState, position: int, epoch_data_rng: torch.Tensor) -> None:
        """The whole state ``position`` steps into the epoch under way."""

    def epoch(self, state: TrainState, record: dict[str, Any]) -> None:
        """A finished epoch: its record (``logbook.epoch_record``) and the state after it."""

    def last_good(self, state: TrainState) -> str:
        """Where the last good state lies, for the message of a diverged run."""


class _PartialCheckpoints:
    """Mid-epoch saves, every ``minutes`` of wall-clock time (0: never)."""

    def __init__(self, minutes: float, recorder: Recorder) -> None:
        self.every, self.recorder = minutes * 60, recorder
        self.last_saved = time.monotonic()

    def maybe_save(self, state: TrainState, position: int, epoch_data_rng: torch.Tensor) -> None:
        if self.every and time.monotonic() - self.last_saved >= self.every:
            self.recorder.partial(state, position, epoch_data_rng)
            self.last_saved = time.monotonic()


def fit(
    state: TrainState,
    split: Split,
    config: RunConfig,
    device: torch.device,
    recorder: Recorder,
    *,
    world: World = SINGLE,
    progress: bool = True,
) -> None:
    """Train ``state`` on ``split`` from the epoch after ``state.epoch`` to
    ``config.train.epochs``: for each epoch, for each batch, one step; the steps logged in
    batches, a mid-epoch checkpoint when due, and the epoch's record to ``recorder``."""
    images = split.images.to(device)  # (N, 28, 28) uint8, resident on the device
    labels = split.labels.to(device) if state.num_classes else None  # (N,) int64
    backend = _graph_backend(config, device, world, progress=progress)
    step = make_step(state, images, device, backend, labels)
    partial = _PartialCheckpoints(config.train.checkpoint_minutes if world.main else 0, recorder)
    # The last incomplete batch is dropped: fixed batch shapes keep BatchNorm statistics
    # comparable and allow graph capture.
    steps_per_epoch = len(split) // config.train.batch_size
    for epoch in range(state.epoch + 1, config.train.epochs + 1):
        started = time.perf_counter()
        log, start = _train_epoch(
            state, step, split, config, device, epoch, recorder, partial, world, progress
        )
        seconds = time.perf_counter() - started
        state.epoch = epoch
        if state.ema is not None:  # before it is saved, sampled or evaluated
            state.ema.standing_statistics(config.model.z_dim, config.train.batch_size)
        if world.main:
            record = logbook.epoch_record(
                state,
                log.values,
                seconds=seconds,
                images=(steps_per_epoch - start) * config.train.batch_size,
                device=device,
                cuda_graph=getattr(step, "mode", None) == "captured",
                processes=world.size,
            )
            recorder.epoch(state, record)


def _train_epoch(
    state: TrainState,
    step: StepFunction,
    split: Split,
    config: RunConfig,
    device: torch.device,
    epoch: int,
    recorder: Recorder,
    partial: _PartialCheckpoints,
    world: World,
    progress: bool,
) -> tuple[logbook.StepLog, int]:
    """One pass over ``split`` (the rest of it, resumed within the epoch); returns the
    epoch's step log and the step it started at."""
    batch_size, z_dim = config.train.batch_size, config.model.z_dim
    rows = world.slice(batch_size)  # this rank's rows of every global batch
    steps_per_epoch = len(split) // batch_size
    state.noise_std = objective.noise_std(config.train, epoch)
    epoch_data_rng = state.data_rng.get_state()  # a mid-epoch checkpoint redraws `order`
    order = torch.randperm(len(split), generator=state.data_rng).to(device)
    start, state.position = state.position, 0  # > 0: resumed from a mid-epoch checkpoint
    log = logbook.StepLog(
        state, epoch, world, write=recorder.steps, last_good=lambda: recorder.last_good(state)
    )
    if start and world.main:
        log.values = recorder.logged_steps(epoch)
    with report_progress.bar(
        total=steps_per_epoch,
        initial=start,
        desc=f"epoch {epoch}/{config.train.epochs}",
        enabled=progress,
        unit="step",
    ) as bar:
        for index in range(start, steps_per_epoch):
            batch = order[index * batch_size : (index + 1) * batch_size][rows]  # (b,)
            # Every rank draws the whole global latent batch: one shared noise stream.
            z = torch.randn(batch_size, z_dim, device=device, generator=state.noise_rng)
            asked = {}
            if state.num_classes:  # the classes G is asked for: uniform, from the same stream
                fake_labels = torch.randint(
                    state.num_classes, (batch_size,), device=device, generator=state.noise_rng
                )
                asked = {"labels": fake_labels[rows]}
            log.add(step(index=batch, z=z[rows], **asked))
            state.step += 1
            bar.update(1)
            if log.pending >= config.train.log_every or index == steps_per_epoch - 1:
                latest = log.flush()  # every step up to here is logged and finite
                bar.set_postfix({k: f"{v:.3f}" for k, v in zip(STEP_STATS, latest)})
                if index < steps_per_epoch - 1:
                    partial.maybe_save(state, index + 1, epoch_data_rng)
    return log, start
