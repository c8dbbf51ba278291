"""Classifier boundaries in z: the direction "towards <class>" (InterFaceGAN, Shen et al. 2020).

For every class, a linear boundary in the latent space is fitted to the shipped classifier's
verdict on seeded latent vectors: one-vs-rest logistic regression (class-balanced, a small L2
penalty, all classes at once with L-BFGS) on ``n`` vectors, 80% to fit and 20% held out. Its
unit normal is the edit "towards <class>". InterFaceGAN's conditional manipulation projects
other classes' normals out of it, so that an edit towards one class keeps the others' side of
their boundaries: "towards Sneaker, keeping Sandal".

Each boundary carries its fit statistics: vectors and positives it was fitted on, held-out
accuracy and balanced accuracy (the mean of the true-positive and true-negative rates, the
honest one for a class that is a tenth of the samples), and stability: the cosine between
the normals fitted on the two halves of the fitting set (1: the same boundary).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .classifier import classify
from .data import to_uint8
from .directions import Direction
from .plots import labelled_grid
from .sampling import generate, latent, z_dim_of

#: Share of the fitting vectors held out to measure each boundary.
HOLDOUT = 0.2
#: A class needs this many positives (and negatives) among the fitting vectors.
MIN_POSITIVES = 20
#: L2 penalty on the normal's weights (z is standard normal, so no scaling is needed).
L2 = 1e-3


@dataclass(frozen=True)
class Boundary:
    """One class's boundary: its unit normal ``(z_dim,)`` (None: too few positives)."""

    class_index: int
    name: str
    normal: torch.Tensor | None
    offset: float
    n_fit: int
    positives: int
    held_out_accuracy: float | None
    held_out_balanced_accuracy: float | None
    stability: float | None

    @property
    def fitted(self) -> bool:
        return self.normal is not None

    def record(self) -> dict[str, Any]:
        """The analysis record's entry (the normal as a list of floats)."""
        return {
            "class_index": self.class_index,
            "class": self.name,
            "normal": None if self.normal is None else [float(v) for v in self.normal],
            "offset": self.offset,
            "n_fit": self.n_fit,
            "positives": self.positives,
            "held_out_accuracy": self.held_out_accuracy,
            "held_out_balanced_accuracy": self.held_out_balanced_accuracy,
            "stability": self.stability,
        }

    @classmethod
    def from_record(cls, entry: dict[str, Any]) -> Boundary:
        normal = entry.get("normal")
        return cls(
            class_index=int(entry["class_index"]),
            name=str(entry["class"]),
            normal=None if normal is None else torch.tensor(normal, dtype=torch.float32),
            offset=float(entry["offset"]),
            n_fit=int(entry["n_fit"]),
            positives=int(entry["positives"]),
            held_out_accuracy=entry.get("held_out_accuracy"),
            held_out_balanced_accuracy=entry.get("held_out_balanced_accuracy"),
            stability=entry.get("stability"),
        )


def fit_linear(
    z: torch.Tensor, targets: torch.Tensor, l2: float = L2, steps: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-vs-rest logistic regression of ``targets`` ``(N, C)`` (0/1) on ``z`` ``(N, d)``,
    each class weighted so its positives and negatives count equally; returns weights
    ``(C, d)`` and biases ``(C,)`` in float64. Deterministic (full-batch L-BFGS from zero)."""
    x, y = z.double(), targets.double()
    positives = y.sum(0).clamp(min=1)
    pos_weight = (len(y) - positives).clamp(min=1) / positives  # (C,)
    weight = torch.zeros(y.shape[1], x.shape[1], dtype=torch.double, requires_grad=True)
    bias = torch.zeros(y.shape[1], dtype=torch.double, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], max_iter=steps, line_search_fn="strong_wolfe", tolerance_grad=1e-9
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x @ weight.T + bias
        loss = (
            nn.functional.binary_cross_entropy_with_logits(
                logits, y, pos_weight=pos_weight, reduction="sum"
            )
            / len(x)
            + l2 * weight.square().sum()
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return weight.detach(), bias.detach()


def _unit(vector: torch.Tensor) -> torch.Tensor:
    return vector / vector.norm().clamp(min=1e-12)


def boundaries_from(
    z: torch.Tensor, predicted: torch.Tensor, classes: Sequence[str]
) -> list[Boundary]:
    """Fit every class's boundary to latent vectors ``z`` ``(N, d)`` and the classes predicted
    for their images ``(N,)``: the first 80% fit, the rest measure (see the module docstring)."""
    n = len(z)
    split = int(round(n * (1 - HOLDOUT)))
    targets = nn.functional.one_hot(predicted.long(), len(classes)).double()  # (N, C)
    weight, bias = fit_linear(z[:split], targets[:split])
    half = split // 2
    weight_a, _ = fit_linear(z[:half], targets[:half])
    weight_b, _ = fit_linear(z[half:split], targets[half:split])
    held_logits = z[split:].double() @ weight.T + bias  # (H, C)
    found = []
    for c, name in enumerate(classes):
        positives = int(targets[:split, c].sum())
        if min(positives, split - positives) < MIN_POSITIVES:
            found.append(Boundary(c, name, None, 0.0, split, positives, None, None, None))
            continue
        truth, guess = targets[split:, c] > 0, held_logits[:, c] > 0
        accuracy = float((truth == guess).double().mean()) if n > split else None
        rates = [float((guess[truth == side] == side).double().mean())
                 for side in (True, False) if bool((truth == side).any())]  # fmt: skip
        balanced = sum(rates) / 2 if len(rates) == 2 else None
        norm = float(weight[c].norm())
        found.append(
            Boundary(
                class_index=c,
                name=name,
                normal=_unit(weight[c]).float(),
                offset=float(bias[c]) / max(norm, 1e-12),  # signed distance of the origin
                n_fit=split,
                positives=positives,
                held_out_accuracy=accuracy,
                held_out_balanced_accuracy=balanced,
                stability=float(torch.dot(_unit(weight_a[c]), _unit(weight_b[c]))),
            )
        )
    return found


def fit_boundaries(
    generator: nn.Module,
    classifier: nn.Module,
    n: int,
    seed: int,
    classes: Sequence[str],
    batch_size: int = 256,
) -> list[Boundary]:
    """Every class's boundary in ``generator``'s latent space, fitted to ``classifier``'s
    verdict on ``n`` latent vectors of seed ``seed``."""
    z = latent(n, z_dim_of(generator), seed)
    probs = classify(classifier, generate(generator, z, batch_size), batch_size)
    return boundaries_from(z, probs.argmax(dim=1), classes)


def conditional_normal(normal: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """``normal`` with the span of ``others`` projected out, as a unit vector: moving along it
    leaves every other boundary's signed distance where it was (InterFaceGAN, eq. 5)."""
    if not others:
        return _unit(normal)
    basis = torch.stack([o.double() for o in others], dim=1)  # (d, k)
    coefficients = torch.linalg.lstsq(basis, normal.double().unsqueeze(1)).solution
    return _unit(normal.double() - (basis @ coefficients).squeeze(1)).to(normal.dtype)


def nearest_class(boundaries: Sequence[Boundary], target: int) -> int | None:
    """The other fitted class whose normal points most nearly the target's way: the class an
    edit towards ``target`` is most likely to drag along (the one to keep)."""
    own = boundaries[target].normal
    if own is None:
        return None
    scored = [(float(torch.dot(own, b.normal)), b.class_index)
              for b in boundaries if b.fitted and b.class_index != target]  # fmt: skip
    return max(scored)[1] if scored else None


def towards(
    boundaries: Sequence[Boundary], target: int, keep: Sequence[int] = ()
) -> Direction | None:
    """The direction "towards <target>" (None: no fitted boundary), with the normals of the
    classes in ``keep`` projected out: "towards <target>, keeping <keep>"."""
    normal = boundaries[target].normal
    if normal is None:
        return None
    kept = [boundaries[k] for k in keep if k != target and boundaries[k].fitted]
    vector = conditional_normal(normal, [b.normal for b in kept])
    name = f"towards {boundaries[target].name}"
    if kept:
        name += ", keeping " + " and ".join(b.name for b in kept)
    return Direction(name, vector)


def boundary_directions(boundaries: Sequence[Boundary]) -> list[Direction]:
    """For every fitted class: towards it, then towards it keeping its nearest class."""
    found = []
    for b in boundaries:
        plain = towards(boundaries, b.class_index)
        if plain is None:
            continue
        found.append(plain)
        nearest = nearest_class(boundaries, b.class_index)
        if nearest is not None:
            found.append(towards(boundaries, b.class_index, [nearest]))
    return found


def direction_figure(
    generator: nn.Module, direction: Direction, delta: float, z: torch.Tensor
) -> np.ndarray:
    """The report's three-row figure for any direction: rows -delta, unchanged, +delta along
    it, one column per base vector of ``z`` ``(N, z_dim)``."""
    vector = direction.vector.to(z.dtype)
    shifted = torch.cat([z - delta * vector, z, z + delta * vector])
    pixels = to_uint8(generate(generator, shifted)).view(3, len(z), 28, 28)
    labels = [f"-{delta:g}", "0", f"+{delta:g}"]
    return labelled_grid(
        pixels, labels, f"{direction.name}: shifted by -{delta:g} / 0 / +{delta:g}"
    )
