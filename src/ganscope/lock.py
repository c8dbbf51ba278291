"""The run folder's writers' lock: one process writes a run folder at a time.

``train`` and ``train --resume`` hold it for their whole life. It is an OS file lock
(``filelock``), released by the OS if the process dies, so a killed writer never blocks the
next; who holds it (PID, command line) is written beside it for the message a second writer
gets. The file names are ``runs``'.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from . import atomic
from .errors import GanscopeError
from .runs import LOCK_FILE, WRITER_FILE


def remove_temporary_files(folder: Path) -> list[Path]:
    """Temporary files that a killed atomic write left behind (only safe under the lock)."""
    removed = []
    for tmp in folder.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def writer_lock(path: str | Path, command: list[str] | None = None) -> Iterator[Path]:
    """Hold the run folder's exclusive lock (an OS file lock, released by the OS if the process
    dies, so a killed writer never blocks the next) while the body writes to it. A second
    writer fails at once, naming the holder. Creates the folder; clears temporary files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GanscopeError(f"{path} is a file, not a run folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path / LOCK_FILE), timeout=0, is_singleton=False)
        lock.acquire()
    except Timeout:
        raise GanscopeError(
            f"run folder {path} is being written by another process ({_holder(path)}); wait "
            "for it to finish or stop it"
        ) from None
    except OSError as error:
        raise GanscopeError(f"cannot write to {path} ({error.strerror or error})") from None
    try:
        holder = f"PID {os.getpid()}: {' '.join(command or ['python'])}"
        atomic.write_bytes(path / WRITER_FILE, holder.encode())
        remove_temporary_files(path)
        yield path
    finally:
        lock.release()


def _holder(path: Path) -> str:
    try:
        return (path / WRITER_FILE).read_text(errors="replace").strip()[:200] or "unknown"
    except OSError:
        return "PID unknown"
