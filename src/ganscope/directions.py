"""Latent directions and what shifting along each one does, measured.

A direction is an axis (one latent dimension) or a closed-form one (SeFa's, GANSpace's);
:func:`analyze` shifts any set of them on the same base vectors and reads the images with the
classifier. A run's whole analysis, its record and its files are ``readings``'.

The report shifts five dimensions by +-10 and reads the images by eye. Here every dimension
(or any set of directions, e.g. SeFa's closed-form ones) is shifted on the same N base
vectors, the images are classified by the shipped Fashion-MNIST classifier, and each reading
gets a bootstrap confidence interval over the base vectors, so noise is flagged as noise.

Per direction and delta:
* ``minus_class`` / ``plus_class``: the class whose mean probability gains most when lowering
  / raising, with that gain and its 95% interval; ``*_reliable`` when the interval excludes 0.
* ``strength``: total-variation distance between the class distributions at -delta and
  +delta (0: no semantic effect, 1: disjoint classes), with its interval.
* ``flip_share``: share of base vectors whose predicted class differs between -delta and
  +delta.
* brightness (mean intensity on [0, 1]), sharpness (mean gradient magnitude) and classifier
  confidence (max probability, the report's "clarity") changes on each side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import progress as report_progress
from .classifier import classify
from .errors import GanscopeError
from .models import is_conditional
from .options import AnalyzeOptions
from .sampling import check_deltas, check_dims, generate, latent, z_dim_of

#: The defaults of every analysis, written once in ``options``.
DEFAULTS = AnalyzeOptions()


@dataclass(frozen=True)
class Direction:
    """A latent direction: a name ("dim 20", "SeFa 1") and a vector ``(z_dim,)``."""

    name: str
    vector: torch.Tensor
    dim: int | None = None  # set for single axes


def axis_directions(dims: Sequence[int], z_dim: int) -> list[Direction]:
    eye = torch.eye(z_dim)
    return [Direction(f"dim {d}", eye[d], d) for d in check_dims(dims, z_dim)]


def sefa_directions(generator: nn.Module, k: int = 10) -> list[Direction]:
    """Closed-form factorisation (SeFa, Shen & Zhou 2021): the top eigenvectors of A^T A for
    the first layer's weight A ``(out, z_dim)``; directions that change its output most."""
    weight, _ = _first_layer(generator, "SeFa")  # (out, z_dim)
    weight = weight / weight.norm(dim=0, keepdim=True)  # as in the paper: normalise per input
    eigenvalues, eigenvectors = torch.linalg.eigh(weight.T @ weight)  # ascending
    order = eigenvalues.argsort(descending=True)[:k]
    return [Direction(f"SeFa {i + 1}", eigenvectors[:, j].float()) for i, j in enumerate(order)]


#: Random latent vectors whose first-layer activations GANSpace's PCA is computed from.
PCA_SAMPLES = 4096


def _first_layer(generator: nn.Module, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight ``(out, z_dim)`` and bias ``(out,)`` of G's first layer, in float64 on
    the CPU. A conditional G's first layer also takes the one-hot label after z: its columns
    only add a constant per class, so the directions in z are read from z's columns."""
    finder = getattr(generator, "first_layer", None)  # an imported generator (foreign)
    if callable(finder):
        found = finder()
    else:
        first = next((m for m in generator.modules() if isinstance(m, nn.Linear)), None)
        found = first and (first.weight.detach().double().cpu(), first.bias.detach().double().cpu())
    if not found:
        raise GanscopeError(
            f"{method} needs a generator whose first layer reads z (an nn.Linear, or an "
            "nn.ConvTranspose2d of z as a 1x1 image)"
        )
    weight, bias = found
    if is_conditional(generator):  # (out, z_dim + C): z's columns come first
        weight = weight[:, : z_dim_of(generator)]
    return weight, bias


def pca_directions(generator: nn.Module, k: int, seed: int = 0) -> list[Direction]:
    """GANSpace (Härkönen et al. 2020): the principal components of the first layer's
    activations over ``PCA_SAMPLES`` random z, mapped back to latent directions by linear
    regression of z on the components' coordinates (as GANSpace does for BigGAN)."""
    weight, _ = _first_layer(generator, "GANSpace")  # the bias cancels when centring
    z = latent(PCA_SAMPLES, z_dim_of(generator), seed).double()  # (N, z_dim)
    # The centred activations (z - mean) W^T have rank <= z_dim: with (z - mean) = QR, their
    # right singular vectors are those of R W^T, (z_dim, out): the same components as an SVD
    # of the (N, out) activations (6,272 wide for the CNN) at a fraction of the cost.
    q, r = torch.linalg.qr(z - z.mean(dim=0))  # (N, z_dim), (z_dim, z_dim)
    _, _, components = torch.linalg.svd(r @ weight.T, full_matrices=False)  # (z_dim, out)
    components = components[:k]  # (k, out)
    coordinates = q @ (r @ weight.T @ components.T)  # (N, k): the activations' coordinates
    basis = torch.linalg.lstsq(coordinates, z).solution  # (k, z_dim): z ~ coordinates @ basis
    basis = basis / basis.norm(dim=1, keepdim=True)
    # An eigenvector's sign is arbitrary: make each direction's largest entry positive.
    signs = basis.gather(1, basis.abs().argmax(dim=1, keepdim=True)).sign()
    return [Direction(f"PCA {i + 1}", (signs[i] * row).float()) for i, row in enumerate(basis)]


def closed_form_directions(
    kind: str, generator: nn.Module, count: int, seed: int
) -> list[Direction]:
    """``count`` of SeFa's (``kind`` "sefa") or GANSpace's ("pca", its z of ``seed``)
    directions: what the analysis labels and what the explorer and the comparison recompute."""
    if kind == "sefa":
        return sefa_directions(generator, count)
    return pca_directions(generator, count, seed)


def _sharpness(images: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude per image ``(N,)`` of images ``(N, 1, H, W)`` on [0, 1]."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return (dx[..., :-1, :].square() + dy[..., :, :-1].square()).sqrt().mean(dim=(1, 2, 3))


@dataclass
class _Side:
    """Per-base-vector measurements of one image set ``(N, ...)``."""

    probs: torch.Tensor  # (N, C)
    brightness: torch.Tensor  # (N,)
    sharpness: torch.Tensor  # (N,)

    @property
    def confidence(self) -> torch.Tensor:
        return self.probs.max(dim=1).values

    @property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(dim=1)


def _measure(images: torch.Tensor, classifier: nn.Module, batch_size: int) -> _Side:
    unit = (images + 1) / 2  # [-1, 1] -> [0, 1]
    probs = classify(classifier, images, batch_size)
    return _Side(probs, unit.mean(dim=(1, 2, 3)), _sharpness(unit))


def interval95(samples: torch.Tensor) -> list[float]:
    """95% percentile interval of bootstrap samples ``(B,)``."""
    low, high = torch.quantile(samples.double(), torch.tensor([0.025, 0.975], dtype=torch.double))
    return [float(low), float(high)]


def paired_mean(diff: torch.Tensor, boot: torch.Tensor) -> tuple[float, list[float]]:
    """Mean of per-base-vector differences ``(N,)`` and its bootstrap interval."""
    return float(diff.mean()), interval95(diff[boot].mean(dim=1))


def _read_direction(
    base: _Side, minus: _Side, plus: _Side, boot: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for side_name, side in (("minus", minus), ("plus", plus)):
        gain = side.probs.mean(0) - base.probs.mean(0)  # (C,)
        target = int(gain.argmax())
        value, interval = paired_mean(side.probs[:, target] - base.probs[:, target], boot)
        row[f"{side_name}_class"] = classes[target]
        row[f"{side_name}_class_index"] = target
        row[f"{side_name}_gain"] = value
        row[f"{side_name}_gain_ci"] = interval
        row[f"{side_name}_reliable"] = interval[0] > 0
        row[f"{side_name}_distribution"] = side.probs.mean(0).tolist()
        for key in ("brightness", "sharpness", "confidence"):
            change, change_ci = paired_mean(getattr(side, key) - getattr(base, key), boot)
            row[f"{side_name}_{key}"] = change
            row[f"{side_name}_{key}_ci"] = change_ci
    tv = 0.5 * (plus.probs.mean(0) - minus.probs.mean(0)).abs().sum()
    boot_tv = 0.5 * (plus.probs[boot].mean(1) - minus.probs[boot].mean(1)).abs().sum(-1)
    row["strength"] = float(tv)
    row["strength_ci"] = interval95(boot_tv)
    row["flip_share"] = float((minus.predicted != plus.predicted).float().mean())
    row["base_distribution"] = base.probs.mean(0).tolist()
    return row


def analyze(
    generator: nn.Module,
    classifier: nn.Module,
    directions: Sequence[Direction],
    deltas: Sequence[float] = DEFAULTS.deltas,
    n: int = DEFAULTS.n,
    seed: int = DEFAULTS.seed,
    bootstrap: int = DEFAULTS.bootstrap,
    batch_size: int = DEFAULTS.batch_size,
    classes: Sequence[str] | None = None,
    progress: bool = False,
    labels: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """One row per (direction, delta): see the module docstring for the fields. A conditional
    generator draws base vector ``k`` as class ``labels[k]`` ``(n,)`` on both sides of every
    shift, so the rows say what z does once the class is given."""
    if n < 2:
        raise GanscopeError(f"--n must be at least 2 base vectors, got {n}")
    deltas = check_deltas(deltas)
    if any(delta <= 0 for delta in deltas):
        raise GanscopeError(f"deltas must be positive (both signs are used), got {deltas}")
    if not directions:
        raise GanscopeError("nothing to analyse: no directions")
    classes = list(classes or getattr(classifier, "meta", {}).get("classes") or range(10))
    classes = [str(c) for c in classes]
    z = latent(n, z_dim_of(generator), seed)  # (N, z_dim), the same for every direction
    base = _measure(generate(generator, z, batch_size, labels), classifier, batch_size)
    both = torch.cat([labels, labels]) if labels is not None else None  # (2N,)
    boot = torch.randint(0, n, (bootstrap, n), generator=torch.Generator().manual_seed(seed))
    rows = []
    for direction in report_progress.bar(directions, desc="directions", enabled=progress):
        vector = direction.vector.to(z.dtype)
        for delta in deltas:
            shifted = torch.cat([z - delta * vector, z + delta * vector])  # (2N, z_dim)
            images = generate(generator, shifted, batch_size, both)
            sides = _measure(images, classifier, batch_size)
            minus = _Side(sides.probs[:n], sides.brightness[:n], sides.sharpness[:n])
            plus = _Side(sides.probs[n:], sides.brightness[n:], sides.sharpness[n:])
            row = {
                "direction": direction.name,
                "dim": direction.dim,
                "delta": delta,
                "n": n,
                **_read_direction(base, minus, plus, boot, classes),
            }
            rows.append(row)
    return rows


def ranked(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by semantic strength, strongest first."""
    return sorted(rows, key=lambda r: r["strength"], reverse=True)
