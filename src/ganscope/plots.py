"""Figures: image grids (PIL, exact pixels), training curves and the latent analysis's charts
(matplotlib, imported lazily). Each function draws and saves one figure; none computes results."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .atomic import write_bytes as atomic_write_bytes


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


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)  # FreeType build of Pillow
    except (TypeError, OSError):
        return ImageFont.load_default()


def labelled_grid(
    rows: torch.Tensor,
    row_labels: Sequence[str] = (),
    title: str = "",
    scale: int = 2,
    padding: int = 2,
    label_width: int = 96,
    title_height: int = 22,
) -> np.ndarray:
    """uint8 images ``(R, C, H, W)`` as an R x C grid with a label left of each row and a title.

    The result is ``(title_height + R*(H*scale+padding) + padding,
    label_width + C*(W*scale+padding) + padding)`` pixels, white background.
    """
    n_rows, n_cols = rows.shape[:2]
    body = make_grid(rows.reshape(-1, *rows.shape[2:]), nrow=n_cols, padding=padding, scale=scale)
    label_width = label_width if row_labels else 0
    title_height = title_height if title else 0
    canvas = np.full((title_height + body.shape[0], label_width + body.shape[1]), 255, np.uint8)
    canvas[title_height:, label_width:] = body
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = _font()
    if title:
        draw.text((4, 4), title, fill=0, font=font)
    cell = rows.shape[2] * scale + padding
    for index, label in enumerate(row_labels):
        top = title_height + padding + index * cell + cell // 2 - 8
        draw.text((4, top), label, fill=0, font=font)
    return np.asarray(image)


def stack_vertical(arrays: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Stack grey images top to bottom on white, left-aligned."""
    width = max(a.shape[1] for a in arrays)
    height = sum(a.shape[0] for a in arrays) + gap * (len(arrays) - 1)
    out = np.full((height, width), 255, np.uint8)
    top = 0
    for array in arrays:
        out[top : top + array.shape[0], : array.shape[1]] = array
        top += array.shape[0] + gap
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    return atomic_write_bytes(path, png_bytes(array))


def save_gif(frames: Sequence[np.ndarray], path: str | Path, frame_ms: int = 500) -> Path:
    """An endlessly looping GIF of grey frames (the last one held three times as long)."""
    images = [Image.fromarray(frame) for frame in frames]
    durations = [frame_ms] * (len(images) - 1) + [frame_ms * 3]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
    )
    return atomic_write_bytes(path, buffer.getvalue())


def _pyplot():
    import matplotlib  # heavy: only the commands that draw charts load it

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(
    records: Sequence[dict[str, Any]], path: str | Path, title: str = ""
) -> Path:
    """Loss curves of G and D (per step, light; epoch means, bold) and D(x), D(G(z))."""
    plt = _pyplot()
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 3 if evals else 2, figsize=(16.5 if evals else 11, 4))
    ax_loss, ax_prob = axes[0], axes[1]
    panels = (
        (ax_loss, (("loss_D", "tab:blue"), ("loss_G", "tab:orange"))),
        (ax_prob, (("D(x)", "tab:green"), ("D(G(z))", "tab:red"))),
    )
    for axis, curves in panels:
        for key, colour in curves:
            # Every step, light; the epoch means, bold.
            axis.plot([r["step"] for r in steps], [r[key] for r in steps], color=colour,
                      alpha=0.3, linewidth=0.7)  # fmt: skip
            axis.plot([r["step"] for r in epochs], [r[key] for r in epochs], "o-", color=colour,
                      label=f"{key} (epoch mean)")  # fmt: skip
        axis.set_xlabel("iteration")
        axis.legend()
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("losses of D and G")
    ax_prob.set_ylim(0, 1)
    ax_prob.set_title("discriminator outputs")
    if evals:
        ax_fid = axes[2]
        ax_fid.plot(
            [r["step"] for r in evals],
            [r["fid"] for r in evals],
            "s-",
            color="tab:purple",
            label="FID (classifier features)",
        )
        ax_fid.set_xlabel("iteration")
        ax_fid.set_ylabel("FID (lower is better)")
        ax_fid.set_title("sample quality")
        ax_share = ax_fid.twinx()
        for key, colour in (("precision", "tab:green"), ("recall", "tab:orange")):
            ax_share.plot(
                [r["step"] for r in evals], [r[key] for r in evals], "o--", color=colour, label=key
            )
        ax_share.set_ylim(0, 1)
        lines = ax_fid.get_legend_handles_labels()
        more = ax_share.get_legend_handles_labels()
        ax_fid.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    return save_figure(fig, path, title=title, dpi=100)


def save_figure(fig, path: str | Path, title: str = "", dpi: int = 90) -> Path:
    """Lay out, title and save a matplotlib figure as PNG (atomically), then close it."""
    plt = _pyplot()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_class_shifts(
    rows: Sequence[dict[str, Any]], classes: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Small multiples: per-class probability change at -delta and +delta, one panel a row."""
    plt = _pyplot()
    cols = min(3, len(rows))
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3 * nrows), squeeze=False)
    positions = torch.arange(len(classes)).float()
    for axis, row in zip(axes.flat, rows):
        base = torch.tensor(row["base_distribution"])
        minus = torch.tensor(row["minus_distribution"]) - base
        plus = torch.tensor(row["plus_distribution"]) - base
        axis.bar(
            (positions - 0.2).tolist(),
            minus.tolist(),
            width=0.4,
            color="tab:blue",
            label=f"-{row['delta']:g}",
        )
        axis.bar(
            (positions + 0.2).tolist(),
            plus.tolist(),
            width=0.4,
            color="tab:red",
            label=f"+{row['delta']:g}",
        )
        axis.axhline(0, color="black", linewidth=0.6)
        axis.set_xticks(positions.tolist(), list(classes), rotation=60, fontsize=7)
        axis.set_title(f"{row['direction']} (strength {row['strength']:.2f})", fontsize=9)
        axis.set_ylabel("Δ mean probability", fontsize=8)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(rows) :]:
        axis.axis("off")
    return save_figure(fig, path, title=title)


def plot_strength_by_epoch(table: dict[int, dict[str, float]], path: Path) -> Path:
    """Heat map: strength of each direction (rows) after each epoch (columns)."""
    plt = _pyplot()
    epochs = sorted(table)
    names = list(table[epochs[0]])
    values = [[table[e][name] for e in epochs] for name in names]
    fig, axis = plt.subplots(figsize=(2 + 0.5 * len(epochs), 1 + 0.18 * len(names)))
    image = axis.imshow(values, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axis.set_xticks(range(len(epochs)), [str(e) for e in epochs])
    axis.set_yticks(range(len(names)), names, fontsize=6)
    axis.set_xlabel("epoch")
    axis.set_title("semantic strength (TV distance) by epoch")
    fig.colorbar(image, ax=axis)
    return save_figure(fig, path)


def plot_sweep(
    trials: Sequence[dict[str, Any]], objective: str, path: Path, maximize: bool = False
) -> Path:
    """A study's optimisation history (each complete trial's value and the best so far) and
    every trial's per-epoch curve, pruned ones dashed and crossed where they were stopped."""
    plt = _pyplot()
    fig, (history, curves) = plt.subplots(1, 2, figsize=(10, 3.6))
    done = [t for t in trials if t["state"] == "COMPLETE" and t["values"]]
    numbers, values = [t["number"] for t in done], [t["values"][0] for t in done]
    history.plot(numbers, values, "o", color="tab:blue", label="complete trial")
    if values:
        pick = max if maximize else min
        best = [pick(values[: i + 1]) for i in range(len(values))]
        history.step(numbers, best, where="post", color="tab:red", label="best so far")
    history.set(xlabel="trial", ylabel=objective, title="optimisation history")
    history.legend(fontsize=8)
    for trial in trials:
        epochs, curve = [int(e) for e in trial["curve"]], list(trial["curve"].values())
        pruned = trial["state"] == "PRUNED"
        end = [len(curve) - 1] if pruned else None
        style = "--" if pruned else "-"
        curves.plot(epochs, curve, style, alpha=0.7, lw=1, marker="x" if pruned else None,
                    markevery=end)  # fmt: skip
    curves.set(xlabel="epoch", ylabel=objective, title="per-epoch curves (dashed, x: pruned)")
    return save_figure(fig, path)


def plot_pareto(
    points: Sequence[tuple[float, float, bool]], names: Sequence[str], path: Path
) -> Path:
    """Two objectives of every finished trial; the Pareto front's trials in red."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for x, y, front in points:
        ax.plot(x, y, "o", color="tab:red" if front else "tab:gray")
    ax.set(xlabel=names[0], ylabel=names[1], title="trials (red: the Pareto front)")
    return save_figure(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 0.5 + 0.4 * len(importances)))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (share of the objective's variance)", title="parameters")
    return save_figure(fig, path)
