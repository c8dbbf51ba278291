"""The metrics log, ``metrics.jsonl``: one JSON object per line, each with its ``kind``
(``step``, ``epoch``, ``eval``, ...), appended as training goes; a resume truncates it to the
steps it keeps, and lines it cannot read are kept aside, never dropped."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import atomic
from .errors import GanscopeError
from .progress import warn

#: Metrics lines that could not be read, kept aside by a resume instead of being dropped.
DAMAGED_METRICS_FILE = "metrics.damaged.jsonl"


def _parse_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of a metrics log and its damaged lines (not JSON objects, e.g. cut by a
    kill or overwritten by hand), each kept in order."""
    if not path.is_file():
        return [], []
    records, damaged = [], []
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError as error:
        raise GanscopeError(f"{path} is unreadable ({error.strerror})") from None
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("kind"), str):
            records.append(record)
        else:
            damaged.append(line)
    return records, damaged


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics log; damaged lines are skipped (a resume keeps them aside)."""
    return _parse_metrics(path)[0]


def append_metrics(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(record) + "\n" for record in records)
    if lines:
        with path.open("a") as stream:
            stream.write(lines)


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after ``last_step`` (the steps a resumed run will redo). Damaged
    lines are moved to ``metrics.damaged.jsonl`` beside it, with a warning: never a reason to
    drop good records."""

    records, damaged = _parse_metrics(path)
    if damaged:
        aside = path.with_name(DAMAGED_METRICS_FILE)
        with aside.open("a", encoding="utf-8") as stream:
            stream.write("".join(line + "\n" for line in damaged))
        warn(f"{len(damaged)} damaged line(s) of {path} moved to {aside}; the others are kept")
    keep = [r for r in records if not isinstance(r.get("step"), int) or r["step"] <= last_step]
    atomic.write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())
