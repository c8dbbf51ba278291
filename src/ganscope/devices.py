"""Where and how fast a run computes: device choice, precision, memory layout, Adam kernels.

These are mechanics, not the method (see ``config``): they change how quickly a step runs,
never what it computes beyond floating-point rounding.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from .errors import GanscopeError
from .models import get_family

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an unavailable choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise GanscopeError(f"unknown device {name!r}; use {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise GanscopeError(f"unsupported device {name!r}; use {DEVICE_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GanscopeError(f"--device {name} was asked for, but this PyTorch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GanscopeError(
                f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices"
            )
    if device.type == "mps" and not _mps_available():
        raise GanscopeError(f"--device {name} was asked for, but MPS is not available here")
    return device


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def native_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bf16 matrices natively (CUDA sm80+, AVX512-BF16/AMX CPUs)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


def resolve_precision(name: str, device: torch.device, model_name: str) -> str:
    """``fp32`` or ``bf16`` for a ``--precision`` value.

    ``auto`` picks bf16 only where it pays: convolutional models on devices with native bf16
    matrix units (measured on a 2-core AVX512-BF16 CPU: the CNN GAN trains 1.9x faster, the
    MLP GAN not at all, its matrices being too small).
    """

    if name == "fp32":
        return "fp32"
    if name == "bf16":
        if not native_bf16(device):
            raise GanscopeError(
                f"--precision bf16 needs native bf16 support, which {device} lacks; "
                "use --precision fp32"
            )
        return "bf16"
    if name != "auto":
        raise GanscopeError(f"--precision must be auto, fp32 or bf16, got {name!r}")
    return "bf16" if get_family(model_name).convolutional and native_bf16(device) else "fp32"


def autocast(precision: str, device: torch.device):
    """bf16 autocast for ``precision == "bf16"``, else a no-op context.

    Without autocast's cast cache, eager and CUDA-graph steps compute the same thing: a
    capture cannot keep the cache (cached casts would be tensors from outside the graph's
    memory pool), and with it a weight used twice in a step (D on real, then on fake images)
    has its two gradients summed in bf16 before the cast back instead of in fp32, a
    difference Adam carries on (an H100 run drifted by about one step's update per weight
    in 10 steps). It costs one more cast of D's weights per step.
    """
    if precision != "bf16":
        return contextlib.nullcontext()  # cheaper than a disabled autocast, every step
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


def prepare_module(module: nn.Module, model_name: str, device: torch.device | str) -> nn.Module:
    """Move a model's network to ``device``, in channels_last memory for convolutional
    families: NHWC lets oneDNN / cuDNN skip layout conversions around every convolution (CPU,
    CNN GAN, batch 64: 141 -> 170 img/s in fp32). Training and loading both go through here."""

    if get_family(model_name).convolutional:
        module.to(memory_format=torch.channels_last)
    return module.to(device)


def wants_cuda_graph(cuda_graph: bool, device: torch.device) -> bool:
    """Whether training on ``device`` captures its step as a CUDA graph (``--cuda-graph``)."""
    return cuda_graph and device.type == "cuda"


def adam_mechanics(fast: bool, capturable: bool) -> dict[str, Any]:
    """Adam's kernel options: the fused kernel updates all of a player's parameters in one
    pass (the MLP GAN's steps are so small that optimiser overhead is a large share of them);
    graph capture needs the step counters on the device."""
    return {"fused": fast or None, "capturable": capturable}


def set_adam_mechanics(optimizer: torch.optim.Optimizer, fused: Any, capturable: bool) -> None:
    """Give a (loaded) optimiser this process's kernel options, moving its step counters."""
    for group in optimizer.param_groups:
        group["fused"], group["capturable"] = fused, capturable
    for param, param_state in optimizer.state.items():
        if "step" in param_state:
            # Fused and capturable Adam keep step counters on the parameters' device.
            device = param.device if fused or capturable else torch.device("cpu")
            param_state["step"] = param_state["step"].to(device=device, dtype=torch.float32)
