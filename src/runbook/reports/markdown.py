"""Report prose: excerpts of long values, first lines, word lists, plurals and cell wording.

The markdown primitives (code spans, table cells and tables, fences, durations, UTC times) live in
`runbook.text`, shared with the status screen and the site; this module adds only what the reports
say in their own words ("Cells 109, 130", "3 deployments", "a, b and c").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..text import Markdown, clean_text

__all__ = [
    "EXCERPT_LINES",
    "cell_title",
    "cells_text",
    "escape_html",
    "excerpt",
    "first_line",
    "join_words",
    "plain_text",
    "plural",
]

EXCERPT_LINES = 20
EXCERPT_LINE_CHARS = 200


def excerpt(value: Any, *, lines: int = EXCERPT_LINES, tail: bool = False) -> str:
    """At most `lines` lines of a value (JSON for structures), long lines cut; says what was left out."""
    if value is None:
        return ""
    text = clean_text(value) if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    all_lines = text.rstrip("\n").split("\n")
    chosen = all_lines[-lines:] if tail else all_lines[:lines]
    out = [line if len(line) <= EXCERPT_LINE_CHARS else line[: EXCERPT_LINE_CHARS - 1] + "…" for line in chosen]
    left = len(all_lines) - len(chosen)
    if left > 0:
        note = f"… ({left} more line{'s' if left != 1 else ''})"
        out = [note, *out] if tail else [*out, note]
    return "\n".join(out)


def first_line(text: Any, limit: int = 160) -> str:
    """The first non-blank line of `text`, cut to `limit` characters."""
    line = next((part.strip() for part in clean_text(text).split("\n") if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def join_words(items: Sequence[str], word: str = "and") -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 deployment`, `3 deployments`."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def cell_title(ref: Mapping[str, Any]) -> str:
    """`Cell 109` (or `Cell cell_108_e274080d` when only the id is known), as a heading says it."""
    if ref.get("number") is not None:
        return f"Cell {ref['number']}"
    return f"Cell {ref.get('id')}"


def cells_text(numbers: Sequence[Any]) -> str:
    """`Cell 15`, `Cells 47, 154, 156`; nothing for no cells."""
    shown = [str(n) for n in numbers]
    return f"Cell{'s' if len(shown) != 1 else ''} {', '.join(shown)}" if shown else ""


_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)")


def escape_html(text: str) -> str:
    """`text` with every `<` outside code spans and fences written `&lt;`: no HTML tag survives.

    Error messages, HTTP bodies and cell outputs end up in report prose; on the site (Python-Markdown
    passes raw HTML through) a `<img onerror=…>` in a notebook's error would run. Code keeps its `<`.
    """
    if "<" not in text:
        return text
    out: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) and not line.strip()[len(opened.group(1)) :].strip():
                fence = None
            out.append(line)
        elif opened:
            fence = opened.group(1)
            out.append(line)
        else:
            pieces, last = [], 0
            for match in _SPAN.finditer(line):
                pieces.append(line[last : match.start()].replace("<", "&lt;"))
                pieces.append(match.group(0))
                last = match.end()
            pieces.append(line[last:].replace("<", "&lt;"))
            out.append("".join(pieces))
    return "\n".join(out)


def plain_text(value: Any) -> Any:
    """The report templates' `finalize`: plain strings are HTML-escaped (`escape_html`); `Markdown`
    (code spans, fences, tables the filters built) and non-strings are printed as they are."""
    if isinstance(value, str) and not isinstance(value, Markdown):
        return escape_html(value)
    return value
