"""Sample-quality metrics: pure functions of feature sets and images, returning named numbers.

Which images and which classifier they compare is ``evaluation``'s business.

* FID and KID: torchmetrics' implementations, fed the classifier's 128-d features (an
  identity "feature extractor" passes precomputed features through, so every image goes
  through the classifier once for all metrics).
* Precision / recall (k-NN manifolds, Kynkäänniemi et al. 2019) and density / coverage (Naeem
  et al. 2020): written here in chunked torch, because the reference package (``prdc``) needs
  scikit-learn and holds three full N x N float64 distance matrices (2.4 GB at N = 10,000);
  tests compare this code with a direct NumPy transcription of the paper's formulas.
* Class distribution of the generated images (histogram, entropy, KL to the real one, classes
  covered), so mode collapse shows as a number, and a classifier score (the IS analogue).
* Memorisation: the share of generated images whose nearest training image (pixel L2) is
  closer than all but 5% of real test images are to theirs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import GanscopeError

#: A class counts as covered when its share of the generated images is at least this fraction
#: of its share of the real images (so 2.5% of the samples for a balanced 10-class set).
COVERAGE_FRACTION = 0.25
#: Quantile of the test-to-train nearest-neighbour distances below which a generated image
#: counts as suspiciously close to a training image. An honest generator scores about this.
MEMORISATION_QUANTILE = 0.05


@dataclass(frozen=True)
class Metric:
    """One number of an evaluation record, as every reader shows it."""

    name: str
    #: True when higher is better, False when lower is; None for a spread.
    higher_is_better: bool | None
    #: Digits after the point in the report's table.
    digits: int
    label: str
    #: In the report's metrics table (and its comparisons of presets).
    in_report: bool = True
    #: Logged to TensorBoard as ``quality/NAME`` during ``--eval-every``.
    in_tensorboard: bool = True


#: Every metric of an evaluation record, in the order they are shown: the CLI's summary of
#: ``evaluate``, TensorBoard's quality scalars and the report's table read this one table.
METRICS = (
    Metric("fid", False, 3, "Fréchet distance of the classifier features"),
    Metric("kid", False, 4, "kernel distance of the classifier features"),
    Metric("kid_std", None, 4, "KID's std over subsets", in_report=False, in_tensorboard=False),
    Metric("precision", True, 3, "share of samples on the real manifold"),
    Metric("recall", True, 3, "share of real images on the sample manifold"),
    Metric("density", True, 3, "precision, robust to outliers"),
    Metric("coverage", True, 3, "recall, robust to outliers"),
    Metric("classes_covered", True, 0, "classes with at least a quarter of their real share"),
    Metric("class_entropy", True, 3, "entropy of the predicted classes", in_report=False),
    Metric(
        "class_kl_to_real",
        False,
        3,
        "KL of the class histogram to the real one",
        in_tensorboard=False,
    ),  # fmt: skip
    Metric("classifier_score", True, 3, "the Inception Score's formula on the classifier"),
    # a conditional run's (``conditional_statistics``); absent from unconditional records
    Metric("label_agreement", True, 4, "samples the classifier calls the asked class", False),
    Metric("intra_fid", False, 3, "mean over classes of the per-class FID", in_report=False),
    Metric(
        "class_precision",
        True,
        3,
        "mean over classes of the share of samples on their class's real manifold",
        in_report=False,
    ),  # fmt: skip
    Metric(
        "class_recall",
        True,
        3,
        "mean over classes of the share of real images on their class's sample manifold",
        in_report=False,
    ),  # fmt: skip
    Metric(
        "cas",
        True,
        4,
        "test accuracy of the classifier's recipe trained on samples only (evaluate --cas)",
        in_report=False,
        in_tensorboard=False,
    ),  # fmt: skip
    Metric(
        "memorisation_share",
        False,
        4,
        "samples closer to a training image than 95% of test images are",
        in_tensorboard=False,
    ),  # fmt: skip
)
METRIC = {metric.name: metric for metric in METRICS}
#: name -> higher is better, for the metrics of the report's table.
REPORT_METRICS = {m.name: m.higher_is_better for m in METRICS if m.in_report}
#: The metrics written to TensorBoard.
QUALITY_METRICS = tuple(m.name for m in METRICS if m.in_tensorboard)


def format_metric(value: float, std: float | None, name: str) -> str:
    """``value`` (``± std``) with the metric's digits."""
    digits = METRIC[name].digits
    text = f"{value:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


class _Precomputed(nn.Module):
    """Identity 'feature extractor' so torchmetrics accepts features computed elsewhere."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets ``(N, d)`` and ``(M, d)``, computed in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance  # heavy: only evaluate pays

    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise GanscopeError("FID needs at least 2 images on each side")
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), normalize=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (unbiased, as torchmetrics') in float64."""
    x = features.double()
    return x.mean(0), torch.cov(x.T)


def frechet_from_moments(
    mean_a: torch.Tensor,
    cov_a: torch.Tensor,
    mean_b: torch.Tensor,
    cov_b: torch.Tensor,
    root_b: torch.Tensor | None = None,
) -> float:
    """The Fréchet distance of two Gaussians, the formula ``frechet_distance`` computes
    through torchmetrics (trace of sqrt(cov_a cov_b) from the eigenvalues of the product), for
    the many small FIDs against one real side that ``methods`` bootstraps; the tests hold the
    two equal. ``root_b`` (:func:`psd_root` of ``cov_b``) computes the same trace from the
    symmetric matrix root_b cov_a root_b instead, several times faster."""
    if root_b is None:
        trace_root = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()
    else:
        trace_root = torch.linalg.eigvalsh(root_b @ cov_a @ root_b).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root
    return float(distance)


def psd_root(cov: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a covariance matrix."""
    values, vectors = torch.linalg.eigh(cov)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over random subsets) with the cubic polynomial kernel, seeded."""
    from torchmetrics.image.kid import KernelInceptionDistance  # heavy: only evaluate pays

    subset_size = min(subset_size, real.shape[0], fake.shape[0])
    if subset_size < 2:
        raise GanscopeError("KID needs at least 2 images on each side")
    with warnings.catch_warnings():  # its "features kept in a buffer" note: that is the point
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(
            feature=_Precomputed(real.shape[1]),
            subsets=subsets,
            subset_size=subset_size,
            normalize=True,
        )
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    # torchmetrics draws its subsets from the global RNG: fork it to stay seeded and harmless.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _kth_neighbour_radius(points: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point ``(N,)``."""
    radii = []
    for part in points.split(chunk):
        distances = torch.cdist(part, points)  # (chunk, N); each row holds its own 0
        radii.append(distances.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def precision_recall_density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = 5, chunk: int = 2048
) -> dict[str, float]:
    """The four k-NN manifold metrics between feature sets ``(N, d)`` (real) and ``(M, d)``."""
    if min(real.shape[0], fake.shape[0]) <= k:
        raise GanscopeError(f"precision/recall with k={k} needs more than {k} images per side")
    real, fake = real.float(), fake.float()
    real_radius = _kth_neighbour_radius(real, k, chunk)  # (N,)
    fake_radius = _kth_neighbour_radius(fake, k, chunk)  # (M,)
    inside_real_count = torch.zeros(fake.shape[0])  # per fake: real balls that contain it
    recalled = covered = 0
    for start in range(0, real.shape[0], chunk):
        distances = torch.cdist(real[start : start + chunk], fake)  # (chunk, M)
        radius = real_radius[start : start + chunk].unsqueeze(1)
        inside = distances <= radius
        inside_real_count += inside.sum(dim=0)
        covered += int(inside.any(dim=1).sum())
        recalled += int((distances <= fake_radius.unsqueeze(0)).any(dim=1).sum())
    return {
        "precision": float((inside_real_count > 0).float().mean()),
        "recall": recalled / real.shape[0],
        "density": float(inside_real_count.sum() / (k * fake.shape[0])),
        "coverage": covered / real.shape[0],
    }


def class_statistics(
    fake_probs: torch.Tensor, real_labels: torch.Tensor, num_classes: int
) -> dict[str, Any]:
    """How generated images spread over the classes, against the real class shares."""
    predicted = fake_probs.argmax(dim=1)
    histogram = torch.bincount(predicted, minlength=num_classes).double()
    share = histogram / histogram.sum()
    real_share = torch.bincount(real_labels, minlength=num_classes).double()
    real_share /= real_share.sum()
    present = share > 0
    entropy = float(-(share[present] * share[present].log()).sum())
    kl = float((share[present] * (share[present] / real_share[present]).log()).sum())
    covered = int((share >= COVERAGE_FRACTION * real_share).sum())
    return {
        "class_histogram": histogram.long().tolist(),
        "class_entropy": entropy,
        "class_entropy_max": math.log(num_classes),
        "class_kl_to_real": kl,
        "classes_covered": covered,
    }


def conditional_statistics(
    fake_features: torch.Tensor,
    fake_probs: torch.Tensor,
    asked: torch.Tensor,
    real_features: torch.Tensor,
    real_probs: torch.Tensor,
    real_labels: torch.Tensor,
    num_classes: int,
) -> dict[str, Any]:
    """What a class-conditional generator's label does, for samples ``(M, d)`` asked for
    classes ``asked`` ``(M,)`` against real test features ``(N, d)`` with ``real_labels``:

    * label agreement: the share of samples the classifier calls the asked class, overall and
      per class, beside the classifier's accuracy on each class's real images (the most a
      perfect generator could score with this classifier);
    * intra-class FID: per class, the FID of its samples against that class's real images,
      and the mean over classes (None for a class with fewer than 2 of either);
    * class precision and recall: per class, the share of its samples inside the real
      class's k-NN manifold and the share of the class's real images inside its samples'
      (Kynkäänniemi et al. 2019 within the class, k = 5), and their means: a sample the
      classifier calls the asked class but that looks like no real image of it (a smudge
      called a sandal) counts for agreement, not for precision; a class drawn as a few images
      (collapse) keeps its precision and loses its recall. None for a class with
      ``CLASS_PRECISION_K`` or fewer of either.
    """
    agree = fake_probs.argmax(dim=1) == asked  # (M,)
    real_right = real_probs.argmax(dim=1) == real_labels  # (N,)
    per_class, real_accuracy, intra, manifold = [], [], [], []
    for c in range(num_classes):
        mine, theirs = asked == c, real_labels == c
        per_class.append(float(agree[mine].float().mean()) if mine.any() else None)
        real_accuracy.append(float(real_right[theirs].float().mean()) if theirs.any() else None)
        enough = int(mine.sum()) >= 2 and int(theirs.sum()) >= 2
        intra.append(
            frechet_distance(real_features[theirs], fake_features[mine]) if enough else None
        )
        manifold.append(_class_manifold(real_features[theirs], fake_features[mine]))
    gaps = [r - a for a, r in zip(per_class, real_accuracy) if a is not None and r is not None]
    precision = [m and m["precision"] for m in manifold]  # None for a class too small
    recall = [m and m["recall"] for m in manifold]
    return {
        "label_agreement": float(agree.float().mean()),
        "label_agreement_per_class": per_class,
        "classifier_accuracy_per_class": real_accuracy,
        # the largest shortfall of a class's agreement under the classifier's own accuracy
        "label_agreement_worst_gap": max(gaps) if gaps else None,
        "intra_fid_per_class": intra,
        "intra_fid": _mean_of_present(intra),
        "class_precision_per_class": precision,
        "class_precision": _mean_of_present(precision),
        "class_recall_per_class": recall,
        "class_recall": _mean_of_present(recall),
    }


#: The k of the per-class precision and recall (of ``precision_recall_density_coverage``).
CLASS_PRECISION_K = 5


def _class_manifold(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float] | None:
    if min(real.shape[0], fake.shape[0]) <= CLASS_PRECISION_K:
        return None
    return precision_recall_density_coverage(real, fake, k=CLASS_PRECISION_K)


def _mean_of_present(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def classifier_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): the Inception Score's formula with our classifier."""
    probs = probs.double().clamp_min(1e-12)
    marginal = probs.mean(dim=0, keepdim=True)
    return float(torch.exp((probs * (probs.log() - marginal.log())).sum(dim=1).mean()))


def nearest_neighbours(
    queries: torch.Tensor, references: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance to, and index of, each query's nearest reference ``(N,)``."""
    queries = queries.flatten(1).float()
    references = references.flatten(1).float()  # a no-op when the caller converted already
    reference_norms = references.square().sum(dim=1)  # (R,)
    best_distance, best_index = [], []
    for part in queries.split(chunk):
        # |q - r|^2 = |q|^2 - 2 q.r + |r|^2: one fused matrix product per chunk, (chunk, R).
        scores = torch.addmm(reference_norms, part, references.T, beta=1, alpha=-2)
        value, index = scores.min(dim=1)
        best_distance.append((value + part.square().sum(dim=1)).clamp_min(0).sqrt())
        best_index.append(index)
    return torch.cat(best_distance), torch.cat(best_index)


def memorisation(
    fake_uint8: torch.Tensor,
    train_matrix: torch.Tensor,
    test_distance: torch.Tensor,
    quantile: float = MEMORISATION_QUANTILE,
) -> dict[str, Any]:
    """How close generated images ``(M, 28, 28)`` come to the training images ``(T, 784)``
    (pixel L2), against the test images' distances to theirs ``(N,)``."""
    fake_distance, fake_index = nearest_neighbours(fake_uint8, train_matrix)
    threshold = float(torch.quantile(test_distance, quantile))
    order = fake_distance.argsort()
    return {
        "memorisation_share": float((fake_distance < threshold).float().mean()),
        "memorisation_expected": quantile,
        "memorisation_threshold": threshold,
        "nn_distance_median_generated": float(fake_distance.median()),
        "nn_distance_median_test": float(test_distance.median()),
        # For the figure: the generated images closest to a training image, and those images.
        "closest_pairs": [
            (int(i), int(fake_index[i]), float(fake_distance[i])) for i in order[:16]
        ],
    }
