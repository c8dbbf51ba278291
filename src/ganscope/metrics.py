"""Sample-quality metrics in the Fashion-MNIST classifier's feature space.

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
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
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


class _Precomputed(nn.Module):
    """Identity 'feature extractor' so torchmetrics accepts features computed elsewhere."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets ``(N, d)`` and ``(M, d)``, computed in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise GanscopeError("FID needs at least 2 images on each side")
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), normalize=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over random subsets) with the cubic polynomial kernel, seeded."""
    from torchmetrics.image.kid import KernelInceptionDistance

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
    fake_uint8: torch.Tensor, reference: Reference, quantile: float = MEMORISATION_QUANTILE
) -> dict[str, Any]:
    """Nearest training image of every generated (and every test) image, in pixel space."""
    fake_distance, fake_index = nearest_neighbours(fake_uint8, reference.train_matrix())
    test_distance = reference.test_to_train_distance()
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


@dataclass(frozen=True)
class Reference:
    """The real side of every comparison: test images and labels, training images.

    What depends only on the real data (test features, test-to-train distances) is computed
    once per Reference and kept in ``cache``, so evaluating several models or epochs against
    one Reference pays for it once.
    """

    test_images: torch.Tensor  # (N, 28, 28) uint8
    test_labels: torch.Tensor  # (N,)
    train_images: torch.Tensor | None  # (T, 28, 28) uint8; None skips memorisation
    num_classes: int
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def train_matrix(self) -> torch.Tensor:
        if "train" not in self.cache:
            self.cache["train"] = self.train_images.flatten(1).float()  # (T, 784)
        return self.cache["train"]

    def test_to_train_distance(self) -> torch.Tensor:
        if "test_nn" not in self.cache:
            self.cache["test_nn"] = nearest_neighbours(self.test_images, self.train_matrix())[0]
        return self.cache["test_nn"]

    def test_features(self, classifier: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        from .classifier import features_and_probabilities
        from .data import to_model_range

        key = (
            "features",
            classifier.meta.get("sha256") if hasattr(classifier, "meta") else id(classifier),
        )
        if key not in self.cache:
            self.cache[key] = features_and_probabilities(
                classifier, to_model_range(self.test_images)
            )
        return self.cache[key]


def compare(
    fake_uint8: torch.Tensor,
    reference: Reference,
    classifier: nn.Module,
    *,
    seed: int = 0,
    k: int = 5,
    kid_subsets: int = 100,
    batch_size: int = 256,
) -> dict[str, Any]:
    """All metrics for generated images ``(M, 28, 28)`` uint8 against ``reference``."""
    from .classifier import features_and_probabilities
    from .data import to_model_range

    if fake_uint8.shape[0] < 2:
        raise GanscopeError(f"need at least 2 generated images, got {fake_uint8.shape[0]}")
    started = time.perf_counter()
    real_features, real_probs = reference.test_features(classifier)
    fake_features, fake_probs = features_and_probabilities(
        classifier, to_model_range(fake_uint8), batch_size
    )
    kid, kid_std = kernel_distance(real_features, fake_features, subsets=kid_subsets, seed=seed)
    result: dict[str, Any] = {
        "fid": frechet_distance(real_features, fake_features),
        "kid": kid,
        "kid_std": kid_std,
        **precision_recall_density_coverage(real_features, fake_features, k=k),
        **class_statistics(fake_probs, reference.test_labels, reference.num_classes),
        "classifier_score": classifier_score(fake_probs),
        "classifier_score_real": classifier_score(real_probs),
    }
    if reference.train_images is not None:
        result.update(memorisation(fake_uint8, reference))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def load_reference(
    dataset: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    memorisation_check: bool = True,
    progress: bool = True,
) -> Reference:
    from .data import load_split

    test = load_split(dataset, "test", data_dir, progress=progress)
    train = (
        load_split(dataset, "train", data_dir, progress=progress) if memorisation_check else None
    )
    return Reference(test.images, test.labels, train.images if train else None, len(test.classes))


def evaluate_generator(
    generator: nn.Module,
    reference: Reference,
    classifier: nn.Module,
    *,
    n: int = 10000,
    seed: int = 0,
    batch_size: int = 256,
    kid_subsets: int = 100,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Metrics for ``n`` samples of ``generator`` (latent seed ``seed``); also the samples."""
    from .data import to_uint8
    from .sampling import generate, latent, z_dim_of

    if n < 2:
        raise GanscopeError(f"--n must be at least 2, got {n}")
    fake = to_uint8(generate(generator, latent(n, z_dim_of(generator), seed), batch_size))
    result = compare(fake, reference, classifier, seed=seed, kid_subsets=kid_subsets)
    return result, fake


def evaluate_run(
    run,
    *,
    n: int = 10000,
    seed: int = 0,
    epoch: int | None = None,
    classifier_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run's generator against the test set; writes ``RUN/evaluation/*.json`` and a
    figure of the closest generated/training pairs. Returns the results dict."""
    from .classifier import load_classifier
    from .plots import labelled_grid, save_png
    from .runs import atomic_write_json

    if n < 2:
        raise GanscopeError(f"--n must be at least 2, got {n}")
    classifier = load_classifier(classifier_path, device=device)
    generator = run.generator(epoch=epoch, device=device)
    reference = load_reference(
        run.config.data.dataset,
        data_dir if data_dir is not None else run.config.data.data_dir,
        progress=progress,
    )
    result, fake = evaluate_generator(
        generator, reference, classifier, n=n, seed=seed, batch_size=batch_size
    )
    result = {
        **run.result_header(epoch, n, seed, classifier),
        "classifier_test_accuracy": classifier.meta["test_accuracy"],
        **result,
    }
    folder = run.path / "evaluation"
    stem = f"epoch_{result['epoch']:03d}_seed{seed}_n{n}"
    pairs = result.get("closest_pairs", [])
    if pairs:
        rows = torch.stack(
            [fake[[p[0] for p in pairs]], reference.train_images[[p[1] for p in pairs]]]
        )
        figure = labelled_grid(
            rows,
            ["generated", "nearest train"],
            "generated images closest to a training image (pixel L2)",
        )
        result["closest_pairs_figure"] = str(save_png(figure, folder / f"{stem}_closest.png"))
    atomic_write_json(folder / f"{stem}.json", result)
    return result


class EvaluateDuringTraining:
    """Training callback: metrics on ``eval_samples`` images every ``eval_every`` epochs,
    appended to the run's metrics log as ``"kind": "eval"`` records.

    The classifier and the test set are loaded at the first evaluation and kept by this
    object (not by the module), so training without evaluation pays nothing.
    """

    def __init__(self, config, train_images: torch.Tensor, progress: bool = True) -> None:
        self.config = config
        self.train_images = train_images
        self.progress = progress
        self._classifier = None
        self._reference: Reference | None = None

    def __call__(self, run, state, epoch_record: dict[str, Any]) -> None:
        from .classifier import load_classifier
        from .data import load_split
        from .runs import append_metrics

        every = self.config.train.eval_every
        last = epoch_record["epoch"] == self.config.train.epochs
        if not every or (epoch_record["epoch"] % every and not last):
            return
        if self._classifier is None:
            self._classifier = load_classifier()
            test = load_split(
                self.config.data.dataset, "test", self.config.data.data_dir, progress=self.progress
            )
            self._reference = Reference(
                test.images, test.labels, self.train_images, len(test.classes)
            )
        result, _ = evaluate_generator(
            state.generator,
            self._reference,
            self._classifier,
            n=self.config.train.eval_samples,
            seed=self.config.train.seed,
            kid_subsets=20,
        )
        result.pop("closest_pairs", None)
        record = {
            "kind": "eval",
            "epoch": epoch_record["epoch"],
            "step": epoch_record["step"],
            "n": self.config.train.eval_samples,
            **result,
        }
        append_metrics(run.metrics_path, [record])
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(
                f"  eval epoch {record['epoch']}: FID {record['fid']:.3f}  "
                f"precision {record['precision']:.3f}  recall {record['recall']:.3f}  "
                f"classes {record['classes_covered']}"
            )
