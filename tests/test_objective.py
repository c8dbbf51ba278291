"""The GAN objective and its techniques (``objective``), each trained and resumed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganscope import objective, presets, trainer
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.models import build_generator

TECHNIQUES = {
    "hinge": {"loss": "hinge"},
    "ttur": {"lr_d": 4e-4},
    "ema": {"ema": 0.99},
    "ema-ramp": {"ema": 0.9999, "ema_ramp": 2.0},  # an average of every step alike
    "r1": {"r1_gamma": 1.0, "r1_every": 2},
    # The CNN GAN (BatchNorm in G: the average's standing statistics at every epoch's end).
    "spectral-norm+ema-cnn": {"spectral_norm": True, "ema": 0.99},
    "improved-cnn": {"preset": "improved", **presets.PRESETS["improved"]["cnn"]},
    "label-smoothing": {"label_smoothing": 0.1},
    "instance-noise": {"instance_noise": 0.1},
    "dropout": {"d_dropout": 0.3},
    "mode-seeking": {"mode_seeking": 1.0},
}


def test_losses_and_penalty_on_known_values():
    d_real, d_fake = torch.tensor([[2.0], [-0.5]]), torch.tensor([[0.5], [-3.0]])
    hinge = TrainConfig(loss="hinge")
    # relu(1 - [2, -0.5]) = [0, 1.5]; relu(1 + [0.5, -3]) = [1.5, 0]
    assert objective.d_loss(hinge, d_real, d_fake).item() == pytest.approx(0.75 + 0.75)
    assert objective.g_loss(hinge, d_fake).item() == pytest.approx(1.25)
    smooth = TrainConfig(label_smoothing=0.1)
    expected = nn.functional.binary_cross_entropy_with_logits(d_real, torch.full((2, 1), 0.9))
    expected += nn.functional.binary_cross_entropy_with_logits(d_fake, torch.zeros(2, 1))
    assert objective.d_loss(smooth, d_real, d_fake).item() == pytest.approx(expected.item())
    # D(x) = w . x: the gradient at every x is w, the penalty |w|^2.
    w = torch.tensor([3.0, 4.0])
    x = torch.randn(5, 2, requires_grad=True)
    assert objective.r1_penalty((x @ w)[:, None], x).item() == pytest.approx(25.0)


def test_mode_seeking_term_and_pairs_on_known_values():
    # Halves 0.5 apart in every pixel, latent halves 2 apart: 1 / (0.5 / 2 + eps).
    fake = torch.cat(
        [torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5), torch.ones(1, 1, 2, 2)]
    )
    z = torch.cat(
        [torch.zeros(2, 3), torch.full((2, 3), -2.0), torch.ones(1, 3)]
    )  # odd row left out
    assert objective.mode_seeking_loss(fake, z).item() == pytest.approx(1 / (0.25 + 1e-5))
    same = torch.zeros(4, 1, 2, 2)  # one image for different latent vectors: 1 / eps
    assert objective.mode_seeking_loss(same, torch.randn(4, 3)).item() == pytest.approx(1e5)
    # It pushes G's images of the two halves apart: its gradient against their difference.
    fake = torch.tensor([[0.1, 0.2], [0.3, 0.5]], requires_grad=True)
    objective.mode_seeking_loss(fake, torch.tensor([[0.0], [1.0]])).backward()
    assert (fake.grad[0] > 0).all() and (fake.grad[1] < 0).all()
    labels = torch.tensor([3, 1, 4, 1, 5])
    assert objective.paired_labels(labels).tolist() == [3, 1, 3, 1, 5]


def test_ema_update_and_noise_schedule():
    generator = nn.Linear(2, 2)
    average = objective.MovingAverage(nn.Linear(2, 2), decay=0.9)
    old = average.generator.weight.detach().clone()
    average.update(generator, 0.1)  # the weight of G: 1 - decay
    assert torch.allclose(average.generator.weight, 0.9 * old + 0.1 * generator.weight)
    assert not average.generator.weight.requires_grad and not average.generator.training
    # A 0-dim tensor (what a CUDA graph reads) gives the very same numbers as the float.
    twin = objective.MovingAverage(average.generator, decay=0.9)
    average.update(generator, 0.3)
    twin.update(generator, torch.tensor(0.3))
    assert torch.equal(twin.generator.weight, average.generator.weight)
    assert torch.equal(twin.generator.bias, average.generator.bias)
    assert not torch.equal(twin.generator.weight, old)
    # The weight of step s is 1 - the ramped decay, as a number and as the table's tensor.
    assert average.weight(5) == 1 - objective.ema_decay(0.9, 5)
    assert average.weights("cpu")[5].item() == pytest.approx(average.weight(5))
    train = TrainConfig(epochs=4, instance_noise=0.2)
    assert [objective.noise_std(train, e) for e in (1, 2, 4)] == pytest.approx([0.2, 0.15, 0.05])
    assert objective.noise_std(TrainConfig(), 1) == 0


def test_dropout_masks_hidden_features_from_the_given_stream():
    from ganscope.models import build_discriminator

    torch.manual_seed(0)
    plain = build_discriminator("mlp")
    dropped = build_discriminator("mlp")
    dropped.load_state_dict(plain.state_dict())
    objective.add_dropout(dropped, 0.5, torch.Generator().manual_seed(7))
    assert dropped.state_dict().keys() == plain.state_dict().keys()  # no layer, no parameter
    images = torch.randn(4, 1, 28, 28)
    first, second = dropped(images), dropped(images)
    assert not torch.equal(first, second)  # a new mask each forward
    # The masks are the stream's: the same seed gives the same outputs ...
    again = build_discriminator("mlp")
    again.load_state_dict(plain.state_dict())
    objective.add_dropout(again, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(again(images), first)
    # ... which are fc2 on the kept hidden features, scaled by 1 / (1 - p).
    hidden = plain.nonlin1(plain.fc1(images.flatten(1)))
    keep = torch.rand(hidden.shape, generator=torch.Generator().manual_seed(7)) >= 0.5
    assert torch.allclose(first, plain.fc2(hidden * keep / 0.5))
    dropped.eval()  # no dropout outside training
    assert torch.equal(dropped(images), plain(images))


@pytest.mark.parametrize("ramp", [objective.EMA_RAMP, 2.0, 3.5, 1.0])
@pytest.mark.parametrize("decay", [0.999, 0.9999, 0.5, 0.01])
def test_the_table_of_average_weights_holds_the_ramp_as_float32(decay, ramp):
    """The weights a captured step reads are 1 - ema_decay(decay, step, ramp), rounded to
    float32 as a Python number is when it weighs float32 tensors; the table grows as the
    steps do and its last entry holds once the ramp has reached ``decay``."""
    weights = objective.EmaWeights(decay, "cpu", ramp)
    steps = [*range(0, 3000), 4095, 4096, 5000, 8989, 8990, 8991, 9997, 9998, 9999, 19997]
    steps += [89990, 89991, 89992, 10**6]
    got = torch.stack([weights[s] for s in steps])
    expected = [1 - objective.ema_decay(decay, s, ramp) for s in steps]
    assert torch.equal(got, torch.tensor(expected, dtype=torch.float32))
    assert got.dtype == torch.float32 and got[0].dim() == 0
    assert len(weights.table) <= weights.ramp_steps <= 89993
    assert weights[10**9].item() == pytest.approx(1 - decay)


def test_a_smaller_ramp_keeps_more_of_the_run():
    """The ramp's constant R on known cases: at R 2 the average after T updates is the plain
    mean of the initial weights and G's T weights; at R 3 each step weighs by its index
    plus 2 (the initial weights 1 share, step s s + 2)."""
    assert objective.ema_decay(0.9999, 98, ramp=2) == pytest.approx(99 / 100)
    assert objective.ema_decay(0.9999, 0, ramp=1) == 0.9999  # no ramp: the decay from step 0
    for ramp, share in ((2.0, lambda s: 1.0), (3.0, lambda s: s + 2.0)):
        generator = nn.Linear(1, 1, bias=False)
        average = objective.MovingAverage(generator, decay=0.9999, ramp=ramp)
        average.generator.weight.data.fill_(-1.0)  # the initial weights: -1
        shares, values = [1.0], [-1.0]
        for step in range(40):
            generator.weight.data.fill_(float(step))  # G's weights at step s: s
            average.update(generator, average.weight(step))
            shares.append(share(step))
            values.append(float(step))
        mean = sum(w * v for w, v in zip(shares, values)) / sum(shares)
        assert average.generator.weight.item() == pytest.approx(mean, rel=1e-5)
    assert average.weights("cpu").ramp == 3.0


def test_the_average_ramps_up_and_gets_its_own_batchnorm_statistics():
    assert objective.ema_decay(0.999, 0) == pytest.approx(0.1)  # forgets the initial weights
    assert objective.ema_decay(0.999, 90) == pytest.approx(0.91)
    assert objective.ema_decay(0.999, 10**6) == 0.999
    torch.manual_seed(0)
    generator = build_generator("cnn", 100)
    average = objective.MovingAverage(generator, decay=0.999).generator
    norm = average.norm1
    norm.running_mean.fill_(5.0)  # G's statistics, not the average's
    objective.standing_statistics(average, 100, batch_size=16, batches=3)
    first = norm.running_mean.clone()
    norm.running_mean.fill_(-3.0)
    objective.standing_statistics(average, 100, batch_size=16, batches=3)
    assert torch.equal(norm.running_mean, first)  # from the weights alone
    assert not average.training and norm.momentum == 0.1  # restored
    # The mean of the three batches' means of what norm1 sees.
    seen = []
    handle = norm.register_forward_hook(lambda m, args, out: seen.append(args[0].mean((0, 2, 3))))
    latent = torch.Generator().manual_seed(objective.STANDING_SEED)
    average.train()
    with torch.no_grad():
        for _ in range(3):
            average(torch.randn(16, 100, generator=latent))
    handle.remove()
    assert torch.allclose(first, torch.stack(seen).mean(0), atol=1e-6)
    objective.standing_statistics(build_generator("mlp", 100), 100, 16)  # no BatchNorm: nothing


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

    whole = trainer.train(config(2), tmp_path / "whole", split=small_split, progress=False)
    part = trainer.train(config(1), tmp_path / "part", split=small_split, progress=False)
    resumed = trainer.resume(part.path, epochs=2, split=small_split, progress=False)
    a, b = whole.load_checkpoint(), resumed.load_checkpoint()
    for key in ("generator", "discriminator", *(["generator_ema"] if "generator_ema" in a else [])):
        for tensor in a[key]:
            assert torch.equal(a[key][tensor], b[key][tensor]), (key, tensor)
    # The saved generator is the report's module (its weights the average with --ema).
    plain = build_generator(whole.config.model.name, 100)
    generator, _ = whole.generator_at()
    assert generator.state_dict().keys() == plain.state_dict().keys()
    if name.startswith("ema"):
        assert torch.equal(generator.fc1.weight, a["generator_ema"]["fc1.weight"])
        assert not torch.equal(generator.fc1.weight, a["generator"]["fc1.weight"])
    if name.endswith("ema-cnn"):  # the saved average has statistics of its own, not G's
        saved = a["generator_ema"]["norm1.running_mean"]
        assert torch.equal(generator.norm1.running_mean, saved)
        assert not torch.equal(saved, a["generator"]["norm1.running_mean"])
    # Against the report's recipe from the same seed, step for step over the same 2 epochs:
    # every technique but the average changes training; the average changes only what is
    # saved (it never feeds back into training).
    seed = RunConfig(model=whole.config.model, train=TrainConfig(epochs=2, device="cpu", seed=1))
    plain_run = trainer.train(seed, tmp_path / "seed", split=small_split, progress=False)
    plain_steps, steps = plain_run.metrics("step"), whole.metrics("step")
    assert [r["step"] for r in plain_steps] == [r["step"] for r in steps] == list(range(1, 11))
    plain = plain_run.load_checkpoint()
    if name.startswith("ema"):
        assert [r["loss_D"] for r in plain_steps] == [r["loss_D"] for r in steps]
        assert torch.equal(plain["generator"]["fc1.weight"], a["generator"]["fc1.weight"])
    else:
        # The first step's losses differ already for the objective's techniques; TTUR and
        # lazy R1 change D's update, so later steps (and D's weights) differ.
        assert [r["loss_D"] for r in plain_steps] != [r["loss_D"] for r in steps]
        # (spectral norm renames D's weights: its losses above are the evidence there)
        shared = [k for k in plain["discriminator"] if k in a["discriminator"] and "weight" in k]
        assert not shared or any(
            not torch.equal(plain["discriminator"][k], a["discriminator"][k]) for k in shared
        )


def test_the_ramp_reaches_training_and_the_run_s_config(tmp_path, small_split):
    """--ema-ramp changes the saved average only: G's own weights stay those of the default
    ramp's run from the same seed, and config.json records it."""
    runs = {
        ramp: trainer.train(
            RunConfig(train=TrainConfig(epochs=1, device="cpu", ema=0.9999, ema_ramp=ramp)),
            tmp_path / str(ramp),
            split=small_split,
            progress=False,
        )
        for ramp in (objective.EMA_RAMP, 2.0)
    }
    default, wide = (runs[r].load_checkpoint() for r in (objective.EMA_RAMP, 2.0))
    assert torch.equal(default["generator"]["fc1.weight"], wide["generator"]["fc1.weight"])
    assert not torch.equal(
        default["generator_ema"]["fc1.weight"], wide["generator_ema"]["fc1.weight"]
    )
    assert runs[2.0].config.train.ema_ramp == 2.0
