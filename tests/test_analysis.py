import json

import pytest
import torch
from torch import nn

from ganscope import analysis, cli, readings, text, trainer
from ganscope import directions as dirs
from ganscope.classifier import classify, load_classifier
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.data import load_split, to_model_range
from ganscope.errors import GanscopeError

TROUSER, SANDAL = 1, 5


class SwitchGenerator(nn.Module):
    """Dimension ``k`` alone decides the image: low -> a trouser, high -> a sandal."""

    def __init__(self, trouser: torch.Tensor, sandal: torch.Tensor, k: int, z_dim: int = 100):
        super().__init__()
        self.z_dim, self.k = z_dim, k
        self.register_buffer("low", trouser)
        self.register_buffer("high", sandal)
        self.unused = nn.Parameter(torch.zeros(1))  # generators have parameters

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(4 * z[:, self.k]).view(-1, 1, 1, 1)
        return weight * self.high + (1 - weight) * self.low  # (B, 1, 28, 28)


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def switch(fashion_dir, classifier):
    test = load_split("fashion-mnist", "test", fashion_dir, download=False, progress=False)
    images = to_model_range(test.images[:500])
    probs = classify(classifier, images)

    def prototype(label):
        confident = (test.labels[:500] == label) & (probs[:, label] > 0.95)
        return images[confident.nonzero()[0, 0]]

    return SwitchGenerator(prototype(TROUSER), prototype(SANDAL), k=7)


def test_wired_dimension_is_named_and_others_are_not(switch, classifier):
    rows = dirs.analyze(
        switch,
        classifier,
        dirs.axis_directions([7, 3, 42], 100),
        deltas=[10.0],
        n=64,
        seed=0,
        classes=classifier.meta["classes"],
    )
    wired, *unwired = rows
    assert wired["minus_class"] == "Trouser" and wired["plus_class"] == "Sandal"
    assert wired["minus_reliable"] and wired["plus_reliable"]
    assert wired["strength"] > 0.8 and wired["strength_ci"][0] > 0.6
    assert wired["flip_share"] > 0.9
    sentence = text.describe(wired, "en")
    assert sentence.startswith("Lowering dimension 7 drifts towards Trouser")
    assert "raising it towards Sandal" in sentence
    assert "裤子" in text.describe(wired, "zh") and "凉鞋" in text.describe(wired, "zh")
    for row in unwired:
        assert row["strength"] == 0 and row["flip_share"] == 0
        assert not row["minus_reliable"] and not row["plus_reliable"]
        assert "no reliable effect" in text.describe(row, "en")
        assert "没有可靠的影响" in text.describe(row, "zh")
    ranked = text.summary_markdown(rows, "en").splitlines()
    assert "dim 7" in ranked[2]  # strongest first


def test_deterministic_for_a_seed(switch, classifier):
    directions = dirs.axis_directions([7, 8], 100)
    a = dirs.analyze(switch, classifier, directions, n=16, seed=3, bootstrap=50)
    b = dirs.analyze(switch, classifier, directions, n=16, seed=3, bootstrap=50)
    c = dirs.analyze(switch, classifier, directions, n=16, seed=4, bootstrap=50)
    assert a == b and a != c


@pytest.mark.parametrize(
    "dims, deltas, n, message",
    [
        ([100], [10.0], 8, "out of range"),
        ([1], [0.0], 8, "must be positive"),
        ([1], [float("nan")], 8, "must be finite"),
        ([1], [10.0], 1, "at least 2"),
    ],
)
def test_bad_input(switch, classifier, dims, deltas, n, message):
    with pytest.raises(GanscopeError, match=message):
        dirs.analyze(switch, classifier, dirs.axis_directions(dims, 100), deltas, n)


def test_parse_dims():
    assert readings.parse_dims("all", 5) == [0, 1, 2, 3, 4]
    assert readings.parse_dims(["20,50", "60"], 100) == [20, 50, 60]
    with pytest.raises(GanscopeError, match="'all' or integers"):
        readings.parse_dims(["twenty"], 100)


def test_sefa_directions_are_orthonormal():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(100, 30))
    directions = dirs.sefa_directions(generator, k=5)
    matrix = torch.stack([d.vector for d in directions])
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(5), atol=1e-5, rtol=0)
    # The first direction moves the first layer's (normalised) output the most.
    weight = generator[0].weight / generator[0].weight.norm(dim=0, keepdim=True)
    gains = (weight @ matrix.T).norm(dim=0)
    assert torch.all(gains[:-1] >= gains[1:] - 1e-5)


def test_analyze_run_writes_everything(tmp_path, small_split, capsys):
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=2, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    code = cli.main(
        [
            "analyze",
            str(run.path),
            "--dims",
            "1",
            "20",
            "50",
            "--n",
            "16",
            "--sefa",
            "2",
            "--top-k",
            "2",
            "--per-checkpoint",
            "--lang",
            "zh",
            "--no-progress",
        ]
    )
    assert code == 0
    folder = run.path / "analysis"
    for name in (
        "dims.csv",
        "dims.json",
        "summary.zh.md",
        "class_shifts.png",
        "class_shifts_sefa.png",
        "sefa.csv",
        "strength_by_epoch.csv",
        "strength_by_epoch.png",
    ):
        assert (folder / name).is_file(), name
    record = json.loads((folder / "dims.json").read_text())
    assert [r["dim"] for r in record["rows"]] == [1, 20, 50]
    assert len(record["sefa_rows"]) == 2 and sorted(record["strength_by_epoch"]) == ["1", "2"]
    # every class's boundary, fitted or (too few images of it) not, and a figure per fitted one
    assert [b["class_index"] for b in record["boundaries"]] == list(range(10))
    towards = {f"towards_{b['class_index']:02d}.png" for b in record["boundaries"] if b["normal"]}
    assert towards == {p.name for p in (folder / "grids").glob("towards_*.png")}
    # Grids for the top 2 and for the report's dims 20, 50, 60, 70, 90.
    grids = sorted(p.name for p in (folder / "grids").iterdir())
    assert {"dim_020.png", "dim_060.png", "dim_090.png"} <= set(grids)
    assert len((folder / "dims.csv").read_text().splitlines()) == 4
    assert "潜在维度" in (folder / "summary.zh.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dims", "100"], "out of range"),
        (["--lang", "fr"], "--lang must be one of en, zh"),
        (["--delta", "-1"], "must be positive"),
        (["--n", "1"], "at least 2"),
    ],
)
def test_cli_errors(tmp_path, small_split, capsys, argv, message):
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=1, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    assert cli.main(["analyze", str(run.path), "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_batch_size_reaches_the_classifier(switch, classifier, monkeypatch):
    from ganscope import classifier as classifier_module

    sizes, real_classify = [], classifier_module.classify

    def spy(model, images, batch_size=256):
        sizes.append(batch_size)
        return real_classify(model, images, batch_size)

    monkeypatch.setattr(dirs, "classify", spy)
    directions = dirs.axis_directions([7], 100)
    dirs.analyze(switch, classifier, directions, n=16, bootstrap=10, batch_size=5)
    assert sizes == [5, 5]  # the base images, then the shifted ones


def test_results_carry_the_epoch_whose_weights_were_used(tmp_path, small_split):
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=2, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    record = analysis.analyze_run(run, epoch=1, dims=("3",), n=4, sefa=0, progress=False)
    assert record["epoch"] == 1 and record["dims"] == [3]


def test_ganspace_directions():
    from ganscope.models import build_generator

    torch.manual_seed(0)
    generator = build_generator("mlp")
    directions = dirs.pca_directions(generator, k=4, seed=1)
    again = dirs.pca_directions(generator, k=4, seed=1)
    vectors = torch.stack([d.vector for d in directions])  # (4, 100)
    assert [d.name for d in directions] == ["PCA 1", "PCA 2", "PCA 3", "PCA 4"]
    assert torch.equal(vectors, torch.stack([d.vector for d in again]))  # seeded
    assert torch.allclose(vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    # The first principal component moves the first layer's activations most.
    moved = (vectors @ generator.fc1.weight.detach().T).norm(dim=1)
    assert moved[0] >= moved[-1]


def test_analyze_run_labels_ganspace_directions(tmp_path, small_split):
    config = RunConfig(model=ModelConfig("mlp"), train=TrainConfig(epochs=1, device="cpu"))
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    record = analysis.analyze_run(
        run, dims=("3",), n=4, sefa=0, pca=3, bootstrap=10, progress=False
    )
    assert [r["direction"] for r in record["pca_rows"]] == ["PCA 1", "PCA 2", "PCA 3"]
    assert record["pca"] == 3 and (run.analysis_dir / "pca.csv").is_file()
    assert "GANSpace directions" in record["summary"]
