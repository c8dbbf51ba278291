"""Generators ganscope did not write, as a student's own code would define them: the
imports' tests (``test_importer``) save them as TorchScript, ONNX and a state_dict."""

from __future__ import annotations

import torch
from torch import nn


class DCGANGenerator(nn.Module):
    """DCGAN-style: z as a 1x1 image, transposed convolutions with BatchNorm, tanh."""

    def __init__(self, z_dim: int = 64) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 64, 7, 1, 0, bias=False),  # 7x7
            nn.BatchNorm2d(64),
            nn.ReLU(True),
            nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False),  # 14x14
            nn.BatchNorm2d(32),
            nn.ReLU(True),
            nn.ConvTranspose2d(32, 1, 4, 2, 1),  # 28x28
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class SigmoidMLP(nn.Module):
    """A plain MLP whose images are flat (N, 784) in [0, 1]."""

    def __init__(self, z_dim: int = 32) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.Linear(z_dim, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class UpsampleGenerator(nn.Module):
    """A third architecture: linear, then nearest-neighbour upsampling and convolutions; it
    was trained on z uniform in [-1, 1]."""

    def __init__(self, z_dim: int = 16, width: int = 32) -> None:
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.project = nn.Linear(z_dim, width * 7 * 7)
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, 16, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(16, 1, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(-1, self.width, 7, 7))


def seeded(cls: type[nn.Module], seed: int = 0, **kwargs) -> nn.Module:
    """``cls`` with weights drawn from ``seed`` (and BatchNorm statistics that are not the
    defaults), in eval mode."""
    torch.manual_seed(seed)
    module = cls(**kwargs)
    for buffer_name, buffer in module.named_buffers():
        if buffer_name.endswith("running_mean"):
            buffer.uniform_(-0.1, 0.1)
        elif buffer_name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    return module.eval()
