"""The figures and files that ``sample``, ``traverse``, ``interpolate`` and ``animate`` write.

Each function takes a run, its options (``options``) or keyword overrides of them, renders with
``sampling`` (tensors) and ``plots`` (pixels), and writes into the run folder (paths from
``Run``) or to ``out``. An output never replaces one of the run's own state files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from . import atomic
from .checks import check_class
from .data import get_dataset, to_uint8
from .errors import GanscopeError
from .models import balanced_labels
from .options import (
    AnimateOptions,
    InterpolateOptions,
    SampleOptions,
    TraverseOptions,
    resolve,
)
from .plots import (
    labelled_grid,
    make_grid,
    plot_training_curves,
    png_bytes,
    save_gif,
    save_grid,
    save_png,
    stack_vertical,
)
from .runs import Run, traversal_path
from .sampling import check_dims, generate, interpolate, latent, traverse, z_dim_of
from .state import GRID_ROW, TrainState


def output_path(
    run: Run, out: str | Path | None, default: Path, overwrite: bool = False, folder: bool = False
) -> Path:
    """``out`` (or ``default``): never inside the run's state files; an explicit ``out`` that
    exists (a file, or a folder with files in it) only with ``overwrite``."""
    path = Path(out) if out else default
    if run.is_state_file(path):
        raise GanscopeError(
            f"--out {path} is inside {run.path}'s training state (config, metrics, "
            "checkpoints); choose another path"
        )
    if folder and path.exists() and not path.is_dir():
        raise GanscopeError(f"--out {path} is a file, not a folder")
    if not folder and path.is_dir():
        raise GanscopeError(f"--out {path} is a folder, not a file")
    taken = path.is_file() or (folder and path.is_dir() and any(path.iterdir()))
    if out and taken and not overwrite:
        raise GanscopeError(f"--out {path} already exists; pass --overwrite to replace it")
    return path


def class_of(run: Run, value: str | None) -> int | None:
    """The class ``--class`` names (None without one); an unconditional run refuses one."""
    if value is None:
        return None
    if not run.config.model.conditional:
        raise GanscopeError(
            f"run {run.path} is unconditional: it takes no --class (train one with "
            "--conditional projection, concat, acgan, dual, tac or adc to ask for a garment)"
        )
    return check_class(value, get_dataset(run.config.data.dataset).classes)


def labels_for(run: Run, value: str | None, n: int) -> torch.Tensor | None:
    """The classes of ``n`` images: all ``--class``'s; without one, every class in turn for a
    conditional run, None for an unconditional one."""
    label = class_of(run, value)
    if label is not None:
        return torch.full((n,), label, dtype=torch.long)
    return balanced_labels(n, run.config.num_classes) if run.config.model.conditional else None


def delta_label(delta: float) -> str:
    return "z (unchanged)" if delta == 0 else f"z[d] {delta:+g}"


def traversal_figures(
    generator: nn.Module,
    dims: Sequence[int],
    delta: float,
    z: torch.Tensor,
    steps: int | None = None,
    labels: torch.Tensor | None = None,
) -> dict[int, np.ndarray]:
    """One labelled figure per dimension, as uint8 arrays keyed by dimension.

    Without ``steps``: the report's three rows (-delta, unchanged, +delta), one column per base
    vector. With ``steps``: one row per base vector, ``steps`` columns sweeping -delta..+delta.
    A conditional generator draws base vector ``k`` as class ``labels[k]``.
    """

    if delta <= 0:
        raise GanscopeError(f"--delta must be positive, got {delta}")
    if steps is not None and steps < 2:
        raise GanscopeError(f"--steps must be at least 2, got {steps}")
    deltas = (
        [-delta, 0.0, delta] if steps is None else torch.linspace(-delta, delta, steps).tolist()
    )
    images = traverse(generator, dims, deltas, z, labels)  # (D, K, N, 1, 28, 28)
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
    run: Run, options: TraverseOptions | None = None, **overrides: Any
) -> list[Path]:
    """``dim_NNN.png`` for each dimension plus ``overview.png``; returns the paths written."""

    opts = resolve(TraverseOptions, options, overrides)
    generator = run.generator(epoch=opts.epoch, device=opts.device)
    z = latent(opts.n, z_dim_of(generator), opts.seed)
    dims = check_dims(opts.dims, z.shape[1])
    folder = output_path(run, opts.out, run.traversals_dir, opts.overwrite, folder=True)
    labels = labels_for(run, opts.class_name, opts.n)
    figures = traversal_figures(generator, dims, opts.delta, z, opts.steps, labels)
    paths = [save_png(fig, traversal_path(folder, dim)) for dim, fig in figures.items()]
    paths.append(save_png(stack_vertical(list(figures.values())), traversal_path(folder)))
    return paths


def write_samples(run: Run, options: SampleOptions | None = None, **overrides: Any) -> list[Path]:
    """A PNG grid of ``n`` samples, optionally one PNG per image and an ``.npz`` of both."""

    opts = resolve(SampleOptions, options, overrides)
    out = output_path(run, opts.out, run.samples_path(opts.seed, opts.n), opts.overwrite)
    z, pixels = _samples(run, opts)
    paths = [save_grid(pixels, out, nrow=_nrow(run, opts), scale=2)]
    if opts.save_individual:
        folder = out.with_suffix("")
        for index, image in enumerate(pixels):
            paths.append(atomic.write_bytes(folder / f"{index:05d}.png", png_bytes(image.numpy())))
    if opts.npz:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=pixels.numpy(), z=z.numpy(), seed=opts.seed)
        paths.append(atomic.write_bytes(out.with_suffix(".npz"), buffer.getvalue()))
    return paths


def _samples(run: Run, opts: SampleOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """The latent vectors ``(n, z_dim)`` and their images as uint8 ``(n, 28, 28)``."""
    labels = labels_for(run, opts.class_name, opts.n)
    generator = run.generator(epoch=opts.epoch, device=opts.device)
    z = latent(opts.n, z_dim_of(generator), opts.seed)
    return z, to_uint8(generate(generator, z, labels=labels))


def _nrow(run: Run, opts: SampleOptions) -> int:
    """Images per row: as asked, else a conditional run's classes (without --class: a
    column per class), else 8."""
    if opts.nrow is not None:
        return opts.nrow
    return run.config.num_classes if opts.class_name is None and run.config.num_classes else 8


def sample_grid_png(run: Run, options: SampleOptions | None = None, **overrides: Any) -> bytes:
    """The grid ``write_samples`` draws, as PNG bytes (nothing written)."""

    opts = resolve(SampleOptions, options, overrides)
    return png_bytes(make_grid(_samples(run, opts)[1], nrow=_nrow(run, opts), scale=2))


def same_z_png(run: Run, n: int = 8, seed: int = 0) -> bytes:
    """``n`` images from the latent vectors of ``seed``: one row for an unconditional run,
    one row per class for a conditional one (the same z in every row), as PNG bytes."""
    generator = run.generator()
    z = latent(n, z_dim_of(generator), seed)  # (n, z_dim)
    classes = run.config.num_classes
    if not classes:
        return png_bytes(make_grid(to_uint8(generate(generator, z)), nrow=n, scale=2))
    labels = torch.arange(classes).repeat_interleave(n)  # (C n,), row-major
    images = generate(generator, z.repeat(classes, 1), labels=labels)
    return png_bytes(make_grid(to_uint8(images), nrow=n, scale=2))


def write_interpolation(
    run: Run, options: InterpolateOptions | None = None, **overrides: Any
) -> Path:
    """One row of images along the path between the latent vectors of consecutive seeds."""

    opts = resolve(InterpolateOptions, options, overrides)
    out = output_path(
        run, opts.out, run.interpolation_path(opts.seeds, opts.method), opts.overwrite
    )
    classes = _path_classes(run, opts)
    generator = run.generator(epoch=opts.epoch, device=opts.device)
    z_dim = z_dim_of(generator)
    pairs = list(zip(opts.seeds[:-1], opts.seeds[1:]))
    rows = [
        to_uint8(
            interpolate(
                generator,
                latent(1, z_dim, a),
                latent(1, z_dim, b),
                opts.steps,
                opts.method,
                classes,
            )
        )
        for a, b in pairs
    ]
    labels = [f"seed {a} -> {b}" for a, b in pairs]
    title = f"{opts.method} interpolation, {opts.steps} steps"
    if classes is not None:
        names = get_dataset(run.config.data.dataset).classes
        title += f", {names[classes[0]]}" + (
            f" -> {names[classes[1]]}" if classes[1] != classes[0] else ""
        )
    return save_png(labelled_grid(torch.stack(rows), labels, title), out)


def _path_classes(run: Run, opts: InterpolateOptions) -> tuple[int, int] | None:
    """The classes at the path's ends: ``--class`` (default the first) and ``--to-class``."""
    end = class_of(run, opts.to_class)
    start = class_of(run, opts.class_name)
    if not run.config.model.conditional:
        return None
    start = start if start is not None else 0
    return start, end if end is not None else start


@torch.no_grad()
def fixed_grid(state: TrainState) -> torch.Tensor:
    """The images of training's fixed latent batch, ``(64, 28, 28)`` uint8 (a conditional
    run: ``(8 C, ...)``, one row per class), from the generator that samples (the moving
    average if any), in eval mode."""
    return to_uint8(generate(state.sampler, state.fixed_z, labels=state.fixed_labels))


def write_fixed_grid(run: Run, state: TrainState) -> torch.Tensor:
    """The grid written after every epoch, ``RUN/samples/epoch_NNN.png``; its images."""
    images = fixed_grid(state)
    save_grid(images, run.sample_grid_path(state.epoch), nrow=GRID_ROW, scale=2)
    return images


# A grid row's images are GRID_ROW latent vectors (of one class, in a conditional run). A
# collapsed generator draws them alike: the CNN's ACGAN run of seed 0 (docs/conditional.md),
# the same image for every z, had a median row spread (z_spread) of 0.029 after epoch 1 and
# 0.006 after epoch 10; the CNN's concat and projection runs 0.087-0.143 from epoch 1 on;
# unconditional MLP and CNN runs 0.13-0.24 (read back from their samples/epoch_NNN.png by
# benchmarks/grid_spread.py).
COLLAPSE_SPREAD = 0.04


def z_spread(images: torch.Tensor) -> float:
    """How much a fixed grid's images change with z: per row of ``GRID_ROW`` images, the
    standard deviation across the row of each pixel (intensity 0-1), averaged over the
    pixels; the median of the rows. ``images``: ``(N, H, W)`` uint8, N a multiple of
    ``GRID_ROW``."""
    rows = images.float().div(255).reshape(-1, GRID_ROW, images[0].numel())
    return float(rows.std(dim=1, correction=0).mean(dim=1).median())


def collapse_warning(images: torch.Tensor, epoch: int) -> str | None:
    """A line telling that G ignores z (mode collapse), when the grid's rows barely change
    with z (:func:`z_spread` under ``COLLAPSE_SPREAD``); else None."""
    spread = z_spread(images)
    if spread >= COLLAPSE_SPREAD:
        return None
    return (
        f"epoch {epoch}: the fixed grid's images barely change with z (pixel spread "
        f"{spread:.3f} across a row, under {COLLAPSE_SPREAD}): the generator has collapsed, "
        "so its samples lack variety (see the run's samples/ folder)"
    )


def write_training_figures(run: Run, state: TrainState, record: dict[str, Any]) -> None:
    """Epoch callback: the loss curves (with any evaluation records) and the progress GIF."""
    cfg = run.config
    plot_training_curves(
        run.metrics(), run.losses_figure, title=f"{cfg.model.name} GAN on {cfg.data.dataset}"
    )
    write_progress_gif(run)


def write_progress_gif(run: Run, options: AnimateOptions | None = None, **overrides: Any) -> Path:
    """An animation of the per-epoch fixed-noise grids, each frame titled with its epoch."""

    opts = resolve(AnimateOptions, options, overrides)
    out = output_path(run, opts.out, run.progress_gif, opts.overwrite)
    grids = run.sample_grid_paths()
    if not grids:
        raise GanscopeError(f"run {run.path} has no per-epoch sample grids yet")
    frames = []
    for epoch, path in grids.items():
        try:
            grid = np.asarray(Image.open(path).convert("L"))
        except (OSError, UnidentifiedImageError):
            raise GanscopeError(f"sample grid {path} is damaged; delete it to skip it") from None
        titled = labelled_grid(
            torch.from_numpy(grid.copy())[None, None], title=f"epoch {epoch}", scale=1, padding=0
        )
        frames.append(titled)
    return save_gif(frames, out, frame_ms=opts.frame_ms)
