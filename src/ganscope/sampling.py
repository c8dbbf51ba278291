"""Sampling, latent traversal and interpolation: all they need is a generator and a seed.

Every function is batched (no per-image loops) and runs the generator in eval mode, so that an
image depends only on its own latent vector (BatchNorm uses its running statistics), and
returns tensors; figures are drawn by ``plots`` and files written by the CLI.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import GanscopeError

#: Shifts larger than this are refused: z ~ N(0, 1), so even the report's ±10 is 10 sigma.
MAX_ABS_DELTA = 1000.0


def z_dim_of(generator: nn.Module) -> int:
    z_dim = getattr(generator, "z_dim", None)
    if not isinstance(z_dim, int):
        raise GanscopeError("the generator has no integer z_dim attribute; ganscope needs it")
    return z_dim


def latent(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal latent vectors ``(n, z_dim)``, the same for the same seed anywhere."""
    if n < 1:
        raise GanscopeError(f"n must be at least 1, got {n}")
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Images ``(N, 1, 28, 28)`` in [-1, 1] for latent vectors ``z`` ``(N, z_dim)``, on the CPU."""
    if z.dim() != 2 or z.shape[1] != z_dim_of(generator):
        raise GanscopeError(
            f"latent vectors must be (N, {z_dim_of(generator)}), got {tuple(z.shape)}"
        )
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        chunks = [generator(part.to(device)).float().cpu() for part in z.split(batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(chunks)


def sample(generator: nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images from the latent vectors ``latent(n, z_dim, seed)``."""
    return generate(generator, latent(n, z_dim_of(generator), seed))


def check_dims(dims: Sequence[int], z_dim: int) -> list[int]:
    dims = list(dims)
    if not dims:
        raise GanscopeError("give at least one latent dimension")
    bad = [d for d in dims if not 0 <= d < z_dim]
    if bad:
        raise GanscopeError(f"latent dimension(s) {bad} out of range: valid are 0..{z_dim - 1}")
    return dims


def check_deltas(deltas: Sequence[float]) -> list[float]:
    deltas = [float(d) for d in deltas]
    if not deltas:
        raise GanscopeError("give at least one delta")
    for delta in deltas:
        if not math.isfinite(delta) or abs(delta) > MAX_ABS_DELTA:
            raise GanscopeError(
                f"delta {delta} is not usable: it must be finite and at most {MAX_ABS_DELTA:g} "
                "in size (latent values are standard normal)"
            )
    return deltas


def shifted(z: torch.Tensor, dims: Sequence[int], deltas: Sequence[float]) -> torch.Tensor:
    """Latent vectors ``(len(dims), len(deltas), N, z_dim)``: z with z[:, d] += delta."""
    dims = check_dims(dims, z.shape[1])
    deltas = check_deltas(deltas)
    out = z.unsqueeze(0).unsqueeze(0).repeat(len(dims), len(deltas), 1, 1)
    for i, dim in enumerate(dims):
        out[i, :, :, dim] += torch.tensor(deltas, dtype=z.dtype).unsqueeze(1)
    return out


def traverse(
    generator: nn.Module, dims: Sequence[int], deltas: Sequence[float], z: torch.Tensor
) -> torch.Tensor:
    """The report's "adjusting the random numbers", for many dims and shifts at once.

    Returns images ``(len(dims), len(deltas), N, 1, 28, 28)``: entry ``[i, j, k]`` is G applied
    to ``z[k]`` with dimension ``dims[i]`` shifted by ``deltas[j]``. The report's figure for a
    dimension is ``deltas = (-10, 0, 10)``: rows -10, unchanged, +10.
    """
    grid = shifted(z, dims, deltas)  # (D, K, N, z_dim)
    images = generate(generator, grid.reshape(-1, z.shape[1]))
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


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


def interpolate(
    generator: nn.Module,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    steps: int = 10,
    method: str = "slerp",
) -> torch.Tensor:
    """Images ``(steps, 1, 28, 28)`` along the path from ``z_a`` to ``z_b`` (both included)."""
    if steps < 2:
        raise GanscopeError(f"--steps must be at least 2, got {steps}")
    if method not in INTERPOLATIONS:
        raise GanscopeError(f"unknown method {method!r}; choose {', '.join(INTERPOLATIONS)}")
    t = torch.linspace(0, 1, steps)
    return generate(generator, INTERPOLATIONS[method](z_a.flatten(), z_b.flatten(), t))


# --------------------------------------------------------------------------------------------
# Figures and files in a run folder (what the CLI commands write)
# --------------------------------------------------------------------------------------------


def delta_label(delta: float) -> str:
    return "z (unchanged)" if delta == 0 else f"z[d] {delta:+g}"


def traversal_figures(
    generator: nn.Module,
    dims: Sequence[int],
    delta: float,
    z: torch.Tensor,
    steps: int | None = None,
) -> dict[int, np.ndarray]:
    """One labelled figure per dimension, as uint8 arrays keyed by dimension.

    Without ``steps``: the report's three rows (-delta, unchanged, +delta), one column per base
    vector. With ``steps``: one row per base vector, ``steps`` columns sweeping -delta..+delta.
    """
    from .data import to_uint8
    from .plots import labelled_grid

    if delta <= 0:
        raise GanscopeError(f"--delta must be positive, got {delta}")
    if steps is not None and steps < 2:
        raise GanscopeError(f"--steps must be at least 2, got {steps}")
    deltas = (
        [-delta, 0.0, delta] if steps is None else torch.linspace(-delta, delta, steps).tolist()
    )
    images = traverse(generator, dims, deltas, z)  # (D, K, N, 1, 28, 28)
    figures = {}
    for i, dim in enumerate(dims):
        pixels = to_uint8(images[i].flatten(0, 1)).view(*images.shape[1:3], 28, 28)
        if steps is None:
            labels = [delta_label(d).replace("[d]", f"[{dim}]") for d in deltas]
            title = f"latent dimension {dim}: shifted by -{delta:g} / 0 / +{delta:g}"
        else:
            pixels = pixels.transpose(0, 1)  # rows: base vectors; columns: the sweep
            labels = [f"z #{k}" for k in range(pixels.shape[0])]
            title = f"latent dimension {dim}: {steps} steps from -{delta:g} to +{delta:g}"
        figures[dim] = labelled_grid(pixels.contiguous(), labels, title)
    return figures


def write_traversals(
    run,
    dims: Sequence[int],
    delta: float = 10.0,
    n: int = 8,
    seed: int = 0,
    steps: int | None = None,
    out: str | Path | None = None,
    epoch: int | None = None,
    device: str = "cpu",
) -> list[Path]:
    """``dim_NNN.png`` for each dimension plus ``overview.png``; returns the paths written."""
    from .plots import save_png, stack_vertical

    generator = run.generator(epoch=epoch, device=device)
    z = latent(n, z_dim_of(generator), seed)
    figures = traversal_figures(generator, check_dims(dims, z.shape[1]), delta, z, steps)
    folder = Path(out) if out else run.path / "traversals"
    paths = [save_png(fig, folder / f"dim_{dim:03d}.png") for dim, fig in figures.items()]
    paths.append(save_png(stack_vertical(list(figures.values())), folder / "overview.png"))
    return paths


def write_samples(
    run,
    n: int = 64,
    nrow: int = 8,
    seed: int = 0,
    out: str | Path | None = None,
    save_individual: bool = False,
    npz: bool = False,
    epoch: int | None = None,
    device: str = "cpu",
) -> list[Path]:
    """A PNG grid of ``n`` samples, optionally one PNG per image and an ``.npz`` of both."""
    from .data import to_uint8
    from .plots import png_bytes, save_grid
    from .runs import atomic_write_bytes

    if nrow < 1:
        raise GanscopeError(f"--nrow must be at least 1, got {nrow}")
    generator = run.generator(epoch=epoch, device=device)
    z = latent(n, z_dim_of(generator), seed)
    pixels = to_uint8(generate(generator, z))  # (n, 28, 28)
    out = Path(out) if out else run.path / "samples" / f"sample_seed{seed}_n{n}.png"
    paths = [save_grid(pixels, out, nrow=nrow, scale=2)]
    if save_individual:
        folder = out.with_suffix("")
        for index, image in enumerate(pixels):
            paths.append(atomic_write_bytes(folder / f"{index:05d}.png", png_bytes(image.numpy())))
    if npz:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=pixels.numpy(), z=z.numpy(), seed=seed)
        paths.append(atomic_write_bytes(out.with_suffix(".npz"), buffer.getvalue()))
    return paths


def write_interpolation(
    run,
    seeds: Sequence[int],
    steps: int = 10,
    method: str = "slerp",
    out: str | Path | None = None,
    epoch: int | None = None,
    device: str = "cpu",
) -> Path:
    """One row of images along the path between the latent vectors of consecutive seeds."""
    from .data import to_uint8
    from .plots import labelled_grid, save_png

    if len(seeds) < 2:
        raise GanscopeError("--seeds needs at least two seeds")
    generator = run.generator(epoch=epoch, device=device)
    z_dim = z_dim_of(generator)
    rows = [
        to_uint8(interpolate(generator, latent(1, z_dim, a), latent(1, z_dim, b), steps, method))
        for a, b in zip(seeds[:-1], seeds[1:])
    ]
    labels = [f"seed {a} -> {b}" for a, b in zip(seeds[:-1], seeds[1:])]
    figure = labelled_grid(torch.stack(rows), labels, f"{method} interpolation, {steps} steps")
    name = f"interpolate_{'_'.join(map(str, seeds))}_{method}.png"
    return save_png(figure, Path(out) if out else run.path / "figures" / name)


def write_progress_gif(run, out: str | Path | None = None, frame_ms: int = 600) -> Path:
    """An animation of the per-epoch fixed-noise grids, each frame titled with its epoch."""
    from PIL import Image

    from .plots import labelled_grid, save_gif

    paths = sorted((run.path / "samples").glob("epoch_*.png"))
    if not paths:
        raise GanscopeError(f"run {run.path} has no per-epoch sample grids yet")
    frames = []
    for path in paths:
        grid = np.asarray(Image.open(path).convert("L"))
        epoch = int(path.stem.split("_")[1])
        titled = labelled_grid(
            torch.from_numpy(grid.copy())[None, None], title=f"epoch {epoch}", scale=1, padding=0
        )
        frames.append(titled)
    return save_gif(
        frames, Path(out) if out else run.path / "figures" / "progress.gif", frame_ms=frame_ms
    )
