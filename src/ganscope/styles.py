"""What z still does once the class is given: the style dimensions of a conditional generator.

A class-conditional G is told the garment; its latent vector should then carry the style
(shape, thickness, brightness), not the class. For every latent dimension and every class this
shifts the same ``n`` base vectors by -delta and +delta with the class held fixed, and reads:

* ``keep``: the share of the shifted images the classifier still calls the asked class (label
  agreement along the shift), beside ``keep_base``, the share of the unshifted ones;
* ``feature_change``: the mean distance between the -delta and +delta images in the
  classifier's 128-d feature space, and ``feature_change_relative``, that distance over the
  mean distance between two base images of the class (1: as different as two random samples);
* what a person can read off the pixels (images on [0, 1], "ink" a pixel above 0.5): the
  change from -delta to +delta of the ink area (share of the 784 pixels), of the width (the
  columns that hold ink) and of the brightness (mean intensity).

Per dimension, the means over the classes; a *style dimension* keeps the class as well as
the unshifted images do (``keep`` at least ``KEEP_SHARE`` of ``keep_base``: a generator whose
label agreement is 70% at rest is not asked for 90% after a 10-sigma shift) and changes the
image; :func:`style_dimensions` ranks them by ``feature_change_relative``.
:func:`style_figure` draws the strongest ones: a row per class, the same base vector in every
row, columns -delta, unchanged, +delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import progress as report_progress
from .classifier import features_and_probabilities
from .data import to_uint8
from .plots import labelled_grid
from .sampling import check_dims, generate, latent, z_dim_of

#: A dimension keeps the class when its shifted images are called the asked class at least
#: this fraction as often as the unshifted ones are.
KEEP_SHARE = 0.9
#: Pixels above this (on [0, 1]) count as ink.
INK = 0.5


def _pixels(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ink area, width and brightness per image ``(N,)`` of images ``(N, 1, 28, 28)``."""
    unit = (images + 1) / 2  # [-1, 1] -> [0, 1]
    ink = unit > INK  # (N, 1, 28, 28)
    return {
        "ink": ink.float().mean(dim=(1, 2, 3)),  # share of the pixels
        "width": ink.any(dim=2).flatten(1).float().sum(1),  # columns with ink, in pixels
        "brightness": unit.mean(dim=(1, 2, 3)),
    }


def style_readings(
    generator: nn.Module,
    classifier: nn.Module,
    dims: Sequence[int],
    delta: float,
    n: int,
    seed: int,
    batch_size: int = 256,
    classes: Sequence[str] = (),
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per latent dimension: its readings per class (lists, class order) and their
    means over the classes. ``generator`` must be conditional (``G(z, labels)``)."""
    num_classes = generator.num_classes
    dims = check_dims(dims, z_dim_of(generator))
    z = latent(n, z_dim_of(generator), seed)  # (n, z_dim): the same base vectors per class
    per_class = torch.arange(num_classes).repeat_interleave(n)  # (C n,)
    base_z = z.repeat(num_classes, 1)  # (C n, z_dim)
    base = generate(generator, base_z, batch_size, per_class)
    base_features, base_probs = features_and_probabilities(classifier, base, batch_size)
    # the class's own spread: mean distance between two of its base images
    spread = torch.stack(
        [torch.cdist(f, f).sum() / (n * (n - 1)) for f in base_features.view(num_classes, n, -1)]
    )  # (C,)
    keep_base = (base_probs.argmax(1) == per_class).float().view(num_classes, n).mean(1)
    rows = []
    for dim in report_progress.bar(dims, desc="style", enabled=progress):
        shifted = torch.cat([base_z, base_z])  # (2 C n, z_dim): -delta, then +delta
        shifted[: len(base_z), dim] -= delta
        shifted[len(base_z) :, dim] += delta
        images = generate(generator, shifted, batch_size, torch.cat([per_class, per_class]))
        feats, probs = features_and_probabilities(classifier, images, batch_size)
        minus, plus = feats[: len(base_z)], feats[len(base_z) :]
        kept = (probs.argmax(1) == torch.cat([per_class, per_class])).float()
        change = (plus - minus).norm(dim=1).view(num_classes, n).mean(1)  # (C,)
        pix = _pixels(images)
        row: dict[str, Any] = {
            "dim": dim,
            "delta": delta,
            "n": n,
            "keep": kept.view(2, num_classes, n).mean((0, 2)).tolist(),
            "keep_base": keep_base.tolist(),
            "feature_change": change.tolist(),
            "feature_change_relative": (change / spread.clamp_min(1e-12)).tolist(),
        }
        for key, values in pix.items():
            diff = values[len(base_z) :] - values[: len(base_z)]  # +delta minus -delta
            row[f"{key}_change"] = diff.view(num_classes, n).mean(1).tolist()
        for key in [k for k in row if isinstance(row[k], list)]:
            row[f"{key}_mean"] = float(np.mean(row[key]))
        rows.append(row)
    return rows


def style_dimensions(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dimensions that keep the class, the most image-changing first."""
    keeping = [r for r in rows if r["keep_mean"] >= KEEP_SHARE * r["keep_base_mean"]]
    return sorted(keeping, key=lambda r: r["feature_change_relative_mean"], reverse=True)


def style_figure(
    generator: nn.Module, dims: Sequence[int], delta: float, seed: int, classes: Sequence[str]
) -> np.ndarray:
    """For each of ``dims``, a block with a row per class and columns -delta, unchanged,
    +delta, all from the same base vector; the blocks side by side."""
    num_classes = generator.num_classes
    z = latent(1, z_dim_of(generator), seed).repeat(num_classes, 1)  # (C, z_dim)
    labels = torch.arange(num_classes)
    columns = []
    for dim in dims:
        for shift in (-delta, 0.0, delta):
            moved = z.clone()
            moved[:, dim] += shift
            columns.append(to_uint8(generate(generator, moved, labels=labels)))  # (C, 28, 28)
    rows = torch.stack(columns, dim=1)  # (C, 3 D, 28, 28)
    names = ", ".join(f"dim {d}" for d in dims)
    title = f"style dimensions ({names}): -{delta:g} / 0 / +{delta:g}, the class held fixed"
    return labelled_grid(rows, [str(c) for c in classes], title)
