"""Explain the latent space: what shifting each dimension (or direction) does, measured.

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

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import GanscopeError
from .sampling import check_deltas, check_dims, generate, latent, z_dim_of

REPORT_DIMS = (20, 50, 60, 70, 90)
#: Chinese class names for the report's language (Fashion-MNIST order).
CLASSES_ZH = (
    "T恤/上衣",
    "裤子",
    "套头衫",
    "连衣裙",
    "外套",
    "凉鞋",
    "衬衫",
    "运动鞋",
    "包",
    "短靴",
)


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
    first = next((m for m in generator.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise GanscopeError("SeFa needs a generator whose first layer is nn.Linear")
    weight = first.weight.detach().double().cpu()  # (out, z_dim)
    weight = weight / weight.norm(dim=0, keepdim=True)  # as in the paper: normalise per input
    eigenvalues, eigenvectors = torch.linalg.eigh(weight.T @ weight)  # ascending
    order = eigenvalues.argsort(descending=True)[:k]
    return [Direction(f"SeFa {i + 1}", eigenvectors[:, j].float()) for i, j in enumerate(order)]


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
    from .classifier import classify

    unit = (images + 1) / 2  # [-1, 1] -> [0, 1]
    return _Side(classify(classifier, images), unit.mean(dim=(1, 2, 3)), _sharpness(unit))


def _interval(samples: torch.Tensor) -> list[float]:
    """95% percentile interval of bootstrap samples ``(B,)``."""
    low, high = torch.quantile(samples.double(), torch.tensor([0.025, 0.975], dtype=torch.double))
    return [float(low), float(high)]


def _paired(diff: torch.Tensor, boot: torch.Tensor) -> tuple[float, list[float]]:
    """Mean of per-base-vector differences ``(N,)`` and its bootstrap interval."""
    return float(diff.mean()), _interval(diff[boot].mean(dim=1))


def _read_direction(
    base: _Side, minus: _Side, plus: _Side, boot: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for side_name, side in (("minus", minus), ("plus", plus)):
        gain = side.probs.mean(0) - base.probs.mean(0)  # (C,)
        target = int(gain.argmax())
        value, interval = _paired(side.probs[:, target] - base.probs[:, target], boot)
        row[f"{side_name}_class"] = classes[target]
        row[f"{side_name}_class_index"] = target
        row[f"{side_name}_gain"] = value
        row[f"{side_name}_gain_ci"] = interval
        row[f"{side_name}_reliable"] = interval[0] > 0
        row[f"{side_name}_distribution"] = side.probs.mean(0).tolist()
        for key in ("brightness", "sharpness", "confidence"):
            change, change_ci = _paired(getattr(side, key) - getattr(base, key), boot)
            row[f"{side_name}_{key}"] = change
            row[f"{side_name}_{key}_ci"] = change_ci
    tv = 0.5 * (plus.probs.mean(0) - minus.probs.mean(0)).abs().sum()
    boot_tv = 0.5 * (plus.probs[boot].mean(1) - minus.probs[boot].mean(1)).abs().sum(-1)
    row["strength"] = float(tv)
    row["strength_ci"] = _interval(boot_tv)
    row["flip_share"] = float((minus.predicted != plus.predicted).float().mean())
    row["base_distribution"] = base.probs.mean(0).tolist()
    return row


def analyze(
    generator: nn.Module,
    classifier: nn.Module,
    directions: Sequence[Direction],
    deltas: Sequence[float] = (10.0,),
    n: int = 256,
    seed: int = 0,
    bootstrap: int = 1000,
    batch_size: int = 256,
    classes: Sequence[str] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per (direction, delta): see the module docstring for the fields."""
    from tqdm.auto import tqdm

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
    base = _measure(generate(generator, z, batch_size), classifier, batch_size)
    boot = torch.randint(0, n, (bootstrap, n), generator=torch.Generator().manual_seed(seed))
    rows = []
    for direction in tqdm(directions, desc="directions", disable=not progress, leave=False):
        vector = direction.vector.to(z.dtype)
        for delta in deltas:
            shifted = torch.cat([z - delta * vector, z + delta * vector])  # (2N, z_dim)
            sides = _measure(generate(generator, shifted, batch_size), classifier, batch_size)
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


# --------------------------------------------------------------------------------------------
# Sentences in the report's manner
# --------------------------------------------------------------------------------------------

#: Effects smaller than these are not mentioned in the sentences.
MIN_GAIN = 0.05
MIN_BRIGHTNESS = 0.02


def _class_name(row: dict[str, Any], side: str, lang: str) -> str:
    if lang == "zh":
        index = row[f"{side}_class_index"]
        return CLASSES_ZH[index] if index < len(CLASSES_ZH) else row[f"{side}_class"]
    return row[f"{side}_class"]


def describe(row: dict[str, Any], lang: str = "en") -> str:
    """One sentence per row in the report's manner, e.g. "Lowering dimension 20 drifts towards
    Trouser (+0.41), raising it towards Sandal (+0.35); images get brighter when lowering."."""
    if lang not in ("en", "zh"):
        raise GanscopeError(f"--lang must be en or zh, got {lang!r}")
    if lang == "en":
        subject = f"dimension {row['dim']}" if row["dim"] is not None else row["direction"]
    else:
        subject = f"第{row['dim']}维" if row["dim"] is not None else row["direction"]
    clear = {
        side: row[f"{side}_reliable"] and row[f"{side}_gain"] >= MIN_GAIN
        for side in ("minus", "plus")
    }
    parts = []
    for side in ("minus", "plus"):
        if not clear[side]:
            continue
        name, gain = _class_name(row, side, lang), row[f"{side}_gain"]
        first = not parts
        if lang == "en":
            verb = "lowering" if side == "minus" else "raising"
            lead = f"{verb} {subject} drifts" if first else f"{verb} it"
            parts.append(f"{lead} towards {name} (+{gain:.2f})")
        else:
            verb = "减小" if side == "minus" else "增加"
            lead = f"{verb}{subject}的数值时" if first else f"{verb}时"
            parts.append(f"{lead}更倾向于生成{name}(+{gain:.2f})")
    if parts:
        sentence = ", ".join(parts) if lang == "en" else ",".join(parts)
    elif lang == "en":
        sentence = (
            f"shifting {subject} by ±{row['delta']:g} has no reliable effect on the "
            f"class (strength {row['strength']:.2f})"
        )
    else:
        sentence = (
            f"将{subject}上下调整{row['delta']:g}对类别没有可靠的影响(强度{row['strength']:.2f})"
        )
    brighter = [
        side
        for side in ("minus", "plus")
        if row[f"{side}_brightness_ci"][0] > 0 and row[f"{side}_brightness"] >= MIN_BRIGHTNESS
    ]
    if brighter:
        when = {"minus": ("lowering", "减小"), "plus": ("raising", "增加")}
        if lang == "en":
            sentence += "; images get brighter when " + " and ".join(when[s][0] for s in brighter)
        else:
            sentence += ";" + "和".join(when[s][1] for s in brighter) + "时图像更亮"
    if lang == "en":
        return sentence[0].upper() + sentence[1:] + "."
    return sentence + "。"


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------

_CSV_FIELDS = (
    "direction",
    "dim",
    "delta",
    "n",
    "strength",
    "strength_ci",
    "flip_share",
    "minus_class",
    "minus_gain",
    "minus_gain_ci",
    "minus_reliable",
    "plus_class",
    "plus_gain",
    "plus_gain_ci",
    "plus_reliable",
    "minus_brightness",
    "plus_brightness",
    "minus_sharpness",
    "plus_sharpness",
    "minus_confidence",
    "plus_confidence",
)


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_FIELDS)
    for row in rows:
        writer.writerow(
            [
                f"{row[k][0]:.4f}..{row[k][1]:.4f}"
                if isinstance(row[k], list)
                else f"{row[k]:.4f}"
                if isinstance(row[k], float)
                else row[k]
                for k in _CSV_FIELDS
            ]
        )
    return buffer.getvalue()


def summary_markdown(rows: Sequence[dict[str, Any]], lang: str = "en", title: str = "") -> str:
    """Rows ranked by strength, one sentence each."""
    ranked = sorted(rows, key=lambda r: r["strength"], reverse=True)
    head = title or (
        "Latent directions, strongest first" if lang == "en" else "潜在维度(按强度排序)"
    )
    lines = [f"# {head}", ""]
    for rank, row in enumerate(ranked, 1):
        low, high = row["strength_ci"]
        strength = (
            f"strength {row['strength']:.2f} [{low:.2f}, {high:.2f}], flips {row['flip_share']:.0%}"
            if lang == "en"
            else f"强度 {row['strength']:.2f} [{low:.2f}, {high:.2f}],类别改变 "
            f"{row['flip_share']:.0%}"
        )
        lines.append(
            f"{rank}. **{row['direction']}** (±{row['delta']:g}; {strength}): {describe(row, lang)}"
        )
    return "\n".join(lines) + "\n"


def plot_class_shifts(
    rows: Sequence[dict[str, Any]], classes: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Small multiples: per-class probability change at -delta and +delta, one panel a row."""
    from .plots import _pyplot, save_figure

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


def parse_dims(spec: Sequence[str] | str, z_dim: int) -> list[int]:
    """``all`` or a list of integers (``20 50`` or ``20,50``) -> checked dimensions."""
    items = [spec] if isinstance(spec, str) else list(spec)
    tokens = [t for item in items for t in str(item).replace(",", " ").split()]
    if tokens == ["all"]:
        return list(range(z_dim))
    try:
        dims = [int(t) for t in tokens]
    except ValueError:
        raise GanscopeError(f"--dims takes 'all' or integers, got {' '.join(tokens)!r}") from None
    return check_dims(dims, z_dim)


def plot_strength_by_epoch(table: dict[int, dict[str, float]], path: Path) -> Path:
    """Heat map: strength of each direction (rows) after each epoch (columns)."""
    from .plots import _pyplot, save_figure

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


def analyze_run(
    run,
    *,
    dims: Sequence[str] | str = "all",
    deltas: Sequence[float] = (10.0,),
    n: int = 256,
    seed: int = 0,
    lang: str = "en",
    top_k: int = 5,
    sefa: int = 10,
    epoch: int | None = None,
    per_checkpoint: bool = False,
    checkpoint_n: int = 64,
    classifier_path: str | Path | None = None,
    device: str = "cpu",
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Analyse a run's generator and write tables, summaries and figures; returns them.

    Writes into ``out`` (default ``RUN/analysis``): ``dims.csv``, ``dims.json``,
    ``summary.<lang>.md``, ``class_shifts.png`` (top-k), ``grids/dim_NNN.png`` (report-style
    three-row figures for the top-k and the report's dims), SeFa's ``sefa.csv`` and
    ``class_shifts_sefa.png``, and with ``per_checkpoint`` ``strength_by_epoch.csv/.png``.
    """
    from .classifier import load_classifier
    from .plots import save_png
    from .runs import atomic_write_bytes, atomic_write_json
    from .sampling import traversal_figures

    if lang not in ("en", "zh"):
        raise GanscopeError(f"--lang must be en or zh, got {lang!r}")
    if top_k < 1:
        raise GanscopeError(f"--top-k must be at least 1, got {top_k}")
    if sefa < 0:
        raise GanscopeError(f"--sefa must be 0 or more, got {sefa}")
    started = time.perf_counter()
    generator = run.generator(epoch=epoch, device=device)
    z_dim = z_dim_of(generator)
    dim_list = parse_dims(dims, z_dim)
    deltas = check_deltas(deltas)
    classifier = load_classifier(classifier_path, device=device)
    classes = classifier.meta["classes"]
    folder = Path(out) if out else run.path / "analysis"

    rows = analyze(
        generator,
        classifier,
        axis_directions(dim_list, z_dim),
        deltas,
        n,
        seed,
        classes=classes,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    main_delta = deltas[0]
    main_rows = [r for r in rows if r["delta"] == main_delta]
    ranked = sorted(main_rows, key=lambda r: r["strength"], reverse=True)
    top = ranked[:top_k]
    meta = {
        **run.result_header(epoch, n, seed, classifier),
        "deltas": deltas,
        "seconds": round(seconds, 2),
    }
    paths = [
        atomic_write_bytes(folder / "dims.csv", rows_to_csv(rows).encode()),
        atomic_write_json(folder / "dims.json", {**meta, "rows": rows}),
        plot_class_shifts(
            top,
            classes,
            folder / "class_shifts.png",
            title=f"strongest {len(top)} dimensions (±{main_delta:g})",
        ),
    ]
    markdown = summary_markdown(main_rows, lang)

    z = latent(8, z_dim, seed)
    grid_dims = list(dict.fromkeys([r["dim"] for r in top] + [d for d in REPORT_DIMS if d < z_dim]))
    for dim, figure in traversal_figures(generator, grid_dims, main_delta, z).items():
        paths.append(save_png(figure, folder / "grids" / f"dim_{dim:03d}.png"))

    sefa_rows: list[dict[str, Any]] = []
    if sefa:
        sefa_rows = analyze(
            generator,
            classifier,
            sefa_directions(generator, sefa),
            [main_delta],
            n,
            seed,
            classes=classes,
            progress=progress,
        )
        paths.append(atomic_write_bytes(folder / "sefa.csv", rows_to_csv(sefa_rows).encode()))
        paths.append(
            plot_class_shifts(
                sefa_rows[:top_k],
                classes,
                folder / "class_shifts_sefa.png",
                title=f"SeFa directions (±{main_delta:g})",
            )
        )
        title = "SeFa directions (closed-form)" if lang == "en" else "SeFa 方向(闭式分解)"
        markdown += "\n" + summary_markdown(sefa_rows, lang, title=title)

    by_epoch: dict[int, dict[str, float]] = {}
    if per_checkpoint:
        for snapshot in run.generator_epochs():
            snapshot_rows = analyze(
                run.generator(epoch=snapshot, device=device),
                classifier,
                axis_directions(dim_list, z_dim),
                [main_delta],
                checkpoint_n,
                seed,
                bootstrap=200,
                classes=classes,
            )
            by_epoch[snapshot] = {r["direction"]: r["strength"] for r in snapshot_rows}
        header = "epoch," + ",".join(by_epoch[min(by_epoch)]) + "\n"
        body = "".join(
            f"{e}," + ",".join(f"{v:.4f}" for v in by_epoch[e].values()) + "\n"
            for e in sorted(by_epoch)
        )
        paths.append(atomic_write_bytes(folder / "strength_by_epoch.csv", (header + body).encode()))
        paths.append(plot_strength_by_epoch(by_epoch, folder / "strength_by_epoch.png"))

    paths.append(atomic_write_bytes(folder / f"summary.{lang}.md", markdown.encode()))
    atomic_write_json(
        folder / "dims.json",
        {**meta, "rows": rows, "sefa_rows": sefa_rows, "strength_by_epoch": by_epoch},
    )
    return {
        **meta,
        "rows": rows,
        "sefa_rows": sefa_rows,
        "strength_by_epoch": by_epoch,
        "summary": markdown,
        "paths": [str(p) for p in paths],
    }
