"""The one error type for mistakes a user can make (bad flags, missing files, corrupt data).

The CLI prints such an error as one line on stderr and exits with status 2; anything else
is a bug in ganscope and keeps its traceback.
"""

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class GanscopeError(Exception):
    """A user-caused problem. The message says what is wrong and how to fix it."""


class TrainingDiverged(GanscopeError):
    """A loss became NaN or infinite; the last good checkpoint is kept on disk."""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """``registry[name]``, or a GanscopeError listing the registered names."""
    if isinstance(name, str) and name in registry:
        return registry[name]
    raise GanscopeError(f"unknown {what} {name!r}; choose one of: {', '.join(sorted(registry))}")
