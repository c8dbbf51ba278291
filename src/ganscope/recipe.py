"""Training recipes beyond the report's: the techniques behind ``--preset improved``.

Each is a standard technique, off in the ``seed`` preset (the report's recipe exactly), and
each has its own flag so that it can be switched alone (``config.TrainConfig``):

* ``--loss hinge``: the hinge loss (Lim & Ye 2017; Miyato et al. 2018) instead of the
  report's binary cross-entropy with G's non-saturating loss;
* ``--lr-d``: a separate learning rate for D, two time-scale updates (Heusel et al. 2017);
* ``--ema``: an exponential moving average of G's weights (Karras et al. 2018; Yazici et al.
  2019), which becomes the saved generator: the report's plain module, other weights;
* ``--r1-gamma``/``--r1-every``: the R1 penalty on D's gradient at real images (Mescheder et
  al. 2018), lazily every N steps and scaled by N (Karras et al. 2020);
* ``--spectral-norm``: spectral normalisation of D's layers (Miyato et al. 2018), a
  reparametrisation that only training sees;
* ``--label-smoothing``: one-sided label smoothing (Salimans et al. 2016);
* ``--instance-noise``: Gaussian noise on every image D sees, annealed to 0 (Sønderby et al.
  2017).
* ``--d-dropout``: dropout on D's hidden features (Srivastava et al. 2014; used in D by
  Goodfellow et al. 2014's maxout discriminator and most MLP GAN tutorials).

The networks stay the report's: no technique adds a layer or a parameter to G, and the saved
generator is always the plain report module. What each one does to sample quality is measured
in docs/presets.md.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checks import flag_of
from .config import TrainConfig
from .errors import GanscopeError, lookup

#: name -> model family (``*``: any) -> TrainConfig values. ``seed`` is the report's recipe:
#: nothing changes.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "seed": {"*": {}},  # every model family: nothing changes
    # Chosen from the variants measured in docs/presets.md, 10 epochs, 3 seeds each: the MLP
    # GAN's on a 2-core CPU; the CNN GAN's on one CPU beside the seed preset's 3 seeds there
    # (both learning rates x3 over the first recipe's, R1's weight 3: FID 8.27 +- 0.26
    # against the seed preset's 17.52 +- 3.16, 0.47x, every class >= 5.3%; with R1's weight
    # 1, the recipe before, 9.07 +- 1.23, 0.52x).
    "improved": {
        "mlp": {"ema": 0.999, "spectral_norm": True},
        "cnn": {"ema": 0.999, "r1_gamma": 3.0, "lr": 6e-4, "lr_d": 1.2e-3},
    },
}


def as_flags(values: dict[str, Any]) -> str:
    """TrainConfig values as the command-line flags that set them."""
    fields = {field.name: field for field in dataclasses.fields(TrainConfig)}
    return " ".join(
        flag_of(fields[key]) + ("" if value is True else f" {value}")
        for key, value in values.items()
    )


def describe_presets() -> str:
    """Each preset's recipe per model family, as flags: the help of ``--preset``."""
    parts = []
    for name, per_model in PRESETS.items():
        recipes = [
            f"{'every model' if model == '*' else model}: {as_flags(values) or 'nothing changed'}"
            for model, values in per_model.items()
        ]
        parts.append(f"{name} = {', '.join(recipes)}")
    return "; ".join(parts)


def preset_values(name: str, model: str) -> dict[str, Any]:
    """The TrainConfig values preset ``name`` sets for ``model``."""
    per_model = lookup(PRESETS, name, "preset")
    if "*" in per_model:
        return dict(per_model["*"])
    if model not in per_model:
        raise GanscopeError(
            f"the {name} preset has no recipe for the {model} GAN yet (it has one for "
            f"{', '.join(sorted(per_model))}); see docs/presets.md"
        )
    return dict(per_model[model])


def with_preset(train: TrainConfig, model: str, keep: Iterable[str] = ()) -> TrainConfig:
    """``train`` with ``train.preset``'s values for ``model``, except the fields in ``keep``
    (the flags a user gave, which override the preset's parts)."""
    keep = set(keep)
    values = {k: v for k, v in preset_values(train.preset, model).items() if k not in keep}
    return dataclasses.replace(train, **values)


#: The TrainConfig fields a recipe is made of (what a preset may set).
RECIPE_FIELDS = (
    "lr",
    "beta1",
    "beta2",
    "loss",
    "lr_d",
    "ema",
    "r1_gamma",
    "r1_every",
    "spectral_norm",
    "label_smoothing",
    "instance_noise",
    "d_dropout",
)


def recipe_changes(train: TrainConfig) -> dict[str, Any]:
    """The recipe fields of ``train`` that differ from the report's recipe."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {k: getattr(train, k) for k in RECIPE_FIELDS if getattr(train, k) != defaults[k]}


def recipe_name(train: TrainConfig, model: str) -> str:
    """``train.preset`` when the run's recipe is that preset's for ``model`` exactly, else
    ``custom`` (a preset with some of its parts changed by flags)."""
    try:
        expected = preset_values(train.preset, model)
    except GanscopeError:
        return "custom"
    return train.preset if recipe_changes(train) == expected else "custom"


def d_loss(train: TrainConfig, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's loss on logits of real and generated images."""
    if train.loss == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    real_target = torch.full_like(d_real, 1 - train.label_smoothing)
    return F.binary_cross_entropy_with_logits(
        d_real, real_target
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def g_loss(train: TrainConfig, d_fake: torch.Tensor) -> torch.Tensor:
    """G's loss on D's logits of its images."""
    if train.loss == "hinge":
        return -d_fake.mean()
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``|grad_x D(x)|^2`` at the real images (``real`` requires
    grad); differentiable, so D's update minimises it."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def add_spectral_norm(discriminator: nn.Module) -> nn.Module:
    """Spectral normalisation on every linear and convolutional layer of D, in place."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(discriminator.modules()):
        if isinstance(module, nn.Linear | nn.Conv2d):
            spectral_norm(module)
    return discriminator


def add_dropout(discriminator: nn.Module, p: float, rng: torch.Generator) -> None:
    """Dropout with probability ``p`` on the input of each of D's linear and convolutional
    layers after the first (its hidden features), in training mode only, the masks drawn
    from ``rng`` (the run's noise stream: saved in checkpoints, so resuming repeats them).
    No layer and no parameter is added: D's checkpoint keys stay the report's."""

    def drop(module: nn.Module, args: tuple) -> tuple | None:
        if not module.training:
            return None
        (x, *rest) = args
        keep = torch.rand(x.shape, device=x.device, generator=rng) >= p
        return (x * keep.to(x.dtype) / (1 - p), *rest)

    layers = [m for m in discriminator.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    for layer in layers[1:]:
        layer.register_forward_pre_hook(drop)


def weights_once(train: TrainConfig):
    """With ``--spectral-norm``, D's normalised weights are computed once for both of the D
    update's forwards (real and generated), as SN-GAN does (one power iteration per update),
    instead of once per forward; without it, nothing."""
    if not train.spectral_norm:
        return contextlib.nullcontext()
    from torch.nn.utils import parametrize

    return parametrize.cached()


def make_ema(generator: nn.Module) -> nn.Module:
    """A copy of G whose weights will follow G's moving average; always in eval mode."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


def ema_decay(decay: float, step: int) -> float:
    """The decay at training step ``step`` (0-based): ``decay`` ramped up as
    ``(1 + step) / (10 + step)`` (TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``), so that the average soon forgets G's initial weights instead of keeping
    ``decay ** step`` of them (39% after the 938 steps of one epoch at 0.999)."""
    return min(decay, (1 + step) / (10 + step))


def r1_due(train: TrainConfig, step: int) -> bool:
    """Whether training step ``step`` (0-based) takes the lazy R1 penalty."""
    return bool(train.r1_gamma) and step % train.r1_every == 0


class EmaWeights:
    """The moving average's weight ``1 - ema_decay(decay, step)`` per step, as 0-dim float32
    tensors on ``device`` read from a table there: a captured training step takes its weight
    as an input copied on the device, where a number from the host would need a synchronising
    copy every step. The table grows as the steps do until the ramp reaches ``decay``; its
    last entry holds from there. Each weight equals the float that :func:`ema_decay` gives,
    rounded to float32 as a Python number is when it weighs float32 tensors."""

    def __init__(self, decay: float, device: torch.device | str) -> None:
        self.decay, self.device = decay, torch.device(device)
        # (1 + s) / (10 + s) >= decay from step (10 decay - 1) / (1 - decay) on; one spare
        # entry for that bound's rounding
        self.ramp_steps = max(0, math.ceil((10 * decay - 1) / (1 - decay))) + 2
        self.table = self._weights(0)

    def _weights(self, steps: int) -> torch.Tensor:
        n = min(max(2 * steps, 4096), self.ramp_steps)
        s = torch.arange(n, dtype=torch.float64)
        decay = torch.clamp((1 + s) / (10 + s), max=self.decay)  # IEEE double, as Python's
        return (1 - decay).to(torch.float32).to(self.device)

    def __getitem__(self, step: int) -> torch.Tensor:
        if step >= len(self.table) and len(self.table) < self.ramp_steps:
            self.table = self._weights(step + 1)
        return self.table[min(step, len(self.table) - 1)]


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, weight: float | torch.Tensor) -> None:
    """``ema <- (1 - weight) * ema + weight * G`` for the weights (``weight`` is ``1 -
    decay``: a number, or a 0-dim tensor on the weights' device, which a CUDA graph can
    capture); buffers (BatchNorm's running statistics) are copied
    (:func:`standing_statistics` replaces them where the average is used)."""
    ema_params, params = list(ema.parameters()), list(generator.parameters())
    if isinstance(weight, torch.Tensor):
        for average, param in zip(ema_params, params):
            average.lerp_(param, weight)  # elementwise as the list kernel below, read on device
    else:
        torch._foreach_lerp_(ema_params, params, weight)
    for ema_buffer, buffer in zip(ema.buffers(), generator.buffers()):
        ema_buffer.copy_(buffer)


#: Seed of the latent vectors that standing statistics are gathered with.
STANDING_SEED = 2**31 - 7


@torch.no_grad()
def standing_statistics(ema: nn.Module, z_dim: int, batch_size: int, batches: int = 32) -> None:
    """Recompute the BatchNorm running statistics of the averaged G for its own weights
    (Brock et al. 2019's "standing statistics"): the mean of the batch statistics over
    ``batches`` batches from a fixed latent seed, so the result depends on the weights alone
    (resuming repeats it). G's own running statistics belong to G's weights, not to their
    average: with them, the CNN GAN's averaged G gave FID 70.8 after one epoch, with its own
    41.4 (docs/presets.md). Nothing to do for a G without BatchNorm."""
    norms = [m for m in ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(ema.parameters()).device
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
    ema.train()
    latent = torch.Generator(device=device).manual_seed(STANDING_SEED)
    for _ in range(batches):
        ema(torch.randn(batch_size, z_dim, device=device, generator=latent))
    ema.eval()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def noise_std(train: TrainConfig, epoch: int) -> float:
    """Instance noise for ``epoch`` (1-based): ``--instance-noise`` in the first epoch,
    falling linearly to 0 after the last."""
    if not train.instance_noise:
        return 0.0
    return train.instance_noise * (1 - (epoch - 1) / train.epochs)
