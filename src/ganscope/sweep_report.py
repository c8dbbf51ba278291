"""``ganscope sweep --report``: one self-contained HTML page (and its Markdown) of a study:
the trials, the optimisation history and per-epoch curves, parameter importances, the
Pareto front where there are two objectives, the grids of the best trials and the
confirmation on fresh seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .document import Block, Figure, Figures, Heading, Paragraph, Table, write_document
from .gallery import sample_grid_png
from .plots import plot_importances, plot_pareto, plot_sweep
from .runs import load_run

#: The best trials whose sample grids the page shows.
GRIDS = 3


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _trial_rows(summary: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
    best = set(summary["best"])
    rows = []
    for t in summary["trials"]:
        params = ", ".join(f"{k}={_number(v)}" for k, v in t["params"].items())
        values = ", ".join(_number(v) for v in t["values"] or []) or "–"
        state = t["state"].lower() + (f" at epoch {t['pruned_at']}" if t["pruned_at"] else "")
        state += f" (retry of {t['retry_of']})" if t["retry_of"] is not None else ""
        mark = " ★" if t["number"] in best else ""
        seconds = _number(t["seconds"]) if t["seconds"] is not None else "–"
        rows.append((f"{t['number']}{mark}", state, params, values, seconds, t["run"] or "–"))
    return tuple(rows)


def _figures(summary: dict[str, Any], folder: Path) -> list[Block]:
    names = [name for name, _ in summary["objectives"]]
    figures = folder / "figures"
    blocks: list[Block] = []
    maximize = summary["objectives"][0][1] == "maximize"
    path = plot_sweep(summary["trials"], names[0], figures / "history.png", maximize)
    items = [Figure("history.png", path.read_bytes(), "history and curves")]
    if summary["importances"]:
        path = plot_importances(summary["importances"], figures / "importances.png")
        items.append(Figure("importances.png", path.read_bytes(), "parameter importances"))
    if len(names) == 2:
        done = [t for t in summary["trials"] if t["values"]]
        points = [(*t["values"], t["number"] in summary["best"]) for t in done]
        path = plot_pareto(points, names, figures / "pareto.png")
        items.append(Figure("pareto.png", path.read_bytes(), "the Pareto front"))
    blocks.append(Figures(tuple(items)))
    return blocks


def _grids(summary: dict[str, Any], folder: Path) -> list[Block]:
    items = []
    for number in summary["best"][:GRIDS]:
        trial = next(t for t in summary["trials"] if t["number"] == number)
        run = load_run(folder / trial["run"])
        items.append(Figure(f"trial-{number}.png", sample_grid_png(run), f"trial {number}"))
    return [Heading(2, "The best trials' samples"), Figures(tuple(items))] if items else []


def _confirm(summary: dict[str, Any]) -> list[Block]:
    rows = summary["confirm"]
    if not rows:
        return []
    metrics = [k for k in rows[0] if f"{k}_std" in rows[0]]
    table = tuple(
        (str(r["trial"]), ", ".join(f"{k}={_number(v)}" for k, v in r["params"].items()),
         *(f"{r[m]:.4g} ± {r[m + '_std']:.2g}" if r[m + "_std"] is not None else f"{r[m]:.4g}"
           for m in metrics))
        for r in rows
    )  # fmt: skip
    text = (
        f"The best {len(rows)} configuration(s) trained again on fresh seeds "
        f"{rows[0]['seeds']} and evaluated on {rows[0]['n']:,} samples: mean ± std."
    )
    return [Heading(2, "Confirmation on fresh seeds"), Paragraph(text),
            Table(("trial", "settings", *metrics), table, "confirm")]  # fmt: skip


def write_sweep_report(summary: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """``SWEEP_DIR/report.html`` and ``report.md`` of ``summary`` (``sweep.summary``)."""
    folder = Path(folder)
    study = summary["space"]["study"]
    names = [f"{n} ({d})" for n, d in summary["objectives"]]
    states = [t["state"] for t in summary["trials"]]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in dict.fromkeys(states))
    blocks: list[Block] = [
        Heading(1, f"Sweep {summary['study']}: {study['model']}, {study['preset']} preset"),
        Paragraph(
            f"{len(states)} trials ({counts}) of {study['epochs']} epoch(s) each; sampler "
            f"{study['sampler']}, pruner {study['pruner']}; objective(s): {', '.join(names)} "
            f"at epoch {study['objective_epoch'] or study['epochs']}. ★: the best trial(s)."
        ),
        Heading(2, "Trials"),
        Table(
            ("trial", "state", "settings", "value(s)", "seconds", "run folder"),
            _trial_rows(summary),
            "trials",
        ),  # fmt: skip
        Heading(2, "History, curves and importances"),
        *_figures(summary, folder),
        *_grids(summary, folder),
        *_confirm(summary),
    ]
    return write_document(blocks, f"ganscope sweep {summary['study']}", folder)
