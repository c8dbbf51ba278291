"""How far back G's moving average reaches at the end of a run: its mean age in steps.

The average after step ``T - 1`` weighs G's weights of step ``s`` by ``(1 - d_s)`` times the
product of the later steps' decays ``d_j``; its mean age is the weighted mean of ``T - 1 -
s``. ``objective.ema_decay`` ramps the decay as ``min(decay, (1 + s) / (R + s))`` in
training, R 10 unless ``train --ema-ramp`` says otherwise. No training: arithmetic on the
decays only.

    python benchmarks/ema_window.py --steps 9370 --decays 0.999 0.9999 --constants 10 4 2

9,370 steps: 10 epochs of 937 batches of 64 (Fashion-MNIST's 60,000 training images).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ganscope import objective


def ramp(decay: float, constant: float) -> Callable[[int], float]:
    """The per-step decay, ``objective.ema_decay`` with the ramp's ``constant``."""
    return lambda step: objective.ema_decay(decay, step, constant)


def mean_age(steps: int, decay_at: Callable[[int], float]) -> float:
    """The mean age, in steps, of the weights in the average after ``steps`` steps."""
    carried, total, age_sum = 1.0, 0.0, 0.0
    for step in range(steps - 1, -1, -1):
        decay = decay_at(step)
        weight = (1 - decay) * carried
        total, age_sum = total + weight, age_sum + weight * (steps - 1 - step)
        carried *= decay
    return age_sum / total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=9370)
    parser.add_argument("--decays", type=float, nargs="+", default=[0.999, 0.9999])
    parser.add_argument("--constants", type=float, nargs="+", default=[10, 4, 2])
    args = parser.parse_args(argv)
    print("| ramp constant | decay | mean age (steps) |")
    print("|---|---|---|")
    for constant in args.constants:
        for decay in args.decays:
            age = mean_age(args.steps, ramp(decay, constant))
            print(f"| {constant:g} | {decay:g} | {age:,.0f} |")
    print(f"\n{args.steps:,} steps; printed by benchmarks/ema_window.py.")


if __name__ == "__main__":
    main()
