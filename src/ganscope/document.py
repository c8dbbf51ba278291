"""A document as typed blocks, rendered to HTML (one self-contained file) and to Markdown.

The report is built once as a list of blocks and rendered twice, so the two never disagree.
HTML embeds every figure (it opens from disk with no server or network); Markdown links its
figures from a folder beside it by relative paths, so the pair can be moved or shared.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import atomic

#: The folder beside ``report.md`` that holds its figures.
FIGURES_FOLDER = "report_files"
_MIME = {".png": "image/png", ".gif": "image/gif"}


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str
    #: Shown as a highlighted note (HTML) or a quote (Markdown).
    note: bool = False


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    id: str = ""


@dataclass(frozen=True)
class Figure:
    """An image's bytes, the file name it gets beside ``report.md``, and its caption."""

    name: str
    data: bytes
    caption: str


@dataclass(frozen=True)
class Figures:
    items: tuple[Figure, ...]


Block = Heading | Paragraph | Bullets | Code | Table | Figures

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f3f3f3}"
    "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}"
    "figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top}"
    "figcaption{font-size:13px;color:#555;max-width:560px}img{max-width:100%}"
    ".note{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px}"
)


def _data_uri(figure: Figure) -> str:
    kind = _MIME[Path(figure.name).suffix.lower()]
    return f"data:{kind};base64,{base64.b64encode(figure.data).decode()}"


def render_html(blocks: Sequence[Block], title: str) -> str:
    esc = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}"
        f"</title><style>{_STYLE}</style></head><body>"
    ]
    for block in blocks:
        match block:
            case Heading(level, text):
                parts.append(f"<h{level}>{esc(text)}</h{level}>")
            case Paragraph(text, note):
                parts.append(f"<p{' class=note' if note else ''}>{esc(text)}</p>")
            case Bullets(items):
                parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
            case Code(text):
                parts.append(f"<pre>{esc(text)}</pre>")
            case Table(headers, rows, table_id):
                head = "".join(f"<th>{esc(h)}</th>" for h in headers)
                body = "".join(
                    "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows
                )
                id_attr = f" id='{esc(table_id)}'" if table_id else ""
                parts.append(f"<table{id_attr}><tr>{head}</tr>{body}</table>")
            case Figures(items):
                parts += [
                    f"<figure><img src='{_data_uri(f)}' alt='{esc(f.caption)}'>"
                    f"<figcaption>{esc(f.caption)}</figcaption></figure>"
                    for f in items
                ]
            case _:
                raise TypeError(f"not a document block: {block!r}")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_markdown(blocks: Sequence[Block]) -> str:
    """Markdown whose figures are ``FIGURES_FOLDER/<name>``, relative to the file."""
    lines: list[str] = []
    for block in blocks:
        match block:
            case Heading(level, text):
                lines += ["#" * level + " " + text, ""]
            case Paragraph(text, note):
                lines += [("> " if note else "") + text, ""]
            case Bullets(items):
                lines += [f"- {item}" for item in items] + [""]
            case Code(text):
                lines += ["```", text, "```", ""]
            case Table(headers, rows, _):
                lines.append("| " + " | ".join(headers) + " |")
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(row) + " |" for row in rows]
                lines.append("")
            case Figures(items):
                lines += [f"![{f.caption}]({FIGURES_FOLDER}/{f.name})" for f in items] + [""]
            case _:
                raise TypeError(f"not a document block: {block!r}")
    return "\n".join(lines)


def write_document(blocks: Sequence[Block], title: str, out: Path) -> dict[str, Path]:
    """``out/report.html``, ``out/report.md`` and the Markdown's figures; nothing else."""
    for block in blocks:
        if isinstance(block, Figures):
            for figure in block.items:
                atomic.write_bytes(out / FIGURES_FOLDER / figure.name, figure.data)
    return {
        "html": atomic.write_bytes(out / "report.html", render_html(blocks, title).encode()),
        "md": atomic.write_bytes(out / "report.md", render_markdown(blocks).encode()),
    }
