"""Markdown for the site's own pages, as mkdocs (Python-Markdown with attr_list) reads it.

Code spans and durations come from `runbook.text`, like the reports'. What is here differs from the
reports' GFM cells on purpose: text keeps the code spans it already has (action summaries and click
help are written with them), and `{` is escaped because attr_list would read `{ ... }` as attributes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")


def md_text(text: str, *, table: bool = False) -> str:
    """Plain text made safe for markdown: `<`, `*`, `{` escaped outside code spans; `|` too in tables."""

    def escape(part: str) -> str:
        part = part.replace("\\", "\\\\").replace("<", "&lt;").replace("*", "\\*").replace("{", "\\{")
        return part.replace("|", "\\|") if table else part

    out = outside_code(text, escape)
    if table:
        out = out.replace("\n", " ")
    return out


def outside_code(text: str, change: Callable[[str], str]) -> str:
    """`text` with `change` applied to every piece outside its code spans (the spans stay as written)."""
    pieces: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(change(text[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(change(text[last:]))
    return "".join(pieces)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of cells that already are markdown (made with `md_text(..., table=True)` or `code`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines) + "\n"
