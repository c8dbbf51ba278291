"""The report's presets side by side (``ganscope reproduce --presets seed improved``).

For each model trained with several presets: a paragraph computed from the numbers, the
metrics of each preset, sample grids from the same latent vectors, each class's share of the
samples and the latent readings of the report's dimensions. Gathering is ``summary``'s; this
module only builds blocks from their summaries (``summary``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .document import Block, Figure, Figures, Heading, Paragraph, Table
from .metrics import REPORT_METRICS, format_metric
from .models import display_name
from .options import REPORT_DIMS
from .summary import RunSummary
from .text import TEXT, describe


def rarest_share(summary: RunSummary) -> float:
    """The share of the samples in the class the generator makes least often."""
    histogram = summary.evaluation["class_histogram"]
    return min(histogram) / sum(histogram)


def class_shares(group: Sequence[RunSummary]) -> list[float]:
    """Each class's share of the samples, averaged over the group's runs."""
    per_run = [
        [count / sum(s.evaluation["class_histogram"]) for count in s.evaluation["class_histogram"]]
        for s in group
    ]
    return [statistics.fmean(column) for column in zip(*per_run)]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _ratio(a: float | None, b: float | None, t: dict) -> str:
    if a is None or b is None or a == 0:
        return t["no_ratio"]
    return t["times"].format(ratio=b / a)


def compare_sentence(
    model: str, base: list[RunSummary], other: list[RunSummary], table: dict, lang: str
) -> str:
    """What preset ``other`` changed against ``base`` for ``model``, in numbers."""
    t = TEXT[lang]
    a, b = table[(model, base[0].preset)], table[(model, other[0].preset)]
    shared = [key for key in REPORT_METRICS if key in a and key in b]
    better = sum(
        (b[key][0] > a[key][0]) if REPORT_METRICS[key] else (b[key][0] < a[key][0])
        for key in shared
    )
    seconds_a = _mean([s.seconds_per_epoch for s in base])
    seconds_b = _mean([s.seconds_per_epoch for s in other])
    return t["compare"].format(
        preset=other[0].preset,
        model=display_name(model),
        fid_a=format_metric(a["fid"][0], None, "fid"),
        fid_b=format_metric(b["fid"][0], None, "fid"),
        fid_ratio=_ratio(a["fid"][0], b["fid"][0], t),
        recall_a=format_metric(a["recall"][0], None, "recall"),
        recall_b=format_metric(b["recall"][0], None, "recall"),
        recall_ratio=_ratio(a["recall"][0], b["recall"][0], t),
        rare_a=statistics.fmean(rarest_share(s) for s in base),
        rare_b=statistics.fmean(rarest_share(s) for s in other),
        better=better,
        total=len(shared),
        seconds_ratio=_ratio(seconds_a, seconds_b, t),
        seconds_a="?" if seconds_a is None else f"{seconds_a:.1f}",
        seconds_b="?" if seconds_b is None else f"{seconds_b:.1f}",
    )


def preset_blocks(
    summaries: Sequence[RunSummary], table: dict, lang: str, classes: Sequence[str]
) -> list[Block]:
    """The side-by-side section; models trained with a single preset are left out."""
    t = TEXT[lang]
    blocks: list[Block] = [Heading(2, t["presets"]), Paragraph(t["presets_text"])]
    for model in dict.fromkeys(s.model for s in summaries):
        groups: dict[str, list[RunSummary]] = {}
        for s in summaries:
            if s.model == model and s.evaluation:
                groups.setdefault(s.preset, []).append(s)
        if len(groups) >= 2:
            blocks += _model_blocks(model, groups, table, lang, classes)
    return blocks


def _model_blocks(
    model: str,
    groups: dict[str, list[RunSummary]],
    table: dict,
    lang: str,
    classes: Sequence[str],
) -> list[Block]:
    """One model's presets: the computed paragraph, metrics, grids, class shares, readings."""
    t = TEXT[lang]
    presets = list(groups)
    base = "seed" if "seed" in groups else presets[0]
    columns = tuple(t["preset_column"].format(preset=p) for p in presets)
    sentences = [
        compare_sentence(model, groups[base], groups[p], table, lang) for p in presets if p != base
    ]
    firsts = [groups[p][0] for p in presets]
    shares = [class_shares(groups[p]) for p in presets]
    found = [readings(s, lang, classes) for s in firsts]
    return [
        Heading(3, display_name(model)),
        Paragraph(" ".join(sentences)),
        Table((t["metric"], *columns), _metric_rows(model, groups, table, t), f"presets-{model}"),
        Figures(
            tuple(
                Figure(f"{s.label}-preset-samples.png", s.samples_png, column)
                for s, column in zip(firsts, columns)
            )
        ),
        Table(
            (t["class"], *columns),
            tuple(
                (name, *(f"{share[i]:.1%}" for share in shares)) for i, name in enumerate(classes)
            ),
            f"classes-{model}",
        ),
        Table(
            (t["dimension"], *columns),
            tuple((str(dim), *(r.get(dim, "") for r in found)) for dim in REPORT_DIMS),
            f"readings-{model}",
        ),
    ]


def _metric_rows(
    model: str, groups: dict[str, list[RunSummary]], table: dict, t: dict
) -> tuple[tuple[str, ...], ...]:
    """The report's metrics per preset, then the rarest class's share and seconds per epoch."""
    presets = list(groups)
    metrics = [table[(model, p)] for p in presets]
    rows = [
        (f"{key} {'↑' if higher else '↓'}", *(format_metric(*m[key], key) for m in metrics))
        for key, higher in REPORT_METRICS.items()
        if all(key in m for m in metrics)
    ]
    rows.append(
        (
            t["rarest_row"],
            *(f"{statistics.fmean(rarest_share(s) for s in groups[p]):.1%}" for p in presets),
        )
    )
    seconds = [_mean([s.seconds_per_epoch for s in groups[p]]) for p in presets]
    rows.append((t["seconds_row"], *("?" if v is None else f"{v:.1f}" for v in seconds)))
    return tuple(rows)


def readings(summary: RunSummary, lang: str, classes: Sequence[str]) -> dict[int, str]:
    """dimension -> the analysis's sentence for the report's dimensions (first delta)."""
    if not summary.analysis:
        return {}
    delta = summary.analysis["deltas"][0]
    return {
        row["dim"]: describe(row, lang, classes)
        for row in summary.analysis["rows"]
        if row["dim"] in REPORT_DIMS and row["delta"] == delta
    }
