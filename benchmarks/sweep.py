"""What a study costs beyond its trials: a 16-trial MLP grid study with 1 and with 2 workers.

    python benchmarks/sweep.py OUT [--data-dir DIR] [--epochs 2] [--limit 10000] [--workers 1 2]

Writes OUT/space.toml (lr x beta1, 4 x 4, pruner none so both runs train the same 16
trials) and runs ``ganscope sweep`` into OUT/workers-N for each N, then prints per N: the wall
time, trials per hour, the trials' own training time (each trial's ``seconds``: train and
its per-epoch evaluation, from the study), and the study's overhead, 1 - (sum of the trials'
seconds) / (N x wall time): what Optuna, the storage, the processes' start and the report of
the results add. Run it alone on the machine: it times itself.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ganscope.sweep import sweep

SPACE = """[study]
model = "mlp"
epochs = {epochs}
trials = 16
sampler = "grid"
pruner = "none"
limit = {limit}
eval_samples = 1000
threads = {threads}
data_dir = "{data_dir}"

[params]
lr = {{ choices = [0.0001, 0.0002, 0.0005, 0.001] }}
beta1 = {{ choices = [0.0, 0.3, 0.5, 0.9] }}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-dir", default=os.environ.get("GANSCOPE_DATA_DIR", ""))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    results = []
    for workers in args.workers:
        space = args.out / f"space-{workers}.toml"
        space.write_text(SPACE.format(epochs=args.epochs, limit=args.limit,
                                      threads=max(1, cores // workers),
                                      data_dir=Path(args.data_dir).resolve()))  # fmt: skip
        started = time.perf_counter()
        result = sweep(space, out=str(args.out / f"workers-{workers}"), workers=workers,
                       progress=False)  # fmt: skip
        wall = time.perf_counter() - started
        trials = [t for t in result["trials"] if t["state"] == "COMPLETE"]
        own = sum(t["seconds"] for t in trials)
        row = {
            "workers": workers, "threads_per_worker": max(1, cores // workers),
            "trials": len(trials), "wall_s": round(wall, 1),
            "trials_per_hour": round(3600 * len(trials) / wall, 1),
            "trial_seconds": round(own, 1), "overhead": round(1 - own / (workers * wall), 4),
            "best": [t["params"] for t in result["trials"] if t["number"] in result["best"]],
        }  # fmt: skip
        results.append(row)
        print(json.dumps(row))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
