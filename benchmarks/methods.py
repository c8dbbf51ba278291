"""Latent-direction methods on trained runs: analyse, compare, print docs/analysis.md's tables.

    python benchmarks/methods.py RUN [RUN ...] [--analyze] [--compare] [--threads N]

``--analyze`` runs ``ganscope analyze RUN`` with its defaults (every dimension, 10 SeFa and 10
GANSpace directions, boundaries on 10,000 vectors) into ``RUN/analysis`` (replacing what is
there); ``--compare`` then ``ganscope analyze RUN --compare-methods`` (256 fresh base vectors
of seed 2, lengths 5, 10, 20). Without them the records already in the folders are read. Then
prints, from the records only: per run the methods' summary at length 10 (classes won on flip
rate, mean flip rate, probability given to other classes, FID drift, classes whose nearest
class stays within ±0.05), the winner per class, the conditional-boundary target (nearest
class kept within ±0.05 while the target moves), the seconds each step took (the records'
own clocks, so run it alone on the machine), and over all runs the mean ± std of each
method's mean flip rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from ganscope import atomic
from ganscope.analysis import analyze_run, compare_methods
from ganscope.methods_text import KEEP_TOLERANCE, method_table
from ganscope.runs import load_run
from ganscope.text import TEXT

NAMES = TEXT["en"]["method_names"]


def run_label(run) -> str:
    train = run.config.train
    return f"{run.config.model.name.upper()} {train.preset}, seed {train.seed}"


def keep_target(record: dict) -> tuple[int, int, list[str], str]:
    """Classes whose conditional edit keeps its nearest class within the tolerance while
    raising the target (gain > 0), of those scored; the ones that miss; and, among the classes
    whose plain boundary drags the nearest class up by more than the tolerance, how many the
    conditional edit keeps."""
    rows = [r for r in record["rows"] if r["length"] == record["length"]]
    conditional = {r["class"]: r for r in rows if r["method"] == "conditional"}
    plain = {r["class"]: r for r in rows if r["method"] == "boundary"}
    kept = [r for r in conditional.values()
            if abs(r["keep_change"]) <= KEEP_TOLERANCE and r["gain"] > 0]  # fmt: skip
    missed = [f"{r['class']} (keeping {r['keep_class']}: {r['keep_change']:+.3f})"
              for r in conditional.values() if r not in kept]  # fmt: skip
    dragged = [
        c for c, r in plain.items() if r["keep_change"] > KEEP_TOLERANCE and c in conditional
    ]
    fixed = [c for c in dragged if conditional[c] in kept]
    drag = (f"the plain boundary drags the nearest class up by more than {KEEP_TOLERANCE} for "
            f"{len(dragged)} classes ({', '.join(dragged) or 'none'}); the conditional one keeps "
            f"it for {len(fixed)} of them")  # fmt: skip
    return len(kept), len(conditional), missed, drag


def run_tables(run, analysis: dict, record: dict) -> list[str]:
    lines = [f"### {run_label(run)} ({run.path.name})", ""]
    lines += ["| method | classes won | mean flip rate | given to other classes | FID drift | "
              "nearest class kept (±0.05) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for method, e in method_table(record).items():
        lines.append(f"| {NAMES[method]} | {e['wins']}/{e['scored']} | {e['flip']:.3f} | "
                     f"{e['off_target']:.3f} | {e['fid_drift']:+.1f} | "
                     f"{e['kept']}/{e['scored']} |")  # fmt: skip
    lines += ["", "| class | wins on flip rate (length 10) | flip rate [95% CI] | side effect "
              "(TV) | given to other classes |", "|---|---|---|---|---|"]  # fmt: skip
    for w in sorted(_winners(record), key=lambda r: r["class_index"]):
        low, high = w["flip_ci"]
        lines.append(f"| {w['class']} | {NAMES[w['method']]} ({w['direction']}) | "
                     f"{w['flip']:.2f} [{low:.2f}, {high:.2f}] | {w['side_tv']:.2f} | "
                     f"{w['off_target']:.2f} |")  # fmt: skip
    kept, scored, missed, drag = keep_target(record)
    misses = f"; not for {', '.join(missed)}" if missed else ""
    lines += ["", f"Conditional boundary: nearest class within ±{KEEP_TOLERANCE} with the target "
              f"rising for {kept} of {scored} classes{misses}. Also {drag}."]  # fmt: skip
    boundaries = [b for b in analysis.get("boundaries", []) if b["normal"] is not None]
    if boundaries:
        accuracy = statistics.fmean(b["held_out_balanced_accuracy"] for b in boundaries)
        stability = statistics.fmean(b["stability"] for b in boundaries)
        lines.append(f"Boundaries: {len(boundaries)} of {len(analysis['boundaries'])} classes "
                     f"fitted on {analysis['boundary_n']} vectors, held-out balanced accuracy "
                     f"{accuracy:.3f} (mean), stability {stability:.3f} (mean cosine of the "
                     "halves' normals).")  # fmt: skip
    lines.append(f"Seconds (the analyze and compare commands' own clocks): analysis "
                 f"{analysis['seconds']:.1f}, comparison {record['seconds']:.1f}.")  # fmt: skip
    return lines + [""]


def _winners(record: dict) -> list[dict]:
    from ganscope.methods import winners  # the one definition of a winner

    return winners(record["rows"], record["length"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--analyze", action="store_true", help="analyse first (defaults)")
    parser.add_argument("--compare", action="store_true", help="score the methods first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lines, flips = [], {}
    for path in args.runs:
        run = load_run(path)
        if args.analyze:
            analyze_run(run, overwrite=True)
        if args.compare:
            compare_methods(run)
        analysis = run.analysis_record()
        methods_path = run.analysis.table("methods", ".json")
        if analysis is None or not methods_path.is_file():
            print(f"{path}: no analysis or comparison; pass --analyze --compare", file=sys.stderr)
            return 2
        record = atomic.read_json(methods_path)
        lines += run_tables(run, analysis, record)
        for method, entry in method_table(record).items():
            flips.setdefault(method, []).append(entry["flip"])
    lines += ["### Every run: mean flip rate at length 10 (mean ± std over the runs)", "",
              "| method | runs | mean flip rate |", "|---|---|---|"]  # fmt: skip
    for method, values in flips.items():
        spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
        lines.append(
            f"| {NAMES[method]} | {len(values)} | {statistics.fmean(values):.3f}{spread} |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
