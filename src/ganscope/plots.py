"""Figures: image grids (PIL, exact pixels) and training curves (matplotlib, imported lazily)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .runs import atomic_write_bytes


def make_grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: int = 255, scale: int = 1
) -> np.ndarray:
    """Tile uint8 images ``(N, H, W)`` into one ``(rows*(H+p)+p, nrow*(W+p)+p)`` uint8 array."""
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise ValueError(
            f"make_grid wants uint8 (N, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    array = images.cpu().numpy()
    if scale > 1:
        array = array.repeat(scale, axis=1).repeat(scale, axis=2)
    n, height, width = array.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    grid = np.full(
        (nrows * (height + padding) + padding, ncol * (width + padding) + padding),
        pad_value,
        dtype=np.uint8,
    )
    for index in range(n):
        row, col = divmod(index, ncol)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[top : top + height, left : left + width] = array[index]
    return grid


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, scale: int = 1) -> Path:
    """Save uint8 images ``(N, H, W)`` as one PNG grid, atomically."""
    return atomic_write_bytes(path, png_bytes(make_grid(images, nrow=nrow, scale=scale)))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(
    records: Sequence[dict[str, Any]], path: str | Path, title: str = ""
) -> Path:
    """Loss curves of G and D (per step, light; epoch means, bold) and D(x), D(G(z))."""
    plt = _pyplot()
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    fig, (ax_loss, ax_prob) = plt.subplots(1, 2, figsize=(11, 4))
    for key, colour in (("loss_D", "tab:blue"), ("loss_G", "tab:orange")):
        ax_loss.plot(
            [r["step"] for r in steps],
            [r[key] for r in steps],
            color=colour,
            alpha=0.3,
            linewidth=0.7,
        )
        ax_loss.plot(
            [r["step"] for r in epochs],
            [r[key] for r in epochs],
            "o-",
            color=colour,
            label=f"{key} (epoch mean)",
        )
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("losses of D and G")
    ax_loss.legend()
    for key, colour in (("D(x)", "tab:green"), ("D(G(z))", "tab:red")):
        ax_prob.plot(
            [r["step"] for r in steps],
            [r[key] for r in steps],
            color=colour,
            alpha=0.3,
            linewidth=0.7,
        )
        ax_prob.plot(
            [r["step"] for r in epochs],
            [r[key] for r in epochs],
            "o-",
            color=colour,
            label=f"{key} (epoch mean)",
        )
    ax_prob.set_ylim(0, 1)
    ax_prob.set_xlabel("iteration")
    ax_prob.set_title("discriminator outputs")
    ax_prob.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
