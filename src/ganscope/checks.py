"""Every check of the options' values, in one place: bounds declared in fields' metadata
(``minimum``, ``maximum``, ``choices``), the checks shared by several commands (languages,
deltas, seeds), and the up-front memory estimate that refuses requests too large for the
machine. :class:`Checked` runs them when an options object is made (``options``).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import os
from typing import Any, TypeVar

from .errors import GanscopeError

#: Shifts larger than this are refused: z ~ N(0, 1), so even the report's ±10 is 10 sigma.
MAX_ABS_DELTA = 1000.0
#: Seeds are 64-bit; this keeps them non-negative and portable.
MAX_SEED = 2**63 - 1
LANGS = ("en", "zh")
#: The paths ``interpolate`` draws between latent vectors (``sampling.INTERPOLATIONS``).
INTERPOLATION_METHODS = ("slerp", "lerp")
#: How to install the optional TensorBoard writer.
TENSORBOARD_INSTALL = "pip install 'ganscope[tensorboard]'"


def require_tensorboard() -> None:
    """A one-line error naming the install command when TensorBoard is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise GanscopeError(f"--tensorboard needs the tensorboard package: {TENSORBOARD_INSTALL}")


def require_package(module: str, what: str, install: str) -> None:
    """A one-line error naming the install command when an optional package is missing."""
    if importlib.util.find_spec(module) is None:
        raise GanscopeError(f"{what} needs the {module} package: {install}")


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _class_key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def check_class(value: str | int, classes: tuple[str, ...]) -> int:
    """The index of the class ``value`` names: its index, or its name in any case, with or
    without spaces and punctuation ("Sneaker", "ankle boot", "t-shirt/top", "7")."""
    text = str(value).strip()
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    keys = [_class_key(name) for name in classes]
    if _class_key(text) in keys and _class_key(text):
        return keys.index(_class_key(text))
    choices = ", ".join(f"{i} {name}" for i, name in enumerate(classes))
    guess = _closest_class(text, classes)
    hint = f" (did you mean {guess!r}?)" if guess else ""
    raise GanscopeError(f"unknown class {text!r}{hint}; choose a name or index: {choices}")


def _closest_class(text: str, classes: tuple[str, ...]) -> str | None:
    """The one class whose name holds ``text`` ("boot": "Ankle boot") or, failing that, the
    closest spelling ("sneakers": "Sneaker"); None where neither is clear."""
    key, keys = _class_key(text), [_class_key(name) for name in classes]
    if not key:
        return None
    holding = [name for name, k in zip(classes, keys, strict=True) if key in k]
    if len(holding) == 1:
        return holding[0]
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    return classes[keys.index(close[0])] if close else None


def check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise GanscopeError(f"--lang must be {' or '.join(LANGS)}, got {lang!r}")


def check_delta(delta: float) -> float:
    delta = float(delta)
    if not math.isfinite(delta) or abs(delta) > MAX_ABS_DELTA:
        raise GanscopeError(
            f"delta {delta} is not usable: it must be finite and at most {MAX_ABS_DELTA:g} "
            "in size (latent values are standard normal)"
        )
    return delta


def check_positive_deltas(deltas: tuple[float, ...]) -> None:
    if not deltas:
        raise GanscopeError("give at least one delta")
    for delta in deltas:
        if check_delta(delta) <= 0:
            raise GanscopeError(f"--delta must be positive (both signs are used), got {delta:g}")


#: Bytes one generated 28x28 image costs while it is made and saved (float32 output, its
#: uint8 copy and its place in a figure): the unit of the up-front memory estimates.
IMAGE_BYTES = 3 * 28 * 28 * 4


def memory_limit() -> int:
    """Half of this machine's physical memory (8 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, OSError, ValueError):
        return 8 * 2**30


def check_memory(what: str, needed: float) -> None:
    """Refuse up front what would need more than :func:`memory_limit` bytes."""
    limit = memory_limit()
    if needed > limit:
        raise GanscopeError(
            f"{what} would need about {needed / 2**30:,.1f} GiB of memory, more than the "
            f"{limit / 2**30:,.1f} GiB allowed (half of this machine's); ask for fewer"
        )


def check_bounds(obj: Any) -> None:
    """Every field's ``minimum``/``maximum`` (each item of a tuple), and its ``choices``."""
    for field in dataclasses.fields(obj):
        value, meta = getattr(obj, field.name), field.metadata
        for item in value if isinstance(value, tuple | list) else (value,):
            if item is None or isinstance(item, bool):
                continue
            low, high = meta.get("minimum"), meta.get("maximum")
            if high is not None and not low <= item <= high:
                raise GanscopeError(f"{flag_of(field)} must be in {low}..{high}, got {item}")
            if low is not None and not item >= low:
                raise GanscopeError(f"{flag_of(field)} must be at least {low}, got {item}")
            choices = meta.get("choices")
            if choices is not None and item not in choices():
                raise GanscopeError(
                    f"{flag_of(field)} must be one of {', '.join(choices())}, got {item!r}"
                )


class Checked:
    """Options checked when made: the bounds in their fields' metadata, then ``check``."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # lists from Python callers, kept hashable
            value = getattr(self, field.name)
            if isinstance(field.default, tuple) and isinstance(value, list | range):
                object.__setattr__(self, field.name, tuple(value))
        check_bounds(self)
        self.check()

    def check(self) -> None:
        """Checks beyond single fields' bounds."""


Options = TypeVar("Options")


def resolve(cls: type[Options], options: Options | None, overrides: dict[str, Any]) -> Options:
    """``options`` with ``overrides`` applied (or ``cls(**overrides)``), checked again."""
    if options is None:
        return cls(**overrides)
    return dataclasses.replace(options, **overrides) if overrides else options
