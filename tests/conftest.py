"""Shared fixtures: the real Fashion-MNIST copy beside the repo, and tiny IDX files."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "fashion-mnist"


def xdist_threads() -> int | None:
    """Torch threads of a pytest-xdist worker: the cores shared out among the workers (at
    least 1), so that they do not oversubscribe the CPU (two 2-thread torch processes on 2
    cores thrash); None outside xdist or with one worker."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None


def pytest_configure(config):
    """Under ``pytest -n N`` each worker gets its share of the cores, for torch in this
    process and (through OMP_NUM_THREADS) for the processes its tests start."""
    threads = xdist_threads()
    if threads is not None:
        import torch

        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The read-only Fashion-MNIST copy CI provides (override with GANSCOPE_TEST_DATA)."""
    path = Path(os.environ.get("GANSCOPE_TEST_DATA", SHARED_DATA))
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not found at {path}")
    return path


@pytest.fixture(scope="session")
def small_split(fashion_dir):
    """The first 320 training images: 5 steps of 64 per epoch."""
    from ganscope.data import load_split

    return load_split(
        "fashion-mnist", "train", fashion_dir, limit=320, download=False, progress=False
    )


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (the format's header: 0, 0, type 0x08, ndim, dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray | bytes, compress: bool = True) -> Path:
    payload = array if isinstance(array, bytes) else idx_bytes(array)
    if compress:
        path = path.with_name(path.name if path.name.endswith(".gz") else path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


TINY_DATASET = "tiny-mnist"


@pytest.fixture
def tiny_dataset_dir(tmp_path):
    """A synthetic MNIST-layout folder: 12 train and 4 test images with labels 0..9,
    registered as the dataset ``tiny-mnist`` with these files' checksums."""
    import dataclasses
    import hashlib

    from ganscope import data

    rng = np.random.default_rng(0)
    sha256 = {}
    for prefix, count in (("train", 12), ("t10k", 4)):
        arrays = {
            f"{prefix}-images-idx3-ubyte.gz": rng.integers(0, 256, (count, 28, 28), np.uint8),
            f"{prefix}-labels-idx1-ubyte.gz": (np.arange(count) % 10).astype(np.uint8),
        }
        for name, array in arrays.items():
            write_idx(tmp_path / name, array)
            sha256[name] = hashlib.sha256(idx_bytes(array)).hexdigest()
    spec = dataclasses.replace(data.get_dataset("mnist"), name=TINY_DATASET, raw_sha256=sha256)
    data.register_dataset(spec)
    yield tmp_path
    del data.DATASETS[TINY_DATASET]


def keep_artefact(path: Path) -> None:
    """Copy a screenshot to $GANSCOPE_ARTIFACTS, where CI keeps it (when it is set)."""
    import shutil

    artefacts = os.environ.get("GANSCOPE_ARTIFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artefacts) / path.name)


def train_interrupted_after_epoch_1(config, out: Path, split):
    """Train ``config`` into ``out`` and stop it (KeyboardInterrupt) once epoch 1 is saved;
    returns the run folder, to be resumed."""
    from ganscope import trainer

    def interrupt(run, state, record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.train(config, out, split=split, progress=False, callbacks=[interrupt])
    return out


def serve_explorer(explorer):
    """The explorer on a free loopback port in a thread: yields its URL, then stops it."""
    import socket
    import threading
    import time

    import uvicorn

    from ganscope import web

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        web.create_app(explorer), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)
