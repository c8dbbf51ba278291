import pytest
import torch
from torch import nn

from ganscope import models
from ganscope.errors import GanscopeError

# The lab report's listings imply these counts (shared/seed/README.md).
EXPECTED_PARAMETERS = {
    ("mlp", "G"): 114_064,
    ("mlp", "D"): 100_609,
    ("cnn", "G"): 912_960,
    ("cnn", "D"): 222_401,
}
REPORT_LAYERS = {
    ("mlp", "G"): ["fc1", "nonlin1", "fc2"],
    ("mlp", "D"): ["fc1", "nonlin1", "fc2"],
    ("cnn", "G"): ["fc1", "conv1", "norm1", "conv2", "norm2", "conv3"],
    ("cnn", "D"): ["conv1", "conv2", "norm2", "conv3", "norm3", "fc"],
}


def _build(name, player):
    return models.build_generator(name) if player == "G" else models.build_discriminator(name)


@pytest.mark.parametrize("name, player", sorted(EXPECTED_PARAMETERS))
def test_parameter_counts_are_the_reports(name, player):
    assert models.count_parameters(_build(name, player)) == EXPECTED_PARAMETERS[(name, player)]


@pytest.mark.parametrize("name, player", sorted(REPORT_LAYERS))
def test_layer_names_are_the_reports(name, player):
    module = _build(name, player)
    assert [child for child, _ in module.named_children()] == REPORT_LAYERS[(name, player)]
    printed = repr(module)
    for layer in REPORT_LAYERS[(name, player)]:
        assert f"({layer}):" in printed


def test_cnn_listing_details():
    G, D = models.build_generator("cnn"), models.build_discriminator("cnn")
    assert (
        repr(G.conv2)
        == "ConvTranspose2d(128, 64, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False)"
    )
    assert (
        repr(D.conv2)
        == "Conv2d(64, 128, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"
    )
    assert D.conv1.bias is None and G.conv3.bias is None
    assert repr(models.build_discriminator("mlp").nonlin1) == "LeakyReLU(negative_slope=0.2)"


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_shapes_and_ranges(name):
    torch.manual_seed(0)
    G, D = models.build_generator(name), models.build_discriminator(name)
    images = G(torch.randn(5, 100) * 10)  # large z: tanh must still bound the output
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    logits = D(images)
    assert logits.shape == (5, 1)
    # Logits, not probabilities: an unbounded head.
    assert not isinstance(list(D.children())[-1], nn.Sigmoid)


def test_registry_validates():
    with pytest.raises(GanscopeError, match="unknown model 'gpt'.*cnn, mlp"):
        models.get_family("gpt")
    with pytest.raises(ValueError, match="already registered"):
        models.register_model(models.MODELS["mlp"])
    with pytest.raises(ValueError, match="not an nn.Module"):
        models.register_model(models.ModelFamily("x", int, nn.Linear, ""))
