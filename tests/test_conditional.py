"""Class-conditional GANs (``--conditional``): the networks, training and resuming them."""

import json

import pytest
import torch

from conftest import train_interrupted_after_epoch_1
from ganscope import models, runs, trainer, training
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.errors import GanscopeError
from ganscope.sampling import generate, interpolate, latent, sample
from ganscope.state import init_state

METHODS = ("concat", "projection", "acgan", "dual", "tac", "adc")

#: Parameter counts (G, D) of every variant; the unconditional ones are the report's.
COUNTS = {
    ("mlp", "none"): (114_064, 100_609),
    ("mlp", "concat"): (115_344, 101_889),
    ("mlp", "projection"): (115_344, 101_889),
    ("mlp", "acgan"): (115_344, 101_899),
    ("mlp", "dual"): (115_344, 101_889),  # the class vectors classify: no layer added
    ("mlp", "tac"): (115_344, 103_189),  # two classifiers on D's 128 features
    ("mlp", "adc"): (115_344, 103_189),  # one classifier of 20 classes
    ("cnn", "none"): (912_960, 222_401),
    ("cnn", "concat"): (975_680, 228_161),
    ("cnn", "projection"): (975_680, 223_681),
    ("cnn", "acgan"): (975_680, 223_691),
    ("cnn", "dual"): (975_680, 223_681),
    ("cnn", "tac"): (975_680, 224_981),
    ("cnn", "adc"): (975_680, 224_981),
}


def _config(model="mlp", conditioning="projection", epochs=2, **train):
    return RunConfig(
        model=ModelConfig(model, conditioning=conditioning),
        train=TrainConfig(epochs=epochs, device="cpu", **train),
    )


@pytest.mark.parametrize(("model", "conditioning"), sorted(COUNTS))
def test_parameter_counts(model, conditioning):
    num_classes = 0 if conditioning == "none" else 10
    G = models.build_generator(model, 100, num_classes)
    D = models.build_discriminator(model, conditioning, num_classes)
    assert (models.count_parameters(G), models.count_parameters(D)) == COUNTS[model, conditioning]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("conditioning", METHODS)
def test_the_label_reaches_both_networks(model, conditioning):
    torch.manual_seed(0)
    G = models.build_generator(model, 100, 10).eval()
    D = models.build_discriminator(model, conditioning, 10).eval()
    z = torch.randn(4, 100)
    shoes, shirts = torch.full((4,), 7), torch.full((4,), 6)
    assert not torch.allclose(G(z, shoes), G(z, shirts))
    images = G(z, shoes).detach()
    if conditioning in ("acgan", "dual", "tac", "adc"):  # D names the class: so its loss
        from ganscope.objective import class_loss

        logit, class_logits = D(images, shoes)  # two tensors: the logit, the class logits
        assert logit.shape == (4, 1)
        assert class_logits.shape == (4, 20 if conditioning in ("tac", "adc") else 10)
        logits = class_logits[:, :10]
        assert class_loss(logits, shoes) != class_loss(logits, shirts)
    if conditioning == "dual":  # ... and is also told it, by projection
        assert not torch.allclose(D(images, shoes)[0], D(images, shirts)[0])
    elif conditioning in ("acgan", "tac", "adc"):
        assert torch.equal(D(images, shoes)[0], D(images, shirts)[0])
    else:  # D is told the class: the label changes its score
        assert not torch.allclose(D(images, shoes), D(images, shirts))
        assert D(images, shoes).shape == (4, 1)


def test_fixed_grid_is_one_row_per_class_from_the_same_z():
    state = init_state(_config(), torch.device("cpu"))
    assert state.fixed_z.shape == (80, 100) and state.num_classes == 10
    rows = state.fixed_z.view(10, 8, 100)
    assert all(torch.equal(rows[0], rows[c]) for c in range(10))
    assert state.fixed_labels.view(10, 8).tolist() == [[c] * 8 for c in range(10)]
    plain = init_state(_config(conditioning="none"), torch.device("cpu"))
    assert plain.fixed_z.shape == (64, 100) and plain.fixed_labels is None


@pytest.mark.parametrize(
    ("model", "conditioning"), [("mlp", m) for m in METHODS] + [("cnn", "projection")]
)
def test_each_method_trains_and_resumes_bit_exactly(tmp_path, small_split, model, conditioning):
    config = _config(model, conditioning, epochs=2)
    full = trainer.train(config, tmp_path / "full", split=small_split, progress=False)
    train_interrupted_after_epoch_1(config, tmp_path / "cut", small_split)
    resumed = trainer.resume(tmp_path / "cut", split=small_split, progress=False)
    a, b = full.load_checkpoint(), resumed.load_checkpoint()
    for player in ("generator", "discriminator"):
        assert a[player].keys() == b[player].keys()
        assert all(torch.equal(a[player][k], b[player][k]) for k in a[player])
    assert runs.load_run(tmp_path / "full").config.model.conditioning == conditioning
    grid = full.sample_grid_path(2)
    assert grid.is_file()


@pytest.mark.parametrize(("conditioning", "d_terms"), [("acgan", 2), ("dual", 1)])
def test_which_images_d_learns_to_classify(conditioning, d_terms, monkeypatch):
    """ACGAN's D learns the class of real and generated images, the dual projection D of
    real ones only; G's loss has the class term in both."""
    from ganscope import objective

    state = init_state(_config("mlp", conditioning, epochs=1), torch.device("cpu"))
    calls = []
    real_loss = objective.class_loss

    def spy(logits, labels):
        calls.append(labels.clone())
        return real_loss(logits, labels)

    monkeypatch.setattr(objective, "class_loss", spy)
    real_labels, fake_labels = torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    training.train_step(
        state, real, torch.randn(8, 100), real_labels=real_labels, fake_labels=fake_labels
    )
    d_calls, g_calls = calls[:-1], calls[-1:]
    assert len(d_calls) == d_terms and torch.equal(d_calls[0], real_labels)
    assert all(torch.equal(c, fake_labels) for c in d_calls[1:] + g_calls)


@pytest.mark.parametrize(
    ("conditioning", "widths"),
    [("acgan", [11, 11, 11]), ("dual", [11, 1, 11]), ("tac", [21, 21, 21]), ("adc", [21, 21, 21])],
)
def test_the_dual_d_computes_no_class_logits_it_does_not_learn_from(conditioning, widths):
    """D's outputs in one step (D on real, D on generated, D for G's loss): the dual D's update
    on generated images asks for the logit only, and it is the first column of the full one."""
    state = init_state(_config("mlp", conditioning, epochs=1), torch.device("cpu"))
    D, widths_seen = state.discriminator, []
    D.register_forward_hook(lambda module, args, out: widths_seen.append(_joined(out).shape[1]))
    labels, real = torch.arange(8) % 10, torch.rand(8, 1, 28, 28) * 2 - 1
    training.train_step(state, real, torch.randn(8, 100), real_labels=labels, fake_labels=labels)
    assert widths_seen == widths
    D.eval()
    with torch.no_grad():
        full, logit = D(real, labels), D(real, labels, classify=False)
    assert logit.shape == (8, 1) and torch.equal(logit, full[0])


def _joined(out):
    """D's output as one tensor: the logit, then the class logits where D has them."""
    return torch.cat(out, 1) if isinstance(out, tuple) else out


def _one_step_and_its_recomputation(conditioning, d_terms, g_terms, weight=0.7):
    """One training step of a classifying D (the seed preset: no moving average, noise or
    dropout) and its losses recomputed from the networks before it: ``d_terms(on_real,
    on_fake, real_labels, fake_labels)`` and ``g_terms(for_G, fake_labels)`` give the class
    terms (unweighted) of D's loss and of G's, G's with D as D's update left it. Returns the
    step's (loss_D, loss_G) and the recomputed ones."""
    import copy

    from ganscope import objective

    config = _config("mlp", conditioning, epochs=1, class_weight=weight)
    state = init_state(config, torch.device("cpu"))
    G, D = copy.deepcopy(state.generator), copy.deepcopy(state.discriminator)
    torch.manual_seed(3)
    real, z = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randn(8, 100)
    real_labels, fake_labels = torch.arange(8) % 10, (torch.arange(8) + 3) % 10
    stats = training.train_step(state, real, z, real_labels=real_labels, fake_labels=fake_labels)
    with torch.no_grad():
        fake = G(z, fake_labels)
        on_real, on_fake = _joined(D(real, real_labels)), _joined(D(fake, fake_labels))
        loss_D = objective.d_loss(state.train, on_real[:, :1], on_fake[:, :1])
        loss_D += weight * d_terms(on_real, on_fake, real_labels, fake_labels)
        for_G = _joined(state.discriminator(fake, fake_labels))  # D after its update
        loss_G = objective.g_loss(state.train, for_G[:, :1])
        loss_G += weight * g_terms(for_G, fake_labels)
    return (stats[0].item(), stats[1].item()), (loss_D.item(), loss_G.item())


def _tac_g_terms(for_G, labels):
    import torch.nn.functional as F

    return F.cross_entropy(for_G[:, 1:11], labels) - F.cross_entropy(for_G[:, 11:], labels)


def test_tac_d_learns_real_classes_and_its_twin_fakes_and_g_plays_one_against_the_other():
    """TAC-GAN's losses: D adds its classifier's cross-entropy on real images and its twin's
    on generated ones; G its classifier's and minus its twin's."""
    import torch.nn.functional as F

    def d_terms(on_real, on_fake, real_labels, fake_labels):
        return F.cross_entropy(on_real[:, 1:11], real_labels) + F.cross_entropy(
            on_fake[:, 11:], fake_labels
        )

    stepped, expected = _one_step_and_its_recomputation("tac", d_terms, _tac_g_terms)
    assert stepped == pytest.approx(expected, rel=1e-5)
    wrong_sign = _one_step_and_its_recomputation(
        "tac",
        d_terms,
        lambda for_G, y: _tac_g_terms(for_G, y) + 2 * F.cross_entropy(for_G[:, 11:], y),
    )[1]
    assert stepped[1] != pytest.approx(wrong_sign[1], rel=1e-3)


def test_adc_d_names_real_and_generated_classes_apart_and_g_wants_the_real_half():
    """ADC-GAN's losses: one softmax over 20 classes (the real halves first); D's
    cross-entropy of real images against their class and of generated ones against their
    class's generated half; G's against the asked class's real half, minus that against its
    generated half."""
    import torch.nn.functional as F

    def d_terms(on_real, on_fake, real_labels, fake_labels):
        return F.cross_entropy(on_real[:, 1:], real_labels) + F.cross_entropy(
            on_fake[:, 1:], fake_labels + 10
        )

    def g_terms(for_G, labels):
        return F.cross_entropy(for_G[:, 1:], labels) - F.cross_entropy(for_G[:, 1:], labels + 10)

    stepped, expected = _one_step_and_its_recomputation("adc", d_terms, g_terms)
    assert stepped == pytest.approx(expected, rel=1e-5)
    as_tac = _one_step_and_its_recomputation("adc", d_terms, _tac_g_terms)[1]  # TAC's layout
    assert stepped[1] != pytest.approx(as_tac[1], rel=1e-3)


def test_the_dual_d_under_spectral_norm_reads_its_class_vectors_once_per_call():
    """One power iteration of the class vectors per forward, as every other layer (they are
    both the projection's and the classifier's)."""
    state = init_state(_config("mlp", "dual", epochs=1, spectral_norm=True), torch.device("cpu"))
    norms = state.discriminator.embed.parametrizations.weight
    reads = []
    norms[0].register_forward_hook(lambda *_: reads.append(1))
    state.discriminator(torch.rand(4, 1, 28, 28), torch.arange(4))
    assert len(reads) == 1


def test_the_class_weight_scales_both_players_class_loss(monkeypatch):
    from ganscope import objective

    monkeypatch.setattr(objective, "class_loss", lambda logits, labels: torch.tensor(1.0))
    labels = torch.arange(8) % 10
    real, z = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randn(8, 100)
    stats = {}
    for weight in (0.0, 1.0, 2.5):  # 1: the term added as it is, without a multiplication
        state = init_state(_config("mlp", "dual", class_weight=weight), torch.device("cpu"))
        stats[weight] = training.train_step(state, real, z, real_labels=labels, fake_labels=labels)
    for weight in (1.0, 2.5):
        loss_d, loss_g = (stats[weight] - stats[0.0])[:2].tolist()
        assert loss_d == pytest.approx(weight) and loss_g == pytest.approx(weight)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_g_is_given_the_scaled_one_hot_of_the_asked_class_and_refuses_others(model):
    """G's label input: sqrt(z_dim) times the one-hot, looked up as a row (a training step's
    one operation); a mixture of classes, the same scaling; a label outside 0..9 refused."""
    import torch.nn.functional as F

    G = models.build_generator(model, 100, 10).eval()
    seen = []
    G.net.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    z, labels = torch.randn(4, 100), torch.tensor([0, 3, 9, 3])
    with torch.no_grad():
        G(z, labels)
        G(z, F.one_hot(labels, 10).float() * 0.5)
    assert torch.equal(seen[0][:, :100], z)
    assert torch.equal(seen[0][:, 100:], 10.0 * F.one_hot(labels, 10).float())
    assert torch.equal(seen[1][:, 100:], 5.0 * F.one_hot(labels, 10).float())
    assert "label_rows" not in G.state_dict()  # checkpoints are as they were
    for wrong in (-1, 10):
        with pytest.raises(IndexError):
            G(z[:1], torch.tensor([wrong]))


@pytest.mark.parametrize("model, scale", [("mlp", 28.0), ("cnn", 1.0)])
def test_a_concat_d_is_given_its_family_s_scaled_one_hot_and_refuses_other_classes(model, scale):
    """The concatenating D's label input: the family's ``label_scale`` times the one-hot
    (MLP: sqrt(784) beside the flat image; CNN: unscaled label maps), looked up as a row;
    a label outside 0..9 refused."""
    import torch.nn.functional as F

    D = models.build_discriminator(model, "concat", 10).eval()
    seen = []
    first = D.net.conv1 if model == "cnn" else D.net.fc1  # the layer the label joins at
    first.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    images, labels = torch.rand(4, 1, 28, 28) * 2 - 1, torch.tensor([0, 3, 9, 3])
    with torch.no_grad():
        D(images, labels)
    onehot = scale * F.one_hot(labels, 10).float()  # (4, 10)
    if model == "mlp":
        assert torch.equal(seen[0], torch.cat([images.flatten(1), onehot], 1))
    else:
        assert torch.equal(seen[0][:, 0], images[:, 0])
        assert torch.equal(seen[0][:, 1:], onehot[:, :, None, None].expand(-1, -1, 28, 28))
    assert "label_rows" not in D.state_dict()  # checkpoints are as they were
    for wrong in (-1, 10):
        with pytest.raises(IndexError):
            D(images[:1], torch.tensor([wrong]))


@pytest.mark.parametrize("conditioning", ["none", "projection"])
def test_a_class_weight_without_a_class_loss_is_refused(conditioning):
    with pytest.raises(GanscopeError, match="acgan, dual, tac or adc only"):
        _config("mlp", conditioning, class_weight=0.5).validate()
    with pytest.raises(GanscopeError, match="--class-weight must be 0 or more"):
        _config("mlp", "dual", class_weight=-1.0).validate()


def test_mode_seeking_asks_both_halves_for_the_same_classes_and_adds_its_term(monkeypatch):
    """With ``--mode-seeking`` G and D are told the first half's classes for the second half
    too, and G's loss adds the weighted term of the pairs (each recomputed here)."""
    from ganscope import objective

    torch.manual_seed(0)
    real, z, labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randn(8, 100), torch.arange(8)
    stats, asked = {}, {}
    for weight in (0.0, 0.5):
        state = init_state(_config("mlp", "dual", mode_seeking=weight), torch.device("cpu"))
        G = state.generator
        with torch.no_grad():
            fake = G(z, objective.paired_labels(labels))
        handle = G.register_forward_hook(lambda m, args, out, w=weight: asked.update({w: args[1]}))
        stats[weight] = training.train_step(state, real, z, real_labels=labels, fake_labels=labels)
        handle.remove()
    assert asked[0.0].tolist() == list(range(8))
    assert asked[0.5].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    term = objective.mode_seeking_loss(fake, z).item()
    assert term > 1  # images differ less than their latent vectors: a sizeable term
    # The step is the plain one asked for the paired classes, G's loss plus 0.5 x the term.
    state = init_state(_config("mlp", "dual"), torch.device("cpu"))
    paired = training.train_step(
        state, real, z, real_labels=labels, fake_labels=objective.paired_labels(labels)
    )
    assert stats[0.5][0].item() == pytest.approx(paired[0].item(), rel=1e-6)
    assert stats[0.5][1].item() == pytest.approx(paired[1].item() + 0.5 * term, rel=1e-5)


def test_mode_seeking_is_refused_below_a_batch_of_two_and_below_zero():
    with pytest.raises(GanscopeError, match="--mode-seeking must be 0 or more"):
        _config("mlp", "projection", mode_seeking=-1.0).validate()
    with pytest.raises(GanscopeError, match="--batch-size must be 2"):
        _config("mlp", "projection", mode_seeking=1.0, batch_size=1).validate()


def test_the_step_feeds_real_labels_to_d_and_asked_labels_to_g(small_split, monkeypatch):
    config = _config("mlp", "projection", epochs=1)
    state = init_state(config, torch.device("cpu"))
    seen = []
    real_step = training.train_step

    def spy(state, real, z, **kwargs):
        seen.append(kwargs)
        return real_step(state, real, z, **kwargs)

    monkeypatch.setattr(training, "train_step", spy)
    step = training.make_step(
        state, small_split.images, torch.device("cpu"), labels=small_split.labels
    )
    index = torch.arange(64)
    asked = torch.arange(64) % 10
    step(index=index, z=torch.randn(64, 100), labels=asked)
    assert torch.equal(seen[0]["real_labels"], small_split.labels[:64])
    assert torch.equal(seen[0]["fake_labels"], asked)


def test_sampling_a_conditional_generator():
    torch.manual_seed(0)
    G = models.build_generator("mlp", 100, 10)
    images = sample(G, 20, seed=1)  # every class in turn by default
    z = torch.randn(20, 100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(images, generate(G, z, labels=torch.arange(20) % 10))
    assert torch.equal(
        sample(G, 3, seed=1, labels=torch.tensor([7, 7, 7])),
        generate(models.FixedClass(G, 7), latent(3, 100, seed=1)),
    )
    with pytest.raises(GanscopeError, match="needs the class"):
        generate(G, z)
    with pytest.raises(GanscopeError, match="classes must be in 0..9"):
        generate(G, z[:2], labels=torch.tensor([3, 10]))
    plain = models.build_generator("mlp", 100)
    with pytest.raises(GanscopeError, match="unconditional"):
        generate(plain, z[:2], labels=torch.tensor([3, 4]))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, small_split):
    root = tmp_path_factory.mktemp("conditional")
    conditional = trainer.train(
        _config("mlp", "projection", epochs=1), root / "cond", split=small_split, progress=False
    )
    plain = trainer.train(
        _config("mlp", "none", epochs=1), root / "plain", split=small_split, progress=False
    )
    return conditional, plain


def _cli(capsys, *argv):
    from ganscope import cli

    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name", ["Sneaker", "sneaker", "7"])
def test_sample_asks_for_a_class_by_name_or_index(tiny_runs, tmp_path, capsys, name):
    from ganscope import gallery

    run, _ = tiny_runs
    code, _, err = _cli(
        capsys, "sample", run.path, "--class", name, "--n", 8, "--out", tmp_path / "a.png"
    )
    assert code == 0, err
    _, pixels = gallery._samples(run, gallery.SampleOptions(n=8, class_name=name))
    G = run.generator()
    expected = generate(G, latent(8, 100, 0), labels=torch.full((8,), 7))
    assert torch.equal(pixels, gallery.to_uint8(expected))


@pytest.mark.parametrize(
    ("which", "argv", "message"),
    [
        ("plain", ["sample", "--class", "Sneaker"], "is unconditional: it takes no --class"),
        ("cond", ["sample", "--class", "Shoe"], "unknown class 'Shoe'; choose"),
        ("cond", ["sample", "--class", "Boot"], "'Boot' (did you mean 'Ankle boot'?)"),
        ("cond", ["sample", "--class", "10"], "unknown class '10'"),
        ("plain", ["traverse", "--class", "Bag"], "is unconditional"),
        ("cond", ["interpolate", "--to-class", "Robe"], "unknown class 'Robe'"),
    ],
)
def test_bad_classes_are_one_line_and_status_2(tiny_runs, tmp_path, capsys, which, argv, message):
    run = tiny_runs[0] if which == "cond" else tiny_runs[1]
    code, _, err = _cli(capsys, argv[0], run.path, *argv[1:], "--out", tmp_path / "x")
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("text", "guess"),
    [("boot", "Ankle boot"), ("sneakers", "Sneaker"), ("pulover", "Pullover"), ("Shoe", None),
     ("tshirt", "T-shirt/top"), ("?", None)],
)  # fmt: skip
def test_a_misspelt_class_is_answered_with_the_one_it_likely_means(text, guess):
    from ganscope.checks import _closest_class
    from ganscope.data import get_dataset

    assert _closest_class(text, get_dataset("fashion-mnist").classes) == guess


def test_traverse_and_interpolate_keep_or_move_the_class(tiny_runs, tmp_path, capsys):
    run, _ = tiny_runs
    code, _, err = _cli(
        capsys, "traverse", run.path, "--class", "Bag", "--dims", 3, "--out", tmp_path / "t"
    )
    assert code == 0, err and (tmp_path / "t" / "dim_003.png").is_file()
    G = run.generator()
    z_a, z_b = latent(1, 100, 0), latent(1, 100, 1)
    within = interpolate(G, z_a, z_b, 5, "lerp", classes=(8, 8))
    across = interpolate(G, z_a, z_b, 5, "lerp", classes=(1, 8))
    assert torch.equal(within[-1], across[-1])  # both end at a bag from z_b
    assert not torch.equal(within[0], across[0])  # one starts at a trouser
    torch.testing.assert_close(across[:1], generate(G, z_a, labels=torch.tensor([1])))
    code, _, err = _cli(
        capsys, "interpolate", run.path, "--class", "Trouser", "--to-class", "Bag",
        "--out", tmp_path / "i.png",
    )  # fmt: skip
    assert code == 0, err


class _Templates(torch.nn.Module):
    """A known conditional G: the class's mean training image, brightened by ``z[:, 0]``;
    the other dimensions do nothing."""

    def __init__(self, templates):
        super().__init__()
        self.register_buffer("templates", templates)  # (C, 1, 28, 28) in [-1, 1]
        self.unused = torch.nn.Parameter(torch.zeros(()))  # generate() reads the device
        self.z_dim, self.num_classes = 4, 10

    def forward(self, z, labels):
        return (self.templates[labels] + 0.03 * z[:, :1, None, None]).clamp(-1, 1)


def test_style_readings_on_a_known_generator(small_split):
    from ganscope.classifier import load_classifier
    from ganscope.data import to_model_range
    from ganscope.styles import style_dimensions, style_readings

    images = to_model_range(small_split.images)
    templates = torch.stack([images[small_split.labels == c].mean(0) for c in range(10)])
    G = _Templates(templates)
    rows = style_readings(G, load_classifier(), dims=[0, 1, 2], delta=10, n=6, seed=0)
    brighter, idle = rows[0], rows[1]
    assert brighter["brightness_change_mean"] > 0.1 and brighter["ink_change_mean"] > 0
    assert brighter["feature_change_mean"] > 0
    for key in ("feature_change", "ink_change", "width_change", "brightness_change"):
        assert idle[f"{key}_mean"] == pytest.approx(0, abs=1e-5), key
    assert idle["keep"] == pytest.approx(idle["keep_base"])
    assert idle["keep_base_mean"] > 0.5  # the class means mostly look like their class
    ranked = style_dimensions(rows)
    assert ranked[0]["dim"] == 0 or brighter["keep_mean"] < 0.9 * brighter["keep_base_mean"]


def test_analyze_of_a_conditional_run_reads_the_style_dimensions(tiny_runs, tmp_path):
    from ganscope.analysis import analyze_run

    run, _ = tiny_runs
    result = analyze_run(
        run, dims=("1", "2", "3"), n=20, sefa=2, pca=2, out=str(tmp_path / "a"), progress=False
    )
    assert [r["dim"] for r in result["style_rows"]] == [1, 2, 3]
    assert len(result["style_rows"][0]["keep"]) == 10
    assert (tmp_path / "a" / "styles.csv").read_text().startswith("dim,delta,n,keep_mean")
    assert "Style dimensions" in result["summary"]
    assert len(result["sefa_rows"]) == 2 and len(result["pca_rows"]) == 2


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_conditional_generator_takes_z_and_a_label(tiny_runs, tmp_path, fmt):
    from ganscope import export
    from ganscope.options import ExportOptions

    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    run, _ = tiny_runs
    out = tmp_path / ("g.onnx" if fmt == "onnx" else "g.pt")
    result = export.export_generator(run, ExportOptions(format=fmt, out=str(out)))
    assert "labels: int64" in result["metadata"]["input"]
    assert json.loads(export.read_metadata(out)["classes"])[7] == "Sneaker"
    z, labels = latent(3, 100, 5), torch.tensor([7, 0, 9])
    expected = generate(run.generator(), z, labels=labels)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out))
        images = torch.from_numpy(session.run(None, {"z": z.numpy(), "labels": labels.numpy()})[0])
    else:
        images = torch.jit.load(str(out))(z, labels)
    torch.testing.assert_close(images, expected, atol=1e-5, rtol=0)
    other = labels.clone()
    other[0] = 8
    changed = torch.jit.load(str(out))(z, other) if fmt == "torchscript" else None
    assert changed is None or not torch.allclose(changed[0], expected[0])


def test_cas_of_an_unconditional_run_is_refused_before_any_work(tiny_runs, capsys):
    _, plain = tiny_runs
    code, _, err = _cli(capsys, "evaluate", plain.path, "--cas", "--n", 100)
    assert code == 2 and "--cas: run" in err and "unconditional" in err
    assert not plain.evaluations()
