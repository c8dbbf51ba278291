"""The record of an imported generator's origin (``ganscope import``): which files, in which
format, with which latent distribution and output range. A run ganscope trained has none;
:class:`~ganscope.config.RunConfig` holds one as its ``source`` (``docs/import.md``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import GanscopeError, lookup

#: ``ganscope import``: the formats of a generator trained elsewhere, the latent distributions
#: it may expect and the output ranges it may declare (``docs/import.md``).
IMPORT_FORMATS = ("torchscript", "onnx", "state_dict")
LATENTS = ("normal", "uniform")
OUTPUT_RANGES = ("-1,1", "0,1")
#: The model name of every imported run (it names no registered family).
IMPORTED = "imported"


@dataclass(frozen=True)
class SourceConfig:
    """Where an imported generator came from (``ganscope import``); empty (``format`` "") for
    a run ganscope trained, whose ``config.json`` then has no ``source`` at all. One entry of
    ``files``, ``sha256`` and ``epochs`` per imported file."""

    format: str = ""
    files: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()
    epochs: tuple[int, ...] = ()
    #: ``state_dict``: the class, ``module:Class`` (a module's ``.py`` file is kept in the run)
    module: str = ""
    #: ``state_dict``: the class's keyword arguments, as JSON
    class_args: str = "{}"
    latent: str = "normal"
    output_range: str = "-1,1"
    #: Who wrote the file when it says so (ganscope's exports: "ganscope 0.1.0"), else "".
    producer: str = ""

    @property
    def imported(self) -> bool:
        return bool(self.format)

    def validate(self) -> None:
        lookup(dict.fromkeys(IMPORT_FORMATS), self.format, "import format")
        lookup(dict.fromkeys(LATENTS), self.latent, "latent distribution")
        lookup(dict.fromkeys(OUTPUT_RANGES), self.output_range, "output range")
        if not self.epochs or len({len(self.files), len(self.sha256), len(self.epochs)}) != 1:
            raise GanscopeError("an imported run needs one file, checksum and epoch each")
        if len(set(self.epochs)) != len(self.epochs) or min(self.epochs) < 1:
            raise GanscopeError(f"imported epochs must differ and be 1 or more: {self.epochs}")
        if (self.format == "state_dict") != bool(self.module):
            raise GanscopeError("a state_dict needs its module:Class (and only it has one)")

    @classmethod
    def from_dict(cls, raw: Any) -> SourceConfig:
        known = {f.name: f.default for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or set(raw) - set(known):
            raise GanscopeError("config.json: 'source' is not an imported generator's record")
        values = {}
        for key, value in raw.items():
            if isinstance(known[key], tuple):
                ok = isinstance(value, list | tuple) and all(
                    isinstance(v, int if key == "epochs" else str) for v in value
                )
                value = tuple(value) if ok else None
            else:
                ok = isinstance(value, str)
            if not ok:
                raise GanscopeError(f"config.json: source.{key} has the wrong type ({value!r})")
            values[key] = value
        return cls(**values)
