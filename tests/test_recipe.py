"""The techniques behind ``--preset improved`` (``recipe``) and the seed preset's pin."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ganscope import recipe, training
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.models import build_generator

TECHNIQUES = {
    "hinge": {"loss": "hinge"},
    "ttur": {"lr_d": 4e-4},
    "ema": {"ema": 0.99},
    "r1": {"r1_gamma": 1.0, "r1_every": 2},
    # The CNN GAN (BatchNorm in G: the average's standing statistics at every epoch's end).
    "spectral-norm+ema-cnn": {"spectral_norm": True, "ema": 0.99},
    "improved-cnn": {"preset": "improved", **recipe.PRESETS["improved"]["cnn"]},
    "label-smoothing": {"label_smoothing": 0.1},
    "instance-noise": {"instance_noise": 0.1},
    "dropout": {"d_dropout": 0.3},
}


def test_the_seed_preset_is_the_report_recipe_exactly():
    seed = TrainConfig()
    assert (seed.epochs, seed.batch_size, seed.lr, seed.beta1, seed.beta2) == (
        10, 64, 2e-4, 0.5, 0.999,
    )  # fmt: skip
    assert (seed.preset, seed.loss, seed.lr_d, seed.ema, seed.r1_gamma) == (
        "seed",
        "bce",
        None,
        0,
        0,
    )
    assert not seed.spectral_norm and seed.label_smoothing == seed.instance_noise == 0
    for model in ("mlp", "cnn"):
        assert recipe.with_preset(seed, model) == seed


def test_flags_given_override_the_preset(monkeypatch):
    monkeypatch.setitem(recipe.PRESETS, "test", {"mlp": {"ema": 0.9, "loss": "hinge"}})
    chosen = recipe.with_preset(TrainConfig(preset="test", ema=0.5), "mlp", keep={"ema"})
    assert (chosen.ema, chosen.loss) == (0.5, "hinge")
    with pytest.raises(training.GanscopeError, match="no recipe for the cnn GAN"):
        recipe.with_preset(TrainConfig(preset="test"), "cnn")


def test_losses_and_penalty_on_known_values():
    d_real, d_fake = torch.tensor([[2.0], [-0.5]]), torch.tensor([[0.5], [-3.0]])
    hinge = TrainConfig(loss="hinge")
    # relu(1 - [2, -0.5]) = [0, 1.5]; relu(1 + [0.5, -3]) = [1.5, 0]
    assert recipe.d_loss(hinge, d_real, d_fake).item() == pytest.approx(0.75 + 0.75)
    assert recipe.g_loss(hinge, d_fake).item() == pytest.approx(1.25)
    smooth = TrainConfig(label_smoothing=0.1)
    expected = nn.functional.binary_cross_entropy_with_logits(d_real, torch.full((2, 1), 0.9))
    expected += nn.functional.binary_cross_entropy_with_logits(d_fake, torch.zeros(2, 1))
    assert recipe.d_loss(smooth, d_real, d_fake).item() == pytest.approx(expected.item())
    # D(x) = w . x: the gradient at every x is w, the penalty |w|^2.
    w = torch.tensor([3.0, 4.0])
    x = torch.randn(5, 2, requires_grad=True)
    assert recipe.r1_penalty((x @ w)[:, None], x).item() == pytest.approx(25.0)


def test_ema_update_and_noise_schedule():
    generator, average = nn.Linear(2, 2), nn.Linear(2, 2)
    old = average.weight.detach().clone()
    recipe.update_ema(average, generator, 0.1)  # the weight of G: 1 - decay
    assert torch.allclose(average.weight, 0.9 * old + 0.1 * generator.weight)
    # A 0-dim tensor (what a CUDA graph reads) gives the very same numbers as the float.
    twin = recipe.make_ema(average)
    recipe.update_ema(average, generator, 0.3)
    recipe.update_ema(twin, generator, torch.tensor(0.3))
    assert torch.equal(twin.weight, average.weight) and torch.equal(twin.bias, average.bias)
    assert not torch.equal(twin.weight, old)
    train = TrainConfig(epochs=4, instance_noise=0.2)
    assert [recipe.noise_std(train, e) for e in (1, 2, 4)] == pytest.approx([0.2, 0.15, 0.05])
    assert recipe.noise_std(TrainConfig(), 1) == 0


def test_dropout_masks_hidden_features_from_the_given_stream():
    from ganscope.models import build_discriminator

    torch.manual_seed(0)
    plain = build_discriminator("mlp")
    dropped = build_discriminator("mlp")
    dropped.load_state_dict(plain.state_dict())
    recipe.add_dropout(dropped, 0.5, torch.Generator().manual_seed(7))
    assert dropped.state_dict().keys() == plain.state_dict().keys()  # no layer, no parameter
    images = torch.randn(4, 1, 28, 28)
    first, second = dropped(images), dropped(images)
    assert not torch.equal(first, second)  # a new mask each forward
    # The masks are the stream's: the same seed gives the same outputs ...
    again = build_discriminator("mlp")
    again.load_state_dict(plain.state_dict())
    recipe.add_dropout(again, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(again(images), first)
    # ... which are fc2 on the kept hidden features, scaled by 1 / (1 - p).
    hidden = plain.nonlin1(plain.fc1(images.flatten(1)))
    keep = torch.rand(hidden.shape, generator=torch.Generator().manual_seed(7)) >= 0.5
    assert torch.allclose(first, plain.fc2(hidden * keep / 0.5))
    dropped.eval()  # no dropout outside training
    assert torch.equal(dropped(images), plain(images))


@pytest.mark.parametrize("decay", [0.999, 0.9999, 0.5, 0.01])
def test_the_table_of_average_weights_holds_the_ramp_as_float32(decay):
    """The weights a captured step reads are 1 - ema_decay(decay, step), rounded to float32
    as a Python number is when it weighs float32 tensors; the table grows as the steps do
    and its last entry holds once the ramp has reached ``decay``."""
    weights = recipe.EmaWeights(decay, "cpu")
    steps = [*range(0, 3000), 4095, 4096, 5000, 8989, 8990, 8991, 89990, 89991, 89992, 10**6]
    got = torch.stack([weights[s] for s in steps])
    expected = torch.tensor([1 - recipe.ema_decay(decay, s) for s in steps], dtype=torch.float32)
    assert torch.equal(got, expected)
    assert got.dtype == torch.float32 and got[0].dim() == 0
    assert len(weights.table) <= weights.ramp_steps <= 89993
    assert weights[10**9].item() == pytest.approx(1 - decay)


def test_the_average_ramps_up_and_gets_its_own_batchnorm_statistics():
    assert recipe.ema_decay(0.999, 0) == pytest.approx(0.1)  # forgets the initial weights
    assert recipe.ema_decay(0.999, 90) == pytest.approx(0.91)
    assert recipe.ema_decay(0.999, 10**6) == 0.999
    torch.manual_seed(0)
    generator = build_generator("cnn", 100)
    average = recipe.make_ema(generator)
    norm = average.norm1
    norm.running_mean.fill_(5.0)  # G's statistics, not the average's
    recipe.standing_statistics(average, 100, batch_size=16, batches=3)
    first = norm.running_mean.clone()
    norm.running_mean.fill_(-3.0)
    recipe.standing_statistics(average, 100, batch_size=16, batches=3)
    assert torch.equal(norm.running_mean, first)  # from the weights alone
    assert not average.training and norm.momentum == 0.1  # restored
    # The mean of the three batches' means of what norm1 sees.
    seen = []
    handle = norm.register_forward_hook(lambda m, args, out: seen.append(args[0].mean((0, 2, 3))))
    latent = torch.Generator().manual_seed(recipe.STANDING_SEED)
    average.train()
    with torch.no_grad():
        for _ in range(3):
            average(torch.randn(16, 100, generator=latent))
    handle.remove()
    assert torch.allclose(first, torch.stack(seen).mean(0), atol=1e-6)
    recipe.standing_statistics(build_generator("mlp", 100), 100, 16)  # no BatchNorm: nothing


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_each_technique_trains_resumes_exactly_and_keeps_the_report_generator(
    name, tmp_path, small_split
):
    def config(epochs):
        train = TrainConfig(epochs=epochs, device="cpu", seed=1, **TECHNIQUES[name])
        return RunConfig(
            model=ModelConfig("cnn" if name.endswith("-cnn") else "mlp"),
            train=train,
        )

    whole = training.train(config(2), tmp_path / "whole", split=small_split, progress=False)
    part = training.train(config(1), tmp_path / "part", split=small_split, progress=False)
    resumed = training.resume(part.path, epochs=2, split=small_split, progress=False)
    a, b = whole.load_checkpoint(), resumed.load_checkpoint()
    for key in ("generator", "discriminator", *(["generator_ema"] if "generator_ema" in a else [])):
        for tensor in a[key]:
            assert torch.equal(a[key][tensor], b[key][tensor]), (key, tensor)
    # The saved generator is the report's module (its weights the average with --ema).
    plain = build_generator(whole.config.model.name, 100)
    generator, _ = whole.generator_at()
    assert generator.state_dict().keys() == plain.state_dict().keys()
    if name == "ema":
        assert torch.equal(generator.fc1.weight, a["generator_ema"]["fc1.weight"])
        assert not torch.equal(generator.fc1.weight, a["generator"]["fc1.weight"])
    if name.endswith("ema-cnn"):  # the saved average has statistics of its own, not G's
        saved = a["generator_ema"]["norm1.running_mean"]
        assert torch.equal(generator.norm1.running_mean, saved)
        assert not torch.equal(saved, a["generator"]["norm1.running_mean"])
    seed = RunConfig(model=whole.config.model, train=TrainConfig(epochs=1, device="cpu", seed=1))
    plain_run = training.train(seed, tmp_path / "seed", split=small_split, progress=False)
    assert plain_run.metrics("step")[-1]["loss_D"] != part.metrics("step")[-1]["loss_D"]


def test_the_cli_applies_a_preset_and_bad_values_are_refused(tmp_path, fashion_dir, monkeypatch):
    from ganscope import cli, runs

    monkeypatch.setitem(recipe.PRESETS, "test", {"mlp": {"ema": 0.9, "loss": "hinge"}})
    out = tmp_path / "r"
    argv = ["train", "--preset", "test", "--ema", "0.5", "--limit", "128", "--epochs", "1"]
    assert (
        cli.main([*argv, "--data-dir", str(fashion_dir), "--out", str(out), "--no-progress"]) == 0
    )
    train = runs.load_run(out).config.train
    assert (train.preset, train.loss, train.ema) == ("test", "hinge", 0.5)
    for bad, message in (
        ({"loss": "wgan"}, "--loss must be bce or hinge"),
        ({"ema": 1.0}, "--ema must be in"),
        ({"lr_d": 0.0}, "--lr-d must be a positive"),
        ({"r1_every": 0}, "--r1-every must be at least 1"),
        ({"d_dropout": 1.0}, "--d-dropout must be in"),
        ({"preset": "best"}, "unknown preset 'best'"),
    ):
        with pytest.raises(training.GanscopeError, match=message):
            dataclasses.replace(TrainConfig(), **bad).validate()


def test_the_improved_preset_is_defined_where_it_was_measured():
    """docs/presets.md's chosen recipes: MLP moving average + spectral norm; CNN moving
    average + R1 of weight 3, G's learning rate x3 and D's x6 (`improved+r1_gamma=3` of the
    screen, on one CPU beside the seed preset)."""
    mlp = recipe.with_preset(TrainConfig(preset="improved"), "mlp")
    assert (mlp.ema, mlp.spectral_norm, mlp.r1_gamma, mlp.loss) == (0.999, True, 0, "bce")
    cnn = recipe.with_preset(TrainConfig(preset="improved"), "cnn")
    assert (cnn.ema, cnn.r1_gamma, cnn.r1_every, cnn.lr_d, cnn.lr) == (0.999, 3.0, 16, 1.2e-3, 6e-4)
    assert not cnn.spectral_norm and cnn.loss == "bce"
    for run in (mlp, cnn):  # the report's own settings stay
        assert (run.epochs, run.batch_size, run.beta1, run.beta2) == (10, 64, 0.5, 0.999)


def test_the_help_names_each_preset_as_flags_the_cli_takes(capsys):
    """`--preset`'s help spells each preset's recipe as flags, and those flags parse back
    into the preset's values."""
    from ganscope import cli

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for preset, per_model in recipe.PRESETS.items():
        for model, values in per_model.items():
            flags = recipe.as_flags(values)
            assert f"{preset} = " in shown and flags in shown, (preset, model)
            model = "mlp" if model == "*" else model
            parsed = cli.build_parser().parse_args(["train", "--model", model, *flags.split()])
            for key, value in values.items():
                assert getattr(parsed, f"train.{key}") == value, (preset, model, key)
