"""How close a training step comes to the machine's arithmetic peak, per model and precision.

Counts the floating-point operations of one training step (both players, forward and
backward) with ``torch.utils.flop_counter``, times steps on synthetic data, and compares the
achieved rate with a large matrix product's in the same precision, the practical peak of the
machine. A step that already runs near that peak cannot be made much faster by changing
mechanics: only cheaper arithmetic (bf16) or less of it would help. Steps run eagerly here
(no data loading, no CUDA graph): this measures the arithmetic, ``ganscope bench`` the loops.

    python benchmarks/train_roofline.py [--device cpu] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ganscope.bench import device_name
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.devices import autocast, resolve_device
from ganscope.state import init_state
from ganscope.training import train_step

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a (size x size) @ (size x size) product, the best of five."""
    size = 8192 if device.type == "cuda" else 2048  # large enough to hide launch overhead
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        started = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def step_rate(model: str, precision: str, fast: bool, device: torch.device, steps: int):
    """(FLOPs per step, seconds per step) for one set-up, on random data."""
    config = RunConfig(
        model=ModelConfig(model),
        train=TrainConfig(device=str(device), precision=precision, seed=0),
    )
    state = init_state(config, device, fast=fast)
    real = torch.rand(64, 1, 28, 28, device=device) * 2 - 1
    z = torch.randn(64, config.model.z_dim, device=device)

    def step():
        with autocast(state.precision, device):
            return train_step(state, real, z)

    for _ in range(3):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return counter.get_total_flops(), (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per set-up")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device_name(device)}, torch {torch.__version__}")
    peaks = {name: matmul_peak(device, dtype) for name, dtype in PRECISIONS.items()}
    for precision, peak in peaks.items():
        print(f"matmul peak {precision}: {peak / 1e9:.0f} GFLOP/s")
    setups = [
        ("cnn", "fp32", False, "textbook (NCHW, fp32)"),
        ("cnn", "fp32", True, "ganscope fp32"),
        ("cnn", "bf16", True, "ganscope bf16"),
        ("mlp", "fp32", False, "textbook (fp32)"),
        ("mlp", "fp32", True, "ganscope fp32"),
    ]
    for model, precision, fast, label in setups:
        steps = args.steps if model == "cnn" else 50 * args.steps
        flops, seconds = step_rate(model, precision, fast, device, steps)
        achieved = flops / seconds
        print(
            f"{model} {label}: {flops / 1e9:.2f} GFLOP per step, {seconds * 1e3:.2f} ms per step "
            f"({64 / seconds:.0f} img/s), {achieved / 1e9:.0f} GFLOP/s = "
            f"{achieved / peaks[precision]:.0%} of the {precision} matmul peak"
        )


if __name__ == "__main__":
    main()
