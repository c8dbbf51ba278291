"""The lab report as a document: numbers gathered from run folders, blocks built from them.

Gathering reads run folders and writes nothing (:func:`summarise`); building turns the
summaries into typed ``document`` blocks (:func:`build_blocks`), with every sentence from
``text`` and observations computed from the numbers. Which results exist, and computing the
missing ones, is ``reproduce``'s business.
"""

from __future__ import annotations

import functools
import platform
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .document import Block, Bullets, Code, Figure, Figures, Heading, Paragraph, Table
from .models import display_name
from .options import REPORT_DIMS
from .runs import Run
from .text import TEXT, describe

#: For each metric in the report's table: True when higher is better.
METRICS_TABLE = {
    "fid": False,
    "kid": False,
    "precision": True,
    "recall": True,
    "density": True,
    "coverage": True,
    "classes_covered": True,
    "class_kl_to_real": False,
    "classifier_score": True,
    "memorisation_share": False,
}
#: How many of the strongest dimensions the report lists per run.
STRONGEST = 5


@dataclass
class RunSummary:
    """What the report shows of one run: read from its folder, nothing computed anew except
    the sample grid (drawn in memory)."""

    run: Run
    epochs: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    analysis: dict[str, Any] | None
    samples_png: bytes

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
        from .recipe import recipe_changes, recipe_name

        name = recipe_name(self.run.config.train, self.model)
        if name != "custom":
            return name
        return ", ".join(f"{k}={v}" for k, v in recipe_changes(self.run.config.train).items())

    @property
    def group(self) -> tuple[str, str]:
        """The runs the report averages over seeds: one model trained with one recipe."""
        return self.model, self.preset

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
        return f"{self.model}{preset}-seed{self.seed}"


def group_name(group: tuple[str, str], lang: str) -> str:
    """``MLP GAN`` for the report's recipe, ``MLP GAN, improved preset`` for another,
    ``MLP GAN, ema=0.9`` for a recipe of flags."""
    model, preset = group
    if preset == "seed":
        return display_name(model)
    if "=" in preset:
        return f"{display_name(model)}, {preset}"
    return TEXT[lang]["with_preset"].format(model=display_name(model), preset=preset)


def summarise(run: Run, evaluation: dict | None, analysis: dict | None) -> RunSummary:
    """A run's summary; writes nothing."""
    from .gallery import sample_grid_png

    return RunSummary(run, run.metrics("epoch"), evaluation, analysis, sample_grid_png(run))


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
                for key in METRICS_TABLE
                if all(key in g for g in group)
            }
    return table


def missing_classes(evaluation: dict[str, Any], classes: Sequence[str]) -> list[str]:
    from .metrics import COVERAGE_FRACTION

    histogram = evaluation["class_histogram"]
    total = sum(histogram)
    # The test set is balanced: each class's real share is 1 / number of classes.
    return [
        classes[i]
        for i, count in enumerate(histogram)
        if count / total < COVERAGE_FRACTION / len(histogram)
    ]


def _format(value: float, std: float | None, key: str) -> str:
    digits = 0 if key == "classes_covered" else 4 if key in ("kid", "memorisation_share") else 3
    text = f"{value:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None else "")


def _figure(summary: RunSummary, path, caption: str) -> Figure | None:
    """A figure from a file in the run folder (None when the run has none)."""
    if not path.is_file():
        return None
    name = f"{summary.label}-{path.parent.name}-{path.name}"
    return Figure(name, path.read_bytes(), caption)


def _figures(items: Sequence[Figure | None]) -> list[Block]:
    present = tuple(item for item in items if item is not None)
    return [Figures(present)] if present else []


def _setup_block(
    summaries: Sequence[RunSummary], lang: str, profile: Any, seconds: float | None
) -> list[Block]:
    t = TEXT[lang]
    first = summaries[0]
    cfg = first.run.config
    device = next((r["device"] for r in reversed(first.epochs) if r.get("device")), "?")
    precisions = sorted(
        {f"{s.model}: {s.epochs[-1].get('precision', 'fp32')}" for s in summaries if s.epochs}
    )
    rows = [
        (
            t["setup_dataset"],
            t["setup_dataset_value"].format(
                dataset=cfg.data.dataset, train=cfg.data.limit or 60000
            ),
        ),
        (
            t["setup_optimiser"],
            t["setup_optimiser_value"].format(
                lr=cfg.train.lr,
                beta1=cfg.train.beta1,
                beta2=cfg.train.beta2,
                batch=cfg.train.batch_size,
            ),
        ),  # fmt: skip
        (t["setup_epochs"], str(cfg.train.epochs)),
        (t["setup_objective"], t["setup_objective_value"]),
        (t["setup_seeds"], ", ".join(str(s) for s in sorted({s.seed for s in summaries}))),
        (t["setup_device"], device),
        (t["setup_precision"], "; ".join(precisions)),
        (
            t["setup_versions"],
            f"ganscope {first.run.meta.get('ganscope_version')}, torch "
            f"{first.run.meta.get('torch_version')}, Python {platform.python_version()}",
        ),
    ]
    from .recipe import recipe_changes

    recipes = {s.preset: recipe_changes(s.run.config.train) for s in summaries}
    if set(recipes) != {"seed"}:  # what each preset changed, for the reader to see
        rows += [
            (
                t["setup_recipe"].format(preset=preset),
                ", ".join(f"{k}={v}" for k, v in changes.items()) or t["setup_recipe_seed"],
            )
            for preset, changes in recipes.items()
        ]
    rows += [
        (
            f"{t['seconds']}: {group_name(s.group, lang)}, {t['seed']} {s.seed}",
            f"{s.train_seconds:.0f} s",
        )
        for s in summaries
    ]
    if seconds is not None:
        rows.append((t["setup_total"], f"{seconds:.0f} s"))
    if profile is not None:
        rows.append((t["setup_profile"], profile.name))
    return [Heading(2, t["setup"]), Table((t["setting"], t["value"]), tuple(rows), "setup")]


def _architecture_blocks(summaries: Sequence[RunSummary], t: dict) -> list[Block]:
    from .models import build_discriminator, build_generator, count_parameters

    blocks: list[Block] = [Heading(2, t["arch"])]
    for model in dict.fromkeys(s.model for s in summaries):
        generator, discriminator = build_generator(model), build_discriminator(model)
        blocks.append(Heading(3, display_name(model)))
        blocks.append(
            Code(
                f"{discriminator}\n{t['parameters']}: "
                f"{count_parameters(discriminator):,}\n\n{generator}\n"
                f"{t['parameters']}: {count_parameters(generator):,}"
            )
        )
    return blocks


def _latent_blocks(summary: RunSummary, t: dict, lang: str, classes: Sequence[str]) -> list[Block]:
    from .analysis import ranked

    analysis = summary.analysis
    rows = {r["dim"]: r for r in analysis["rows"] if r["dim"] is not None}
    delta = analysis["deltas"][0]
    caption = t["run_caption"].format(model=group_name(summary.group, lang), seed=summary.seed)
    blocks: list[Block] = [
        Heading(3, caption),
        Paragraph(t["latent_text"].format(delta=delta, n=analysis["n"])),
    ]
    grids = summary.run.analysis_dir / "grids"
    for dim in REPORT_DIMS:
        reading = describe(rows[dim], lang, classes) if dim in rows else ""
        blocks += _figures([_figure(summary, grids / f"dim_{dim:03d}.png", reading)])
    strongest = ranked([r for r in analysis["rows"] if r["delta"] == delta])[:STRONGEST]
    blocks.append(Heading(4, t["strongest"]))
    blocks.append(Bullets(tuple(describe(row, lang, classes) for row in strongest)))
    shifts = summary.run.analysis_dir / "class_shifts.png"
    blocks += _figures([_figure(summary, shifts, t["strongest"])])
    return blocks


def build_blocks(
    summaries: Sequence[RunSummary], lang: str, profile: Any = None, seconds: float | None = None
) -> list[Block]:
    """The whole report, in ``lang``; ``profile`` (when a reproduction made the runs) and
    ``seconds`` (its wall-clock) are shown in the set-up."""
    from .data import get_dataset

    t = TEXT[lang]
    classes = get_dataset(summaries[0].run.config.data.dataset).class_names(lang)
    blocks: list[Block] = [Heading(1, t["title"])]
    if profile is not None and profile.name != "full":
        quick = t["quick"].format(epochs=profile.epochs, limit=profile.limit, eval_n=profile.eval_n)
        blocks.append(Paragraph(quick, note=True))
    blocks += _setup_block(summaries, lang, profile, seconds)
    blocks += _architecture_blocks(summaries, t)

    def caption(s: RunSummary) -> str:
        return t["run_caption"].format(model=group_name(s.group, lang), seed=s.seed)

    blocks += [Heading(2, t["curves"]), Paragraph(t["curves_text"])]
    blocks += _figures([_figure(s, s.run.losses_figure, caption(s)) for s in summaries])
    blocks += [Heading(2, t["samples"]), Paragraph(t["samples_text"])]
    blocks += _figures(
        [Figure(f"{s.label}-samples.png", s.samples_png, caption(s)) for s in summaries]
    )
    blocks += _figures(
        [
            _figure(
                s,
                s.run.progress_gif,
                t["progress_caption"].format(model=group_name(s.group, lang)),
            )
            for s in summaries
        ]
    )
    blocks.append(Heading(2, t["latent"]))
    for s in summaries:
        if s.analysis:
            blocks += _latent_blocks(s, t, lang, classes)

    table = metric_table(summaries)
    accuracy = next(
        (s.evaluation["classifier_test_accuracy"] for s in summaries if s.evaluation), float("nan")
    )
    blocks += [Heading(2, t["metrics"]), Paragraph(t["metrics_text"].format(acc=accuracy))]
    groups = list(table)
    headers = (t["metric"], *(group_name(g, lang) for g in groups))
    rows = tuple(
        (f"{key} {'↑' if higher else '↓'}", *(_format(*table[g][key], key) for g in groups))
        for key, higher in METRICS_TABLE.items()
        if all(key in table[g] for g in groups)
    )
    blocks.append(Table(headers, rows, "metrics"))
    blocks += [
        Heading(2, t["observations"]),
        Bullets(tuple(observations(summaries, table, lang, classes))),
    ]
    if len({s.preset for s in summaries}) > 1:
        from .comparison import preset_blocks

        blocks += preset_blocks(summaries, table, lang, classes)
    return blocks


def observations(
    summaries: Sequence[RunSummary], table: dict, lang: str, classes: Sequence[str]
) -> list[str]:
    """Sentences derived from the numbers: when losses flatten, who wins, missing classes."""
    from .metrics import MEMORISATION_QUANTILE

    t = TEXT[lang]
    lines = []
    for s in summaries:
        name = f"{group_name(s.group, lang)} ({t['seed']} {s.seed})"
        epoch = plateau_epoch(s.epochs)
        lines.append(
            t["plateau"].format(model=name, epoch=epoch)
            if epoch is not None
            else t["plateau_none"].format(model=name)
        )
    if len(table) == 2 and len({preset for _, preset in table}) == 1:
        # Two models, one preset (the report's comparison); presets: section 8's paragraph.
        (a, ta), (b, tb) = table.items()
        for key, higher in METRICS_TABLE.items():
            if key not in ta or key not in tb or ta[key][0] == tb[key][0]:
                continue
            winner, loser = (a, b) if (ta[key][0] > tb[key][0]) == higher else (b, a)
            lines.append(
                t["wins"].format(
                    winner=group_name(winner, lang),
                    metric=key,
                    a=_format(table[winner][key][0], None, key),
                    b=_format(table[loser][key][0], None, key),
                )
            )
    for s in summaries:
        if not s.evaluation:
            continue
        name = f"{group_name(s.group, lang)} ({t['seed']} {s.seed})"
        gone = missing_classes(s.evaluation, classes)
        lines.append(
            t["missing"].format(model=name, classes=", ".join(gone))
            if gone
            else t["all_classes"].format(model=name, count=len(classes))
        )
        if "memorisation_share" in s.evaluation:
            lines.append(
                t["memorised"].format(
                    model=name,
                    share=s.evaluation["memorisation_share"],
                    expected=MEMORISATION_QUANTILE,
                )
            )
    return lines
