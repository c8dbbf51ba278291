"""Benchmark of the promise "an interrupted run resumes where it stopped": kill -9 a training
process at random moments, resume it each time, and compare with an uninterrupted run.

For each of --kills random moments (seeded) between the run folder's creation and the end of
training, a fresh run is started, killed with SIGKILL at that moment (mid-step,
mid-checkpoint, mid-figure: wherever it is), resumed with ``train --resume`` to its end, and
then checked:

* the weights of G and D equal the uninterrupted run's bit for bit;
* no temporary file of an atomic write is left anywhere in the run folder;
* the metrics log holds exactly the uninterrupted run's records (timing fields aside, and the
  device of an epoch record rebuilt after a kill between its checkpoint and its record).

    python benchmarks/kill_resume.py [--kills 20] [--data-dir ../shared/data/fashion-mnist]

Run it alone on the machine: it starts a training process per kill (about 3 minutes for 20
kills on 2 cores). Prints one line per kill and a JSON summary; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganscope import runs

TIMING = ("seconds", "images_per_second")
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def train_command(out: Path, data_dir: str, resume: bool = False) -> list[str]:
    base = [sys.executable, "-m", "ganscope", "train", "--no-progress"]
    if resume:
        return [*base, "--resume", str(out)]
    return [
        *base, "--model", "mlp", "--epochs", "3", "--limit", "6400", "--seed", "7",
        "--checkpoint-minutes", "1e-9", "--data-dir", data_dir, "--out", str(out),
    ]  # fmt: skip


def comparable(run: runs.Run) -> tuple[dict, list]:
    state = run.load_checkpoint()
    weights = {f"{p}.{k}": v for p in ("generator", "discriminator") for k, v in state[p].items()}
    # An epoch record rebuilt after a kill (between its checkpoint and the record) has lost
    # its timing and how it ran (device, CUDA graph); everything else must be equal.
    lost = (*TIMING, "device", "cuda_graph", "reconstructed")
    records = [
        {k: v for k, v in r.items() if k not in lost}
        for r in run.metrics()
        if r["kind"] in ("step", "epoch")
    ]
    return weights, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="../shared/data/fashion-mnist")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="ganscope-kill-"))
    try:
        whole = folder / "whole"
        started = time.perf_counter()
        process = subprocess.Popen(train_command(whole, args.data_dir), **QUIET)
        while not (whole / runs.CONFIG_FILE).exists() and process.poll() is None:
            time.sleep(0.01)
        # Before this the process only starts and loads data: no kill there can lose anything.
        folder_seconds = time.perf_counter() - started
        if process.wait() != 0:
            raise SystemExit("the uninterrupted training run failed")
        full_seconds = time.perf_counter() - started
        reference = comparable(runs.load_run(whole))
        results = []
        for trial in range(args.kills):
            # Between the run folder's creation and the natural end: every phase gets hit
            # (steps, mid-epoch checkpoints, grids, epoch checkpoints, figures).
            delay = rng.uniform(folder_seconds, 0.98 * full_seconds)
            out = folder / f"cut{trial}"
            process = subprocess.Popen(train_command(out, args.data_dir), **QUIET)
            try:
                process.wait(timeout=delay)
                killed = False
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed = True
            # Continue as a user would: --resume, or start again if the kill came before the
            # run folder held its config.
            resumable = (out / runs.CONFIG_FILE).exists()
            command = train_command(out, args.data_dir, resume=resumable)
            if killed:
                finish = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                # Killed after the last checkpoint: --resume says so, and the run is complete.
                if finish.returncode and b"already finished" not in finish.stderr:
                    raise SystemExit(f"trial {trial}: {finish.stderr.decode().strip()}")
            weights, records = comparable(runs.load_run(out))
            same_weights = weights.keys() == reference[0].keys() and all(
                torch.equal(weights[k], reference[0][k]) for k in weights
            )
            orphans = [str(p) for p in out.rglob("*.tmp")]
            result = {
                "trial": trial,
                "killed_after_s": round(delay, 2) if killed else None,
                "resumed": killed and resumable,
                "bit_identical": same_weights,
                "orphaned_tmp_files": orphans,
                "metrics_unchanged": records == reference[1],
            }
            results.append(result)
            print(
                f"kill {trial + 1}/{args.kills} after {delay:.1f} s "
                f"({'resumed' if result['resumed'] else 'restarted' if killed else 'not killed'}): "
                "weights "
                f"{'identical' if same_weights else 'DIFFER'}, "
                f"{len(orphans)} temporary files, metrics "
                f"{'unchanged' if result['metrics_unchanged'] else 'CHANGED'}",
                flush=True,
            )
        ok = all(
            r["bit_identical"] and not r["orphaned_tmp_files"] and r["metrics_unchanged"]
            for r in results
        )
        summary = {
            "kills": sum(r["killed_after_s"] is not None for r in results),
            "resumed": sum(r["resumed"] for r in results),
            "trials": len(results),
            "all_ok": ok,
            "uninterrupted_seconds": round(full_seconds, 1),
            "kill_window_seconds": [round(folder_seconds, 1), round(0.98 * full_seconds, 1)],
        }
        print(json.dumps(summary))
        return 0 if ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
