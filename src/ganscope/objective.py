"""The GAN objective: each player's loss and the techniques that change what training computes.

The report's objective is the non-saturating GAN loss with binary cross-entropy on D's logits
(:func:`d_loss`, :func:`g_loss`). Each technique beyond it is standard, off in the ``seed``
preset, and switched by a flag of its own (``config.TrainConfig``; which ones a preset turns
on is ``presets``'):

* ``--loss hinge``: the hinge loss (Lim & Ye 2017; Miyato et al. 2018);
* ``--lr-d``: a separate learning rate for D, two time-scale updates (Heusel et al. 2017),
  set where the optimisers are made (``state``);
* ``--ema``: an exponential moving average of G's weights (Karras et al. 2018; Yazici et al.
  2019), which becomes the saved generator (:class:`MovingAverage`);
* ``--r1-gamma``/``--r1-every``: the R1 penalty on D's gradient at real images (Mescheder et
  al. 2018), lazily every N steps and scaled by N (Karras et al. 2020);
* ``--spectral-norm``: spectral normalisation of D's layers (Miyato et al. 2018), a
  reparametrisation that only training sees;
* ``--label-smoothing``: one-sided label smoothing (Salimans et al. 2016);
* ``--instance-noise``: Gaussian noise on every image D sees, annealed to 0 (Sønderby et al.
  2017);
* ``--d-dropout``: dropout on D's hidden features (Srivastava et al. 2014);
* ``--mode-seeking``: the mode-seeking term of MSGAN (Mao et al. 2019): G pays for two latent
  vectors, asked for the same class, giving alike images (:func:`mode_seeking_loss`).

The networks stay the report's: no technique adds a layer or a parameter to G, and the saved
generator is always the plain report module.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from .config import TrainConfig
from .models import turn_labels


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


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ACGAN's auxiliary loss (``--conditional acgan``): the cross-entropy of D's class guess
    ``(B, C)`` against the asked class ``(B,)``, added to both players' losses."""
    return F.cross_entropy(class_logits.float(), labels)


def paired_labels(labels: torch.Tensor) -> torch.Tensor:
    """``--mode-seeking``: the asked classes ``(B,)`` with the second half of the batch asked
    for the first half's (row ``i + B // 2`` for row ``i``'s class; an odd last row keeps its
    own), so that :func:`mode_seeking_loss` compares two images of one class. The classes
    stay uniform: each half is drawn uniformly."""
    half = labels.shape[0] // 2
    return torch.cat([labels[:half], labels[:half], labels[2 * half :]])


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019, their code's form): ``1 / (d_I / d_z + eps)``, where
    ``d_I`` is the mean absolute difference between the images of the batch's two halves
    (row ``i`` against row ``i + B // 2``) and ``d_z`` that between their latent vectors.
    Added to G's loss, it makes G pay for latent vectors that differ giving images that do
    not: a push against mode collapse, within a class when the halves ask for the same
    classes (:func:`paired_labels`)."""
    half = fake.shape[0] // 2
    images = (fake[:half].float() - fake[half : 2 * half].float()).abs().mean()
    latents = (z[:half] - z[half : 2 * half]).abs().mean()
    return 1 / (images / latents + eps)


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``|grad_x D(x)|^2`` at the real images (``real`` requires
    grad); differentiable, so D's update minimises it."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def add_spectral_norm(discriminator: nn.Module) -> nn.Module:
    """Spectral normalisation on every linear and convolutional layer of D, in place."""
    for module in list(discriminator.modules()):
        if isinstance(module, nn.Linear | nn.Conv2d | nn.Embedding):  # the projection's too
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
    return parametrize.cached()


def r1_due(train: TrainConfig, step: int) -> bool:
    """Whether training step ``step`` (0-based) takes the lazy R1 penalty."""
    return bool(train.r1_gamma) and step % train.r1_every == 0


#: The default constant of the moving average's ramp, ``(1 + step) / (EMA_RAMP + step)``
#: (``--ema-ramp``'s default, written in the config once).
EMA_RAMP: float = TrainConfig.ema_ramp


def ema_decay(decay: float, step: int, ramp: float = EMA_RAMP) -> float:
    """The decay at training step ``step`` (0-based): ``decay`` ramped up as
    ``(1 + step) / (ramp + step)`` (TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``, whose ramp is 10), so that the average soon forgets G's initial weights
    instead of keeping ``decay ** step`` of them (39% after the 937 steps of one epoch at
    0.999). A smaller ``ramp`` (``--ema-ramp``) keeps more of the run: at 2 every step
    weighs alike (``benchmarks/ema_window.py``)."""
    return min(decay, (1 + step) / (ramp + step))


class EmaWeights:
    """The moving average's weight ``1 - ema_decay(decay, step)`` per step, as 0-dim float32
    tensors on ``device`` read from a table there: a captured training step takes its weight
    as an input copied on the device, where a number from the host would need a synchronising
    copy every step. The table grows as the steps do until the ramp reaches ``decay``; its
    last entry holds from there. Each weight equals the float that :func:`ema_decay` gives,
    rounded to float32 as a Python number is when it weighs float32 tensors."""

    def __init__(self, decay: float, device: torch.device | str, ramp: float = EMA_RAMP) -> None:
        self.decay, self.device, self.ramp = decay, torch.device(device), ramp
        # (1 + s) / (R + s) >= decay from step (R decay - 1) / (1 - decay) on (R: ramp);
        # one spare entry for that bound's rounding
        self.ramp_steps = max(0, math.ceil((ramp * decay - 1) / (1 - decay))) + 2
        self.table = self._weights(0)

    def _weights(self, steps: int) -> torch.Tensor:
        n = min(max(2 * steps, 4096), self.ramp_steps)
        s = torch.arange(n, dtype=torch.float64)
        decay = torch.clamp((1 + s) / (self.ramp + s), max=self.decay)  # IEEE double, as Python's
        return (1 - decay).to(torch.float32).to(self.device)

    def __getitem__(self, step: int) -> torch.Tensor:
        if step >= len(self.table) and len(self.table) < self.ramp_steps:
            self.table = self._weights(step + 1)
        return self.table[min(step, len(self.table) - 1)]


#: Seed of the latent vectors that standing statistics are gathered with.
STANDING_SEED = 2**31 - 7


class MovingAverage:
    """The exponential moving average of G's weights (``--ema``): made from G, updated after
    every G step, its per-step weights as a device table for captured steps, and its own
    BatchNorm statistics after every epoch. ``generator`` is the averaged copy of G (always
    in eval mode, no gradients): the run's saved generator."""

    def __init__(self, generator: nn.Module, decay: float, ramp: float = EMA_RAMP) -> None:
        self.decay, self.ramp = decay, ramp
        self.generator = copy.deepcopy(generator).eval()
        self.generator.requires_grad_(False)

    def weight(self, step: int) -> float:
        """The weight of G's new weights at training step ``step``: ``1 - decay``, ramped."""
        return 1 - ema_decay(self.decay, step, self.ramp)

    def weights(self, device: torch.device | str) -> EmaWeights:
        """The same weights as 0-dim tensors on ``device`` (what a CUDA graph reads)."""
        return EmaWeights(self.decay, device, self.ramp)

    @torch.no_grad()
    def update(self, generator: nn.Module, weight: float | torch.Tensor) -> None:
        """``average <- (1 - weight) * average + weight * G`` for the weights (``weight``: a
        number, or a 0-dim tensor on the weights' device, which a CUDA graph can capture);
        buffers (BatchNorm's running statistics) are copied (:meth:`standing_statistics`
        replaces them where the average is used)."""
        ema_params, params = list(self.generator.parameters()), list(generator.parameters())
        if isinstance(weight, torch.Tensor):
            for average, param in zip(ema_params, params):
                average.lerp_(param, weight)  # elementwise as the list kernel below, on device
        else:
            torch._foreach_lerp_(ema_params, params, weight)
        for ema_buffer, buffer in zip(self.generator.buffers(), generator.buffers()):
            ema_buffer.copy_(buffer)

    @torch.no_grad()
    def standing_statistics(self, z_dim: int, batch_size: int, batches: int = 32) -> None:
        """Recompute the averaged G's BatchNorm running statistics for its own weights (Brock
        et al. 2019's "standing statistics"): the mean of the batch statistics over
        ``batches`` batches from a fixed latent seed, so the result depends on the weights
        alone (resuming repeats it). G's own running statistics belong to G's weights, not
        to their average: with them, the CNN GAN's averaged G gave FID 70.8 after one epoch,
        with its own 41.4 (docs/presets.md). Nothing to do for a G without BatchNorm."""
        standing_statistics(self.generator, z_dim, batch_size, batches)


@torch.no_grad()
def standing_statistics(
    generator: nn.Module, z_dim: int, batch_size: int, batches: int = 32
) -> None:
    """:meth:`MovingAverage.standing_statistics` for any generator module."""
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(generator.parameters()).device
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
    generator.train()
    latent = torch.Generator(device=device).manual_seed(STANDING_SEED)
    asked = turn_labels(generator, batch_size, device)  # a conditional G: every class alike
    labels = () if asked is None else (asked,)
    for _ in range(batches):
        generator(torch.randn(batch_size, z_dim, device=device, generator=latent), *labels)
    generator.eval()
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum


def noise_std(train: TrainConfig, epoch: int) -> float:
    """Instance noise for ``epoch`` (1-based): ``--instance-noise`` in the first epoch,
    falling linearly to 0 after the last."""
    if not train.instance_noise:
        return 0.0
    return train.instance_noise * (1 - (epoch - 1) / train.epochs)
