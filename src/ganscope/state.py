"""The training state: everything that changes while a GAN trains, and how it starts.

:class:`TrainState` is what a checkpoint holds (``checkpoints`` writes and checks the files);
:func:`init_state` makes a fresh one from a run's config, all of it determined by the seed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import distributed, objective
from .config import FORMAT_VERSION, RunConfig, TrainConfig
from .devices import (
    adam_mechanics,
    prepare_module,
    resolve_precision,
    set_adam_mechanics,
    wants_cuda_graph,
)
from .distributed import SINGLE, World
from .errors import GanscopeError, one_line
from .models import build_discriminator, build_generator, grid_labels
from .objective import MovingAverage

#: The checkpoint key of the moving average's weights (``--ema``), beside ``generator``.
EMA_KEY = "generator_ema"


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
    #: The latent vectors behind every per-epoch grid: ``(64, z_dim)``, or for a conditional
    #: run the same 8 vectors once per class, ``(8 C, z_dim)`` (one grid row per class).
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
    #: The training recipe the step follows (loss, R1, label smoothing, ...: ``objective``).
    train: TrainConfig = field(default_factory=TrainConfig)
    #: The moving average of G's weights (``--ema``), saved as the run's generator; or None.
    ema: MovingAverage | None = None
    #: The std of the instance noise in the current epoch (``--instance-noise``).
    noise_std: float = 0.0
    #: The classes G and D are told (``--conditional``; 0: unconditional). G's labels are
    #: drawn uniformly from ``noise_rng``; the grid's are ``fixed_labels``, ``(8 C,)``.
    num_classes: int = 0
    fixed_labels: torch.Tensor | None = None

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples, grids and metrics use: the moving average if any."""
        return self.ema.generator if self.ema is not None else self.generator

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
        } | ({EMA_KEY: self.ema.generator.state_dict()} if self.ema else {})

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
        if self.ema is not None:
            self.ema.generator.load_state_dict(state[EMA_KEY])
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


FIXED_Z_SIZE = 64
#: Images per row of the per-epoch grid (a conditional run's rows are its classes).
GRID_ROW = 8


def captures(config: RunConfig, device: torch.device, world: World = SINGLE) -> bool:
    """Whether the loop captures its step as a CUDA graph (``training`` says why not)."""
    t = config.train
    return (
        wants_cuda_graph(t.cuda_graph, device)
        and not (t.instance_noise or t.d_dropout)
        and not world.joined
    )


def _networks(config: RunConfig) -> tuple[nn.Module, nn.Module]:
    """G and D of ``config``, their initial weights determined by its seed alone."""
    # Weight initialisation draws from torch's global RNG; fork it so that building a model
    # neither depends on nor disturbs anyone else's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        m = config.model
        generator = build_generator(m.name, m.z_dim, config.num_classes)
        discriminator = build_discriminator(m.name, m.conditioning, config.num_classes)
        if config.train.spectral_norm:
            objective.add_spectral_norm(discriminator)
    return generator, discriminator


def _fixed_batch(
    z_dim: int, seed: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The grid's latent vectors ``(64, z_dim)``; a conditional run's: 8 vectors repeated in
    one row per class ``(8 C, z_dim)``, with the rows' labels ``(8 C,)``."""
    rng = torch.Generator().manual_seed(seed + 2)
    if not num_classes:
        return torch.randn(FIXED_Z_SIZE, z_dim, generator=rng), None
    row = torch.randn(GRID_ROW, z_dim, generator=rng)
    return row.repeat(num_classes, 1), grid_labels(num_classes, GRID_ROW)


def init_state(
    config: RunConfig, device: torch.device, fast: bool = True, world: World = SINGLE
) -> TrainState:
    """Fresh models, optimisers and RNGs, all determined by ``config.train.seed``.

    ``fast`` (ganscope's path) keeps convolutional models in channels_last memory and uses
    the fused Adam kernel; ``fast=False`` is the textbook set-up (NCHW, per-tensor-list Adam)
    that the benchmark compares against. Both compute the same function. In a torchrun
    ``world`` BatchNorm is synchronised and the step calls DDP replicas (``distributed``).
    """
    seed, num_classes = config.train.seed, config.num_classes
    generator, discriminator = _networks(config)
    for network in (generator, discriminator):
        # The textbook set-up keeps NCHW; ganscope's path decides the layout in one place.
        (prepare_module(network, config.model.name, device) if fast else network.to(device))
        network.train()
    lr_d = config.train.lr_d if config.train.lr_d is not None else config.train.lr
    adam = {
        "lr": config.train.lr,
        "betas": (config.train.beta1, config.train.beta2),
        # Adam steps that a graph captures keep their state on the device (capturable)
        **adam_mechanics(fast, fast and captures(config, device, world)),
    }
    opt_G = torch.optim.Adam(generator.parameters(), **adam)
    opt_D = torch.optim.Adam(discriminator.parameters(), **{**adam, "lr": lr_d})
    data_rng = torch.Generator().manual_seed(seed)
    noise_rng = torch.Generator(device=device).manual_seed(seed + 1)
    fixed_z, fixed_labels = _fixed_batch(config.model.z_dim, seed, num_classes)
    precision = resolve_precision(config.train.precision, device, config.model.name)
    state = TrainState(
        generator, discriminator, opt_G, opt_D, data_rng, noise_rng, fixed_z.to(device),
        precision=precision, num_classes=num_classes,
        fixed_labels=fixed_labels.to(device) if fixed_labels is not None else None,
    )  # fmt: skip
    state.train = config.train
    if config.train.d_dropout:
        objective.add_dropout(discriminator, config.train.d_dropout, noise_rng)
    if config.train.ema:
        state.ema = objective.MovingAverage(generator, config.train.ema, config.train.ema_ramp)
    if world.joined:
        # In place: the optimisers keep the same parameter tensors.
        state.generator = distributed.sync_batchnorm(generator, device)
        state.discriminator = distributed.sync_batchnorm(discriminator, device)
        state.replicas = (
            distributed.replicate(state.generator, device),
            distributed.replicate(state.discriminator, device),
        )
    return state
