"""Evaluating generated images against the test set (``evaluation``) and ``ganscope evaluate``."""

import json

import pytest
import torch

from ganscope import evaluation, trainer
from ganscope.classifier import load_classifier


@pytest.fixture(scope="module")
def real_sets(fashion_dir):
    from ganscope.data import load_split

    test = load_split("fashion-mnist", "test", fashion_dir, download=False, progress=False)
    train = load_split("fashion-mnist", "train", fashion_dir, download=False, progress=False)
    reference = evaluation.Reference(
        test.images[:4000], test.labels[:4000], train.images[:20000], 10
    )
    # A disjoint slice: training images the reference's train part does not hold.
    holdout = train.images[50000:54000], train.labels[50000:54000]
    return reference, holdout


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def test_real_vs_real_is_near_perfect(real_sets, classifier):
    reference, (images, _) = real_sets
    result = evaluation.compare(images, reference, classifier, kid_subsets=20)
    assert result["fid"] < 1.0
    assert abs(result["kid"]) < 2e-3
    assert result["precision"] > 0.9 and result["recall"] > 0.9
    assert result["classes_covered"] == 10
    assert result["class_kl_to_real"] < 0.01
    # Held-out real images are not copies: about the expected share falls below the 5% line.
    assert result["memorisation_share"] < 0.1


def test_noise_and_blur_score_far_worse(real_sets, classifier):
    import torch.nn.functional as F

    reference, (images, _) = real_sets
    clean = evaluation.compare(images[:2000], reference, classifier, kid_subsets=10)
    noise = torch.randint(
        0, 256, (2000, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    blurred = (
        F.avg_pool2d(images[:2000, None].float(), 5, stride=1, padding=2, count_include_pad=False)
        .round()
        .to(torch.uint8)[:, 0]
    )
    for worse in (noise, blurred):
        result = evaluation.compare(worse, reference, classifier, kid_subsets=10)
        assert result["fid"] > 20 * max(clean["fid"], 0.5)
        assert result["kid"] > 10 * max(clean["kid"], 1e-3)
        assert result["precision"] < clean["precision"]


def test_missing_classes_lower_coverage_and_recall(real_sets, classifier):
    reference, (images, labels) = real_sets
    keep = (labels != 1) & (labels != 8)  # no trousers, no bags
    full = evaluation.compare(images, reference, classifier, kid_subsets=10)
    partial = evaluation.compare(images[keep], reference, classifier, kid_subsets=10)
    assert partial["classes_covered"] == 8
    assert partial["recall"] < full["recall"] - 0.1
    assert partial["class_kl_to_real"] > 0.15


def test_deterministic_and_batch_size_independent(real_sets, classifier):
    reference, (images, _) = real_sets
    a = evaluation.compare(images[:1000], reference, classifier, kid_subsets=10, batch_size=1000)
    b = evaluation.compare(images[:1000], reference, classifier, kid_subsets=10, batch_size=1000)
    c = evaluation.compare(images[:1000], reference, classifier, kid_subsets=10, batch_size=128)
    for key in (
        "fid",
        "kid",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "classifier_score",
        "memorisation_share",
    ):
        assert a[key] == b[key], key
        assert c[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key


def test_evaluate_cli_bad_input(tmp_path, small_split, capsys):
    from ganscope import cli
    from ganscope.config import RunConfig, TrainConfig
    from ganscope.runs import create_run

    run = trainer.train(
        RunConfig(train=TrainConfig(epochs=1, device="cpu")),
        tmp_path / "run",
        split=small_split,
        progress=False,
    )
    assert cli.main(["evaluate", str(run.path), "--n", "1"]) == 2
    assert "--n must be at least 2" in capsys.readouterr().err
    assert cli.main(["evaluate", str(run.path), "--classifier", str(tmp_path / "x.pt")]) == 2
    assert "not found" in capsys.readouterr().err
    create_run(tmp_path / "empty", RunConfig())
    assert cli.main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "no checkpoint yet" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "evaluation").exists()


def test_evaluate_cli_writes_json_and_figure(tmp_path, small_split, fashion_dir, capsys):

    from ganscope import cli
    from ganscope.config import DataConfig, RunConfig, TrainConfig

    config = RunConfig(
        data=DataConfig(data_dir=str(fashion_dir)), train=TrainConfig(epochs=1, device="cpu")
    )
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert cli.main(["evaluate", str(run.path), "--n", "300", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run.path / "evaluation" / "epoch_001_seed0_n300.json").read_text())
    assert printed == saved and saved["n"] == 300 and saved["classifier_test_accuracy"] >= 0.92
    assert (run.path / "evaluation" / "epoch_001_seed0_n300_closest.png").is_file()


def test_evaluate_trained_weights_of_an_ema_run(
    tmp_path, small_split, fashion_dir, capsys, monkeypatch
):
    """``--trained-weights``: G's own weights of an ``--ema`` run are those of the same run
    without ``--ema`` (the average, and its BatchNorm statistics gathered at each epoch's end,
    never feed back), so they score what that run scores."""
    from ganscope import cli
    from ganscope.checkpoints import load
    from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from ganscope.errors import GanscopeError

    def train(name: str, ema: float):
        config = RunConfig(
            data=DataConfig(data_dir=str(fashion_dir)),
            model=ModelConfig("cnn"),  # with BatchNorm, whose statistics the average gathers
            train=TrainConfig(epochs=2, device="cpu", ema=ema),
        )
        return trainer.train(config, tmp_path / name, split=small_split, progress=False)

    plain, averaged = train("plain", 0.0), train("ema", 0.9)
    own = load(averaged.checkpoint_path)
    assert "generator_ema" in own
    for key, value in load(plain.checkpoint_path)["generator"].items():
        assert torch.equal(own["generator"][key], value), key
    assert any(
        not torch.equal(own["generator"][key], own["generator_ema"][key])
        for key in own["generator"]
    )

    def evaluate(run, *extra: str) -> dict:
        assert cli.main(["evaluate", str(run.path), "--n", "300", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    trained, average, reference = (
        evaluate(averaged, "--trained-weights"), evaluate(averaged), evaluate(plain)
    )  # fmt: skip
    assert trained["weights"] == "trained" and "weights" not in average
    assert trained["fid"] == reference["fid"] and trained["kid"] == reference["kid"]
    assert trained["fid"] != average["fid"]
    saved = averaged.path / "evaluation" / "epoch_002_seed0_n300_trained.json"
    assert json.loads(saved.read_text()) == trained
    # The run's own results are the average's: the trained weights' record is never one.
    assert [r["fid"] for r in averaged.evaluations()] == [average["fid"]]
    assert averaged.find_evaluation(epoch=2, seed=0)["fid"] == average["fid"]

    assert cli.main(["evaluate", str(plain.path), "--trained-weights"]) == 2
    assert "not trained with --ema" in capsys.readouterr().err
    assert cli.main(["evaluate", str(averaged.path), "--trained-weights", "--epoch", "1"]) == 2
    assert "only for its latest epoch (2)" in capsys.readouterr().err
    # training finishing epoch 2 between reading the latest epoch (1) and the weights
    monkeypatch.setattr(type(averaged), "latest_epoch", lambda run: 1)
    with pytest.raises(GanscopeError, match="moved on to epoch 2 while its checkpoint was read"):
        averaged.generator_at(1, trained=True)


def test_real_images_as_conditional_samples_agree_as_the_classifier_does(real_sets, classifier):
    # Real images "asked for" their true classes: the label agreement is exactly the
    # classifier's accuracy on them, and the per-class FIDs are real-vs-real ones.
    from ganscope.classifier import features_and_probabilities
    from ganscope.data import to_model_range

    reference, (images, labels) = real_sets
    result = evaluation.compare(images, reference, classifier, kid_subsets=5, asked=labels)
    _, probs = features_and_probabilities(classifier, to_model_range(images))
    right = probs.argmax(1) == labels
    assert result["label_agreement"] == pytest.approx(float(right.float().mean()))
    for c in range(10):
        expected = float(right[labels == c].float().mean())
        assert result["label_agreement_per_class"][c] == pytest.approx(expected)
    assert 0.85 < result["label_agreement"] < 0.97  # the shipped classifier's accuracy
    assert len(result["intra_fid_per_class"]) == 10
    assert result["intra_fid"] < 3 * result["fid"] + 2.0  # about 400 real images per class
    # the same images against themselves: every per-class FID vanishes
    same = evaluation.Reference(images, labels, None, 10)
    itself = evaluation.compare(images, same, classifier, kid_subsets=5, asked=labels)
    assert max(itself["intra_fid_per_class"]) < 1e-3
    assert itself["label_agreement_worst_gap"] == pytest.approx(0.0, abs=1e-6)
    # every image lies in its own k-NN ball: its class's manifold holds all of them
    assert itself["class_precision_per_class"] == itself["class_recall_per_class"] == [1.0] * 10
    assert 0.6 < result["class_precision"] <= 1.0  # real test images against another real set


class _IgnoresTheLabel(torch.nn.Module):
    """A 'conditional' generator that draws whatever its unconditional G draws."""

    def __init__(self, generator):
        super().__init__()
        self.generator, self.z_dim, self.num_classes = generator, generator.z_dim, 10

    def forward(self, z, labels):
        if getattr(self.generator, "num_classes", 0):  # a conditional G: always class 0
            return self.generator(z, torch.zeros_like(labels))
        return self.generator(z)


def test_a_generator_that_ignores_the_label_agrees_one_time_in_ten(real_sets, classifier):
    from ganscope.models import build_generator

    torch.manual_seed(0)
    reference, _ = real_sets
    # any fixed G: its samples' classes do not depend on the asked class, so each class is
    # asked for a tenth of the time whatever the classifier calls the images
    generator = _IgnoresTheLabel(build_generator("mlp"))
    result, _ = evaluation.evaluate_generator(
        generator, reference, classifier, n=2000, seed=0, kid_subsets=5
    )
    assert result["label_agreement"] == pytest.approx(0.1, abs=0.03)
    plain, _ = evaluation.evaluate_generator(
        generator.generator, reference, classifier, n=200, seed=0, kid_subsets=5
    )
    assert "label_agreement" not in plain


class _RealImages(torch.nn.Module):
    """A 'conditional generator' that returns real images of the asked class (by z's first
    coordinate, so different z give different images)."""

    def __init__(self, images, labels):
        super().__init__()
        self.by_class = [images[labels == c] for c in range(10)]
        self.unused = torch.nn.Parameter(torch.zeros(()))
        self.z_dim, self.num_classes = 8, 10

    def forward(self, z, labels):
        picks = []
        for value, label in zip(z[:, 0], labels.tolist()):
            pool = self.by_class[label]
            picks.append(pool[int(abs(value) * 1000) % len(pool)])
        return torch.stack(picks).float().div(127.5).sub(1).unsqueeze(1)  # (B, 1, 28, 28)


def test_classification_accuracy_score_tells_real_images_from_ignored_labels(real_sets):
    from ganscope.classifier import ClassifierRecipe
    from ganscope.data import Split

    reference, (images, labels) = real_sets
    test = Split(reference.test_images[:1000], reference.test_labels[:1000], tuple("0123456789"),
                 "fashion-mnist", "test")  # fmt: skip
    recipe = ClassifierRecipe(epochs=2, batch_size=64)
    real = evaluation.classification_accuracy_score(
        _RealImages(images, labels), test, per_class=60, recipe=recipe, progress=False
    )
    ignored = evaluation.classification_accuracy_score(
        _IgnoresTheLabel(_RealImages(images, labels)), test, per_class=60, recipe=recipe,
        progress=False,
    )  # fmt: skip
    assert real["cas"] > 0.5 and len(real["cas_per_class"]) == 10
    assert ignored["cas"] < 0.3  # labels that say nothing about the images teach nothing
    assert real["cas_samples_per_class"] == 60
