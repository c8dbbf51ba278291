"""Sampling, latent traversal and interpolation as tensors: a generator and a seed in, images out.

Every function is batched (no per-image loops) and runs the generator in eval mode, so that an
image depends only on its own latent vector (BatchNorm uses its running statistics). Nothing
here draws or writes a file: the figures and files of ``sample``, ``traverse``,
``interpolate`` and ``animate`` are ``gallery``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .checks import check_delta
from .errors import GanscopeError
from .models import is_conditional, turn_labels


def z_dim_of(generator: nn.Module) -> int:
    z_dim = getattr(generator, "z_dim", None)
    if not isinstance(z_dim, int):
        raise GanscopeError("the generator has no integer z_dim attribute; ganscope needs it")
    return z_dim


def device_of(generator: nn.Module) -> torch.device:
    """Where ``generator`` runs: its first parameter's (or buffer's) device, else the CPU."""
    tensor = next(generator.parameters(), None)
    tensor = tensor if tensor is not None else next(generator.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def latent(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal latent vectors ``(n, z_dim)``, the same for the same seed anywhere."""
    if n < 1:
        raise GanscopeError(f"n must be at least 1, got {n}")
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    generator: nn.Module,
    z: torch.Tensor,
    batch_size: int = 256,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images ``(N, 1, 28, 28)`` in [-1, 1] for latent vectors ``z`` ``(N, z_dim)``, on the CPU;
    a conditional generator also needs ``labels``, the class of each image ``(N,)``."""
    if z.dim() != 2 or z.shape[1] != z_dim_of(generator):
        raise GanscopeError(
            f"latent vectors must be (N, {z_dim_of(generator)}), got {tuple(z.shape)}"
        )
    label_parts = _label_parts(generator, labels, len(z), batch_size)
    device = device_of(generator)
    was_training = generator.training
    generator.eval()
    try:
        chunks = [
            generator(part.to(device), *(y.to(device) for y in asked)).float().cpu()
            for part, asked in zip(z.split(batch_size), label_parts)
        ]
    finally:
        generator.train(was_training)
    return torch.cat(chunks)


def _label_parts(
    generator: nn.Module, labels: torch.Tensor | None, n: int, batch_size: int
) -> list[tuple[torch.Tensor, ...]]:
    """``labels`` in the chunks ``generate`` runs (empty tuples for an unconditional G)."""
    chunks = -(-n // batch_size)
    if not is_conditional(generator):
        if labels is not None:
            raise GanscopeError(
                "this generator is unconditional: it takes no class (train one with "
                "--conditional to ask for a garment)"
            )
        return [()] * chunks
    if labels is None:
        raise GanscopeError("a conditional generator needs the class of every image")
    labels = torch.as_tensor(labels)
    if labels.is_floating_point():  # label vectors (N, C): a path between classes
        if labels.shape != (n, generator.num_classes):
            raise GanscopeError(f"label vectors must be ({n}, {generator.num_classes})")
    else:
        labels = labels.long().flatten()
        if labels.shape != (n,):
            raise GanscopeError(f"give one class per latent vector: {n} vectors, {len(labels)}")
        classes = generator.num_classes
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < classes:
            raise GanscopeError(f"classes must be in 0..{generator.num_classes - 1}")
    return [(part,) for part in labels.split(batch_size)]


def sample(
    generator: nn.Module, n: int, seed: int = 0, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """``n`` images from the latent vectors ``latent(n, z_dim, seed)``; a conditional
    generator draws the classes ``labels`` ``(n,)``, by default every class in turn."""
    labels = turn_labels(generator, n) if labels is None else labels
    return generate(generator, latent(n, z_dim_of(generator), seed), labels=labels)


def check_dims(dims: Sequence[int], z_dim: int) -> list[int]:
    dims = list(dims)
    if not dims:
        raise GanscopeError("give at least one latent dimension")
    bad = [d for d in dims if not 0 <= d < z_dim]
    if bad:
        raise GanscopeError(f"latent dimension(s) {bad} out of range: valid are 0..{z_dim - 1}")
    return dims


def check_deltas(deltas: Sequence[float]) -> list[float]:
    if not deltas:
        raise GanscopeError("give at least one delta")
    return [check_delta(d) for d in deltas]


def shifted(z: torch.Tensor, dims: Sequence[int], deltas: Sequence[float]) -> torch.Tensor:
    """Latent vectors ``(len(dims), len(deltas), N, z_dim)``: z with z[:, d] += delta."""
    dims = check_dims(dims, z.shape[1])
    deltas = check_deltas(deltas)
    out = z.unsqueeze(0).unsqueeze(0).repeat(len(dims), len(deltas), 1, 1)
    for i, dim in enumerate(dims):
        out[i, :, :, dim] += torch.tensor(deltas, dtype=z.dtype).unsqueeze(1)
    return out


def traverse(
    generator: nn.Module,
    dims: Sequence[int],
    deltas: Sequence[float],
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The report's "adjusting the random numbers", for many dims and shifts at once.

    Returns images ``(len(dims), len(deltas), N, 1, 28, 28)``: entry ``[i, j, k]`` is G applied
    to ``z[k]`` with dimension ``dims[i]`` shifted by ``deltas[j]`` (a conditional G: of class
    ``labels[k]``, ``labels`` ``(N,)``). The report's figure for a dimension is
    ``deltas = (-10, 0, 10)``: rows -10, unchanged, +10.
    """
    grid = shifted(z, dims, deltas)  # (D, K, N, z_dim)
    if labels is not None:  # every shifted copy of z[k] keeps z[k]'s class
        labels = torch.as_tensor(labels).expand(*grid.shape[:3]).reshape(-1)
    images = generate(generator, grid.reshape(-1, z.shape[1]), labels=labels)
    return images.view(*grid.shape[:3], *images.shape[1:])


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors ``a`` and ``b`` ``(z_dim,)`` at fractions ``t``."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:  # (anti)parallel to within float error: lerp is the same curve
        return lerp(a, b, t)
    t = t.unsqueeze(1)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.unsqueeze(1)
    return (1 - t) * a + t * b


#: name -> path; the names (and the order ``--method`` lists them in) are ``checks``'.
INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


def interpolate(
    generator: nn.Module,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    steps: int = 10,
    method: str = "slerp",
    classes: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Images ``(steps, 1, 28, 28)`` along the path from ``z_a`` to ``z_b`` (both included);
    a conditional G goes from class ``classes[0]`` to ``classes[1]``, its one-hot label
    moving linearly along the path (the same class twice: a path within the class)."""
    if steps < 2:
        raise GanscopeError(f"--steps must be at least 2, got {steps}")
    if method not in INTERPOLATIONS:
        raise GanscopeError(f"unknown method {method!r}; choose {', '.join(INTERPOLATIONS)}")
    t = torch.linspace(0, 1, steps)
    labels = None
    if classes is not None:
        ends = torch.nn.functional.one_hot(torch.tensor(classes), generator.num_classes).float()
        labels = lerp(ends[0], ends[1], t)  # (steps, C)
    z = INTERPOLATIONS[method](z_a.flatten(), z_b.flatten(), t)
    return generate(generator, z, labels=labels)
