"""GAN model families, one file each, in a registry of plain dicts.

Every generator maps ``z`` of shape ``(B, z_dim)`` to images ``(B, 1, 28, 28)`` in [-1, 1];
every discriminator maps such images to logits ``(B, 1)``. Add a family by writing a file
here and calling :func:`register_model`. Every family has class-conditional variants
(``conditional``): its discriminator offers ``features`` and ``logits`` and takes
``label_inputs``, and its generator is rebuilt for ``z_dim + C`` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import lookup
from .cnn import CNNDiscriminator, CNNGenerator
from .conditional import (
    CLASSIFYING,
    CONDITIONINGS,
    ConditionalDiscriminator,
    ConditionalGenerator,
    FixedClass,
    balanced_labels,
    grid_labels,
    is_conditional,
    turn_labels,
)
from .mlp import Discriminator, Generator


@dataclass(frozen=True)
class ModelFamily:
    name: str
    generator: type[nn.Module]
    discriminator: type[nn.Module]
    description: str
    #: How reports and figures name the family ("MLP GAN").
    display_name: str = ""
    #: Convolutional families train faster in channels_last memory and gain from bf16.
    convolutional: bool = False


MODELS: dict[str, ModelFamily] = {}


def register_model(family: ModelFamily) -> ModelFamily:
    """Add a family; its classes must be nn.Modules taking ``z_dim`` (G) or nothing (D)."""
    if not family.name or family.name in MODELS:
        raise ValueError(f"model name {family.name!r} is empty or already registered")
    for cls in (family.generator, family.discriminator):
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"{family.name}: {cls!r} is not an nn.Module class")
    MODELS[family.name] = family
    return family


register_model(
    ModelFamily(
        "mlp",
        Generator,
        Discriminator,
        "the report's plain two-layer MLP GAN",
        display_name="MLP GAN",
    )
)
register_model(
    ModelFamily(
        "cnn",
        CNNGenerator,
        CNNDiscriminator,
        "the report's convolutional GAN",
        display_name="CNN GAN",
        convolutional=True,
    )
)


def get_family(name: str) -> ModelFamily:
    return lookup(MODELS, name, "model")


def display_name(name: str) -> str:
    """How reports name a family (its registered display name, else its name)."""
    family = MODELS.get(name)
    return (family.display_name or family.name) if family else name


def build_generator(name: str, z_dim: int = 100, num_classes: int = 0) -> nn.Module:
    """The family's G; with ``num_classes`` > 0 the conditional one, ``G(z, labels)``."""
    family = get_family(name)
    if num_classes:
        return ConditionalGenerator(family.generator, z_dim, num_classes)
    return family.generator(z_dim=z_dim)


def build_discriminator(name: str, conditioning: str = "none", num_classes: int = 0) -> nn.Module:
    """The family's D; told the class by ``conditioning`` (``CONDITIONINGS``) unless "none"."""
    family = get_family(name)
    if conditioning == "none":
        return family.discriminator()
    return ConditionalDiscriminator(family.discriminator, conditioning, num_classes)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "CLASSIFYING",
    "CONDITIONINGS",
    "FixedClass",
    "balanced_labels",
    "grid_labels",
    "is_conditional",
    "turn_labels",
    "MODELS",
    "ModelFamily",
    "register_model",
    "get_family",
    "display_name",
    "build_generator",
    "build_discriminator",
    "count_parameters",
    "Generator",
    "Discriminator",
    "CNNGenerator",
    "CNNDiscriminator",
]
