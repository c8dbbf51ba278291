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
from typing import Any

import torch
from torch import nn

from . import atomic
from . import progress as report_progress
from .errors import GanscopeError
from .options import REPORT_DIMS, AnalyzeOptions, TraverseOptions, resolve
from .sampling import check_deltas, check_dims, generate, latent, z_dim_of
from .text import TEXT, summary_markdown

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
    first = _first_linear(generator, "SeFa")
    weight = first.weight.detach().double().cpu()  # (out, z_dim)
    weight = weight / weight.norm(dim=0, keepdim=True)  # as in the paper: normalise per input
    eigenvalues, eigenvectors = torch.linalg.eigh(weight.T @ weight)  # ascending
    order = eigenvalues.argsort(descending=True)[:k]
    return [Direction(f"SeFa {i + 1}", eigenvectors[:, j].float()) for i, j in enumerate(order)]


#: Random latent vectors whose first-layer activations GANSpace's PCA is computed from.
PCA_SAMPLES = 4096


def _first_linear(generator: nn.Module, method: str) -> nn.Linear:
    first = next((m for m in generator.modules() if isinstance(m, nn.Linear)), None)
    if first is None:
        raise GanscopeError(f"{method} needs a generator whose first layer is nn.Linear")
    return first


def pca_directions(generator: nn.Module, k: int, seed: int = 0) -> list[Direction]:
    """GANSpace (Härkönen et al. 2020): the principal components of the first layer's
    activations over ``PCA_SAMPLES`` random z, mapped back to latent directions by linear
    regression of z on the components' coordinates (as GANSpace does for BigGAN)."""
    first = _first_linear(generator, "GANSpace")
    z = latent(PCA_SAMPLES, z_dim_of(generator), seed).double()  # (N, z_dim)
    with torch.no_grad():
        weight, bias = first.weight.detach().double().cpu(), first.bias.detach().double().cpu()
        activations = z @ weight.T + bias  # (N, out)
    centred = activations - activations.mean(dim=0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)  # (min(N, out), out)
    components = components[:k]  # (k, out)
    coordinates = centred @ components.T  # (N, k)
    basis = torch.linalg.lstsq(coordinates, z).solution  # (k, z_dim): z ~ coordinates @ basis
    basis = basis / basis.norm(dim=1, keepdim=True)
    # An eigenvector's sign is arbitrary: make each direction's largest entry positive.
    signs = basis.gather(1, basis.abs().argmax(dim=1, keepdim=True)).sign()
    return [Direction(f"PCA {i + 1}", (signs[i] * row).float()) for i, row in enumerate(basis)]


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
    probs = classify(classifier, images, batch_size)
    return _Side(probs, unit.mean(dim=(1, 2, 3)), _sharpness(unit))


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
    deltas: Sequence[float] = DEFAULTS.deltas,
    n: int = DEFAULTS.n,
    seed: int = DEFAULTS.seed,
    bootstrap: int = DEFAULTS.bootstrap,
    batch_size: int = DEFAULTS.batch_size,
    classes: Sequence[str] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per (direction, delta): see the module docstring for the fields."""
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
    for direction in report_progress.bar(directions, desc="directions", enabled=progress):
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


def is_complete(record: Any) -> bool:
    """Whether an analysis record read from disk holds every field its readers use."""
    needed = {*_CSV_FIELDS, "minus_class_index", "plus_class_index", "minus_brightness_ci",
              "plus_brightness_ci"}  # fmt: skip
    rows = record.get("rows") if isinstance(record, dict) else None
    return (
        isinstance(rows, list)
        and isinstance(record.get("deltas"), list)
        and bool(record["deltas"])
        and all(isinstance(row, dict) and needed <= row.keys() for row in rows)
    )


def ranked(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows by semantic strength, strongest first."""
    return sorted(rows, key=lambda r: r["strength"], reverse=True)


def analysis_header(
    run, epoch: int, opts: AnalyzeOptions, dims: list[int], classifier_sha256: str
) -> dict[str, Any]:
    """What identifies an analysis: reuse it only when all of this is equal."""
    return {
        **run.result_header(epoch, opts.n, opts.seed, classifier_sha256),
        "dims": dims,
        "deltas": list(opts.deltas),
        "sefa": opts.sefa,
        "pca": opts.pca,
    }


def analyze_run(run, options: AnalyzeOptions | None = None, **overrides: Any) -> dict[str, Any]:
    """Analyse a run's generator and write tables, summaries and figures; returns them.

    Writes into ``out`` (default ``RUN/analysis``): ``dims.csv``, ``summary.<lang>.md``,
    ``class_shifts.png`` (top-k), ``grids/dim_NNN.png`` (report-style three-row figures for the
    top-k and the report's dims), SeFa's ``sefa.csv`` and ``class_shifts_sefa.png``, with
    ``per_checkpoint`` ``strength_by_epoch.csv/.png``, and last ``dims.json``: the header
    (:func:`analysis_header`) and every row, so its presence means a finished analysis.
    """
    from .classifier import load_classifier
    from .gallery import output_path, traversal_figures
    from .plots import plot_class_shifts, plot_strength_by_epoch, save_png

    opts = resolve(AnalyzeOptions, options, overrides)
    started = time.perf_counter()
    generator, epoch = run.generator_at(opts.epoch, opts.device)
    z_dim = z_dim_of(generator)
    dim_list = parse_dims(opts.dims, z_dim)
    if opts.per_checkpoint and not run.generator_epochs():
        raise GanscopeError(f"--per-checkpoint: run {run.path} has no per-epoch generators")
    classifier = load_classifier(opts.classifier_path, device=opts.device)
    classes = classifier.meta["classes"]
    folder = output_path(run, opts.out, run.analysis_dir, opts.overwrite, folder=True)
    measure = {
        "classifier": classifier,
        "n": opts.n,
        "seed": opts.seed,
        "bootstrap": opts.bootstrap,
        "batch_size": opts.batch_size,
        "classes": classes,
    }
    report_progress.say(
        f"analysing {len(dim_list)} dimensions of {run.path} (epoch {epoch})",
        enabled=opts.progress,
    )
    rows = analyze(
        generator,
        directions=axis_directions(dim_list, z_dim),
        deltas=opts.deltas,
        progress=opts.progress,
        **measure,
    )
    main_delta = opts.deltas[0]
    main_rows = [r for r in rows if r["delta"] == main_delta]
    top = ranked(main_rows)[: opts.top_k]
    paths = [
        atomic.write_bytes(folder / "dims.csv", rows_to_csv(rows).encode()),
        plot_class_shifts(
            top,
            classes,
            folder / "class_shifts.png",
            title=f"strongest {len(top)} dimensions (±{main_delta:g})",
        ),
    ]
    markdown = summary_markdown(main_rows, opts.lang)

    z = latent(TraverseOptions.n, z_dim, opts.seed)  # the report's figures, as traverse draws
    grid_dims = list(dict.fromkeys([r["dim"] for r in top] + [d for d in REPORT_DIMS if d < z_dim]))
    for dim, figure in traversal_figures(generator, grid_dims, main_delta, z).items():
        paths.append(save_png(figure, folder / "grids" / f"dim_{dim:03d}.png"))

    # Closed-form directions, labelled like the axes: SeFa's and GANSpace's.
    found: dict[str, list[dict[str, Any]]] = {}
    for kind, count, method, make in (
        ("sefa", opts.sefa, "SeFa", lambda: sefa_directions(generator, opts.sefa)),
        ("pca", opts.pca, "GANSpace", lambda: pca_directions(generator, opts.pca, opts.seed)),
    ):
        found[kind] = []
        if not count:
            continue
        report_progress.say(f"labelling {count} {method} directions", enabled=opts.progress)
        found[kind] = analyze(
            generator, directions=make(), deltas=[main_delta], progress=opts.progress, **measure
        )
        paths.append(atomic.write_bytes(folder / f"{kind}.csv", rows_to_csv(found[kind]).encode()))
        paths.append(
            plot_class_shifts(
                found[kind][: opts.top_k],
                classes,
                folder / f"class_shifts_{kind}.png",
                title=f"{method} directions (±{main_delta:g})",
            )
        )
        markdown += "\n" + summary_markdown(
            found[kind], opts.lang, TEXT[opts.lang][f"{kind}_title"]
        )
    sefa_rows, pca_rows = found["sefa"], found["pca"]

    by_epoch: dict[int, dict[str, float]] = {}
    if opts.per_checkpoint:
        for snapshot in report_progress.bar(
            run.generator_epochs(), desc="epochs", enabled=opts.progress
        ):
            snapshot_rows = analyze(
                run.generator(epoch=snapshot, device=opts.device),
                directions=axis_directions(dim_list, z_dim),
                deltas=[main_delta],
                **{**measure, "n": opts.checkpoint_n, "bootstrap": 200},
            )
            by_epoch[snapshot] = {r["direction"]: r["strength"] for r in snapshot_rows}
        header = "epoch," + ",".join(by_epoch[min(by_epoch)]) + "\n"
        body = "".join(
            f"{e}," + ",".join(f"{v:.4f}" for v in by_epoch[e].values()) + "\n"
            for e in sorted(by_epoch)
        )
        paths.append(atomic.write_bytes(folder / "strength_by_epoch.csv", (header + body).encode()))
        paths.append(plot_strength_by_epoch(by_epoch, folder / "strength_by_epoch.png"))

    paths.append(atomic.write_bytes(folder / f"summary.{opts.lang}.md", markdown.encode()))
    record = {
        **analysis_header(run, epoch, opts, dim_list, classifier.meta["sha256"]),
        "seconds": round(time.perf_counter() - started, 2),
        "rows": rows,
        "sefa_rows": sefa_rows,
        "pca_rows": pca_rows,
        "strength_by_epoch": by_epoch,
    }
    paths.append(atomic.write_json(folder / "dims.json", record))
    return {**record, "summary": markdown, "paths": [str(p) for p in paths]}
