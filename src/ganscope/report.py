"""The lab report as a document: typed ``document`` blocks built from the runs' summaries.

Gathering a run's numbers is ``summary``'s (it writes nothing); this module turns the
summaries into blocks (:func:`build_blocks`), with every sentence from ``text`` and
observations computed from the numbers; several presets side by side are ``comparison``'s.
Which results exist, and computing the missing ones, is ``reproduce``'s business.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

from .comparison import preset_blocks
from .conditioning import conditional_blocks
from .data import get_dataset
from .directions import ranked
from .document import Block, Bullets, Code, Figure, Figures, Heading, Paragraph, Table
from .methods_text import method_table, methods_paragraph
from .metrics import MEMORISATION_QUANTILE, REPORT_METRICS, format_metric
from .models import build_discriminator, build_generator, count_parameters, display_name
from .options import REPORT_DIMS
from .presets import recipe_changes
from .summary import RunSummary, group_name, metric_table, missing_classes, plateau_epoch
from .text import TEXT, describe

#: How many of the strongest dimensions the report lists per run.
STRONGEST = 5


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
    """The set-up table; imported generators (``ganscope import``) have no training rows."""
    t = TEXT[lang]
    trained = [s for s in summaries if not s.run.imported]
    first = (trained or summaries)[0]
    cfg = first.run.config
    rows = [
        (
            t["setup_dataset"],
            t["setup_dataset_value"].format(
                dataset=cfg.data.dataset, train=cfg.data.limit or 60000
            ),
        ),
        *(_training_rows(trained, lang) if trained else []),
        (
            t["setup_versions"],
            f"ganscope {first.run.meta.get('ganscope_version')}, torch "
            f"{first.run.meta.get('torch_version')}, Python {platform.python_version()}",
        ),
    ]
    recipes = {s.preset: recipe_changes(s.run.config.train) for s in trained}
    if set(recipes) - {"seed"}:  # what each preset changed, for the reader to see
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
        for s in trained
    ]
    if seconds is not None:
        rows.append((t["setup_total"], f"{seconds:.0f} s"))
    if profile is not None:
        rows.append((t["setup_profile"], profile.name))
    return [Heading(2, t["setup"]), Table((t["setting"], t["value"]), tuple(rows), "setup")]


def _training_rows(trained: Sequence[RunSummary], lang: str) -> list[tuple[str, str]]:
    """How the trained runs were trained: optimiser, epochs, objective, seeds, device."""
    t, first = TEXT[lang], trained[0]
    cfg = first.run.config
    device = next((r["device"] for r in reversed(first.epochs) if r.get("device")), "?")
    precisions = sorted(
        {f"{s.model}: {s.epochs[-1].get('precision', 'fp32')}" for s in trained if s.epochs}
    )
    optimiser = t["setup_optimiser_value"].format(
        lr=cfg.train.lr, beta1=cfg.train.beta1, beta2=cfg.train.beta2, batch=cfg.train.batch_size
    )
    return [
        (t["setup_optimiser"], optimiser),
        (t["setup_epochs"], str(cfg.train.epochs)),
        (t["setup_objective"], t["setup_objective_value"]),
        (t["setup_seeds"], ", ".join(str(s) for s in sorted({s.seed for s in trained}))),
        (t["setup_device"], device),
        (t["setup_precision"], "; ".join(precisions)),
    ]


def _architecture_blocks(summaries: Sequence[RunSummary], lang: str) -> list[Block]:
    t = TEXT[lang]
    blocks: list[Block] = [Heading(2, t["arch"])]
    for summary in {s.group: s for s in summaries if s.run.imported}.values():
        source = summary.run.config.source
        blocks.append(Heading(3, group_name(summary.group, lang)))
        lines = [f"{key}: {value}" for key, value in vars(source).items() if value]
        blocks.append(Paragraph(t["imported_arch"]))
        blocks.append(Code("\n".join(lines)))
    for model in dict.fromkeys(s.model for s in summaries if not s.run.imported):
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
    analysis = summary.analysis
    rows = {r["dim"]: r for r in analysis["rows"] if r["dim"] is not None}
    delta = analysis["deltas"][0]
    caption = t["run_caption"].format(model=group_name(summary.group, lang), seed=summary.seed)
    blocks: list[Block] = [
        Heading(3, caption),
        Paragraph(t["latent_text"].format(delta=delta, n=analysis["n"])),
    ]
    for dim in REPORT_DIMS:
        reading = describe(rows[dim], lang, classes) if dim in rows else ""
        blocks += _figures([_figure(summary, summary.run.analysis.grid(dim), reading)])
    strongest = ranked([r for r in analysis["rows"] if r["delta"] == delta])[:STRONGEST]
    blocks.append(Heading(4, t["strongest"]))
    blocks.append(Bullets(tuple(describe(row, lang, classes) for row in strongest)))
    shifts = summary.run.analysis.class_shifts()
    blocks += _figures([_figure(summary, shifts, t["strongest"])])
    return blocks + (_methods_blocks(summary, t, lang, classes) if summary.methods else [])


def _methods_blocks(summary: RunSummary, t: dict, lang: str, classes: Sequence[str]) -> list:
    """'Which method moves which garment best': the scored comparison of the run's
    direction methods (``methods``), a table per method and a paragraph from its numbers."""
    record = summary.methods
    sizes = {"n": record["n"], "compare_n": record["compare_n"], "length": record["length"]}
    text = t["methods_text"].format(seed=record["compare_seed"], **sizes)
    names = {key: name[0].upper() + name[1:] for key, name in t["method_names"].items()}
    rows = tuple(
        (names[method], f"{e['wins']}/{e['scored']}", f"{e['flip']:.2f}",
         f"{e['off_target']:.2f}", f"{e['fid_drift']:+.1f}", f"{e['kept']}/{e['scored']}")
        for method, e in method_table(record).items()
    )  # fmt: skip
    figure = _figure(summary, summary.run.analysis.table("methods", ".png"), t["methods"])
    return [
        Heading(4, t["methods"]),
        Paragraph(text),
        Table(t["methods_columns"], rows, "methods"),
        Paragraph(methods_paragraph(record, lang, classes)),
        *_figures([figure]),
    ]


def build_blocks(
    summaries: Sequence[RunSummary], lang: str, profile: Any = None, seconds: float | None = None
) -> list[Block]:
    """The whole report, in ``lang``; ``profile`` (when a reproduction made the runs) and
    ``seconds`` (its wall-clock) are shown in the set-up."""
    t = TEXT[lang]
    classes = get_dataset(summaries[0].run.config.data.dataset).class_names(lang)
    blocks: list[Block] = [Heading(1, t["title"])]
    if profile is not None and profile.name != "full":
        quick = t["quick"].format(epochs=profile.epochs, limit=profile.limit, eval_n=profile.eval_n)
        blocks.append(Paragraph(quick, note=True))
    blocks += _setup_block(summaries, lang, profile, seconds)
    blocks += _architecture_blocks(summaries, lang)

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
        (f"{key} {'↑' if higher else '↓'}", *(format_metric(*table[g][key], key) for g in groups))
        for key, higher in REPORT_METRICS.items()
        if all(key in table[g] for g in groups)
    )
    blocks.append(Table(headers, rows, "metrics"))
    blocks += [
        Heading(2, t["observations"]),
        Bullets(tuple(observations(summaries, table, lang, classes))),
    ]
    return blocks + _side_by_side(summaries, table, lang, classes)


def _side_by_side(
    summaries: Sequence[RunSummary], table: dict, lang: str, classes: Sequence[str]
) -> list[Block]:
    """The presets side by side (unconditional runs), then the conditional runs' section."""
    plain = [s for s in summaries if s.conditioning == "none"]
    blocks = (
        preset_blocks(plain, table, lang, classes) if len({s.preset for s in plain}) > 1 else []
    )
    if len(plain) < len(summaries):
        blocks += conditional_blocks(summaries, lang, classes)
    return blocks


def observations(
    summaries: Sequence[RunSummary], table: dict, lang: str, classes: Sequence[str]
) -> list[str]:
    """Sentences derived from the numbers: when losses flatten, who wins, missing classes."""
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
        for key, higher in REPORT_METRICS.items():
            if key not in ta or key not in tb or ta[key][0] == tb[key][0]:
                continue
            winner, loser = (a, b) if (ta[key][0] > tb[key][0]) == higher else (b, a)
            lines.append(
                t["wins"].format(
                    winner=group_name(winner, lang),
                    metric=key,
                    a=format_metric(table[winner][key][0], None, key),
                    b=format_metric(table[loser][key][0], None, key),
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
