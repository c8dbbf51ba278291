"""Fingerprint what ganscope's commands compute, to show a refactor changed no result.

    python tools/fingerprint.py run --source SRC --out DIR   # run them: DIR/fingerprint.json
    python tools/fingerprint.py digest DIR                   # DIR/fingerprint.json again
    python tools/fingerprint.py compare A.json B.json        # every file whose content differs

`run` calls the command line (`python -m ganscope`) with `SRC` first on PYTHONPATH, so the same
script measures any checkout (e.g. a `git worktree` of an older commit). It trains small MLP and
CNN runs (the seed preset, the improved preset, a hinge/TTUR/dropout/noise mix, a resumed run),
then evaluates, analyses, samples, traverses, interpolates and animates. Each file is reduced
to what it computes: tensors of checkpoints and .npz files by their bytes, images by their
decoded pixels, JSON records without wall-clock times, paths, versions and command lines.
Everything is on the CPU, where ganscope promises bit-identical results for a seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"

# Keys whose values are about the machine or the moment, not about what was computed.
VOLATILE = (
    "second",
    "time",
    "images_per",
    "img_per",
    "command",
    "version",
    "date",
    "host",
    "pid",
    "created",
    "started",
    "finished",
    "wall",
    "argv",
    "python",
    "platform",
    "torch",
)

#: Settings added after HEAD 6a8a2ba whose default is what ganscope did before they existed:
#: a GPU-only mechanics switch (since retired: config.RETIRED), ``--conditional`` (default
#: "none", the unconditional GAN) and ``--class-weight`` (default 1; only acgan and dual runs
#: have a class loss to weigh).
#: Left out so a run's config compares with one written before they existed.
ADDED_SETTINGS = ("cuda_graph_unchecked", "conditioning", "class_weight")


def commands(data_dir: Path) -> list[list[str]]:
    data = ["--data-dir", str(data_dir)]
    small = ["--limit", "1024", "--no-progress"]
    return [
        [
            "train",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--seed",
            "3",
            "--eval-every",
            "1",
            "--eval-samples",
            "200",
            *small,
            *data,
            "--out",
            "mlp-seed",
        ],
        [
            "train",
            "--model",
            "mlp",
            "--preset",
            "improved",
            "--epochs",
            "2",
            *small,
            *data,
            "--out",
            "mlp-improved",
        ],
        [
            "train",
            "--model",
            "mlp",
            "--loss",
            "hinge",
            "--lr-d",
            "0.0004",
            "--d-dropout",
            "0.2",
            "--instance-noise",
            "0.1",
            "--epochs",
            "2",
            *small,
            *data,
            "--out",
            "mlp-mix",
        ],
        [
            "train",
            "--model",
            "mlp",
            "--label-smoothing",
            "0.1",
            "--epochs",
            "1",
            *small,
            *data,
            "--out",
            "mlp-resumed",
        ],
        ["train", "--resume", "mlp-resumed", "--epochs", "2", "--no-progress"],
        [
            "train",
            "--model",
            "cnn",
            "--precision",
            "fp32",
            "--epochs",
            "1",
            "--limit",
            "256",
            "--no-progress",
            *data,
            "--out",
            "cnn-seed",
        ],
        [
            "train",
            "--model",
            "cnn",
            "--preset",
            "improved",
            "--r1-every",
            "2",
            "--epochs",
            "2",
            "--limit",
            "256",
            "--no-progress",
            *data,
            "--out",
            "cnn-improved",
        ],
        ["evaluate", "mlp-seed", "--n", "500", "--seed", "1", "--no-progress", *data],
        ["evaluate", "mlp-improved", "--n", "300", "--trained-weights", "--no-progress", *data],
        ["evaluate", "cnn-improved", "--n", "300", "--no-progress", *data],
        [
            "analyze",
            "mlp-seed",
            "--dims",
            "20",
            "50",
            "--n",
            "32",
            "--pca",
            "3",
            "--per-checkpoint",
            "--no-progress",
        ],
        [
            "analyze",
            "cnn-improved",
            "--dims",
            "1",
            "2",
            "--n",
            "16",
            "--sefa",
            "2",
            "--no-progress",
            "--lang",
            "zh",
        ],
        ["sample", "mlp-improved", "--n", "16", "--seed", "2", "--npz"],
        ["sample", "cnn-seed", "--n", "8", "--epoch", "1"],
        ["traverse", "mlp-seed", "--dims", "20", "50", "--steps", "5"],
        ["interpolate", "cnn-improved", "--seeds", "0", "1", "--steps", "4"],
        ["animate", "mlp-seed", "--out", "mlp-seed/figures/again.gif"],
    ]


def run(source: Path, out: Path, data_dir: Path) -> None:
    out.mkdir(parents=True, exist_ok=False)
    env = {**os.environ, "PYTHONPATH": str(source.resolve()), "OMP_NUM_THREADS": "2"}
    for argv in commands(data_dir):
        print("ganscope", " ".join(argv), flush=True)
        subprocess.run(
            [sys.executable, "-m", "ganscope", *argv],
            cwd=out,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    write_digests(out)


def write_digests(out: Path) -> None:
    files = [p for p in sorted(out.rglob("*")) if p.is_file() and p.name != "fingerprint.json"]
    prints = {str(p.relative_to(out)): digest(p, out) for p in files}
    prints = {k: v for k, v in prints.items() if v is not None}
    (out / "fingerprint.json").write_text(json.dumps(prints, indent=1, sort_keys=True))
    print(f"{len(prints)} files -> {out / 'fingerprint.json'}")


def _clean(value, root: str):
    if isinstance(value, dict):
        return {
            k: _clean(v, root)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in VOLATILE) and k not in ADDED_SETTINGS
        }
    if isinstance(value, list | tuple):
        return [_clean(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<ROOT>")
    return value


def _tensors(value, found: list) -> object:
    import torch

    if isinstance(value, torch.Tensor):
        found.append(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return f"<tensor {tuple(value.shape)} {value.dtype}>"
    if isinstance(value, dict):
        return {str(k): _tensors(v, found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tensors(v, found) for v in value]
    return value


def digest(path: Path, root: Path) -> str | None:
    h = hashlib.sha256()
    suffix = path.suffix
    if path.name.startswith(".") or "tensorboard" in path.parts:
        return None
    if suffix == ".pt":
        import torch

        found: list[bytes] = []
        skeleton = _tensors(torch.load(path, map_location="cpu", weights_only=False), found)
        h.update(json.dumps(_clean(skeleton, str(root)), sort_keys=True, default=str).encode())
        for chunk in found:
            h.update(chunk)
    elif suffix in (".png", ".gif"):
        from PIL import Image, ImageSequence

        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                h.update(frame.convert("RGBA").tobytes())
    elif suffix == ".npz":
        import numpy as np

        with np.load(path) as arrays:
            for key in sorted(arrays.files):
                h.update(key.encode() + arrays[key].tobytes())
    elif suffix == ".json":
        record = _clean(json.loads(path.read_text()), str(root))
        h.update(json.dumps(record, sort_keys=True).encode())
    elif suffix == ".jsonl":
        for line in path.read_text().splitlines():
            h.update(json.dumps(_clean(json.loads(line), str(root)), sort_keys=True).encode())
    elif suffix in (".csv", ".md", ".txt"):
        h.update(path.read_text().replace(str(root), "<ROOT>").encode())
    else:
        return None
    return h.hexdigest()


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    differ = sorted(k for k in left.keys() & right.keys() if left[k] != right[k])
    only = sorted(left.keys() ^ right.keys())
    same = len(left.keys() & right.keys()) - len(differ)
    print(f"{same} files identical, {len(differ)} differ, {len(only)} in one only")
    for k in differ:
        print("  differs:", k)
    for k in only:
        print("  only in", a.name if k in left else b.name, ":", k)
    return 1 if differ or only else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--source", type=Path, required=True, help="a checkout's src/ folder")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--data-dir", type=Path, default=DATA)
    d = sub.add_parser("digest", help="(re)write DIR/fingerprint.json from DIR's files")
    d.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.what == "run":
        run(args.source, args.out, args.data_dir)
        return 0
    if args.what == "digest":
        write_digests(args.out)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
