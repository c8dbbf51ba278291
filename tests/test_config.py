import dataclasses

import pytest

from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.errors import GanscopeError


def test_defaults_are_the_reports():
    train = TrainConfig()
    assert (train.lr, train.epochs, train.batch_size, train.beta1) == (2e-4, 10, 64, 0.5)
    assert ModelConfig().z_dim == 100


def test_roundtrip_and_frozen():
    config = RunConfig(DataConfig(limit=5), ModelConfig("cnn"), TrainConfig(epochs=3, seed=7))
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.epochs = 4


def test_unknown_keys_rejected():
    raw = RunConfig().to_dict()
    raw["train"]["warmup"] = 3
    with pytest.raises(GanscopeError, match="warmup"):
        RunConfig.from_dict(raw)


def test_retired_settings_of_older_run_folders_are_read_and_dropped():
    """The shipped runs and older run folders hold ``cuda_graph_unchecked`` (retired once the
    gate it opened was lifted); they still load, and nothing else slips through with it."""
    raw = RunConfig(train=TrainConfig(seed=4)).to_dict()
    raw["train"]["cuda_graph_unchecked"] = True
    assert RunConfig.from_dict(raw) == RunConfig(train=TrainConfig(seed=4))
    raw["model"]["cuda_graph_unchecked"] = True  # retired from train only
    with pytest.raises(GanscopeError, match="unknown model settings"):
        RunConfig.from_dict(raw)


@pytest.mark.parametrize(
    "train, message",
    [
        (TrainConfig(epochs=0), "--epochs"),
        (TrainConfig(batch_size=0), "--batch-size"),
        (TrainConfig(lr=0), "--lr"),
        (TrainConfig(lr=float("nan")), "--lr"),
        (TrainConfig(beta1=1.0), "--beta1"),
    ],
)
def test_validation(train, message):
    with pytest.raises(GanscopeError, match=message):
        RunConfig(train=train).validate()


def test_mechanics_may_change_on_resume_and_reuse():
    from ganscope.config import RESUMABLE

    assert RESUMABLE == {
        "epochs": "train",
        "data_dir": "data",
        "device": "train",
        "log_every": "train",
        "cuda_graph": "train",
        "tensorboard": "train",
        "checkpoint_minutes": "train",
    }
    moved = RunConfig().with_changes(device="cpu", data_dir="/elsewhere", cuda_graph=False)
    assert moved.method() == RunConfig().method() and moved != RunConfig()
    assert RunConfig().with_changes(epochs=3).method() != RunConfig().method()
