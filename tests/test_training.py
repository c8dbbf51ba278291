import json
import math

import pytest
import torch

from conftest import train_interrupted_after_epoch_1
from ganscope import atomic, runs, trainer, training
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.errors import GanscopeError, TrainingDiverged
from ganscope.state import init_state


def _config(model="mlp", epochs=3, seed=0, **train):
    return RunConfig(
        model=ModelConfig(model), train=TrainConfig(epochs=epochs, seed=seed, device="cpu", **train)
    )


def _weights(run):
    state = run.load_checkpoint()
    return {
        **{f"G.{k}": v for k, v in state["generator"].items()},
        **{f"D.{k}": v for k, v in state["discriminator"].items()},
    }


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_one_step_updates_both_players(model, small_split):
    config = _config(model)
    state = init_state(config, torch.device("cpu"))
    before_G = [p.clone() for p in state.generator.parameters()]
    before_D = [p.clone() for p in state.discriminator.parameters()]
    real = training.to_model_range(small_split.images[:64])
    stats = training.train_step(state, real, torch.randn(64, 100))
    assert stats.shape == (4,) and all(math.isfinite(v) for v in stats.tolist())
    assert 0 <= stats[2] <= 1 and 0 <= stats[3] <= 1
    assert all(not torch.equal(a, b) for a, b in zip(before_G, state.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_D, state.discriminator.parameters()))
    assert all(p.requires_grad for p in state.discriminator.parameters())


def test_g_update_leaves_no_gradient_on_d(small_split):
    # D's weights are frozen during G's backward: D's .grad after the step must be exactly
    # the gradient of loss_D alone, not loss_D's plus loss_G's.
    import copy

    import torch.nn.functional as F

    state = init_state(_config("cnn"), torch.device("cpu"))
    G, D = copy.deepcopy(state.generator), copy.deepcopy(state.discriminator)
    real = training.to_model_range(small_split.images[:64])
    z = torch.randn(64, 100, generator=torch.Generator().manual_seed(5))
    d_real, d_fake = D(real), D(G(z).detach())
    loss_D = F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    loss_D.backward()
    training.train_step(state, real, z)
    for expected, actual in zip(D.parameters(), state.discriminator.parameters()):
        torch.testing.assert_close(actual.grad, expected.grad, rtol=1e-5, atol=1e-7)


def test_step_losses_match_the_textbook_formulas(small_split):
    config = _config("mlp")
    state = init_state(config, torch.device("cpu"))
    real = training.to_model_range(small_split.images[:64])
    z = torch.randn(64, 100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        p_real = torch.sigmoid(state.discriminator(real))
        p_fake = torch.sigmoid(state.discriminator(state.generator(z)))
        expected_D = -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean())
    stats = training.train_step(state, real, z)
    assert stats[0].item() == pytest.approx(expected_D.item(), rel=1e-5)
    assert stats[2].item() == pytest.approx(p_real.mean().item(), rel=1e-5)
    assert stats[3].item() == pytest.approx(p_fake.mean().item(), rel=1e-5)


def test_run_folder_contents(tmp_path, small_split):
    run = trainer.train(
        _config(epochs=2),
        tmp_path / "run",
        split=small_split,
        progress=False,
        command=["ganscope", "train"],
    )
    loaded = runs.load_run(tmp_path / "run")
    assert loaded.config == run.config
    assert loaded.meta["commands"] == [["ganscope", "train"]]
    steps, epochs = loaded.metrics("step"), loaded.metrics("epoch")
    assert [r["step"] for r in steps] == list(range(1, 11))  # 320 images / 64 = 5 per epoch
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert set(training.STEP_STATS) <= set(steps[0])
    assert epochs[0]["loss_D"] == pytest.approx(sum(r["loss_D"] for r in steps[:5]) / 5)
    for epoch in (1, 2):
        assert loaded.sample_grid_path(epoch).is_file()
    assert (loaded.path / "figures" / "losses.png").is_file()
    assert loaded.generator_epochs() == [1, 2]
    checkpoint = loaded.load_checkpoint()
    assert checkpoint["epoch"] == 2 and checkpoint["step"] == 10
    assert {"generator", "discriminator", "opt_G", "opt_D", "rng", "config"} <= set(checkpoint)
    assert not list(loaded.path.rglob("*.tmp")), "atomic writes left temporary files"
    G = loaded.generator()
    assert not G.training and G(torch.zeros(2, 100)).shape == (2, 1, 28, 28)


def test_same_seed_same_weights_other_seed_differs(tmp_path, small_split):
    a = trainer.train(_config(epochs=1), tmp_path / "a", split=small_split, progress=False)
    b = trainer.train(_config(epochs=1), tmp_path / "b", split=small_split, progress=False)
    c = trainer.train(_config(epochs=1, seed=1), tmp_path / "c", split=small_split, progress=False)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


class StopAfterEpoch(Exception):
    pass


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_resume_after_epoch_is_bit_exact(tmp_path, small_split, model):
    config = _config(model, epochs=3)
    full = trainer.train(config, tmp_path / "full", split=small_split, progress=False)
    train_interrupted_after_epoch_1(config, tmp_path / "cut", small_split)
    assert runs.load_run(tmp_path / "cut").load_checkpoint()["epoch"] == 1
    resumed = trainer.resume(tmp_path / "cut", split=small_split, progress=False)
    w_full, w_resumed = _weights(full), _weights(resumed)
    assert all(torch.equal(w_full[k], w_resumed[k]) for k in w_full)
    assert _without_timing(resumed.metrics()) == _without_timing(full.metrics())


def _without_timing(records):
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in records
    ]


def test_resume_after_mid_epoch_kill(tmp_path, small_split, monkeypatch):
    full = trainer.train(
        _config("mlp", epochs=2), tmp_path / "full", split=small_split, progress=False
    )
    real_step = training.train_step
    calls = {"n": 0}

    def dying_step(state, real, z):
        calls["n"] += 1
        if calls["n"] == 8:  # in the middle of epoch 2, after 2 steps were logged
            raise KeyboardInterrupt
        return real_step(state, real, z)

    monkeypatch.setattr(training, "train_step", dying_step)
    # log_every=1 so that the steps of the unfinished epoch reach the log before the kill.
    logged_each_step = _config("mlp", epochs=2, log_every=1)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(logged_each_step, tmp_path / "cut", split=small_split, progress=False)
    monkeypatch.setattr(training, "train_step", real_step)
    cut = runs.load_run(tmp_path / "cut")
    assert max(r["step"] for r in cut.metrics()) == 7  # steps of the unfinished epoch logged
    resumed = trainer.resume(tmp_path / "cut", split=small_split, progress=False)
    assert [r["step"] for r in resumed.metrics("step")] == list(range(1, 11))
    w_full, w_resumed = _weights(full), _weights(resumed)
    assert all(torch.equal(w_full[k], w_resumed[k]) for k in w_full)


def _kill_at_call(monkeypatch, n):
    """Make the n-th train_step call raise KeyboardInterrupt; returns the call counter."""
    real_step, calls = training.train_step, {"n": 0}

    def dying_step(state, real, z):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real_step(state, real, z)

    monkeypatch.setattr(training, "train_step", dying_step)
    return calls


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_mid_epoch_checkpoint_resumes_where_it_stopped(tmp_path, small_split, monkeypatch, model):
    # log_every=2 and a tiny interval: a mid-epoch checkpoint after every logged pair of steps.
    config = _config(model, epochs=2, log_every=2, checkpoint_minutes=1e-9)
    full = trainer.train(config, tmp_path / "full", split=small_split, progress=False)
    assert not full.partial_checkpoint_path.exists()  # removed when its epoch finished

    _kill_at_call(monkeypatch, 9)  # epoch 2 (steps 6-10): dies in step 9
    with pytest.raises(KeyboardInterrupt):
        trainer.train(config, tmp_path / "cut", split=small_split, progress=False)
    cut = runs.load_run(tmp_path / "cut")
    partial = cut.load_partial_checkpoint()
    assert (partial["epoch"], partial["step"], partial["position"]) == (1, 7, 2)

    calls = _kill_at_call(monkeypatch, 0)  # count the steps the resumed run redoes
    resumed = trainer.resume(tmp_path / "cut", split=small_split, progress=False)
    assert calls["n"] == 3  # steps 8, 9, 10: nothing before the kill is trained twice
    assert not resumed.partial_checkpoint_path.exists()
    w_full, w_resumed = _weights(full), _weights(resumed)
    assert all(torch.equal(w_full[k], w_resumed[k]) for k in w_full)
    assert _without_timing(resumed.metrics()) == _without_timing(full.metrics())


def test_no_mid_epoch_checkpoint_when_off(tmp_path, small_split, monkeypatch):
    config = _config(epochs=2, log_every=1, checkpoint_minutes=0)
    _kill_at_call(monkeypatch, 9)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(config, tmp_path / "cut", split=small_split, progress=False)
    assert not runs.load_run(tmp_path / "cut").partial_checkpoint_path.exists()


def test_unreadable_mid_epoch_checkpoint_falls_back_to_the_epoch(tmp_path, small_split):
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    run.partial_checkpoint_path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="partial.pt is unreadable.*last finished epoch"):
        resumed = trainer.resume(tmp_path / "run", epochs=2, split=small_split, progress=False)
    assert [r["epoch"] for r in resumed.metrics("epoch")] == [1, 2]


def test_resume_can_extend_and_refuses_a_finished_run(tmp_path, small_split):
    trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    with pytest.raises(GanscopeError, match="already finished 1 of 1"):
        trainer.resume(tmp_path / "run", split=small_split, progress=False)
    run = trainer.resume(tmp_path / "run", epochs=2, split=small_split, progress=False)
    assert run.config.train.epochs == 2
    assert runs.load_run(tmp_path / "run").config.train.epochs == 2
    assert [r["epoch"] for r in run.metrics("epoch")] == [1, 2]


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, small_split, monkeypatch):
    real_step = training.train_step
    calls = {"n": 0}

    def poisoning_step(state, real, z):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2: G's weights blow up, as in a real divergence
            with torch.no_grad():
                state.generator.fc2.weight.fill_(float("nan"))
        return real_step(state, real, z)

    monkeypatch.setattr(training, "train_step", poisoning_step)
    with pytest.raises(TrainingDiverged, match="non-finite at step 7 .*epoch 2.*last.pt"):
        trainer.train(_config(epochs=3), tmp_path / "run", split=small_split, progress=False)
    run = runs.load_run(tmp_path / "run")
    checkpoint = run.load_checkpoint()
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["generator"].values())
    assert run.generator_epochs() == [1]


def test_too_little_data_for_one_batch(tmp_path, small_split):
    with pytest.raises(GanscopeError, match="fewer than one batch"):
        trainer.train(_config(batch_size=1000), tmp_path / "run", split=small_split, progress=False)


def test_existing_run_folder_is_not_overwritten(tmp_path, small_split):
    trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    with pytest.raises(GanscopeError, match="already holds a run.*--resume"):
        trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)


def test_resume_rebuilds_an_epoch_record_lost_to_a_kill(tmp_path, small_split):
    # A kill right after last.pt was replaced, before the epoch record reached the log.
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    kept = [r for r in run.metrics() if r["kind"] != "epoch"]
    atomic.write_bytes(run.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())
    resumed = trainer.resume(tmp_path / "run", epochs=2, split=small_split, progress=False)
    epochs = resumed.metrics("epoch")
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[0]["reconstructed"] is True
    assert epochs[0]["loss_D"] == pytest.approx(
        sum(r["loss_D"] for r in resumed.metrics("step")[:5]) / 5
    )


def test_resume_on_another_device_type_warns_and_continues(tmp_path, small_split):
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    checkpoint = run.load_checkpoint()
    checkpoint["rng"]["noise_device"] = "cuda"  # as if trained on a GPU
    atomic.torch_save(checkpoint, run.checkpoint_path)
    with pytest.warns(UserWarning, match="trained on cuda"):
        resumed = trainer.resume(tmp_path / "run", epochs=2, split=small_split, progress=False)
    assert [r["epoch"] for r in resumed.metrics("epoch")] == [1, 2]


@pytest.mark.parametrize(
    "config, message",
    [
        (RunConfig(model=ModelConfig("gpt")), "unknown model 'gpt'"),
        (RunConfig(train=TrainConfig(batch_size=1000)), "fewer than one batch"),
        (RunConfig(train=TrainConfig(seed=-1)), "--seed must be in"),
    ],
)
def test_a_bad_config_makes_no_folder(tmp_path, small_split, config, message):
    with pytest.raises(GanscopeError, match=message):
        trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert not (tmp_path / "run").exists()


def test_bf16_without_hardware_support_makes_no_folder(tmp_path, small_split, monkeypatch):
    from ganscope import devices

    monkeypatch.setattr(devices, "native_bf16", lambda device: False)
    config = RunConfig(model=ModelConfig("cnn"), train=TrainConfig(device="cpu", precision="bf16"))
    with pytest.raises(GanscopeError, match="needs native bf16"):
        trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_failed_resume_leaves_the_config_alone(tmp_path, small_split):
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    before = run.config_path.read_bytes()
    with pytest.raises(GanscopeError, match="cannot change"):
        trainer.resume(run.path, batch_size=32, epochs=2, split=small_split, progress=False)
    tiny = small_split.__class__(
        small_split.images[:10],
        small_split.labels[:10],
        small_split.classes,
        "fashion-mnist",
        "train",
    )
    with pytest.raises(GanscopeError, match="fewer than one batch"):
        trainer.resume(run.path, epochs=2, split=tiny, progress=False)
    assert run.config_path.read_bytes() == before
