"""A run's latent analysis (``ganscope analyze``) as data: measured, recorded, written.

:func:`measure_run` returns a typed :class:`Analysis` of a run's generator (its dimensions
and closed-form directions, measured by ``directions``); :func:`write_analysis` writes its
files; :func:`is_complete` and :func:`analysis_header` let later commands find and reuse it.
The summary in words is ``text``'s, and ``analysis`` puts the three together as the command.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import atomic
from . import progress as report_progress
from .boundaries import Boundary, direction_figure, fit_boundaries, towards
from .classifier import load_classifier
from .directions import (
    analyze,
    axis_directions,
    closed_form_directions,
    ranked,
)
from .errors import GanscopeError
from .gallery import traversal_figures
from .models import is_conditional, turn_labels
from .options import REPORT_DIMS, AnalyzeOptions, TraverseOptions
from .plots import plot_class_shifts, plot_strength_by_epoch, save_png
from .runs import AnalysisFiles, Run
from .sampling import check_dims, latent, z_dim_of
from .styles import style_dimensions, style_figure, style_readings

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


#: The columns of ``styles.csv``: per dimension, the means over the classes.
_STYLE_FIELDS = ("dim", "delta", "n", "keep_mean", "keep_base_mean", "feature_change_mean",
                 "feature_change_relative_mean", "ink_change_mean", "width_change_mean",
                 "brightness_change_mean")  # fmt: skip


def styles_csv(rows: Sequence[dict[str, Any]]) -> str:
    """A conditional run's style readings, one line per dimension (``styles.json`` in
    ``dims.json`` holds the per-class lists)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_STYLE_FIELDS)
    for row in rows:
        writer.writerow(
            [f"{row[k]:.4f}" if isinstance(row[k], float) else row[k] for k in _STYLE_FIELDS]
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
        "boundary_n": opts.boundary_n,
    }


@dataclass(frozen=True)
class Analysis:
    """What ``ganscope analyze`` measured on one run's generator."""

    #: What identifies it (:func:`analysis_header`): reuse it only when all of this is equal.
    header: dict[str, Any]
    #: One row per (dimension, delta); ``sefa_rows``/``pca_rows``: the closed-form
    #: directions at the first delta.
    rows: list[dict[str, Any]]
    sefa_rows: list[dict[str, Any]]
    pca_rows: list[dict[str, Any]]
    #: epoch -> direction -> strength (``--per-checkpoint``; else empty).
    strength_by_epoch: dict[int, dict[str, float]]
    #: dimension (or a boundary's file name) -> the report's three-row figure (uint8 pixels).
    grids: dict[int | str, torch.Tensor]
    classes: list[str]
    seconds: float
    #: A conditional run's style readings, one row per dimension (``styles``), and the
    #: figure of the strongest style dimensions; empty and None for an unconditional run.
    style_rows: list[dict[str, Any]] = field(default_factory=list)
    style_grid: np.ndarray | None = None
    #: Every class's boundary in z (``boundaries``; empty with ``--boundary-n 0`` and for a
    #: conditional run, whose class is its label).
    boundaries: list[Boundary] = field(default_factory=list)

    @property
    def main_delta(self) -> float:
        return self.header["deltas"][0]

    @property
    def main_rows(self) -> list[dict[str, Any]]:
        """The dimensions' rows at the first delta (what figures and summaries show)."""
        return [r for r in self.rows if r["delta"] == self.main_delta]

    def record(self) -> dict[str, Any]:
        """``dims.json``: the header, the time taken and every row."""
        return {
            **self.header,
            "seconds": round(self.seconds, 2),
            "rows": self.rows,
            "sefa_rows": self.sefa_rows,
            "pca_rows": self.pca_rows,
            "strength_by_epoch": self.strength_by_epoch,
            "boundaries": [b.record() for b in self.boundaries],
        } | ({"style_rows": self.style_rows} if self.style_rows else {})


#: The closed-form directions an analysis labels: record key, option, the method's name.
CLOSED_FORM = (("sefa", "sefa", "SeFa"), ("pca", "pca", "GANSpace"))


def measure_run(run: Run, opts: AnalyzeOptions) -> Analysis:
    """Measure ``run``'s generator as ``opts`` says (see the module docstring)."""
    started = time.perf_counter()
    generator, epoch = run.generator_at(opts.epoch, opts.device)
    z_dim = z_dim_of(generator)
    dim_list = parse_dims(opts.dims, z_dim)
    if opts.per_checkpoint and not run.generator_epochs():
        raise GanscopeError(f"--per-checkpoint: run {run.path} has no per-epoch generators")
    classifier = load_classifier(opts.classifier_path, device=opts.device)
    classes = classifier.meta["classes"]
    measure = {
        "classifier": classifier,
        "n": opts.n,
        "seed": opts.seed,
        "bootstrap": opts.bootstrap,
        "batch_size": opts.batch_size,
        "classes": classes,
        # a conditional G: base vector k drawn as class k mod C, on both sides of each shift
        "labels": turn_labels(generator, opts.n),
    }
    say = f"analysing {len(dim_list)} dimensions of {run.path} (epoch {epoch})"
    report_progress.say(say, enabled=opts.progress)
    directions = axis_directions(dim_list, z_dim)
    rows = analyze(
        generator, directions=directions, deltas=opts.deltas, progress=opts.progress, **measure
    )
    main_delta = opts.deltas[0]
    top = ranked([r for r in rows if r["delta"] == main_delta])[: opts.top_k]
    z = latent(TraverseOptions.n, z_dim, opts.seed)  # the report's figures, as traverse draws
    grid_dims = list(dict.fromkeys([r["dim"] for r in top] + [d for d in REPORT_DIMS if d < z_dim]))
    grids = traversal_figures(
        generator, grid_dims, main_delta, z, labels=turn_labels(generator, len(z))
    )
    found = {kind: _closed_form_rows(kind, generator, opts, measure) for kind, _, _ in CLOSED_FORM}
    by_epoch = _strength_by_epoch(run, opts, dim_list, z_dim, main_delta, measure)
    style_rows, style_grid = _styles(generator, dim_list, opts, measure)
    boundaries = _boundaries(generator, opts, measure, grids, z)
    return Analysis(
        header=analysis_header(run, epoch, opts, dim_list, classifier.meta["sha256"]),
        rows=rows,
        sefa_rows=found["sefa"],
        pca_rows=found["pca"],
        strength_by_epoch=by_epoch,
        grids=grids,
        classes=list(classes),
        seconds=time.perf_counter() - started,
        style_rows=style_rows,
        style_grid=style_grid,
        boundaries=boundaries,
    )


def _boundaries(
    generator: nn.Module, opts: AnalyzeOptions, measure: dict[str, Any], grids: dict, z
) -> list[Boundary]:
    """Every class's boundary in z, fitted on ``opts.boundary_n`` vectors of seed + 1; each
    one's figure (the report's three rows along its normal) goes into ``grids``."""
    if not opts.boundary_n or is_conditional(generator):
        return []
    say = f"fitting the classifier's boundaries on {opts.boundary_n} latent vectors"
    report_progress.say(say, enabled=opts.progress)
    boundaries = fit_boundaries(
        generator, measure["classifier"], opts.boundary_n, opts.seed + 1, measure["classes"],
        opts.batch_size,
    )  # fmt: skip
    for b in boundaries:
        if b.fitted:
            direction = towards(boundaries, b.class_index)
            grids[f"towards_{b.class_index:02d}.png"] = direction_figure(
                generator, direction, opts.deltas[0], z
            )
    return boundaries


#: How many style dimensions the figure of a conditional run shows.
STYLE_FIGURE_DIMS = 3


def _styles(
    generator: nn.Module, dims: list[int], opts: AnalyzeOptions, measure: dict[str, Any]
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """A conditional run's style readings (``opts.n`` base vectors spread over the classes)
    and the figure of its strongest style dimensions; nothing for an unconditional run."""
    if not is_conditional(generator):
        return [], None
    report_progress.say("reading the style dimensions class by class", enabled=opts.progress)
    per_class = max(2, opts.n // generator.num_classes)
    rows = style_readings(
        generator, measure["classifier"], dims, opts.deltas[0], per_class, opts.seed,
        opts.batch_size, measure["classes"], progress=opts.progress,
    )  # fmt: skip
    strongest = [r["dim"] for r in style_dimensions(rows)[:STYLE_FIGURE_DIMS]]
    if not strongest:
        return rows, None
    figure = style_figure(generator, strongest, opts.deltas[0], opts.seed, measure["classes"])
    return rows, figure


def _closed_form_rows(
    kind: str, generator: nn.Module, opts: AnalyzeOptions, measure: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of ``kind``'s (SeFa's or GANSpace's) directions at the first delta."""
    _, option, method = next(entry for entry in CLOSED_FORM if entry[0] == kind)
    count = getattr(opts, option)
    if not count:
        return []
    report_progress.say(f"labelling {count} {method} directions", enabled=opts.progress)
    try:
        directions = closed_form_directions(kind, generator, count, opts.seed)
    except GanscopeError as error:  # an imported generator without a readable first layer
        report_progress.warn(f"{error}; no {method} directions")
        return []
    return analyze(
        generator, directions=directions, deltas=[opts.deltas[0]], progress=opts.progress,
        **measure,
    )  # fmt: skip


def _strength_by_epoch(
    run: Run,
    opts: AnalyzeOptions,
    dims: list[int],
    z_dim: int,
    delta: float,
    measure: dict[str, Any],
) -> dict[int, dict[str, float]]:
    """``--per-checkpoint``: each dimension's strength in every epoch's generator."""
    by_epoch: dict[int, dict[str, float]] = {}
    if not opts.per_checkpoint:
        return by_epoch
    for snapshot in report_progress.bar(
        run.generator_epochs(), desc="epochs", enabled=opts.progress
    ):
        generator = run.generator(epoch=snapshot, device=opts.device)
        labels = turn_labels(generator, opts.checkpoint_n)
        snapshot_rows = analyze(
            generator,
            directions=axis_directions(dims, z_dim),
            deltas=[delta],
            **{**measure, "n": opts.checkpoint_n, "bootstrap": 200, "labels": labels},
        )
        by_epoch[snapshot] = {r["direction"]: r["strength"] for r in snapshot_rows}
    return by_epoch


def write_analysis(
    analysis: Analysis, folder: Path, top_k: int, summary: tuple[str, str]
) -> list[Path]:
    """Every file of an analysis into ``folder``, ``dims.json`` last (its presence means a
    finished analysis); ``summary``: the summary's language and text (``analysis``), written
    just before it. Returns the paths in the order written."""
    files = AnalysisFiles(folder)
    delta, classes = analysis.main_delta, analysis.classes
    top = ranked(analysis.main_rows)[:top_k]
    paths = [
        atomic.write_bytes(files.table(), rows_to_csv(analysis.rows).encode()),
        plot_class_shifts(
            top,
            classes,
            files.class_shifts(),
            title=f"strongest {len(top)} dimensions (±{delta:g})",
        ),
    ]
    for dim, figure in analysis.grids.items():
        paths.append(save_png(figure, files.grid(dim)))
    for kind, _, method in CLOSED_FORM:
        rows = getattr(analysis, f"{kind}_rows")
        if not rows:
            continue
        paths.append(atomic.write_bytes(files.table(kind), rows_to_csv(rows).encode()))
        paths.append(
            plot_class_shifts(
                rows[:top_k],
                classes,
                files.class_shifts(kind),
                title=f"{method} directions (±{delta:g})",
            )
        )
    by_epoch = analysis.strength_by_epoch
    if by_epoch:
        header = "epoch," + ",".join(by_epoch[min(by_epoch)]) + "\n"
        body = "".join(
            f"{e}," + ",".join(f"{v:.4f}" for v in by_epoch[e].values()) + "\n"
            for e in sorted(by_epoch)
        )
        paths.append(atomic.write_bytes(files.strength_by_epoch(".csv"), (header + body).encode()))
        paths.append(plot_strength_by_epoch(by_epoch, files.strength_by_epoch(".png")))
    if analysis.style_rows:
        table = styles_csv(analysis.style_rows)
        paths.append(atomic.write_bytes(files.table("styles"), table.encode()))
    if analysis.style_grid is not None:
        paths.append(save_png(analysis.style_grid, files.folder / "styles.png"))
    lang, text = summary
    paths.append(atomic.write_bytes(files.summary(lang), text.encode()))
    paths.append(atomic.write_json(files.record, analysis.record()))
    return paths
