"""The report's section on class-conditional runs (``ganscope reproduce --conditional``).

For each network and preset trained both ways: a paragraph computed from the numbers (how
often the classifier calls a sample the asked class, the weakest class against the
classifier's own accuracy there, FID and intra-class FID, the Classification Accuracy Score,
the cost per epoch), the metrics of the unconditional run beside each conditional variant
(mean ± std over seeds), grids from the same latent vectors (one row per class), the
per-class table, and the networks' parameter counts. Gathering is ``summary``'s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .document import Block, Figure, Figures, Heading, Paragraph, Table
from .gallery import same_z_png
from .metrics import format_metric
from .models import build_discriminator, build_generator, count_parameters, display_name
from .summary import RunSummary, group_name
from .text import TEXT

#: The rows of the section's metric table: record key, higher is better.
ROWS = (
    ("label_agreement", True),
    ("intra_fid", False),
    ("class_precision", True),
    ("class_recall", True),
    ("cas", True),
    ("fid", False),
    ("precision", True),
    ("recall", True),
)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _cell(group: Sequence[RunSummary], key: str) -> str:
    values = [s.evaluation.get(key) for s in group]
    if any(v is None for v in values) or not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else None
    return format_metric(statistics.fmean(values), std, key)  # the metric's own digits


def _per_class(group: Sequence[RunSummary], key: str) -> list[float]:
    return [statistics.fmean(column) for column in zip(*(s.evaluation[key] for s in group))]


def conditional_sentence(
    name: str,
    group: Sequence[RunSummary],
    plain: Sequence[RunSummary],
    classes: Sequence[str],
    lang: str,
) -> str:
    """What the label gave one variant, in numbers."""
    t = TEXT[lang]
    agree = _per_class(group, "label_agreement_per_class")
    real = _per_class(group, "classifier_accuracy_per_class")
    worst = max(range(len(agree)), key=lambda c: real[c] - agree[c])
    text = t["conditional_sentence"].format(
        name=name,
        agree=_mean([s.evaluation["label_agreement"] for s in group]),
        real=_mean([s.evaluation["classifier_test_accuracy"] for s in group]),
        worst=classes[worst],
        worst_agree=agree[worst],
        worst_real=real[worst],
        fid=_mean([s.evaluation["fid"] for s in group]),
        intra=_mean([s.evaluation["intra_fid"] for s in group]),
    )
    if plain:
        seconds = _mean([s.seconds_per_epoch for s in group])
        plain_seconds = _mean([s.seconds_per_epoch for s in plain])
        text += " " + t["conditional_versus"].format(
            fid=_mean([s.evaluation["fid"] for s in plain]),
            ratio=seconds / plain_seconds if seconds and plain_seconds else float("nan"),
        )
    cas = _mean([s.evaluation.get("cas") for s in group])
    if cas is not None:
        cas_real = _mean([s.evaluation.get("cas_real") for s in group])
        text += " " + t["conditional_cas"].format(cas=cas, real=cas_real)
    return text


def conditional_blocks(
    summaries: Sequence[RunSummary], lang: str, classes: Sequence[str]
) -> list[Block]:
    """The section: for every network and preset with conditional runs, the unconditional
    runs of the same network and preset beside them."""
    t = TEXT[lang]
    blocks: list[Block] = [Heading(2, t["conditional"]), Paragraph(t["conditional_text"])]
    done = [s for s in summaries if s.evaluation]
    pairs = dict.fromkeys((s.model, s.preset) for s in done if s.conditioning != "none")
    for model, preset in pairs:
        same = [s for s in done if (s.model, s.preset) == (model, preset)]
        groups: dict[tuple[str, str], list[RunSummary]] = {}
        for s in same:
            groups.setdefault(s.group, []).append(s)
        plain = groups.get((model, preset), [])
        blocks += _network_blocks(model, groups, plain, lang, classes)
    return blocks


def _network_blocks(
    model: str,
    groups: dict[tuple[str, str], list[RunSummary]],
    plain: list[RunSummary],
    lang: str,
    classes: Sequence[str],
) -> list[Block]:
    t = TEXT[lang]
    names = [group_name(g, lang) for g in groups]
    variants = [
        (name, runs) for name, runs in zip(names, groups.values()) if runs[0].conditioning != "none"
    ]
    sentences = [conditional_sentence(name, runs, plain, classes, lang) for name, runs in variants]
    metric_rows = tuple(
        (f"{key} {'↑' if higher else '↓'}", *(_cell(runs, key) for runs in groups.values()))
        for key, higher in ROWS
    )
    seconds = tuple(
        f"{_mean([s.seconds_per_epoch for s in runs]) or 0:.1f}" for runs in groups.values()
    )
    figures = tuple(
        Figure(f"{runs[0].label}-same-z.png", same_z_png(runs[0].run), name)
        for name, runs in zip(names, groups.values())
    )
    preset = next(iter(groups.values()))[0].preset
    return [
        Heading(3, t["conditional_heading"].format(model=display_name(model), preset=preset)),
        Paragraph(" ".join(sentences)),
        Table(
            (t["metric"], *names),
            (*metric_rows, (t["seconds_row"], *seconds)),
            f"conditional-{model}-{preset}",
        ),
        Paragraph(t["conditional_grids"]),
        Figures(figures),
        _class_table(variants, classes, t, f"conditional-classes-{model}-{preset}"),
        Table(
            (t["network"], "G", "D"),
            tuple(_parameters(runs[0], name) for name, runs in zip(names, groups.values())),
            f"conditional-parameters-{model}-{preset}",
        ),
    ]


def _class_table(
    variants: list[tuple[str, list[RunSummary]]], classes: Sequence[str], t: dict, table_id: str
) -> Table:
    """Per class: the classifier's accuracy on real images, each variant's label agreement
    and intra-class FID (means over seeds)."""
    real = _per_class(variants[0][1], "classifier_accuracy_per_class")
    agree = [_per_class(runs, "label_agreement_per_class") for _, runs in variants]
    intra = [_per_class(runs, "intra_fid_per_class") for _, runs in variants]
    rows = tuple(
        (name, f"{real[c]:.1%}", *(f"{a[c]:.1%}" for a in agree), *(f"{i[c]:.1f}" for i in intra))
        for c, name in enumerate(classes)
    )
    headers = (
        t["class"],
        t["classifier_real"],
        *(f"{t['agreement']}: {name}" for name, _ in variants),
        *(f"{t['intra_fid']}: {name}" for name, _ in variants),
    )
    return Table(headers, rows, table_id)


def _parameters(summary: RunSummary, name: str) -> tuple[str, str, str]:
    """A variant's parameter counts, G's and D's."""
    config = summary.run.config
    generator = build_generator(config.model.name, config.model.z_dim, config.num_classes)
    discriminator = build_discriminator(
        config.model.name, config.model.conditioning, config.num_classes
    )
    return name, f"{count_parameters(generator):,}", f"{count_parameters(discriminator):,}"
