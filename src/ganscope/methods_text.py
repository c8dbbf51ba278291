"""The direction methods in words: the analysis's boundaries as a table, and the scored
comparison (``methods``) as a table per method and a paragraph computed from its numbers, in
both languages (the words are ``text.TEXT``'s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .methods import winners
from .text import TEXT

#: An edit keeps a class when the class's mean probability moves by at most this much.
KEEP_TOLERANCE = 0.05


def method_table(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method, over the classes scored at the comparison's main length: classes won on
    flip rate, mean flip rate, mean probability given to other classes, mean FID drift, and
    the classes whose nearest class's probability stayed within ``KEEP_TOLERANCE``."""
    rows = [r for r in record["rows"] if r["length"] == record["length"]]
    won = [w["method"] for w in winners(rows, record["length"])]
    table: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        flips = [r["flip"] for r in mine if r["flip"] is not None]
        table[method] = {
            "won": [
                w["class_index"] for w in winners(rows, record["length"]) if w["method"] == method
            ],  # fmt: skip
            "wins": won.count(method),
            "flip": sum(flips) / len(flips) if flips else float("nan"),
            "off_target": sum(r["off_target"] for r in mine) / len(mine),
            "fid_drift": sum(r["fid_drift"] for r in mine) / len(mine),
            "kept": sum(
                abs(r["keep_change"]) <= KEEP_TOLERANCE
                for r in mine
                if r["keep_change"] is not None
            ),  # fmt: skip
            "scored": len(mine),
        }
    return table


def methods_paragraph(record: dict[str, Any], lang: str, classes: Sequence[str]) -> str:
    """The comparison in words, every number read from ``record`` (``methods``)."""
    words, table = TEXT[lang], method_table(record)
    names = words["method_names"]
    sentences = []
    for method, entry in sorted(table.items(), key=lambda item: -item[1]["wins"]):
        if entry["wins"]:
            won = ", ".join(classes[c] for c in entry["won"])
            sentences.append(words["methods_wins"].format(
                method=names[method], k=entry["wins"], n=entry["scored"], classes=won))  # fmt: skip
    if "conditional" in table and "boundary" in table:
        entry = table["conditional"]
        sentences.append(words["methods_keep"].format(
            k=entry["kept"], n=entry["scored"], plain=table["boundary"]["kept"]))  # fmt: skip
    best = max(table, key=lambda m: table[m]["flip"])
    if "dims" in table and best != "dims":
        sentences.append(words["methods_dims"].format(
            dims=table["dims"]["flip"], best=table[best]["flip"], method=names[best]))  # fmt: skip
    sentences = [sentence[0].upper() + sentence[1:] for sentence in sentences]
    return " ".join(sentences) if lang == "en" else "".join(sentences)


def boundaries_markdown(entries: Sequence[dict[str, Any]], lang: str = "en") -> str:
    """The analysis's classifier boundaries (``boundaries.Boundary.record``), one table row
    each: what each was fitted on and how well it holds on held-out vectors."""
    words = TEXT[lang]
    lines = [
        f"# {words['boundaries_title']}",
        "",
        words["boundaries_columns"],
        "|---|---|---|---|---|",
    ]
    for b in entries:
        if b["normal"] is None:
            lines.append(f"| {b['class']} | {b['n_fit']} ({b['positives']}) | "
                         f"{words['boundaries_none']} | – | – |")  # fmt: skip
            continue
        numbers = [b[k] for k in ("held_out_accuracy", "held_out_balanced_accuracy", "stability")]
        cells = " | ".join("–" if v is None else f"{v:.3f}" for v in numbers)
        lines.append(f"| {b['class']} | {b['n_fit']} ({b['positives']}) | {cells} |")
    return "\n".join(lines) + "\n"
