"""The run folder: the one place a training run keeps everything a later command needs.

Layout (see README)::

    RUN/config.json                     run config + ganscope version + the command lines
    RUN/metrics.jsonl                   one JSON record per step, epoch (and later: evaluation)
    RUN/checkpoints/last.pt             full training state after the latest finished epoch
    RUN/checkpoints/partial.pt          full training state within an unfinished epoch
                                        (every --checkpoint-minutes; gone when it finishes)
    RUN/checkpoints/generator_epoch_NNN.pt   G's weights after each epoch (small)
    RUN/samples/epoch_NNN.png           the fixed-noise grid after each epoch
    RUN/figures/losses.png              loss curves of G and D, D(x) and D(G(z))

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so
a crash or kill leaves either the old or the new version, never half a file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import FORMAT_VERSION, RunConfig
from .errors import GanscopeError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
PARTIAL_CHECKPOINT = "partial.pt"
SAMPLES_DIR = "samples"
FIGURES_DIR = "figures"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def generator_snapshot_name(epoch: int) -> str:
    return f"generator_epoch_{epoch:03d}.pt"


def _ganscope_version() -> str:
    from . import __version__

    return __version__


class Run:
    """A run folder on disk. Get one with :func:`load_run` (or from ``ganscope.train``)."""

    def __init__(self, path: Path, config: RunConfig, meta: dict[str, Any]) -> None:
        self.path = path
        self.config = config
        self.meta = meta

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config.model.name!r})"

    # -- paths ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_DIR / LAST_CHECKPOINT

    @property
    def partial_checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_DIR / PARTIAL_CHECKPOINT

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def sample_grid_path(self, epoch: int) -> Path:
        return self.path / SAMPLES_DIR / f"epoch_{epoch:03d}.png"

    # -- reading --------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The full training state saved after the latest finished epoch."""
        if not self.has_checkpoint():
            raise GanscopeError(
                f"run folder {self.path} has no checkpoint yet (no epoch finished); "
                f"train it with: ganscope train --resume {self.path}"
            )
        return _load_checkpoint_file(self.checkpoint_path, map_location)

    def load_partial_checkpoint(
        self, map_location: str | torch.device = "cpu"
    ) -> dict[str, Any] | None:
        """The training state saved within an unfinished epoch, or None if there is none.

        An unreadable one is skipped with a warning: it only ever saves time, and the last
        finished epoch's checkpoint is still there.
        """
        if not self.partial_checkpoint_path.is_file():
            return None
        try:
            return _load_checkpoint_file(self.partial_checkpoint_path, map_location)
        except GanscopeError as error:
            warnings.warn(f"{error}; resuming from the last finished epoch instead", stacklevel=2)
            return None

    def latest_epoch(self) -> int:
        """The epoch of the latest checkpoint."""
        return int(self.load_checkpoint()["epoch"])

    def result_header(self, epoch: int | None, n: int, seed: int, classifier) -> dict[str, Any]:
        """What identifies a result computed from this run (evaluation, analysis)."""
        return {
            "run": str(self.path),
            "model": self.config.model.name,
            "epoch": epoch if epoch is not None else self.latest_epoch(),
            "n": n,
            "seed": seed,
            "classifier_sha256": classifier.meta["sha256"],
        }

    def generator_epochs(self) -> list[int]:
        """Epochs for which a generator snapshot exists, in order."""
        folder = self.path / CHECKPOINT_DIR
        epochs = []
        for file in folder.glob("generator_epoch_*.pt"):
            try:
                epochs.append(int(file.stem.rsplit("_", 1)[1]))
            except ValueError:
                continue
        return sorted(epochs)

    def generator(self, epoch: int | None = None, device: str | torch.device = "cpu") -> nn.Module:
        """The trained generator in eval mode, usable without any trainer.

        ``epoch=None`` gives the latest one; otherwise the snapshot saved after that epoch.
        """
        from .models import build_generator, get_family

        if epoch is None:
            state = self.load_checkpoint()
            weights = state["generator"]
        else:
            available = self.generator_epochs()
            if epoch not in available:
                raise GanscopeError(
                    f"run {self.path} has no generator for epoch {epoch}; "
                    f"available: {available or 'none'}"
                )
            path = self.path / CHECKPOINT_DIR / generator_snapshot_name(epoch)
            weights = _load_checkpoint_file(path, "cpu")["generator"]
        generator = build_generator(self.config.model.name, self.config.model.z_dim)
        generator.load_state_dict(weights)
        if get_family(self.config.model.name).convolutional:
            generator.to(memory_format=torch.channels_last)  # faster convolutions (oneDNN)
        return generator.to(device).eval()

    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Records of ``metrics.jsonl`` (optionally only those of one ``kind``)."""
        return [r for r in read_metrics(self.metrics_path) if kind is None or r["kind"] == kind]

    # -- writing --------------------------------------------------------------------------
    def save_config(self, config: RunConfig, command: list[str] | None = None) -> None:
        """Write ``config.json``; ``command`` is appended to the history of command lines."""
        self.config = config
        commands = list(self.meta.get("commands", []))
        if command is not None:
            commands.append(list(command))
        self.meta = {
            "format_version": FORMAT_VERSION,
            "ganscope_version": _ganscope_version(),
            "torch_version": torch.__version__,
            "commands": commands,
        }
        atomic_write_json(self.path / CONFIG_FILE, {**self.meta, "config": config.to_dict()})


def _load_checkpoint_file(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        reason = (str(error).strip().splitlines() or [""])[0]  # one line: torch's run long
        raise GanscopeError(
            f"checkpoint {path} is unreadable ({type(error).__name__}: {reason})"
        ) from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else None
        raise GanscopeError(
            f"checkpoint {path} has format version {found}, this ganscope reads {FORMAT_VERSION}"
        )
    return state


def read_json(path: Path, what: str = "") -> Any:
    """A JSON file's content; an unreadable one is a GanscopeError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise GanscopeError(f"{what + ' ' if what else ''}{path} is unreadable ({error})") from None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    with path.open() as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A line cut by a kill is the only way to get here; everything before it is good.
                break
    return records


def append_metrics(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(record) + "\n" for record in records)
    if lines:
        with path.open("a") as stream:
            stream.write(lines)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after ``last_step`` (the steps a resumed run will redo)."""
    keep = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


def create_run(path: str | Path, config: RunConfig, command: list[str] | None = None) -> Run:
    """Make a new run folder; refuses one that already holds a run."""
    path = Path(path)
    if (path / CONFIG_FILE).exists():
        raise GanscopeError(
            f"{path} already holds a run; continue it with: ganscope train --resume {path}, "
            "or choose another --out"
        )
    if path.exists() and not path.is_dir():
        raise GanscopeError(f"--out {path} is a file, not a folder")
    for sub in (CHECKPOINT_DIR, SAMPLES_DIR, FIGURES_DIR):
        (path / sub).mkdir(parents=True, exist_ok=True)
    run = Run(path, config, {})
    run.save_config(config, command)
    return run


def load_run(path: str | Path) -> Run:
    """Open an existing run folder. Everything later (sample, evaluate, report) starts here."""
    path = Path(path)
    if not path.is_dir():
        raise GanscopeError(f"run folder {path} does not exist")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise GanscopeError(f"{path} is not a ganscope run folder (it has no {CONFIG_FILE})")
    raw = read_json(config_path)
    if not isinstance(raw, dict) or "config" not in raw:
        raise GanscopeError(f"{config_path} is not a ganscope run config")
    if raw.get("format_version") != FORMAT_VERSION:
        raise GanscopeError(
            f"{path} was written in run format {raw.get('format_version')}, this ganscope "
            f"reads {FORMAT_VERSION}"
        )
    config = RunConfig.from_dict(raw["config"])
    meta = {key: value for key, value in raw.items() if key != "config"}
    return Run(path, config, meta)
