"""Evaluating a generator: its samples against the test set, with ``metrics``' numbers.

:class:`Reference` is the real side (test images and labels, training images for the
memorisation check), :func:`compare` computes every metric for a set of generated images,
:func:`evaluate_run` evaluates a run folder's generator and writes its record (``Run`` names
the file), and :class:`EvaluateDuringTraining` is the training hook behind ``--eval-every``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic
from . import progress as report_progress
from .classifier import (
    ClassifierRecipe,
    classify,
    features_and_probabilities,
    fit_classifier,
    load_classifier,
)
from .data import Split, load_split, to_model_range, to_uint8
from .errors import GanscopeError
from .metrics import (
    class_statistics,
    classifier_score,
    conditional_statistics,
    frechet_distance,
    kernel_distance,
    memorisation,
    nearest_neighbours,
    precision_recall_density_coverage,
)
from .models import balanced_labels, is_conditional, turn_labels
from .options import EvaluateOptions, resolve
from .plots import labelled_grid, save_png
from .runs import TRAINED_WEIGHTS, append_metrics, closest_pairs_path
from .sampling import generate, latent, z_dim_of


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
    batch_size: int = EvaluateOptions.batch_size,
    asked: torch.Tensor | None = None,
) -> dict[str, Any]:
    """All metrics for generated images ``(M, 28, 28)`` uint8 against ``reference``; with
    ``asked``, the classes a conditional generator was asked for ``(M,)``, also
    ``metrics.conditional_statistics``."""

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
    if asked is not None:
        result.update(
            conditional_statistics(
                fake_features,
                fake_probs,
                asked,
                real_features,
                real_probs,
                reference.test_labels,
                reference.num_classes,
            )  # fmt: skip
        )
    if reference.train_images is not None:
        result.update(
            memorisation(fake_uint8, reference.train_matrix(), reference.test_to_train_distance())
        )
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def load_reference(
    dataset: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    memorisation_check: bool = True,
    progress: bool = True,
) -> Reference:

    test = load_split(dataset, "test", data_dir, progress=progress)
    train = (
        load_split(dataset, "train", data_dir, progress=progress) if memorisation_check else None
    )
    return Reference(test.images, test.labels, train.images if train else None, len(test.classes))


def evaluate_generator(
    generator: nn.Module,
    reference: Reference,
    classifier: nn.Module,
    n: int,
    seed: int,
    **compare_options: Any,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Metrics for ``n`` samples of ``generator`` (latent seed ``seed``); also the samples.
    A conditional generator is asked for every class in turn (class-balanced samples), and
    the record gains its conditional metrics. ``compare_options`` go to :func:`compare`
    (``batch_size``, ``kid_subsets``, ``k``)."""

    if n < 2:
        raise GanscopeError(f"--n must be at least 2, got {n}")
    batch_size = compare_options.get("batch_size", EvaluateOptions.batch_size)
    asked = turn_labels(generator, n)
    z = latent(n, z_dim_of(generator), seed)
    fake = to_uint8(generate(generator, z, batch_size, labels=asked))
    result = compare(fake, reference, classifier, seed=seed, asked=asked, **compare_options)
    return result, fake


def classification_accuracy_score(
    generator: nn.Module,
    test: Split,
    *,
    per_class: int = EvaluateOptions.cas_per_class,
    seed: int = 0,
    recipe: ClassifierRecipe | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The Classification Accuracy Score (Ravuri & Vinyals 2019) of a conditional generator:
    the shipped classifier's recipe trained on ``per_class`` generated images of every class
    only (latent seed ``seed``), then tested on the real ``test`` split: overall and per
    class. The same recipe trained on the real training set is the shipped classifier (its
    recorded test accuracy, ``cas_real`` in ``evaluate_run``'s record)."""
    if not is_conditional(generator):
        raise GanscopeError("the Classification Accuracy Score needs a conditional generator")
    recipe = recipe or ClassifierRecipe()
    count = per_class * generator.num_classes
    if count < recipe.batch_size:
        raise GanscopeError(f"CAS needs at least {recipe.batch_size} images, got {count}")
    started = time.perf_counter()
    labels = balanced_labels(count, generator.num_classes)
    images = to_uint8(generate(generator, latent(count, z_dim_of(generator), seed), labels=labels))
    generated = Split(images, labels, test.classes, test.dataset, "generated")
    report_progress.say(
        f"CAS: training the classifier's recipe on {count:,} generated images", enabled=progress
    )
    model = fit_classifier(generated, None, recipe, progress)
    right = classify(model, to_model_range(test.images)).argmax(1) == test.labels
    return {
        "cas": float(right.float().mean()),
        "cas_per_class": [
            float(right[test.labels == c].float().mean()) for c in range(generator.num_classes)
        ],
        "cas_samples_per_class": per_class,
        "cas_epochs": recipe.epochs,
        "cas_seconds": round(time.perf_counter() - started, 1),
    }


def evaluate_run(
    run,
    options: EvaluateOptions | None = None,
    *,
    reference: Reference | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Evaluate a run's generator against the test set; writes its record (JSON, at
    ``Run.evaluation_path``) and a figure of the closest generated/training pairs. Returns the
    record: the result header (run, model, the epoch whose weights were used, n, seed,
    classifier checksum), then the metrics. A caller evaluating several runs of one dataset
    passes one ``reference`` (:func:`load_reference`): the test set's features and distances
    are then computed once."""

    opts = resolve(EvaluateOptions, options, overrides)
    if opts.cas and not run.config.model.conditional:
        raise GanscopeError(
            f"--cas: run {run.path} is unconditional; the Classification Accuracy Score needs "
            "a generator that takes the class (train --conditional)"
        )
    classifier = load_classifier(opts.classifier_path, device=opts.device)
    generator, epoch = run.generator_at(opts.epoch, opts.device, trained=opts.trained_weights)
    if reference is None:
        reference = load_reference(
            run.config.data.dataset,
            opts.data_dir if opts.data_dir is not None else run.config.data.data_dir,
            progress=opts.progress,
        )
    weights = ", G's own weights, not their moving average" if opts.trained_weights else ""
    report_progress.say(
        f"evaluating {run.path} (epoch {epoch}{weights}, {opts.n} samples)", enabled=opts.progress
    )
    result, fake = evaluate_generator(
        generator, reference, classifier, n=opts.n, seed=opts.seed, batch_size=opts.batch_size
    )
    if opts.cas:
        result |= _cas(run, generator, opts) | {"cas_real": classifier.meta["test_accuracy"]}
    result = {
        **run.result_header(epoch, opts.n, opts.seed, classifier.meta["sha256"]),
        "classifier_test_accuracy": classifier.meta["test_accuracy"],
        **({"weights": TRAINED_WEIGHTS} if opts.trained_weights else {}),
        **result,
    }
    path = run.evaluation_path(epoch, opts.seed, opts.n, trained=opts.trained_weights)
    pairs = result.get("closest_pairs", [])
    if pairs:
        result["closest_pairs_figure"] = _closest_pairs_figure(pairs, fake, reference, path)
    atomic.write_json(path, result)
    return result


def _cas(run, generator: nn.Module, opts: EvaluateOptions) -> dict[str, Any]:
    """The Classification Accuracy Score of a conditional run's generator (``--cas``)."""
    test = load_split(
        run.config.data.dataset,
        "test",
        opts.data_dir or run.config.data.data_dir,
        progress=opts.progress,
    )
    return classification_accuracy_score(
        generator, test, per_class=opts.cas_per_class, seed=opts.seed,
        recipe=dataclasses.replace(ClassifierRecipe(), epochs=opts.cas_epochs),
        progress=opts.progress,
    )  # fmt: skip


def _closest_pairs_figure(pairs, fake: torch.Tensor, reference: Reference, path) -> str:
    """The figure of the generated images closest to a training image, beside the evaluation
    record at ``path``; returns its path."""
    rows = torch.stack([fake[[p[0] for p in pairs]], reference.train_images[[p[1] for p in pairs]]])
    figure = labelled_grid(
        rows,
        ["generated", "nearest train"],
        "generated images closest to a training image (pixel L2)",
    )
    return str(save_png(figure, closest_pairs_path(path)))


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
            state.sampler,
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
        report_progress.say(
            f"  eval epoch {record['epoch']}: FID {record['fid']:.3f}  "
            f"precision {record['precision']:.3f}  recall {record['recall']:.3f}  "
            f"classes {record['classes_covered']}",
            enabled=self.progress,
        )
