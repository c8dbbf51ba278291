"""The lab report's plain GAN: two fully connected layers per player.

``print(Generator())`` reproduces the report's listing; the tanh on G's output is applied in
``forward`` (the listing shows modules only), which keeps G's images in D's [-1, 1] range.
Parameters: G 114,064; D 100,609.
"""

from __future__ import annotations

import math

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


class Discriminator(nn.Module):
    """``label_inputs`` > 0: a class-conditional D by input concatenation, the one-hot label
    ``(B, label_inputs)`` joined to the flat image (Mirza & Osindero 2014)."""

    #: Length of the features before the last layer (what a projection D multiplies).
    feature_size = 128
    #: The one-hot label joins 784 pixels: scaled to their typical norm (``conditional``).
    label_scale = math.sqrt(IMAGE_PIXELS)

    def __init__(self, label_inputs: int = 0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IMAGE_PIXELS + label_inputs, 128)
        self.nonlin1 = nn.LeakyReLU(0.2)
        self.fc2 = nn.Linear(128, 1)

    def features(self, images: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        x = images.flatten(1)  # (B, 784)
        if onehot is not None:
            x = torch.cat([x, onehot.to(x.dtype)], 1)  # (B, 784 + C)
        return self.nonlin1(self.fc1(x))  # (B, 128)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(features)  # (B, 1)

    def forward(self, images: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(self.features(images, onehot))  # (B, 1) logits


class Generator(nn.Module):
    def __init__(self, z_dim: int = 100) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.fc1 = nn.Linear(z_dim, 128)
        self.nonlin1 = nn.LeakyReLU(0.2)
        self.fc2 = nn.Linear(128, IMAGE_PIXELS)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.nonlin1(self.fc1(z)))  # (B, 784)
        return torch.tanh(x).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28) in [-1, 1]
