"""Where each value sits in a notebook's text, and how the file writes JSON.

`scan_document` walks the text once: it decodes every top-level value and every member of every
cell exactly once, keeping the character span of each (the `Layout`), so the parsed document and
the positions come from one pass. `detect_style` learns the file's indent, separators, escaping
and line endings from its own text, for new text to look like the old.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

WHITESPACE = re.compile(r"[ \t\n\r]*")
_NON_ASCII_ESCAPE = re.compile(r"\\u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F]|[1-9a-fA-F])")
DECODER = json.JSONDecoder()
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


@dataclass
class Member:
    """Where one `"key": value` member sits: the key's opening quote, the value's first and end offsets."""

    key_start: int
    value_start: int
    value_end: int


@dataclass
class CellLayout:
    start: int
    end: int
    members: dict[str, Member]


@dataclass
class Layout:
    top: dict[str, Member]
    cells: list[CellLayout]
    cells_open: int  # index of "[" of the cells array
    cells_close: int  # index of "]"

    def shift(self, old_end: int, delta: int) -> None:
        """Move every offset at or after `old_end` by `delta`, after the text up to it was spliced."""

        def moved(offset: int) -> int:
            return offset + delta if offset >= old_end else offset

        def shift_members(members: dict[str, Member]) -> None:
            for m in members.values():
                m.key_start, m.value_start, m.value_end = (
                    moved(m.key_start),
                    moved(m.value_start),
                    moved(m.value_end),
                )

        shift_members(self.top)
        for cell in self.cells:
            if cell.end >= old_end:
                cell.start, cell.end = moved(cell.start), moved(cell.end)
                shift_members(cell.members)
        self.cells_open, self.cells_close = moved(self.cells_open), moved(self.cells_close)


class _Malformed(ValueError):
    """The scanner met something that is not the JSON it expects (json.loads then says what)."""


def skip(text: str, pos: int) -> int:
    """The offset of the first non-whitespace character at or after `pos`."""
    match = WHITESPACE.match(text, pos)
    assert match is not None
    return match.end()


def _expect(text: str, pos: int, char: str) -> int:
    if text[pos : pos + 1] != char:
        raise _Malformed(pos)
    return skip(text, pos + 1)


_ws = WHITESPACE.match
_scan_once = DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner behind raw_decode, without its per-call wrapper


def _value(text: str, pos: int) -> tuple[Any, int]:
    try:
        value, end = _scan_once(text, pos)
    except StopIteration as exc:
        raise _Malformed(exc.value) from None
    return value, end


def _scan_object(
    text: str, pos: int, descend: str | None = None
) -> tuple[dict[str, Any], dict[str, Member], int, list[Any]]:
    """The decoded members of the JSON object at `pos` (a "{"), their spans, and the offset after "}".

    Each value is decoded exactly once. With `descend`, that member's array is walked item by item
    (objects among its items are scanned the same way); the fourth value is then
    `[open, (item start, item end, item members or None), ..., close]`.
    """
    values: dict[str, Any] = {}
    members: dict[str, Member] = {}
    items: list[Any] = []
    pos = _ws(text, pos + 1).end()  # type: ignore[union-attr]
    if text[pos : pos + 1] == "}":
        return values, members, pos + 1, items
    while True:
        key_start = pos
        if text[pos : pos + 1] != '"':
            raise _Malformed(pos)
        key, pos = scanstring(text, pos + 1)
        pos = _ws(text, pos).end()  # type: ignore[union-attr]
        if text[pos : pos + 1] != ":":
            raise _Malformed(pos)
        pos = _ws(text, pos + 1).end()  # type: ignore[union-attr]
        value_start = pos
        if key == descend and text[pos : pos + 1] == "[":
            value, items, pos = _scan_cells(text, pos)
        else:
            value, pos = _value(text, pos)
        values[key] = value
        members[key] = Member(key_start, value_start, pos)
        pos = _ws(text, pos).end()  # type: ignore[union-attr]
        char = text[pos : pos + 1]
        if char == "}":
            return values, members, pos + 1, items
        if char != ",":
            raise _Malformed(pos)
        pos = _ws(text, pos + 1).end()  # type: ignore[union-attr]


def _scan_cells(text: str, pos: int) -> tuple[list[Any], list[Any], int]:
    """The cells array at `pos`: decoded cells, `[open, (start, end, members | None)..., close]`, end."""
    open_at = pos
    cells: list[Any] = []
    spans: list[Any] = [open_at]
    pos = skip(text, pos + 1)
    if text[pos : pos + 1] != "]":
        while True:
            start = pos
            if text[pos : pos + 1] == "{":
                value, members, pos, _ = _scan_object(text, pos)
            else:
                (value, pos), members = _value(text, pos), None
            cells.append(value)
            spans.append((start, pos, members))
            pos = skip(text, pos)
            if text[pos : pos + 1] == "]":
                break
            pos = _expect(text, pos, ",")
    spans.append(pos)
    return cells, spans, pos + 1


def scan_document(text: str, start: int) -> tuple[Any, Layout | None]:
    """The parsed document and its layout, from one pass over `text` (`start`: its first character).

    Anything the scanner does not expect (not an object, bad JSON) is parsed by `json.loads`
    instead, which raises the precise `JSONDecodeError`; the layout is then None.
    """
    if text[start : start + 1] == "{":
        try:
            doc, top, end, bounds = _scan_object(text, start, descend="cells")
            if skip(text, end) == len(text):
                return doc, _layout_from(top, bounds)
        except (ValueError, IndexError):
            pass
    return json.loads(text), None


def _layout_from(top: dict[str, Member], bounds: list[Any]) -> Layout:
    if not bounds:  # no cells array
        return Layout(top, [], -1, -1)
    cells_open, *items, cells_close = bounds
    cells = [CellLayout(start, end, members or {}) for start, end, members in items]
    return Layout(top, cells, cells_open, cells_close)


def scan_layout(text: str, start: int) -> Layout:
    """The layout of a text known to be valid JSON (after an edit)."""
    _, top, _, bounds = _scan_object(text, start, descend="cells")
    return _layout_from(top, bounds)


def array_items(text: str, start: int) -> tuple[int, list[tuple[int, int]], int]:
    """The "[" offset, (start, end) of every item, and the "]" offset of the array at `start`."""
    spans: list[tuple[int, int]] = []
    pos = skip(text, start + 1)
    if text[pos] != "]":
        while True:
            _, end = DECODER.raw_decode(text, pos)
            spans.append((pos, end))
            pos = skip(text, end)
            if text[pos] == "]":
                break
            pos = skip(text, pos + 1)
    return start, spans, pos


def line_prefix(text: str, pos: int) -> str:
    """The whitespace before `pos` on its line ("" when something else precedes it)."""
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = text[line_start:pos]
    return prefix if prefix.strip(" \t\r") == "" else ""


def line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


@dataclass(frozen=True)
class Style:
    """How this file writes JSON, learnt from its own text."""

    indent: str | None  # one level of indentation; None for a one-line file
    item_separator: str
    key_separator: str
    ensure_ascii: bool
    newline: str
    source_as_lines: bool  # new cells get a list of lines (else one string)
    lines_per_item: bool  # a multi-line source list holds one line per item (else all in one item)
    upper_hex: bool = False  # escapes are written like \u00E9 (the file's first one with a letter says)
    escape_slash: bool = False  # "/" is written as an escape

    def render(self, value: Any, prefix: str) -> str:
        """`value` as this file writes it, for a spot whose line starts with `prefix`."""
        text = json.dumps(
            value,
            indent=self.indent,
            ensure_ascii=self.ensure_ascii,
            separators=(self.item_separator, self.key_separator),
        )
        if not self.ensure_ascii:  # lone surrogates stay escapes (raw they are not UTF-8)
            text = escape_surrogates(text)
        text = respell(text, upper_hex=self.upper_hex, escape_slash=self.escape_slash)
        if self.indent is None:
            return text
        return text.replace("\n", self.newline + prefix)


_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """`text` with every lone surrogate written as a `\\uXXXX` escape."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_LOWER_ESCAPE_OR_PAIR = re.compile(r"(\\\\)|\\u([0-9a-f]{4})")


def respell(raw: str, *, upper_hex: bool, escape_slash: bool) -> str:
    """JSON text as json.dumps wrote it, respelt: uppercase hex escapes, and/or "/" escaped."""
    if escape_slash:  # in notebook JSON a "/" can only be inside a string
        raw = raw.replace("/", "\\/")
    if upper_hex:
        raw = _LOWER_ESCAPE_OR_PAIR.sub(lambda m: m.group(1) or "\\u" + m.group(2).upper(), raw)
    return raw


def _find_escape(text: str, needle: str, start: int = 0) -> int:
    """Offset of the first `needle` (starting with a backslash) that is an escape, not the tail of
    an escaped backslash; -1 if none. (str.find, not a regex: a regex with a look-behind tries every
    position of a 20 MB text.)"""
    pos = text.find(needle, start)
    while pos >= 0:
        before = pos - 1
        while before >= 0 and text[before] == "\\":
            before -= 1
        if (pos - 1 - before) % 2 == 0:
            return pos
        pos = text.find(needle, pos + 1)
    return -1


def _escapes_non_ascii(text: str) -> bool:
    """Whether the text holds an escape of a character above U+007F (a real one, see _find_escape)."""
    return any(_find_escape(text, "\\u", match.start()) == match.start() for match in _NON_ASCII_ESCAPE.finditer(text))


def _hex_letter(text: str, tries: int = 1000) -> str:
    """The first hex letter of the file's first few `\\uXXXX` escapes ("" if none has one)."""
    pos = _find_escape(text, "\\u")
    while pos >= 0 and tries:
        letters = [c for c in text[pos + 2 : pos + 6] if c in "abcdefABCDEF"]
        if letters:
            return letters[0]
        tries -= 1
        pos = _find_escape(text, "\\u", pos + 2)
    return ""


def detect_style(text: str, start: int, layout: Layout, doc: Mapping[str, Any]) -> Style:
    newline = "\r\n" if "\r\n" in text else "\n"
    members = sorted(layout.top.values(), key=lambda m: m.key_start)
    first = members[0]
    head = text[start + 1 : first.key_start]
    indent: str | None = head[head.rfind("\n") + 1 :] if "\n" in head else None
    key_end = scanstring(text, first.key_start + 1)[1]
    key_separator = text[key_end : first.value_start] or ":"
    if len(members) > 1:
        between = text[first.value_end : members[1].key_start]
        item_separator = between.split("\n")[0].rstrip("\r") if indent is not None else between
    else:
        item_separator = ","
    # Raw non-ASCII text means no escaping; an all-ASCII file escapes if it holds any \u0080+.
    ensure_ascii = text.isascii() and _escapes_non_ascii(text)
    as_lines = as_string = per_line = one_item = 0
    for cell in doc.get("cells", []):
        source = cell.get("source") if isinstance(cell, dict) else None
        if isinstance(source, list):
            as_lines += 1
            if len(source) > 1:
                per_line += 1
            elif source and "\n" in source[0].rstrip("\n"):
                one_item += 1
        elif isinstance(source, str) and source:
            as_string += 1
    hex_letter = _hex_letter(text)
    return Style(
        indent,
        item_separator,
        key_separator,
        ensure_ascii,
        newline,
        as_lines >= as_string,
        per_line >= one_item,
        upper_hex=hex_letter.isupper(),
        escape_slash=_find_escape(text, "\\/") >= 0,
    )


def split_source(text: str) -> list[str]:
    """Lines with their line breaks kept, as nbformat stores a source list (no empty last item)."""
    return text.splitlines(keepends=True)


def joined(value: Any) -> str:
    if isinstance(value, list):
        return "".join(value)
    return value if isinstance(value, str) else ""
