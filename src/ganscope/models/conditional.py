"""Class-conditional variants of any registered family: G and D are told the garment.

G takes the label through its input: the one-hot label ``(B, C)`` is joined to ``z``, so the
family's generator is built for ``z_dim + C`` inputs and its layers are otherwise the report's
(the MLP's ``fc1`` and the CNN's ``fc1`` gain ``C x width`` weights, nothing else changes).
D takes it by one of six standard methods (:data:`CONDITIONINGS`):

* ``concat``: input concatenation (Mirza & Osindero 2014): the one-hot label joined to the
  flat image (MLP) or as constant label maps, one channel per class (CNN);
* ``projection``: the projection discriminator (Miyato & Koyama 2018): the family's D
  unchanged, plus ``<embed(y), features(x)>`` added to its logit, one learned vector per class;
* ``acgan``: an auxiliary classifier (Odena et al. 2017): D does not see the label but also
  names the class of every image, through a linear layer on its features; both players add
  the cross-entropy of that guess to their loss (``objective.class_loss``);
* ``dual``: the dual projection discriminator (Han et al. 2021, P2GAN): the projection D,
  whose class vectors also name the class, ``V features(x)``; D adds the cross-entropy of that
  guess on real images only, G on its own (unlike ACGAN, D is never taught what a generated
  image's class is, and the projection term still judges each image against its label);
* ``tac``: twin auxiliary classifiers (Gong et al. 2019, TAC-GAN): ACGAN's D without the label,
  whose classifier learns real images' classes only, beside a twin classifier that learns
  generated images' classes; G wants the first to name the asked class and the twin not to
  (``-`` its cross-entropy), which cancels the reward ACGAN's class loss gives G for the
  easiest-to-classify image of each class (the collapse of docs/conditional.md);
* ``adc``: the auxiliary discriminative classifier (Hou et al. 2022, ADC-GAN): ACGAN's D
  without the label, whose one classifier names ``2C`` classes, each garment real and each
  generated: D learns real images as their class's real half and generated ones as its
  generated half; G wants its images named as the asked class's real half and not its
  generated half (one softmax over both halves, where TAC has two of ``C``).

The one-hot label enters with the energy of the input it joins: G's is scaled by
``sqrt(z_dim)`` (``|z|^2`` is about ``z_dim`` for z ~ N(0, I)), the MLP D's by ``sqrt(784)``
(one per pixel of the flat image), the CNN's label maps not at all (one value per pixel, as
the image). Adam's step does not grow with an input's scale, so a plain one-hot's weights
would move the label's share of a layer's input 10-28x slower than z's or the pixels': on
seed 0 the MLP concat GAN's label agreement went from 0.20 to 0.66 with it (docs/conditional.md).

Both networks are called as ``G(z, labels)`` and ``D(images, labels)`` with ``labels`` int64
``(B,)``. D returns ``(B, 1)`` logits; ``acgan`` and ``dual`` return the pair ``(logits,
class_logits)``, the class logits ``(B, C)``, and ``tac`` and ``adc`` the pair with ``(B, 2C)``:
TAC's classifier's class logits and its twin's, or ADC's 2C, the real halves first. Two
tensors, not one joined: on the MLP the join and the slices that took it apart again (and
their backward) were a fifth of what the dual D added to a training step
(docs/conditional.md, "What the label costs").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: The ways D is told the class, with a line for ``--help`` each.
CONDITIONINGS = {
    "none": "unconditional (the report's): G and D never see a label",
    "concat": "D sees the one-hot label joined to its input (label maps for the CNN)",
    "projection": "projection discriminator: a learned class vector times D's features",
    "acgan": "auxiliary classifier: D also names each image's class (ACGAN)",
    "dual": "dual projection (P2GAN): projection whose class vectors also name real images' class",
    "tac": "twin auxiliary classifiers (TAC-GAN): ACGAN whose twin classifier offsets its bias",
    "adc": "auxiliary discriminative classifier (ADC-GAN): one classifier names real and "
    "generated images of each class apart",
}

#: The conditionings whose D also names the class (a class loss, weighed by --class-weight).
CLASSIFYING = ("acgan", "dual", "tac", "adc")


def _add_label_rows(module: nn.Module, scale: float, num_classes: int) -> None:
    """Give ``module`` the buffer ``label_rows``: ``scale`` times the one-hot of every class,
    one row each (not in checkpoints). A label's one-hot is then a row looked up,
    ``label_rows.index_select(0, labels)``: one operation where ``F.one_hot``, its cast and
    the scaling were eight on every training step, and a label outside 0..C-1 (negative ones
    too) is refused."""
    module.register_buffer("label_rows", scale * torch.eye(num_classes), persistent=False)


class ConditionalGenerator(nn.Module):
    """The family's generator with the one-hot label joined to ``z``: ``G(z, labels)``."""

    def __init__(self, generator: type[nn.Module], z_dim: int, num_classes: int) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.label_scale = math.sqrt(z_dim)  # the one-hot's norm: z's typical norm
        _add_label_rows(self, self.label_scale, num_classes)
        self.net = generator(z_dim=z_dim + num_classes)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``labels``: int64 classes ``(B,)``, or float label vectors ``(B, C)`` (a path
        between classes: mixtures of one-hot vectors, which training never shows G)."""
        if labels.is_floating_point():
            onehot = self.label_scale * labels.to(z.dtype)  # (B, C)
        else:
            onehot = self.label_rows.index_select(0, labels).to(z.dtype)  # (B, C), scaled
        return self.net(torch.cat([z, onehot], 1))  # (B, 1, 28, 28)


class ConditionalDiscriminator(nn.Module):
    """The family's discriminator told the class by ``conditioning``: ``D(images, labels)``.

    The family's D must offer ``features(images, onehot=None)`` ``(B, feature_size)`` and
    ``logits(features)`` ``(B, 1)``, take ``label_inputs`` and say its one-hot's
    ``label_scale`` (for ``concat``)."""

    def __init__(self, discriminator: type[nn.Module], conditioning: str, num_classes: int) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS or conditioning == "none":
            raise ValueError(f"no conditional discriminator {conditioning!r}")
        self.conditioning, self.num_classes = conditioning, num_classes
        #: Whether D's class loss also covers generated images (ACGAN's, TAC's twin, ADC's) or
        #: real ones only, and how its class logits are laid out: TAC's two sets of C (the
        #: classifier's, the twin's, two softmaxes) or ADC's one of 2C (real halves first).
        self.classify_fakes = conditioning in ("acgan", "tac", "adc")
        self.class_layout = {"tac": "twin", "adc": "joint"}.get(conditioning, "single")
        self.net = discriminator(label_inputs=num_classes if conditioning == "concat" else 0)
        if conditioning == "concat":  # the family's scaled one-hot, looked up as G's is
            _add_label_rows(self, self.net.label_scale, num_classes)
        width = self.net.feature_size
        if conditioning in ("projection", "dual"):
            self.embed = nn.Embedding(num_classes, width)
            nn.init.xavier_uniform_(self.embed.weight)  # as Miyato & Koyama's code
        if self.classify_fakes:  # TAC: the classifier and its twin, one layer; ADC: 2C classes
            self.classify = nn.Linear(width, num_classes * (1 if conditioning == "acgan" else 2))

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, classify: bool = True
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The logits ``(B, 1)``, and for a D that names the class the pair ``(logits,
        class_logits)``; ``classify=False``: the logits only, without the class logits (the
        dual D's update on generated images, which has no class loss)."""
        onehot = None
        if self.conditioning == "concat":
            onehot = self.label_rows.index_select(0, labels)  # (B, C), scaled
        h = self.net.features(images, onehot)  # (B, F)
        logits = self.net.logits(h)  # (B, 1)
        if self.conditioning in ("projection", "dual"):
            vectors = self.embed.weight  # read once: one power iteration under spectral norm
            chosen = F.embedding(labels, vectors).to(h.dtype)  # (B, F)
            logits = logits + (chosen * h).sum(1, keepdim=True)  # (B, 1)
        if not classify:
            return logits
        if self.conditioning == "dual":  # the same class vectors name the class: (B, C)
            return logits, h @ vectors.to(h.dtype).t()
        if self.classify_fakes:
            return logits, self.classify(h)  # (B, C), TAC and ADC (B, 2C)
        return logits


def is_conditional(generator: nn.Module) -> bool:
    """Whether ``generator`` takes a label: ``G(z, labels)``."""
    return int(getattr(generator, "num_classes", 0) or 0) > 0


def balanced_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` labels ``0, 1, ..., C-1, 0, 1, ...``: every class as often as ``n`` allows."""
    return torch.arange(n, device=device) % num_classes


def turn_labels(
    generator: nn.Module, n: int, device: torch.device | str = "cpu"
) -> torch.Tensor | None:
    """The labels of ``n`` images when none are asked for: every class in turn for a
    conditional ``generator``, None for an unconditional one."""
    if not is_conditional(generator):
        return None
    return balanced_labels(n, generator.num_classes, device)


def grid_labels(num_classes: int, per_class: int) -> torch.Tensor:
    """Labels of a grid with one row per class: ``(C * per_class,)``, row-major."""
    return torch.arange(num_classes).repeat_interleave(per_class)


class FixedClass(nn.Module):
    """A conditional generator seen as an unconditional one: ``FixedClass(G, y)(z) = G(z, y)``
    for every row (what latent traversal, directions and exports of one class call)."""

    def __init__(self, generator: nn.Module, label: int) -> None:
        super().__init__()
        self.generator, self.label = generator, label
        self.z_dim = generator.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        labels = torch.full((z.shape[0],), self.label, dtype=torch.long, device=z.device)
        return self.generator(z, labels)
