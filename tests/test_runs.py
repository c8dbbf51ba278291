import json

import pytest

from ganscope import runs, training
from ganscope.config import RunConfig, TrainConfig
from ganscope.errors import GanscopeError


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_split):
    path = tmp_path_factory.mktemp("runs") / "run"
    config = RunConfig(train=TrainConfig(epochs=1, device="cpu"))
    return training.train(config, path, split=small_split, progress=False)


def test_missing_and_foreign_folders(tmp_path):
    with pytest.raises(GanscopeError, match="does not exist"):
        runs.load_run(tmp_path / "nope")
    with pytest.raises(GanscopeError, match="not a ganscope run folder"):
        runs.load_run(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(GanscopeError, match="unreadable"):
        runs.load_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 99, "config": {}}))
    with pytest.raises(GanscopeError, match="format 99"):
        runs.load_run(tmp_path)


def test_run_without_checkpoint(tmp_path):
    run = runs.create_run(tmp_path / "fresh", RunConfig())
    with pytest.raises(GanscopeError, match="has no checkpoint yet"):
        run.generator()


def test_truncated_checkpoint_is_a_clear_error(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained.path, copy)
    checkpoint = copy / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(GanscopeError, match="unreadable"):
        runs.load_run(copy).generator()


def test_generator_by_epoch(trained):
    assert trained.generator(epoch=1) is not None
    with pytest.raises(GanscopeError, match="no generator for epoch 5"):
        trained.generator(epoch=5)


def test_metrics_survive_a_cut_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    runs.append_metrics(path, [{"kind": "step", "step": 1}, {"kind": "step", "step": 2}])
    with path.open("a") as stream:
        stream.write('{"kind": "st')
    assert [r["step"] for r in runs.read_metrics(path)] == [1, 2]
    runs.truncate_metrics(path, 1)
    assert [r["step"] for r in runs.read_metrics(path)] == [1]


def test_latest_epoch_reads_only_the_header(trained, monkeypatch):
    import torch

    calls = []
    real_load = torch.load

    def spying_load(*args, **kwargs):
        calls.append(kwargs.get("mmap"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spying_load)
    assert trained.latest_epoch() == 1
    assert calls == [True]  # the tensors are mapped, not read


def test_find_evaluation_by_header_not_by_name(tmp_path, trained):
    from ganscope import atomic

    run = runs.load_run(trained.path)
    for n, fid in ((10000, 1.0), (2000, 2.0)):  # "..._n10000" sorts before "..._n2000"
        record = {**run.result_header(1, n, 0, "abc"), "fid": fid}
        atomic.write_json(run.evaluation_path(1, 0, n), record)
    try:
        assert run.find_evaluation(epoch=1, seed=0, classifier_sha256="abc")["fid"] == 1.0
        assert run.find_evaluation(epoch=1, n=2000)["fid"] == 2.0
        assert run.find_evaluation(epoch=2) is None
    finally:
        for n in (10000, 2000):
            run.evaluation_path(1, 0, n).unlink()
