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


def one_line(error: Exception) -> str:
    """torch's messages run long and advise ``weights_only=False``: keep the first line, and
    never that advice (it would run whatever code the file holds)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    reason = next((line for line in lines if "weights_only" not in line), "damaged file")
    return f"{type(error).__name__}: {reason}"


def load_error(error: Exception) -> str:
    """Why ``torch.load`` could not read a file, in ganscope's words: a cut-off or foreign file,
    or content beyond tensors and plain values (which is never unpickled)."""
    text = str(error)
    if isinstance(error, EOFError) or any(
        sign in text for sign in ("zip archive", "central directory", "EOF", "too short")
    ):
        return "the file is cut off or is not a torch file"
    if "Weights only load failed" in text or type(error).__name__ == "UnpicklingError":
        return (
            "it holds more than tensors and plain values, which ganscope never unpickles "
            "(no code in a file it reads ever runs)"
        )
    return one_line(error)
