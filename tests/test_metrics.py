"""Metric formulas against independent computations, and sanity on real data."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

from ganscope import metrics
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


def test_frechet_from_moments_equals_torchmetrics_fid():
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(400, 16, generator=generator)
    fake = torch.randn(150, 16, generator=generator) * 1.3 + 0.2
    ours = metrics.frechet_from_moments(*metrics.moments(fake), *metrics.moments(real))
    assert ours == pytest.approx(metrics.frechet_distance(real, fake), rel=1e-6)
    mean, cov = metrics.moments(real)
    rooted = metrics.frechet_from_moments(*metrics.moments(fake), mean, cov, metrics.psd_root(cov))
    assert rooted == pytest.approx(ours, rel=1e-6)
    assert metrics.frechet_from_moments(*metrics.moments(real), *metrics.moments(real)) == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_class_precision_and_recall_tell_smudges_and_collapse_from_the_class():
    """Samples the classifier calls the asked class count for label agreement whatever they
    look like; class precision counts only those among the real class's images (features),
    class recall the real images among the class's samples."""
    torch.manual_seed(0)
    centres = torch.eye(10) * 20  # 10 classes, well apart in an 10-d feature space
    real_labels = torch.arange(10).repeat_interleave(50)
    real = centres[real_labels] + torch.randn(500, 10)
    asked = torch.arange(10).repeat_interleave(40)
    confident = torch.nn.functional.one_hot(asked, 10).float()  # the classifier agrees always
    args = (real, torch.nn.functional.one_hot(real_labels, 10).float(), real_labels, 10)
    garments = centres[asked] + torch.randn(400, 10)
    smudges = garments.clone()
    smudges[asked == 5] = centres[5] * 0.5 + torch.randn(40, 10)  # sandals: half-way, smudged
    good = metrics.conditional_statistics(garments, confident, asked, *args)
    gamed = metrics.conditional_statistics(smudges, confident, asked, *args)
    assert good["label_agreement"] == gamed["label_agreement"] == 1.0
    per_class = good["class_precision_per_class"]
    assert min(per_class) > 0.7  # k = 5 of 50 real images per class: most samples inside
    assert gamed["class_precision_per_class"][5] == 0.0
    assert gamed["class_precision_per_class"][:5] == per_class[:5]
    assert gamed["class_precision"] == pytest.approx((sum(per_class) - per_class[5]) / 10)
    # one class drawn as one image (collapse): precise, but it recalls few real images
    collapsed = garments.clone()
    collapsed[asked == 2] = real[real_labels == 2][0] + 0.01 * torch.randn(40, 10)
    one = metrics.conditional_statistics(collapsed, confident, asked, *args)
    assert one["class_precision_per_class"][2] == 1.0
    assert one["class_recall_per_class"][2] < 0.2 < min(good["class_recall_per_class"])
    # real-looking images of the wrong class: on the real manifold, not on their class's
    swapped = centres[(asked + 1) % 10] + torch.randn(400, 10)
    wrong = metrics.conditional_statistics(swapped, confident, asked, *args)
    assert wrong["class_precision"] == 0.0
    # a class with too few samples for its k-NN balls has none
    few = metrics.conditional_statistics(garments[:-38], confident[:-38], asked[:-38], *args)
    assert few["class_precision_per_class"][9] is None
    assert few["class_precision"] == pytest.approx(sum(few["class_precision_per_class"][:9]) / 9)
