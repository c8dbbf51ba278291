"""Atomic file writes and checked JSON reads, for everything ganscope writes.

A writer puts the bytes into a temporary file in the target's folder, flushes it to disk and
renames it over the target (``os.replace``), so a reader (or a crash) sees the old file or the
new one, never half of one. Nothing here knows about run folders: plots, the classifier and
the report use it as well as ``runs``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import GanscopeError


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise GanscopeError(f"cannot write {path} ({error.strerror or error})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise GanscopeError(f"cannot write {path} ({error.strerror or error})") from None
        raise
    return path


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> Path:
    return write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def torch_save(obj: Any, path: str | Path) -> Path:
    import torch  # only here: the JSON and byte writers stay free of torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getvalue())


def read_json(path: str | Path, what: str = "") -> Any:
    """A JSON file's content; an unreadable one is a GanscopeError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise GanscopeError(
            f"{what + ' ' if what else ''}{path} is unreadable ({reason})"
        ) from None
