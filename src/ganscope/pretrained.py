"""Trained runs shipped inside the package: ``pretrained:NAME`` wherever a run folder goes.

Each shipped run (``ganscope/pretrained/NAME``) is a small read-only run folder: G's
snapshots of a few epochs (the last one the final generator, the moving average where the
preset has one), the fixed grid per epoch, ``metrics.jsonl``, the 10,000-sample evaluation,
the analysis, and ``pretrained.json``: how it was trained (command, device, seed, ganscope's
and torch's versions, the snapshots' sha256). A command given ``pretrained:NAME`` works on a
copy in the user's folder (``$GANSCOPE_HOME/pretrained/NAME``, default
``~/.cache/ganscope/pretrained/NAME``), made on first use, so results are never written into
the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import GanscopeError

PREFIX = "pretrained:"
RECORD = "pretrained.json"


def shipped_root() -> Path:
    return Path(str(resources.files("ganscope") / "pretrained"))


def names() -> list[str]:
    root = shipped_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / RECORD).is_file())


def home() -> Path:
    """Where the user's copies of shipped runs live."""
    base = os.environ.get("GANSCOPE_HOME")
    return Path(base) if base else Path.home() / ".cache" / "ganscope"


def record(name: str) -> dict[str, Any]:
    """``pretrained.json`` of the shipped run ``name``."""
    if name not in names():
        shown = ", ".join(names()) or "none are installed"
        raise GanscopeError(f"unknown pretrained run {name!r}; choose one of: {shown}")
    return json.loads((shipped_root() / name / RECORD).read_text())


def describe() -> list[dict[str, Any]]:
    """Every shipped run: its record, size and where a command works on it."""
    rows = []
    for name in names():
        folder = shipped_root() / name
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        rows.append({"name": f"{PREFIX}{name}", **record(name), "bytes": size})
    return rows


def materialise(name: str) -> Path:
    """The user's copy of shipped run ``name``, made (or replaced by a newer shipped one)
    whole: copied beside its place and renamed into it."""
    shipped = shipped_root() / name
    wanted = json.dumps(record(name), sort_keys=True)
    target = home() / "pretrained" / name
    present = target / RECORD
    if present.is_file() and json.dumps(json.loads(present.read_text()), sort_keys=True) == wanted:
        return target
    staging = target.with_name(f".{name}.copying-{os.getpid()}")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(shipped, staging)
        for path in staging.rglob("*"):  # the package's files may be read-only
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise GanscopeError(
            f"cannot copy pretrained run {name} to {target} ({error.strerror})"
        ) from None
    return target


#: The order ``ganscope serve`` shows shipped runs in when given none: the best first.
SERVE_ORDER = ("cnn-improved", "cnn-seed", "mlp-improved", "mlp-seed")


def default_runs() -> list[str]:
    """``pretrained:NAME`` of every shipped run, the best first (``ganscope serve``)."""
    found = names()
    if not found:
        raise GanscopeError("give a run folder: this installation ships no pretrained runs")
    ordered = [n for n in SERVE_ORDER if n in found] + [n for n in found if n not in SERVE_ORDER]
    return [f"{PREFIX}{name}" for name in ordered]


def resolve(path: str | Path) -> Path:
    """``pretrained:NAME`` as the user's copy of that run; any other path as it is."""
    text = str(path)
    if text.startswith(PREFIX):
        return materialise(text[len(PREFIX) :])
    return Path(path)
