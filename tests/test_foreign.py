"""``foreign``: the adapter that puts a generator trained elsewhere behind ganscope's
contract, and the first layer SeFa and GANSpace read from it."""

from __future__ import annotations

import torch
from torch import nn

from ganscope.foreign import Adapter, module_first_layer
from ganscope.sampling import generate, latent
from ganscope.source import SourceConfig


class Echo(nn.Module):
    """Images that are z itself, repeated: what the adapter feeds in is what comes out."""

    def forward(self, z):
        return z[:, :1].repeat(1, 784)


def test_flat_sigmoid_output_becomes_images_in_minus_one_to_one():
    adapter = Adapter(nn.Sequential(nn.Linear(4, 784), nn.Sigmoid()), 4,
                      SourceConfig(format="torchscript", output_range="0,1"))  # fmt: skip
    images = generate(adapter, latent(8, 4, 0))
    assert images.shape == (8, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1 and images.min() < -0.05


def test_a_uniform_latent_is_the_normal_cdf_of_z():
    adapter = Adapter(Echo(), 3, SourceConfig(format="torchscript", latent="uniform"))
    z = torch.tensor([[0.0, 0, 0], [10.0, 0, 0], [-1.0, 0, 0]])
    seen = generate(adapter, z)[:, 0, 0, 0]
    assert torch.allclose(seen, torch.tensor([0.0, 1.0, 2 * 0.158655 - 1]), atol=1e-5)
    normal = Adapter(Echo(), 3, SourceConfig(format="torchscript"))
    assert torch.equal(generate(normal, z)[:, 0, 0, 0], z[:, 0])


def test_a_parameterless_adapter_runs_where_its_anchor_is():
    from ganscope.sampling import device_of

    adapter = Adapter(Echo(), 3, SourceConfig(format="torchscript"))
    assert device_of(adapter) == torch.device("cpu")


def test_the_first_layer_that_reads_z():
    linear = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 784))
    weight, bias = module_first_layer(linear, 5)
    assert torch.equal(weight, linear[0].weight.double()) and torch.equal(
        bias, linear[0].bias.double()
    )
    deconv = nn.Sequential(nn.ConvTranspose2d(5, 3, 2, bias=True))
    weight, bias = module_first_layer(deconv, 5)
    assert weight.shape == (3 * 2 * 2, 5) and bias.shape == (12,)
    z = torch.randn(1, 5, dtype=torch.float64)
    out = deconv.double()(z.view(1, 5, 1, 1)).flatten()
    assert torch.allclose(out, weight @ z[0] + bias)  # the layer as a matrix on z
    assert module_first_layer(nn.Sequential(nn.Conv2d(1, 3, 3), nn.Linear(5, 3)), 5) is None
    scripted = torch.jit.script(linear)
    assert torch.equal(module_first_layer(scripted, 5)[0], linear[0].weight.detach().double())
