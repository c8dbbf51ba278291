"""What the label costs per training step: each conditioning against the unconditional GAN.

    python benchmarks/conditional_speed.py [--models mlp cnn] [--steps 200] [--repeats 3] \
        [--preset seed] [--device cpu] [--data-dir DIR] [--conditionings none dual ...] \
        [--count-ops | --epochs N]

For each network, the training step of every conditioning (none, concat, projection, acgan, dual,
tac, adc; ``--conditionings`` picks some, the unconditional one always among them) is timed
on the same real batches: ``steps`` steps per trial after a warm-up, trials taken in turns
(so a slower moment of the machine hits every variant alike), the median per variant.
Prints images per second and the ratio of seconds per step to the unconditional step's (the
issue's target: at most 1.2x). Run it alone on the machine.

``--count-ops`` times nothing: it counts the ATen operator calls of one training step of each
variant (nested calls included, forward, backward and optimiser steps; the mean of 10 steps
under ``torch.profiler``), which on a CPU, where a small network's step is a few hundred
small kernels, says what the label adds independently of the machine's load.

``--epochs N`` measures the issue's target as it is worded, seconds per epoch: real training
runs (``trainer.train``, the whole training set, N epochs, progress off) of every variant, in
turns, ``repeats`` times; each run's epoch records hold the seconds of its training loop
(steps, class-balanced labels, step records, mid-epoch checkpoints; not the epoch's grid and
figures). Prints the median epoch over all runs of a variant and its ratio to the
unconditional one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from ganscope import models, trainer
from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.data import Split, load_split
from ganscope.devices import resolve_device
from ganscope.presets import with_preset
from ganscope.state import init_state
from ganscope.training import make_step

CONDITIONINGS = tuple(models.CONDITIONINGS)  # none first: the ratios are to it


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trial(step, state, index, labels, steps: int, batch: int, device) -> float:
    """Seconds for ``steps`` training steps (the loop's own step function)."""
    synchronize(device)
    started = time.perf_counter()
    for i in range(steps):
        rows = index[(i * batch) % (len(index) - batch) :][:batch]
        z = torch.randn(batch, state.fixed_z.shape[1], device=device, generator=state.noise_rng)
        asked = {"labels": labels[:batch]} if state.num_classes else {}
        step(index=rows, z=z, **asked)
    synchronize(device)
    return time.perf_counter() - started


def count_ops(step, state, index, labels, batch: int, device, steps: int = 10) -> float:
    """ATen operator calls per training step (nested calls included), over ``steps`` steps."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        trial(step, state, index, labels, steps, batch, device)
    calls = sum(e.count for e in profiler.key_averages() if e.key.startswith("aten::"))
    return calls / steps


def epoch_seconds(config: RunConfig, split: Split, folder: Path) -> list[float]:
    """The seconds of every epoch of one real training run of ``config`` into ``folder``."""
    run = trainer.train(config, folder, split=split, progress=False)
    return [record["seconds"] for record in run.metrics("epoch")]


def variant_config(model: str, cond: str, args, epochs: int = 10) -> RunConfig:
    """The preset's run of ``model`` with conditioning ``cond`` on ``args.device``."""
    train = TrainConfig(preset=args.preset, device=str(args.device), epochs=epochs)
    return RunConfig(
        DataConfig(data_dir=args.data_dir),
        ModelConfig(model, conditioning=cond),
        with_preset(train, model),
    )


def time_epochs(model: str, split: Split, args) -> dict[str, list[float]]:
    """Every variant's epoch seconds over ``args.repeats`` runs of ``args.epochs`` epochs,
    the variants in turns."""
    seconds: dict[str, list[float]] = {cond: [] for cond in args.conditionings}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for cond in args.conditionings:
                config = variant_config(model, cond, args, epochs=args.epochs)
                folder = Path(scratch) / f"{model}-{cond}-{repeat}"
                seconds[cond] += epoch_seconds(config, split, folder)
    return seconds


def print_epochs(model: str, seconds: dict[str, list[float]]) -> None:
    base = statistics.median(seconds["none"])
    for cond, values in seconds.items():
        median, spread = statistics.median(values), f"{min(values):.2f}-{max(values):.2f}"
        print(f"{model} {cond:10s}: {median:7.2f} s/epoch (median of {len(values)}: "
              f"{spread}), {median / base:.2f}x unconditional")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--conditionings",
        nargs="+",
        default=list(CONDITIONINGS),
        choices=CONDITIONINGS,
        help="the variants to measure (default: all); the unconditional one is always added",
    )
    parser.add_argument("--count-ops", action="store_true", help="count operator calls per step")
    parser.add_argument("--epochs", type=int, default=0, help="time real runs of N epochs")
    args = parser.parse_args()
    args.conditionings = ["none", *(c for c in args.conditionings if c != "none")]
    device = resolve_device(args.device)
    args.device = str(device)  # every variant's config names the device it runs on
    split = load_split("fashion-mnist", "train", args.data_dir, progress=False)
    images, real_labels = split.images.to(device), split.labels.to(device)
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).to(device)
    asked = torch.arange(args.batch_size, device=device) % 10
    plan = f"{args.epochs} epochs" if args.epochs else f"{args.steps} steps"
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"{plan} x {args.repeats} trials, preset {args.preset}")  # fmt: skip
    for model in args.models:
        if args.epochs:
            print_epochs(model, time_epochs(model, split, args))
            continue
        steps = {}
        for cond in args.conditionings:
            state = init_state(variant_config(model, cond, args), device)
            labels = real_labels if cond != "none" else None
            step = make_step(state, images, device, labels=labels)
            trial(step, state, index, asked, 5, args.batch_size, device)  # warm-up
            steps[cond] = (step, state, [])
        if args.count_ops:
            ops = {
                c: count_ops(s, st, index, asked, args.batch_size, device)
                for c, (s, st, _) in steps.items()
            }
            for cond, calls in ops.items():
                print(f"{model} {cond:10s}: {calls:6.0f} operator calls/step, "
                      f"{calls / ops['none']:.2f}x unconditional")  # fmt: skip
            continue
        for _ in range(args.repeats):
            for step, state, times in steps.values():
                times.append(trial(step, state, index, asked, args.steps, args.batch_size, device))
        base = statistics.median(steps["none"][2]) / args.steps
        for cond, (_, state, times) in steps.items():
            per_step = statistics.median(times) / args.steps
            print(
                f"{model} {cond:10s} {state.precision}: {args.batch_size / per_step:8.0f} "
                f"images/s, {per_step * 1000:7.2f} ms/step, {per_step / base:.2f}x unconditional"
            )


if __name__ == "__main__":
    main()
