"""Metric formulas against independent computations, and sanity on real data."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from ganscope import metrics
from ganscope.classifier import load_classifier
from ganscope.errors import GanscopeError


def _gaussian_features(n, d, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return torch.from_numpy(rng.normal(size=(n, d)) @ mix + shift)


def test_fid_matches_scipy_sqrtm():
    real, fake = _gaussian_features(600, 8), _gaussian_features(500, 8, shift=0.3, seed=1)
    r, f = real.numpy(), fake.numpy()
    mu_r, mu_f = r.mean(0), f.mean(0)
    cov_r, cov_f = np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_r @ cov_f).real
    expected = ((mu_r - mu_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * covmean)
    assert metrics.frechet_distance(real, fake) == pytest.approx(expected, rel=1e-6)
    assert metrics.frechet_distance(real, real) == pytest.approx(0, abs=1e-6)


def test_kid_matches_unbiased_mmd():
    real, fake = _gaussian_features(200, 6), _gaussian_features(200, 6, shift=0.5, seed=2)
    x, y = real.numpy(), fake.numpy()
    d, m = x.shape[1], x.shape[0]

    def kernel(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    # One subset of the whole set is the whole set, whatever the permutation.
    mean, std = metrics.kernel_distance(real, fake, subsets=1, subset_size=200)
    assert mean == pytest.approx(expected, rel=1e-6)
    a = metrics.kernel_distance(real, fake, subsets=10, subset_size=50, seed=3)
    assert a == metrics.kernel_distance(real, fake, subsets=10, subset_size=50, seed=3)
    assert a[1] > 0


def _prdc_reference(real, fake, k):
    """The four formulas of Naeem et al. (2020), transcribed directly with full matrices."""

    def pairwise(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    real_radius = np.sort(pairwise(real, real), axis=1)[:, k]
    fake_radius = np.sort(pairwise(fake, fake), axis=1)[:, k]
    d = pairwise(real, fake)  # (N, M)
    return {
        "precision": (d < real_radius[:, None]).any(axis=0).mean(),
        "recall": (d < fake_radius[None, :]).any(axis=1).mean(),
        "density": (1 / k) * (d < real_radius[:, None]).sum(axis=0).mean(),
        "coverage": (d.min(axis=1) < real_radius).mean(),
    }


def test_prdc_matches_reference_formulas():
    real = _gaussian_features(300, 5).float()
    fake = _gaussian_features(250, 5, shift=0.4, seed=4).float()
    ours = metrics.precision_recall_density_coverage(real, fake, k=5, chunk=64)
    reference = _prdc_reference(real.double().numpy(), fake.double().numpy(), 5)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-2 / 3), key
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


def test_classifier_score_matches_scipy():
    probs = torch.softmax(torch.randn(50, 10, generator=torch.Generator().manual_seed(0)), 1)
    p = probs.double().numpy()
    marginal = p.mean(0)
    expected = np.exp(np.mean([scipy.stats.entropy(row, marginal) for row in p]))
    assert metrics.classifier_score(probs) == pytest.approx(expected, rel=1e-6)
    assert metrics.classifier_score(torch.eye(10)) == pytest.approx(10)


def test_class_statistics():
    labels = torch.arange(10).repeat(10)
    one_hot = torch.eye(10)[torch.tensor([3] * 90 + [4] * 10)]
    stats = metrics.class_statistics(one_hot, labels, 10)
    assert stats["class_histogram"][3] == 90 and stats["classes_covered"] == 2
    expected_kl = 0.9 * np.log(0.9 / 0.1) + 0.1 * np.log(0.1 / 0.1)
    assert stats["class_kl_to_real"] == pytest.approx(expected_kl)
    balanced = metrics.class_statistics(torch.eye(10)[labels], labels, 10)
    assert balanced["classes_covered"] == 10 and balanced["class_kl_to_real"] == pytest.approx(0)
    assert balanced["class_entropy"] == pytest.approx(np.log(10))


def test_nearest_neighbours_matches_cdist():
    g = torch.Generator().manual_seed(0)
    queries = torch.randint(0, 256, (37, 28, 28), generator=g, dtype=torch.uint8)
    references = torch.randint(0, 256, (53, 28, 28), generator=g, dtype=torch.uint8)
    distance, index = metrics.nearest_neighbours(queries, references, chunk=10)
    full = torch.cdist(queries.double().flatten(1), references.double().flatten(1))
    assert torch.equal(index, full.argmin(1))
    torch.testing.assert_close(distance.double(), full.min(1).values, rtol=1e-4, atol=1e-2)


def test_too_few_images():
    with pytest.raises(GanscopeError, match="at least 2"):
        metrics.frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(GanscopeError, match="more than 5"):
        metrics.precision_recall_density_coverage(torch.zeros(5, 3), torch.zeros(9, 3))


# ---- sanity on the real data with the shipped classifier ------------------------------------


@pytest.fixture(scope="module")
def real_sets(fashion_dir):
    from ganscope.data import load_split

    test = load_split("fashion-mnist", "test", fashion_dir, download=False, progress=False)
    train = load_split("fashion-mnist", "train", fashion_dir, download=False, progress=False)
    reference = metrics.Reference(test.images[:4000], test.labels[:4000], train.images[:20000], 10)
    # A disjoint slice: training images the reference's train part does not hold.
    holdout = train.images[50000:54000], train.labels[50000:54000]
    return reference, holdout


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def test_real_vs_real_is_near_perfect(real_sets, classifier):
    reference, (images, _) = real_sets
    result = metrics.compare(images, reference, classifier, kid_subsets=20)
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
    clean = metrics.compare(images[:2000], reference, classifier, kid_subsets=10)
    noise = torch.randint(
        0, 256, (2000, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    blurred = (
        F.avg_pool2d(images[:2000, None].float(), 5, stride=1, padding=2, count_include_pad=False)
        .round()
        .to(torch.uint8)[:, 0]
    )
    for worse in (noise, blurred):
        result = metrics.compare(worse, reference, classifier, kid_subsets=10)
        assert result["fid"] > 20 * max(clean["fid"], 0.5)
        assert result["kid"] > 10 * max(clean["kid"], 1e-3)
        assert result["precision"] < clean["precision"]


def test_missing_classes_lower_coverage_and_recall(real_sets, classifier):
    reference, (images, labels) = real_sets
    keep = (labels != 1) & (labels != 8)  # no trousers, no bags
    full = metrics.compare(images, reference, classifier, kid_subsets=10)
    partial = metrics.compare(images[keep], reference, classifier, kid_subsets=10)
    assert partial["classes_covered"] == 8
    assert partial["recall"] < full["recall"] - 0.1
    assert partial["class_kl_to_real"] > 0.15


def test_deterministic_and_batch_size_independent(real_sets, classifier):
    reference, (images, _) = real_sets
    a = metrics.compare(images[:1000], reference, classifier, kid_subsets=10, batch_size=1000)
    b = metrics.compare(images[:1000], reference, classifier, kid_subsets=10, batch_size=1000)
    c = metrics.compare(images[:1000], reference, classifier, kid_subsets=10, batch_size=128)
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
    from ganscope import cli, training
    from ganscope.config import RunConfig, TrainConfig
    from ganscope.runs import create_run

    run = training.train(
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
    import json

    from ganscope import cli, training
    from ganscope.config import DataConfig, RunConfig, TrainConfig

    config = RunConfig(
        data=DataConfig(data_dir=str(fashion_dir)), train=TrainConfig(epochs=1, device="cpu")
    )
    run = training.train(config, tmp_path / "run", split=small_split, progress=False)
    assert cli.main(["evaluate", str(run.path), "--n", "300", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run.path / "evaluation" / "epoch_001_seed0_n300.json").read_text())
    assert printed == saved and saved["n"] == 300 and saved["classifier_test_accuracy"] >= 0.92
    assert (run.path / "evaluation" / "epoch_001_seed0_n300_closest.png").is_file()
