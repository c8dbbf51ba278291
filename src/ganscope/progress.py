"""Progress on long work: a live bar on a terminal, readable lines everywhere.

A bar redraws itself many times a second; written into a file (CI, ``nohup``, a notebook's
log) every redraw stays there. So bars are shown only when stderr is a terminal (tqdm's own
``disable=None`` rule), while the one line per epoch or per stage is always written, above
any bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def bar(iterable: Iterable | None = None, *, enabled: bool = True, **options: Any):
    """A tqdm bar when ``enabled`` and stderr is a terminal, else a silent stand-in."""
    return tqdm(iterable, disable=None if enabled else True, leave=False, **options)


def say(line: str, *, enabled: bool = True) -> None:
    """One readable line on stderr (above a running bar, without breaking it)."""
    if not enabled:
        return
    tqdm.write(line, file=sys.stderr)


def warn(line: str) -> None:
    """A warning the user must see, progress or not: one line on stderr."""
    print(f"ganscope: warning: {line}", file=sys.stderr)
