"""``ganscope analyze``: label what every latent dimension does, with confidence.

The report shifts five dimensions by +-10 and reads the images by eye. Here every dimension
(and SeFa's and GANSpace's closed-form directions) is measured by ``directions``
(:func:`~ganscope.directions.measure_run`, a typed result, and its files), and summarised in
words in the report's manner by ``text``; :func:`analyze_run` does the three in order.
"""

from __future__ import annotations

from typing import Any

from .gallery import output_path
from .methods import compare_run
from .methods_text import boundaries_markdown
from .options import AnalyzeOptions, resolve
from .readings import CLOSED_FORM, Analysis, measure_run, write_analysis
from .runs import Run
from .styles import style_dimensions
from .text import TEXT, styles_markdown, summary_markdown


def summary(analysis: Analysis, lang: str) -> str:
    """The analysis in words: one ranked sentence per dimension, then each closed-form
    method's directions."""
    markdown = summary_markdown(analysis.main_rows, lang)
    for kind, _, _ in CLOSED_FORM:
        rows = getattr(analysis, f"{kind}_rows")
        if rows:
            markdown += "\n" + summary_markdown(rows, lang, TEXT[lang][f"{kind}_title"])
    if analysis.style_rows:  # a conditional run
        markdown += "\n" + styles_markdown(style_dimensions(analysis.style_rows), lang)
    if analysis.boundaries:
        markdown += "\n" + boundaries_markdown([b.record() for b in analysis.boundaries], lang)
    return markdown


def analyze_run(
    run: Run, options: AnalyzeOptions | None = None, **overrides: Any
) -> dict[str, Any]:
    """Analyse a run's generator and write tables, summaries and figures; returns them.

    Writes into ``out`` (default ``RUN/analysis``): ``dims.csv``, ``summary.<lang>.md``,
    ``class_shifts.png`` (top-k), ``grids/dim_NNN.png`` (report-style three-row figures for the
    top-k and the report's dims), SeFa's ``sefa.csv`` and ``class_shifts_sefa.png``, with
    ``per_checkpoint`` ``strength_by_epoch.csv/.png``, and last ``dims.json``: the header
    (``directions.analysis_header``) and every row, so its presence means a finished analysis.
    Every class's boundary in z (``boundaries``) is fitted and drawn (``grids/towards_CC.png``).
    With ``compare_methods``: scores the direction methods on the analysis already written
    instead (``methods.compare_run``).
    """
    opts = resolve(AnalyzeOptions, options, overrides)
    if opts.compare_methods:  # on the analysis already there: see ``methods``
        return compare_run(run, opts)
    folder = output_path(run, opts.out, run.analysis_dir, opts.overwrite, folder=True)
    analysis = measure_run(run, opts)
    markdown = summary(analysis, opts.lang)
    paths = write_analysis(analysis, folder, opts.top_k, (opts.lang, markdown))
    return {**analysis.record(), "summary": markdown, "paths": [str(p) for p in paths]}


def compare_methods(
    run: Run, options: AnalyzeOptions | None = None, **overrides: Any
) -> dict[str, Any]:
    """The scored comparison of direction methods on ``run``'s analysis, as data: ``rows``
    (one dict per class, method and edit length, the fields of ``methods``), ``winners``
    (per class, the best on flip rate at the analysis's delta), the header, the Markdown
    table and the paths written. ``ganscope analyze RUN --compare-methods`` from Python."""
    opts = resolve(AnalyzeOptions, options, {**overrides, "compare_methods": True})
    return compare_run(run, opts)
