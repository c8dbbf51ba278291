"""Training-speed benchmark: a textbook GAN loop against ganscope's path, in one process.

The textbook loop is what tutorials write: a ``Dataset`` that normalises one image at a time,
a shuffling ``DataLoader``, a host-to-device copy per batch, fp32, NCHW, and ``loss.item()``
after every step. It calls the same ``train_step`` with the same seed, so both loops compute
the same function (a test checks their losses agree) and only the mechanics differ. ganscope's
side is the real ``training.train`` on a temporary run folder; its speed is the epoch record's
``images_per_second``, which times the steps and not the end-of-epoch grid and checkpoint.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import MODEL_NAMES, PRECISIONS, DataConfig, ModelConfig, RunConfig, TrainConfig, option
from .data import Split, load_split
from .devices import resolve_device
from .errors import GanscopeError
from .logbook import STEP_STATS
from .options import Checked, data_dir_option, device_option
from .progress import say
from .state import init_state
from .trainer import train
from .training import train_step

#: ``bench``'s steps per loop and trial by device type: a few seconds to a minute each.
BENCH_STEPS = {"cpu": {"mlp": 2000, "cnn": 100}, "cuda": {"mlp": 20000, "cnn": 5000}}


@dataclass(frozen=True)
class BenchOptions(Checked):
    """training speed: a textbook loop against ganscope's, same process

    Time a textbook GAN training loop (DataLoader, per-batch copies, fp32, a host sync every
    step) and ganscope's training path on the same device, data, models and seed; print
    images per second, the speed-up and peak memory.
    """

    models: tuple[str, ...] = option(("mlp", "cnn"), "model families", choices=MODEL_NAMES)
    steps: int | None = option(
        None,
        "training steps per loop and trial (default: "
        + "; ".join(
            f"{device}: " + ", ".join(f"{n} for {model}" for model, n in steps.items())
            for device, steps in BENCH_STEPS.items()
        )
        + ")",
        type=int,
        minimum=1,
    )
    repeats: int = option(3, "trials per loop, taken in turns; each reports its median", minimum=1)
    batch_size: int = option(64, "images per step", minimum=1)
    device: str = device_option("auto")
    precision: str = option(
        "auto", "precision of ganscope's path", choices=lambda: list(PRECISIONS)
    )
    cuda_graph: bool = option(
        True,
        "on CUDA, ganscope's path replays its step as a CUDA graph (as train's flag)",
        on_off=True,
    )
    data_dir: str | None = data_dir_option("$GANSCOPE_DATA_DIR, else the cache")

    def check(self) -> None:
        if not self.models:
            raise GanscopeError("--models needs at least one model")


class _TextbookDataset(torch.utils.data.Dataset):
    """torchvision-style: one uint8 image -> float tensor in [-1, 1] per __getitem__."""

    def __init__(self, split: Split) -> None:
        self.images, self.labels = split.images, split.labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index].float().div(255).sub(0.5).div(0.5).unsqueeze(0)
        return image, self.labels[index]


def textbook_loop(config: RunConfig, split: Split, steps: int) -> tuple[list[list[float]], float]:
    """Run ``steps`` textbook steps; returns per-step ``STEP_STATS`` and images per second."""
    device = resolve_device(config.train.device)
    fp32 = dataclasses.replace(config, train=dataclasses.replace(config.train, precision="fp32"))
    state = init_state(fp32, device, fast=False)  # NCHW, default Adam: as tutorials have it
    batch_size, z_dim = config.train.batch_size, config.model.z_dim
    dataset = _TextbookDataset(split)
    # The sampler gets the run's shuffling RNG, not the loader (which would first draw its
    # worker base seed from it), so both loops see the same batches.
    sampler = torch.utils.data.RandomSampler(dataset, generator=state.data_rng)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=True
    )
    history: list[list[float]] = []
    started = time.perf_counter()
    while len(history) < steps:
        for real, _ in loader:
            real = real.to(device)
            z = torch.randn(batch_size, z_dim, device=device, generator=state.noise_rng)
            stats = train_step(state, real, z)
            history.append([value.item() for value in stats])  # a sync every step
            if len(history) == steps:
                break
    seconds = time.perf_counter() - started
    return history, steps * batch_size / seconds


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def _peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def benchmark(
    model: str,
    split: Split,
    *,
    steps: int = 100,
    device: str = "auto",
    precision: str = "auto",
    cuda_graph: bool = True,  # as `train` and `bench`: on CUDA only
    batch_size: int = 64,
    seed: int = 0,
    repeats: int = 3,
) -> dict[str, Any]:
    """Images per second and peak memory of both loops for ``steps`` steps of one model.

    The loops take turns ``repeats`` times and each reports its median (a burst of other
    work moves one trial, not the result); more steps than ``split`` holds run as epochs."""
    per_epoch = min(steps, len(split) // batch_size)
    epochs = -(-steps // per_epoch)
    steps = epochs * per_epoch
    subset = _first(split, per_epoch * batch_size)
    recipe = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, device=device,
                         precision=precision, cuda_graph=cuda_graph)  # fmt: skip
    config = RunConfig(DataConfig(limit=per_epoch * batch_size), ModelConfig(model), recipe)
    torch_device = resolve_device(device)
    warmup = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))
    warmup_split = _first(subset, 5 * batch_size)
    textbook_speeds, ganscope_speeds = [], []
    textbook_peak = ganscope_peak = None
    with tempfile.TemporaryDirectory() as folder:
        # Warm-up of both: allocator, oneDNN/cuDNN plans, lazy CUDA initialisation.
        textbook_loop(config, subset, min(steps, 5))
        train(warmup, Path(folder) / "warmup", split=warmup_split, progress=False)
        for trial in range(repeats):
            _reset_peak_memory(torch_device)
            textbook_speeds.append(textbook_loop(config, subset, steps)[1])
            textbook_peak = _max(textbook_peak, _peak_memory_mb(torch_device))

            _reset_peak_memory(torch_device)
            run = train(config, Path(folder) / f"run{trial}", split=subset, progress=False)
            ganscope_peak = _max(ganscope_peak, _peak_memory_mb(torch_device))
            records = run.metrics("epoch")
            # Steps only: the end-of-epoch grid, curves and checkpoint are not training speed.
            ganscope_speeds.append(steps * batch_size / sum(r["seconds"] for r in records))
    return {
        "model": model,
        "device": str(torch_device),
        "device_name": device_name(torch_device),
        "torch": torch.__version__,
        "batch_size": batch_size,
        "steps": steps,
        "repeats": repeats,
        "precision": records[-1]["precision"],
        "cuda_graph": records[-1].get("cuda_graph", False),
        **_speeds(textbook_speeds, ganscope_speeds),
        "textbook_peak_mb": textbook_peak,
        "ganscope_peak_mb": ganscope_peak,
        "peak_memory_kind": "max_memory_allocated"
        if torch_device.type == "cuda"
        else "process peak RSS",
    }


def _first(split: Split, n: int) -> Split:
    """The first ``n`` images of ``split``."""
    return Split(split.images[:n], split.labels[:n], split.classes, split.dataset, split.split)


def _speeds(textbook: list[float], ganscope: list[float]) -> dict[str, Any]:
    """Both loops' trials in images per second, their medians and the speed-up."""
    textbook_speed, speed = statistics.median(textbook), statistics.median(ganscope)
    return {
        "textbook_img_per_s": round(textbook_speed, 1),
        "ganscope_img_per_s": round(speed, 1),
        "speedup": round(speed / textbook_speed, 2),
        "textbook_trials": [round(v, 1) for v in textbook],
        "ganscope_trials": [round(v, 1) for v in ganscope],
    }


def run_benchmarks(options: BenchOptions, progress: bool = True) -> list[dict[str, Any]]:
    """``benchmark`` for each of ``options.models``; each result has a readable ``line``."""

    device_type = "cuda" if resolve_device(options.device).type == "cuda" else "cpu"
    split = load_split("fashion-mnist", "train", options.data_dir, progress=progress)
    results = []
    for model in options.models:
        say(f"timing {model}: {options.repeats} trials per loop, in turns ...", enabled=progress)
        steps = options.steps or BENCH_STEPS[device_type].get(
            model, min(BENCH_STEPS[device_type].values())
        )
        result = benchmark(
            model,
            split,
            steps=steps,
            device=options.device,
            precision=options.precision,
            cuda_graph=options.cuda_graph,
            batch_size=options.batch_size,
            repeats=options.repeats,
        )
        result["line"] = (
            f"{model} on {result['device_name']}, batch {result['batch_size']}: "
            f"textbook {result['textbook_img_per_s']:.0f} img/s, ganscope "
            f"{result['ganscope_img_per_s']:.0f} img/s ({result['precision']}"
            f"{', CUDA graph' if result['cuda_graph'] else ''}), "
            f"x{result['speedup']:.2f}; peak {result['peak_memory_kind']} "
            f"{result['textbook_peak_mb']:.0f} / {result['ganscope_peak_mb']:.0f} MB"
        )
        results.append(result)
    return results


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return device.type


__all__ = ["STEP_STATS", "benchmark", "run_benchmarks", "textbook_loop", "device_name"]
