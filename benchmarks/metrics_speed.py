"""Benchmark: all of `ganscope evaluate`'s metrics for 10,000 images against the 10,000 test
images (the issue's target: <= 30 s on a 2-core CPU). The "generated" images are 10,000
training images, so the timing excludes the generator, whose cost depends on the model.

    python benchmarks/metrics_speed.py [--data-dir ../shared/data/fashion-mnist]
"""

import argparse
import json
import time
import warnings

from ganscope.classifier import load_classifier
from ganscope.data import load_split
from ganscope.evaluation import compare, load_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/fashion-mnist")
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    reference = load_reference("fashion-mnist", args.data_dir, progress=False)
    fake = load_split("fashion-mnist", "train", args.data_dir, progress=False).images[-args.n :]
    classifier = load_classifier()
    started = time.perf_counter()
    cold = compare(fake, reference, classifier)
    cold_seconds = time.perf_counter() - started
    started = time.perf_counter()
    compare(fake, reference, classifier)  # real-side features and distances now cached
    warm_seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "n": args.n,
                "cold_seconds": round(cold_seconds, 2),
                "warm_seconds": round(warm_seconds, 2),
                "fid": round(cold["fid"], 4),
                "precision": round(cold["precision"], 4),
                "recall": round(cold["recall"], 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
