import pytest
import torch
from torch import nn

from ganscope import boundaries as bd

CLASSES = [f"c{i}" for i in range(10)]


def _orthonormal(z_dim: int, k: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(z_dim, k, generator=generator))[0]  # (z_dim, k)


def test_a_linear_class_is_recovered():
    """Class 1 iff z.u > 0.3: the fitted normal is u, the offset about -0.3."""
    u = _orthonormal(100, 1)[:, 0]
    z = torch.randn(6000, 100, generator=torch.Generator().manual_seed(1))
    found = bd.boundaries_from(z, (z @ u > 0.3).long(), ["no", "yes"])
    yes = found[1]
    assert yes.fitted and torch.dot(yes.normal, u) > 0.99
    assert yes.offset == pytest.approx(-0.3, abs=0.1)
    assert yes.held_out_accuracy > 0.95 and yes.held_out_balanced_accuracy > 0.95
    assert yes.stability > 0.95
    assert yes.n_fit == 4800 and yes.positives == int((z[:4800] @ u > 0.3).sum())
    # class 0 is the other side of the same boundary
    assert torch.dot(found[0].normal, u) < -0.99


class LinearGenerator(nn.Module):
    """The image's first ten pixels are ``z @ A`` ``(z_dim, 10)``: the class is linear in z."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.z_dim = a.shape[0]
        self.register_buffer("a", a)
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pixels = torch.zeros(len(z), 784)
        pixels[:, :10] = torch.tanh(z @ self.a / 4)
        return pixels.view(-1, 1, 28, 28)


class PixelClassifier(nn.Module):
    """Calls an image the class of its brightest of the first ten pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scale * images.flatten(1)[:, :10]


def test_fit_boundaries_recovers_each_class_direction_of_a_generator():
    a = _orthonormal(32, 10, seed=2) * 3
    found = bd.fit_boundaries(LinearGenerator(a), PixelClassifier(), 4000, 0, CLASSES)
    assert all(b.fitted for b in found)
    for b in found:
        # one-vs-rest against an argmax of ten linear scores: towards a_c, away from the rest
        expected = a[:, b.class_index] - a.mean(dim=1)
        assert torch.dot(b.normal, expected / expected.norm()) > 0.95, b.name
        assert b.held_out_balanced_accuracy > 0.85


def test_a_class_without_enough_positives_gets_no_boundary():
    z = torch.randn(1000, 8, generator=torch.Generator().manual_seed(0))
    predicted = torch.zeros(1000, dtype=torch.long)
    predicted[:5] = 1  # 5 positives in the fitting set: fewer than MIN_POSITIVES
    found = bd.boundaries_from(z, predicted, ["a", "b", "c"])
    assert [b.fitted for b in found] == [False, False, False]  # "a" has too few negatives
    assert bd.towards(found, 1) is None and bd.boundary_directions(found) == []


def test_conditional_normal_keeps_the_other_boundaries():
    basis = _orthonormal(16, 3, seed=3)
    target = _unit_sum(basis[:, 0], basis[:, 1])  # leans towards class 1's normal
    kept = bd.conditional_normal(target, [basis[:, 1], basis[:, 2]])
    assert kept.norm() == pytest.approx(1.0, abs=1e-5)
    assert abs(float(kept @ basis[:, 1])) < 1e-5 and abs(float(kept @ basis[:, 2])) < 1e-5
    assert float(kept @ basis[:, 0]) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(bd.conditional_normal(target, []), target)


def _unit_sum(*vectors: torch.Tensor) -> torch.Tensor:
    total = sum(vectors)
    return total / total.norm()


def _boundary(index: int, normal: torch.Tensor | None) -> bd.Boundary:
    return bd.Boundary(index, CLASSES[index], normal, 0.0, 100, 50, 0.9, 0.9, 0.9)


def test_nearest_class_and_the_named_directions():
    basis = _orthonormal(16, 3, seed=4)
    found = [
        _boundary(0, basis[:, 0]),
        _boundary(1, _unit_sum(basis[:, 0], basis[:, 1])),  # close to class 0
        _boundary(2, basis[:, 2]),
        _boundary(3, None),
    ]
    assert bd.nearest_class(found, 0) == 1 and bd.nearest_class(found, 3) is None
    names = [d.name for d in bd.boundary_directions(found)]
    assert names[:2] == ["towards c0", "towards c0, keeping c1"] and len(names) == 6
    keeping = bd.towards(found, 1, [0])
    assert abs(float(keeping.vector @ basis[:, 0])) < 1e-5


def test_record_round_trip():
    b = _boundary(2, torch.tensor([0.6, 0.8]))
    again = bd.Boundary.from_record(b.record())
    assert again.name == "c2" and torch.allclose(again.normal, b.normal)
    assert bd.Boundary.from_record(_boundary(1, None).record()).normal is None
