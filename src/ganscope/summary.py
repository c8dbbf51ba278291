"""What the report shows of each run, gathered from its folder: :class:`RunSummary`, the
groups runs are averaged in (one model, one recipe), and the metric table over their seeds.
Nothing here writes a file or builds a block: ``report`` and ``comparison`` do that.
"""

from __future__ import annotations

import functools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .gallery import sample_grid_png
from .metrics import COVERAGE_FRACTION, REPORT_METRICS
from .models import display_name
from .presets import recipe_changes, recipe_name
from .runs import Run
from .source import IMPORTED
from .text import TEXT


@dataclass
class RunSummary:
    """What the report shows of one run: read from its folder, nothing computed anew except
    the sample grid (drawn in memory)."""

    run: Run
    epochs: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    analysis: dict[str, Any] | None
    samples_png: bytes
    #: ``analyze --compare-methods``'s record (``methods``), where the run has one.
    methods: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return self.run.config.model.name

    @property
    def seed(self) -> int:
        return self.run.config.train.seed

    @functools.cached_property
    def preset(self) -> str:
        """The run's training preset, or its recipe's changes (``ema=0.9, loss=hinge``) when
        flags changed a preset's parts: runs are averaged only with runs of the same recipe."""
        if self.run.imported:  # no recipe: the imported file names its group
            return self.run.config.source.files[-1]
        name = recipe_name(self.run.config.train, self.model)
        if name != "custom":
            return name
        return ", ".join(f"{k}={v}" for k, v in recipe_changes(self.run.config.train).items())

    @property
    def conditioning(self) -> str:
        """How the run is told the class (``--conditional``); "none" for the report's GAN."""
        return self.run.config.model.conditioning

    @property
    def group(self) -> tuple[str, str]:
        """The runs the report averages over seeds: one model trained with one recipe (a
        conditional run's recipe is its preset and its conditioning: ``seed+projection``)."""
        if self.conditioning == "none":
            return self.model, self.preset
        return self.model, f"{self.preset}+{self.conditioning}"

    @property
    def seconds_per_epoch(self) -> float | None:
        seconds = [r["seconds"] for r in self.epochs if r.get("seconds")]
        return statistics.fmean(seconds) if seconds else None

    @property
    def train_seconds(self) -> float:
        return sum(r.get("seconds") or 0 for r in self.epochs)

    @property
    def label(self) -> str:
        preset = "" if self.preset == "seed" else "-" + re.sub(r"[^\w.]+", "-", self.preset)
        conditioning = "" if self.conditioning == "none" else f"-{self.conditioning}"
        return f"{self.model}{preset}{conditioning}-seed{self.seed}"


def group_name(group: tuple[str, str], lang: str) -> str:
    """``MLP GAN`` for the report's recipe, ``MLP GAN, improved preset`` for another,
    ``MLP GAN, ema=0.9`` for a recipe of flags; a conditional group (``seed+projection``)
    adds ``, conditional (projection)``."""
    model, preset = group
    if model == IMPORTED:  # "your GAN (dcgan.pt)"
        return TEXT[lang]["imported_name"].format(file=preset)
    preset, _, conditioning = preset.partition("+")
    suffix = TEXT[lang]["conditional_name"].format(method=conditioning) if conditioning else ""
    if preset == "seed":
        return display_name(model) + suffix
    if "=" in preset:
        return f"{display_name(model)}, {preset}{suffix}"
    return TEXT[lang]["with_preset"].format(model=display_name(model), preset=preset) + suffix


def summarise(
    run: Run, evaluation: dict | None, analysis: dict | None, methods: dict | None = None
) -> RunSummary:
    """A run's summary; writes nothing."""
    samples = sample_grid_png(run)
    return RunSummary(run, run.metrics("epoch"), evaluation, analysis, samples, methods)


def plateau_epoch(epochs: Sequence[dict[str, Any]], tolerance: float = 0.1) -> int | None:
    """First epoch from which both epoch-mean losses stay within ``tolerance`` (relative) of
    their final values; None with fewer than 3 epochs."""
    if len(epochs) < 3:
        return None
    final = {key: epochs[-1][key] for key in ("loss_D", "loss_G")}
    for index, record in enumerate(epochs):
        later = epochs[index:]
        if all(
            abs(r[key] - final[key]) <= tolerance * abs(final[key]) for r in later for key in final
        ):
            return record["epoch"]
    return epochs[-1]["epoch"]


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def metric_table(summaries: Sequence[RunSummary]) -> dict[tuple[str, str], dict[str, tuple]]:
    """(model, preset) -> metric -> (mean, std or None) over the group's seeds."""
    table: dict[tuple[str, str], dict[str, tuple]] = {}
    for name in dict.fromkeys(s.group for s in summaries):
        group = [s.evaluation for s in summaries if s.group == name and s.evaluation]
        if group:
            table[name] = {
                key: _mean_std([g[key] for g in group])
                for key in REPORT_METRICS
                if all(key in g for g in group)
            }
    return table


def missing_classes(evaluation: dict[str, Any], classes: Sequence[str]) -> list[str]:
    histogram = evaluation["class_histogram"]
    total = sum(histogram)
    # The test set is balanced: each class's real share is 1 / number of classes.
    return [
        classes[i]
        for i, count in enumerate(histogram)
        if count / total < COVERAGE_FRACTION / len(histogram)
    ]
