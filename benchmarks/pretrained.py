"""Check the shipped pretrained runs against the commands in their records.

    python benchmarks/pretrained.py OUT [NAME ...]

For each shipped run (default: all), trains again with the command in its ``pretrained.json``
(``--out`` replaced by OUT/NAME) and compares every shipped snapshot with the new one, tensor
by tensor. Prints per run: equal or not, and the training's seconds. The CNN runs take about
half an hour each on a 2-core CPU; the test suite retrains ``mlp-seed`` only
(tests/test_pretrained.py). Each retraining uses the torch thread count its record names
(another count sums in another order); run it on the device the record names.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganscope import pretrained
from ganscope.cli import main as ganscope


def check(name: str, out: Path) -> dict:
    record = pretrained.record(name)
    argv = record["command"].split()[1:]
    argv[argv.index("--out") + 1] = str(out / name)
    torch.set_num_threads(record["threads"])  # as it was trained: sums in the same order
    started = time.perf_counter()
    if ganscope([*argv, "--no-progress"] if "--no-progress" not in argv else argv) != 0:
        return {"name": name, "trained": False}
    seconds = time.perf_counter() - started
    shipped = pretrained.shipped_root() / name / "checkpoints"
    equal = True
    for snapshot in record["snapshots_sha256"]:
        ours = torch.load(shipped / snapshot, weights_only=True)["generator"]
        again = torch.load(out / name / "checkpoints" / snapshot, weights_only=True)["generator"]
        equal &= all(torch.equal(again[k], v) for k, v in ours.items())
    return {"name": name, "equal": equal, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    for name in args.names or pretrained.names():
        print(json.dumps(check(name, args.out)), flush=True)


if __name__ == "__main__":
    main()
