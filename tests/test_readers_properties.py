"""Property-based tests of every reader of user-supplied files: whatever the bytes, each reader
either loads them correctly or raises GanscopeError, never anything else.

About 10,000 generated inputs per run (the counts are in the settings below), in well under a
minute on two cores. New input surfaces (the web explorer, torchrun, export) join this file.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganscope import checkpoints, runs
from ganscope.config import FORMAT_VERSION, RunConfig
from ganscope.data import parse_idx
from ganscope.errors import GanscopeError
from ganscope.readings import is_complete, rows_to_csv


def examples(n: int) -> settings:
    """``n`` generated inputs, the same ones every run (CI must not flake), no time limit each."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _loads_or_refuses(load, *args):
    try:
        return load(*args)
    except GanscopeError as error:
        assert str(error) and "\n" not in str(error)
        return None


# -- IDX files ----------------------------------------------------------------------------------
@examples(3000)
@given(st.binary(max_size=64))
def test_idx_reader_on_any_bytes(payload):
    _loads_or_refuses(lambda: parse_idx(payload, source="x", expected_ndim=3))


@examples(2000)
@given(
    ndim=st.integers(0, 4),
    dims=st.lists(st.integers(0, 6), min_size=0, max_size=4),
    type_code=st.sampled_from([0x08, 0x08, 0x09, 0x0D]),
    extra=st.integers(-3, 3),
)
def test_idx_reader_on_near_valid_headers(ndim, dims, type_code, extra):
    dims = (dims + [1] * ndim)[:ndim]
    size = int(np.prod(dims)) if dims else 1
    header = bytes([0, 0, type_code, ndim]) + struct.pack(f">{ndim}I", *dims)
    payload = header + bytes(max(0, size + extra))
    array = _loads_or_refuses(lambda: parse_idx(payload, source="x", expected_ndim=ndim))
    if array is not None:  # loaded: then it is exactly what the header promised
        assert array.shape == tuple(dims) and type_code == 0x08
        assert len(payload) == len(header) + size


# -- config.json ----------------------------------------------------------------------------------
VALID_CONFIG = RunConfig().to_dict()


@st.composite
def near_valid_configs(draw):
    config = json.loads(json.dumps(VALID_CONFIG))
    section = draw(st.sampled_from(sorted(config)))
    key = draw(st.sampled_from(sorted(config[section]) + ["unknown_key"]))
    config[section][key] = draw(JSON)
    return config


@examples(1000)
@given(JSON)
def test_run_config_from_any_json(raw):
    config = _loads_or_refuses(RunConfig.from_dict, raw)
    if config is not None:
        _loads_or_refuses(config.validate)


@examples(1000)
@given(near_valid_configs())
def test_run_config_with_one_damaged_field(raw):
    config = _loads_or_refuses(RunConfig.from_dict, raw)
    if config is not None:
        _loads_or_refuses(config.validate)
        assert RunConfig.from_dict(config.to_dict()) == config


@examples(500)
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_run_folder_with_any_config_file(content):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / runs.CONFIG_FILE).write_bytes(content)
        _loads_or_refuses(runs.load_run, folder)


# -- metrics.jsonl --------------------------------------------------------------------------------
RECORD = st.fixed_dictionaries(
    {"kind": st.sampled_from(["step", "epoch", "eval"]), "step": st.integers(0, 50)}
)
LINE = (
    RECORD.map(json.dumps)
    | JSON.map(json.dumps)
    | st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s)
)


@examples(1500)
@given(st.lists(LINE, max_size=12), st.integers(0, 50))
def test_metrics_log_keeps_every_good_record(lines, last_step):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / runs.METRICS_FILE
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        records = _loads_or_refuses(runs.read_metrics, path)
        assert all(isinstance(r, dict) for r in records)
        expected = [
            r for r in records if not isinstance(r.get("step"), int) or r["step"] <= last_step
        ]
        _loads_or_refuses(runs.truncate_metrics, path, last_step)
        assert runs.read_metrics(path) == expected  # good records are never dropped


# -- checkpoints --------------------------------------------------------------------------------
TENSOR_VALUE = st.integers(-5, 5) | st.text(max_size=5) | st.builds(torch.zeros, st.integers(0, 3))
CHECKPOINT = st.dictionaries(
    st.sampled_from([*checkpoints.STATE_KEYS, "other"]),
    st.just(FORMAT_VERSION)
    | TENSOR_VALUE
    | st.dictionaries(st.text(max_size=4), TENSOR_VALUE, max_size=3),
    max_size=len(checkpoints.STATE_KEYS) + 1,
)


@examples(500)
@given(CHECKPOINT | TENSOR_VALUE)
def test_checkpoint_reader_on_any_content(content):
    buffer = io.BytesIO()
    torch.save(content, buffer)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.pt"
        path.write_bytes(buffer.getvalue())
        state = _loads_or_refuses(checkpoints.load, path)
        if state is not None:
            assert set(checkpoints.STATE_KEYS) <= set(state)
            assert state["format_version"] == FORMAT_VERSION


@examples(300)
@given(st.binary(max_size=300))
def test_checkpoint_reader_on_any_bytes(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.pt"
        path.write_bytes(content)
        _loads_or_refuses(checkpoints.load, path)


# -- evaluation and analysis records ------------------------------------------------------------
@examples(600)
@given(st.binary(max_size=100) | JSON.map(lambda v: json.dumps(v).encode()), JSON)
def test_result_records_on_any_content(content, header):
    with tempfile.TemporaryDirectory() as folder:
        run = runs.Run(Path(folder), RunConfig(), {})
        path = run.evaluation_path(1, 0, 10)
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        run.analysis.record.parent.mkdir(parents=True)
        run.analysis.record.write_bytes(content)
        header = header if isinstance(header, dict) else {}
        for record in run.evaluations():
            assert isinstance(record["n"], int) and isinstance(record["epoch"], int)
        _loads_or_refuses(lambda: run.find_evaluation(**header))
        record = run.analysis_record()
        assert record is None or isinstance(record, dict)
        if is_complete(record):  # (never raises on any content) then its readers work
            rows_to_csv(record["rows"])


def test_an_analysis_record_is_complete_only_with_what_its_readers_use():
    """Rows as ``directions.analyze`` makes them are complete; without any field that the
    CSV, the sentences (``text.describe``) or the explorer read, or without a delta, not."""
    from ganscope.classifier import load_classifier
    from ganscope.directions import analyze, axis_directions
    from ganscope.models import build_generator
    from ganscope.readings import _CSV_FIELDS

    torch.manual_seed(0)
    generator = build_generator("mlp", 100).eval()
    rows = analyze(
        generator, load_classifier(), axis_directions([3, 7], 100), [5.0], n=4, bootstrap=5
    )
    record = {"deltas": [5.0], "rows": rows}
    assert is_complete(record)
    read = {*_CSV_FIELDS, "minus_class_index", "plus_class_index"}
    for key in sorted(read):
        broken = copy.deepcopy(record)
        del broken["rows"][1][key]
        assert not is_complete(broken), key
    assert not is_complete({**record, "deltas": []})
    assert not is_complete({**record, "rows": {"0": rows[0]}})
    assert not is_complete(None) and not is_complete([record])
