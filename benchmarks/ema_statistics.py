"""Why the averaged G needs BatchNorm statistics of its own: evaluate one run's G, its average
with G's statistics, and the average with standing statistics, with and without removing the
initial weights' share (what the decay ramp now does during training).

    python benchmarks/ema_statistics.py RUN_DIR [--n 5000] [--data-dir DIR]

RUN_DIR: a CNN GAN run trained with --ema by a ganscope from before the ramp and the standing
statistics (its checkpoint's average holds G's statistics). Prints FID, recall, classes
covered and the rarest class's share for each. docs/presets.md has the numbers.
"""

from __future__ import annotations

import argparse
import copy

import torch

from ganscope import objective, runs
from ganscope.classifier import load_classifier
from ganscope.evaluation import evaluate_generator, load_reference
from ganscope.models import build_generator
from ganscope.options import EvaluateOptions
from ganscope.state import init_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    run = runs.load_run(args.run)
    checkpoint = run.load_checkpoint()
    model, z_dim = run.config.model.name, run.config.model.z_dim
    decay, steps = run.config.train.ema, checkpoint["step"]

    def generator(weights: dict, standing: bool) -> torch.nn.Module:
        module = build_generator(model, z_dim)
        module.load_state_dict(weights)
        if standing:
            objective.standing_statistics(module, z_dim, run.config.train.batch_size)
        return module.eval()

    initial = init_state(run.config, torch.device("cpu")).generator.state_dict()
    left = decay**steps  # the initial weights' share of a plain average after `steps`
    debiased = {
        key: (value - left * initial[key]) / (1 - left) if "running" not in key else value
        for key, value in checkpoint["generator_ema"].items()
        if value.is_floating_point()
    }
    debiased = {**checkpoint["generator_ema"], **debiased}
    classifier = load_classifier(EvaluateOptions.classifier_path, device="cpu")
    reference = load_reference(
        run.config.data.dataset, args.data_dir, memorisation_check=False, progress=False
    )
    print(f"{run.path}: {steps} steps, decay {decay}: initial weights' share {left:.2f}")
    for name, weights, standing in (
        ("G", checkpoint["generator"], False),
        ("average, G's statistics", checkpoint["generator_ema"], False),
        ("average, standing statistics", checkpoint["generator_ema"], True),
        ("average without the initial weights, standing statistics", debiased, True),
    ):
        result, _ = evaluate_generator(
            generator(copy.deepcopy(weights), standing), reference, classifier, args.n, seed=0
        )
        histogram = result["class_histogram"]
        print(
            f"{name}: FID {result['fid']:.2f} recall {result['recall']:.3f} classes "
            f"{result['classes_covered']} rarest {min(histogram) / sum(histogram):.1%}"
        )


if __name__ == "__main__":
    main()
