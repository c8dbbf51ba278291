"""The lab report's convolutional GAN, layer for layer as in its listings.

The report changed the plain GAN in three ways: strided convolutions instead of pooling in D,
LeakyReLU instead of ReLU, tanh on G's output. Its listings fix every learnable layer; what
they leave implicit is done here without parameters, so the counts stay exactly the report's
(G 912,960; D 222,401):

* D: LeakyReLU(0.2) after each conv, then global average pooling ``(B, 128, 14, 14) ->
  (B, 128)`` so that ``fc`` sees 128 features.
* G: ``fc1`` gives 6272 = 128x7x7 values, but the single stride-2 layer (``conv2``) only
  doubles 7 to 14. One nearest-neighbour 2x upsampling right after ``fc1`` makes the output
  28x28; there G mirrors D exactly: ``conv1`` works at 14x14 like D's ``conv3``, ``conv2``
  goes 14 -> 28 as D's ``conv2`` goes 28 -> 14, ``conv3`` works at 28x28 like D's ``conv1``.
  (Upsampling after ``conv3`` instead would only enlarge a 14x14 image.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.2


class CNNDiscriminator(nn.Module):
    """``label_inputs`` > 0: a class-conditional D by input concatenation, the one-hot label
    ``(B, label_inputs)`` joined to the image as constant label maps (one channel per class)."""

    #: Length of the features before the last layer (what a projection D multiplies).
    feature_size = 128
    #: Label maps join one value per pixel, as the image's: unscaled (``conditional``).
    label_scale = 1.0

    def __init__(self, label_inputs: int = 0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1 + label_inputs, 64, 3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(128)
        self.conv3 = nn.Conv2d(128, 128, 3, stride=1, padding=1, bias=False)
        self.norm3 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128, 1)

    def features(self, images: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        if onehot is not None:  # label maps: (B, C) -> (B, C, 28, 28), joined as channels
            maps = onehot.to(images.dtype)[:, :, None, None].expand(-1, -1, *images.shape[2:])
            images = torch.cat([images, maps], 1)  # (B, 1 + C, 28, 28)
        x = F.leaky_relu(self.conv1(images), SLOPE)  # (B, 64, 28, 28)
        x = F.leaky_relu(self.norm2(self.conv2(x)), SLOPE)  # (B, 128, 14, 14)
        x = F.leaky_relu(self.norm3(self.conv3(x)), SLOPE)  # (B, 128, 14, 14)
        return x.mean(dim=(2, 3))  # global average pooling -> (B, 128)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)  # (B, 1)

    def forward(self, images: torch.Tensor, onehot: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits(self.features(images, onehot))  # (B, 1) logits


class CNNGenerator(nn.Module):
    def __init__(self, z_dim: int = 100) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.fc1 = nn.Linear(z_dim, 128 * 7 * 7)
        self.conv1 = nn.ConvTranspose2d(128, 128, 3, stride=1, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(128)
        self.conv2 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(64)
        self.conv3 = nn.ConvTranspose2d(64, 1, 3, stride=1, padding=1, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc1(z), SLOPE).view(-1, 128, 7, 7)  # (B, 128, 7, 7)
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, 128, 14, 14), no parameters
        x = F.leaky_relu(self.norm1(self.conv1(x)), SLOPE)  # (B, 128, 14, 14)
        x = F.leaky_relu(self.norm2(self.conv2(x)), SLOPE)  # (B, 64, 28, 28)
        return torch.tanh(self.conv3(x))  # (B, 1, 28, 28) in [-1, 1]
