"""Device, precision and layout choices (``devices``)."""

import pytest
import torch

from ganscope import devices
from ganscope.errors import GanscopeError


def test_precision_resolution():
    cpu = torch.device("cpu")
    assert devices.resolve_precision("fp32", cpu, "cnn") == "fp32"
    assert devices.resolve_precision("auto", cpu, "mlp") == "fp32"
    expected = "bf16" if devices.native_bf16(cpu) else "fp32"
    assert devices.resolve_precision("auto", cpu, "cnn") == expected


def test_cuda_graph_is_only_wanted_on_cuda():
    assert not devices.wants_cuda_graph(True, torch.device("cpu"))
    assert devices.wants_cuda_graph(True, torch.device("cuda"))
    assert not devices.wants_cuda_graph(False, torch.device("cuda"))


def test_unavailable_device():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(GanscopeError, match="no CUDA"):
        devices.resolve_device("cuda")
    with pytest.raises(GanscopeError, match="unknown device"):
        devices.resolve_device("tpu9")
    assert devices.resolve_device("auto").type in ("cpu", "mps")


def test_channels_last_is_decided_once_for_training_and_loading():
    from ganscope.models import build_generator

    cnn = devices.prepare_module(build_generator("cnn"), "cnn", "cpu")
    mlp = devices.prepare_module(build_generator("mlp"), "mlp", "cpu")
    conv_weight = next(p for p in cnn.parameters() if p.dim() == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous() for p in mlp.parameters())


def test_a_cuda_device_index_out_of_range_is_refused():
    with pytest.raises(GanscopeError, match="device"):
        devices.resolve_device("cuda:99")
