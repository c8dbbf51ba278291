"""Make a shipped pretrained run (``src/ganscope/pretrained/NAME``) from a trained run folder.

    python tools/ship_pretrained.py RUN NAME --threads N [--epochs 1 5]

Copies what the read commands need and nothing of the training state: ``config.json``,
``metrics.jsonl``, G's snapshots of ``--epochs`` (the last epoch always), every fixed grid,
the loss curves, the evaluation with the most samples of the last epoch and the analysis
(its records and tables, the report's five latent figures), then writes ``pretrained.json``:
the command that trained it, the device and precision from its epoch records, the torch
threads it trained with (``--threads``: another count sums in another order, so a retraining
must use the same), the seed, the versions, and each snapshot's sha256. The run must have
been evaluated and analysed (``ganscope evaluate RUN``; ``ganscope analyze RUN``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from ganscope.options import REPORT_DIMS
from ganscope.runs import load_run

ROOT = Path(__file__).resolve().parents[1] / "src" / "ganscope" / "pretrained"


def ship(run_dir: Path, name: str, epochs: list[int], threads: int) -> Path:
    run = load_run(run_dir)
    last = run.latest_epoch()
    epochs = sorted({*(e for e in epochs if e <= last), last})
    evaluation = run.find_evaluation(epoch=last)
    analysis = run.analysis_record()
    if evaluation is None or analysis is None:
        sys.exit(f"{run_dir}: evaluate and analyze it first")
    out = ROOT / name
    shutil.rmtree(out, ignore_errors=True)
    for sub in ("checkpoints", "samples", "figures", "evaluation", "analysis/grids"):
        (out / sub).mkdir(parents=True)
    for file in ("config.json", "metrics.jsonl", "figures/losses.png"):
        shutil.copy2(run.path / file, out / file)
    for path in run.sample_grid_paths().values():
        shutil.copy2(path, out / "samples" / path.name)
    digests = {}
    for epoch in epochs:
        snapshot = run.snapshot_path(epoch)
        shutil.copy2(snapshot, out / "checkpoints" / snapshot.name)
        digests[snapshot.name] = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    source = run.evaluation_path(evaluation["epoch"], evaluation["seed"], evaluation["n"])
    shutil.copy2(source, out / "evaluation" / source.name)
    for path in run.analysis_dir.glob("*.*"):
        shutil.copy2(path, out / "analysis" / path.name)
    for dim in REPORT_DIMS:
        grid = run.analysis.grid(dim)
        if grid.is_file():
            shutil.copy2(grid, out / "analysis" / "grids" / grid.name)
    epoch_records = run.metrics("epoch")
    record = {
        "command": " ".join(run.meta["commands"][0]),
        "model": run.config.model.name,
        "preset": run.config.train.preset,
        "seed": run.config.train.seed,
        "epochs": last,
        "device": epoch_records[-1].get("device"),
        "precision": epoch_records[-1].get("precision"),
        "threads": threads,
        "ganscope_version": run.meta.get("ganscope_version"),
        "torch_version": run.meta.get("torch_version"),
        "fid": evaluation["fid"],
        "evaluation_n": evaluation["n"],
        "snapshots_sha256": digests,
    }
    (out / "pretrained.json").write_text(json.dumps(record, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--threads", type=int, required=True, help="torch threads it trained with")
    args = parser.parse_args()
    out = ship(args.run, args.name, args.epochs, args.threads)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
