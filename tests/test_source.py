"""``source``: the record of an imported generator's origin, checked and round-tripped
through a run's ``config.json``."""

from __future__ import annotations

import pytest

from ganscope.config import RunConfig
from ganscope.errors import GanscopeError
from ganscope.source import SourceConfig


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format": "pickle"}, "unknown import format"),
        ({"epochs": ()}, "one file, checksum and epoch"),
        ({"epochs": (0,)}, "1 or more"),
        ({"module": "m:C"}, "module:Class"),
        ({"latent": "cauchy"}, "latent distribution"),
    ],
)
def test_a_source_record_is_checked(changes, message):
    good = {"format": "torchscript", "files": ("g.pt",), "sha256": ("0" * 64,), "epochs": (1,)}
    SourceConfig(**good).validate()
    with pytest.raises(GanscopeError, match=message):
        SourceConfig(**{**good, **changes}).validate()


def test_the_source_record_round_trips_and_refuses_wrong_types():
    plain = RunConfig()
    assert "source" not in plain.to_dict()  # a trained run's config.json is as before
    source = SourceConfig(format="onnx", files=("g.onnx",), sha256=("a" * 64,), epochs=(3,))
    raw = RunConfig(source=source).to_dict()
    assert RunConfig.from_dict(raw).source == source
    raw["source"]["epochs"] = ["3"]
    with pytest.raises(GanscopeError, match="source.epochs has the wrong type"):
        RunConfig.from_dict(raw)
