"""``train --tensorboard``: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import importlib.util

import pytest

from ganscope import cli, trainer, training
from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.errors import GanscopeError

pytest.importorskip("tensorboard")


def _events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_steps_epochs_quality_and_grids_with_their_steps_and_resume_appends_once(
    tmp_path, small_split, fashion_dir, monkeypatch
):
    config = RunConfig(
        DataConfig(data_dir=str(fashion_dir)),
        ModelConfig("mlp"),
        TrainConfig(
            epochs=2, device="cpu", log_every=2, tensorboard=True, eval_every=1, eval_samples=100
        ),
    )
    real_step, calls = training.train_step, []

    def dying_step(*args):
        calls.append(1)
        if len(calls) == 9:  # epoch 2: steps 6-8 are logged, the checkpoint is epoch 1's
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(training, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    monkeypatch.setattr(training, "train_step", real_step)
    run = trainer.resume(tmp_path / "run", split=small_split, progress=False)

    events = _events(run)
    tags = events.Tags()
    for name in training.STEP_STATS:
        steps = [e.step for e in events.Scalars(f"step/{name}")]
        assert steps == list(range(1, 11)), name  # 6-8 from the killed process purged
        assert [e.step for e in events.Scalars(f"epoch/{name}")] == [5, 10]
    logged = {e.step: e.value for e in events.Scalars("step/loss_D")}
    assert logged == {r["step"]: pytest.approx(r["loss_D"]) for r in run.metrics("step")}
    assert [e.step for e in events.Scalars("epoch/images_per_second")] == [5, 10]
    fid = [(e.step, e.value) for e in events.Scalars("quality/fid")]
    evaluations = run.metrics("eval")
    assert fid == [(r["step"], pytest.approx(r["fid"])) for r in evaluations]
    assert [e.step for e in events.Scalars("quality/recall")] == [5, 10]
    assert "samples/fixed_z" in tags["images"]
    images = events.Images("samples/fixed_z")
    assert [e.step for e in images] == [5, 10]
    assert (images[0].width, images[0].height) == (8 * 30 + 2, 8 * 30 + 2)


def test_without_the_package_the_flag_fails_at_once_naming_the_install(
    tmp_path, monkeypatch, capsys
):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name)
    )
    with pytest.raises(GanscopeError, match=r"pip install 'ganscope\[tensorboard\]'"):
        TrainConfig(tensorboard=True).validate()
    code = cli.main(["train", "--tensorboard", "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "ganscope: error: --tensorboard needs the tensorboard package: "
        "pip install 'ganscope[tensorboard]'"
    )
    assert not (tmp_path / "r").exists()
