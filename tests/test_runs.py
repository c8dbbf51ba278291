import json
import pickle
import shutil
import warnings

import pytest
import torch

from ganscope import cli, runs, trainer
from ganscope.config import RunConfig, TrainConfig
from ganscope.errors import GanscopeError


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_split):
    path = tmp_path_factory.mktemp("runs") / "run"
    config = RunConfig(train=TrainConfig(epochs=1, device="cpu"))
    return trainer.train(config, path, split=small_split, progress=False)


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


def _damaged(trained, tmp_path, content: bytes):
    copy = tmp_path / "copy"
    shutil.copytree(trained.path, copy)
    checkpoint = copy / "checkpoints" / "last.pt"
    checkpoint.write_bytes(content(checkpoint.read_bytes()))
    return copy


def test_truncated_checkpoint_is_a_clear_error_in_ganscope_words(trained, tmp_path, capsys):
    copy = _damaged(trained, tmp_path, lambda data: data[:1000])
    with pytest.raises(GanscopeError, match="last.pt is unreadable: the file is cut off"):
        runs.load_run(copy).generator()
    for argv in (["sample", str(copy)], ["export", str(copy), "--format", "torchscript"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cut off" in err, err
        assert "miniz" not in err and "PytorchStreamReader" not in err


def test_a_checkpoint_of_foreign_pickles_is_one_line_with_no_warning(trained, tmp_path, capsys):
    """Protocol 5 and an opcode torch's safe unpickler refuses: torch would warn about the
    protocol before failing; ganscope says one line."""
    copy = _damaged(trained, tmp_path, lambda data: pickle.dumps({"a": 1}, protocol=5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked warning fails the test
        assert cli.main(["sample", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never unpickles" in err, err


def test_generator_by_epoch(trained, tmp_path, small_split):
    """Each epoch's generator holds the weights saved after that epoch, in eval mode; the
    latest is the last epoch's."""
    copy = tmp_path / "run"
    shutil.copytree(trained.path, copy)
    run = trainer.resume(copy, epochs=2, split=small_split, progress=False)
    first, second, latest = run.generator(epoch=1), run.generator(epoch=2), run.generator()
    saved = torch.load(run.snapshot_path(1), weights_only=True)["generator"]
    assert first.state_dict().keys() == saved.keys()
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert torch.equal(latest.fc1.weight, second.fc1.weight)
    assert not torch.equal(first.fc1.weight, second.fc1.weight)
    assert not first.training and not latest.training
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


def test_grids_beside_the_epoch_grids_are_left_out(trained, tmp_path, capsys):
    """A stray samples/epoch_abc.png (or a copy someone made) is not an epoch's grid:
    `animate` builds its GIF from the real ones instead of failing."""
    copy = tmp_path / "copy"
    shutil.copytree(trained.path, copy)
    grid = copy / "samples" / "epoch_001.png"
    for stray in ("epoch_abc.png", "epoch_001 copy.png", "epoch_.png", "epoch_٣.png"):
        shutil.copy(grid, grid.with_name(stray))
    run = runs.load_run(copy)
    assert run.sample_grid_paths() == {1: grid}
    assert cli.main(["animate", str(copy), "--out", str(tmp_path / "a.gif")]) == 0
    assert (tmp_path / "a.gif").stat().st_size > 0
