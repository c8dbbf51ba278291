"""How much of a Classification Accuracy Score is the measurement's own noise.

CAS trains a classifier on one draw of generated images and tests it on the real test set,
so one number mixes the generator with two draws of the measurement: the latent vectors of
the 60,000 generated images (``--latent-seeds``) and the classifier's own training noise (its
recipe's seed, ``--recipe-seeds``; the shipped recipe's is 0). This scores one trained
conditional run for every pair asked, one JSON line each, then their mean and spread, so that
a difference between two runs' CAS can be read against what re-measuring one run gives:

    python benchmarks/cas_spread.py RUN --latent-seeds 0 1 --recipe-seeds 0 1 2
    python benchmarks/cas_spread.py RUN --trained-weights   # G's own weights, not the EMA

Each score trains the recipe for 12 epochs on 60,000 images (8-15 minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from itertools import product

import torch

from ganscope.classifier import ClassifierRecipe
from ganscope.data import load_split
from ganscope.evaluation import classification_accuracy_score
from ganscope.runs import load_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a conditional run folder")
    parser.add_argument("--latent-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--recipe-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--trained-weights", action="store_true", help="G's own weights")
    parser.add_argument("--per-class", type=int, default=6000, help="generated images per class")
    parser.add_argument("--epochs", type=int, default=ClassifierRecipe.epochs, help="recipe's")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    run = load_run(args.run)
    generator, epoch = run.generator_at(trained=args.trained_weights)
    test = load_split(run.config.data.dataset, "test", args.data_dir or run.config.data.data_dir)
    scores = []
    for latent_seed, recipe_seed in product(args.latent_seeds, args.recipe_seeds):
        recipe = dataclasses.replace(ClassifierRecipe(), seed=recipe_seed, epochs=args.epochs)
        result = classification_accuracy_score(
            generator, test, per_class=args.per_class, seed=latent_seed, recipe=recipe,
            progress=False,
        )  # fmt: skip
        scores.append(result["cas"])
        line = {
            "run": str(run.path),
            "epoch": epoch,
            "weights": "trained" if args.trained_weights else "saved",
            "latent_seed": latent_seed,
            "recipe_seed": recipe_seed,
            "per_class": args.per_class,
            "cas": round(result["cas"], 4),
            "seconds": result["cas_seconds"],
            "threads": torch.get_num_threads(),
        }
        print(json.dumps(line), flush=True)
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    print(f"CAS {statistics.fmean(scores):.4f} +- {spread:.4f} over {len(scores)} scores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
