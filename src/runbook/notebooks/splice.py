"""Rewriting one JSON source value at the smallest unit: only the string items whose text changed.

A cell source is a JSON string or a list of JSON strings ("items"), chunked however the tool that
wrote it chose: one item per line, one item holding everything, split mid-line, at a form feed.
`splice_source` compares the old text with the new one, finds the one changed region, and rewrites
only the items that overlap it. Inside a rewritten item the characters outside the changed region
keep their raw spelling (`\\/`, `\\u00E9`, an uppercase surrogate pair, `\\u2705` in a raw-UTF-8
file, a lone surrogate); only the new characters are encoded, in the file's style (ASCII escaping
or raw, the hex case the item already uses). Lists of one line per item stay that way (a changed
line count adds or removes items); any other chunking keeps its items and grows or shrinks the
item that holds the change. Everything outside the rewritten items stays byte for byte.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from .layout import Style, array_items, escape_surrogates, line_prefix, respell, scanstring, split_source

# One decoded character per escape (a surrogate pair is one character); runs of plain characters.
_UNITS = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\.|[^\\]+")
_HEX_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")
# What str.splitlines() breaks at ("\r\n" ends in "\n").
_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


@dataclass
class _RawString:
    """The raw content of one JSON string literal (without quotes), sliceable by decoded offsets."""

    raw: str
    starts: list[int]  # decoded offset where each unit starts
    raw_starts: list[int]  # raw offset where each unit starts
    plain: list[bool]  # whether the unit is plain characters (raw == decoded, one to one)
    length: int  # decoded length

    @classmethod
    def of(cls, raw: str) -> _RawString:
        starts, raw_starts, plain = [], [], []
        decoded = 0
        for match in _UNITS.finditer(raw):
            piece = match.group()
            starts.append(decoded)
            raw_starts.append(match.start())
            is_plain = piece[0] != "\\"
            plain.append(is_plain)
            decoded += len(piece) if is_plain else 1
        return cls(raw, starts, raw_starts, plain, decoded)

    def _raw_offset(self, at: int) -> int:
        if at >= self.length:
            return len(self.raw)
        unit = bisect.bisect_right(self.starts, at) - 1
        offset = self.raw_starts[unit]
        return offset + (at - self.starts[unit]) if self.plain[unit] else offset

    def slice(self, start: int, end: int) -> str:
        """The raw spelling of decoded characters [start, end)."""
        if start >= end:
            return ""
        return self.raw[self._raw_offset(start) : self._raw_offset(end)]

    def upper_hex(self) -> bool | None:
        """Whether this string's `\\uXXXX` escapes use uppercase hex (None: it has no hex letters)."""
        letters = "".join(m.group()[2:] for m in _HEX_ESCAPE.finditer(self.raw))
        if letters.upper() == letters.lower():
            return None
        return letters == letters.upper()


def encode(text: str, *, ensure_ascii: bool, upper_hex: bool = False, escape_slash: bool = False) -> str:
    """`text` as the content of a JSON string literal (no quotes); lone surrogates always escaped."""
    raw = json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]
    if not ensure_ascii:
        raw = escape_surrogates(raw)
    return respell(raw, upper_hex=upper_hex, escape_slash=escape_slash)


def _common_prefix(a: str, b: str) -> int:
    size = min(len(a), len(b))
    low, high = 0, size
    while low < high:  # binary search on slices: C-speed comparisons, O(log n) of them
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    low, high = 0, limit
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle - 1
    return low


def _ends_in_break(text: str, newline_only: bool) -> bool:
    return bool(text) and (text[-1] == "\n" if newline_only else text[-1] in _BREAKS)


def _split_newlines(text: str) -> list[str]:
    """Lines ending in "\\n" only (a form feed or "\\r" stays inside its line)."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _line_split(items: list[str], default_per_line: bool) -> Callable[[str], list[str]] | None:
    """How this list splits lines when it holds one line per item (None: it is chunked otherwise)."""
    if len(items) == 1 and not default_per_line:
        return None
    for newline_only, split in ((False, split_source), (True, _split_newlines)):
        last = len(items) - 1
        if all(
            len(split(item)) == 1 and (index == last or _ends_in_break(item, newline_only))
            for index, item in enumerate(items)
        ):
            return split
    return None


def splice_source(  # noqa: C901 - one byte-exact splice; each branch is a source layout it must preserve
    text: str, value_start: int, value_end: int, new: str, style: Style, key_start: int
) -> tuple[str, str | list[str]]:
    """The new raw JSON for the source value at text[value_start:value_end], and the value it holds.

    `key_start` (where the member's key starts) gives the indentation for a list rendered afresh.
    """
    is_list = text[value_start] == "["
    if is_list:
        open_at, spans, _ = array_items(text, value_start)
        if not spans:  # an empty list: nothing to keep
            value = split_source(new)
            rendered = style.render(value, line_prefix(text, key_start)) if value else "[]"
            return rendered, value
    else:
        open_at, spans = -1, [(value_start, value_end)]
    raws = [_RawString.of(text[s + 1 : e - 1]) for s, e in spans]
    items = [scanstring(text, s + 1)[0] for s, _ in spans]
    old = "".join(items)
    if old == new:
        return text[value_start:value_end], items if is_list else old

    # The changed region: old[p:q] became new[p:len(new) - s].
    p = _common_prefix(old, new)
    suffix = _common_suffix(old, new, min(len(old), len(new)) - p)
    q = len(old) - suffix
    middle = new[p : len(new) - suffix]
    count = len(items)
    starts = [0]
    for item in items:
        starts.append(starts[-1] + len(item))
    # The items the region overlaps: [i, j).
    i = bisect.bisect_right(starts, p) - 1 if p < len(old) else count
    j = bisect.bisect_left(starts, q) if q > p else i + 1 if i < count and starts[i] < p else i
    split = _line_split(items, style.lines_per_item) if is_list else None
    if split is None and j == i:  # an insertion between two items: it joins a neighbour
        if i > 0:
            i -= 1
        else:
            j = i + 1
    newline_only = split is _split_newlines
    if split is not None:
        while i > 0 and not _ends_in_break(items[i - 1], newline_only):  # only after an unended last line
            i -= 1
    lo = starts[i] if j > i else p
    hi = starts[j] if j > i else p
    head, tail = old[lo:p], old[q:hi]
    affected = head + middle + tail
    if split is not None:
        while affected and not _ends_in_break(affected, newline_only) and j < count:
            tail += items[j]
            hi = starts[j + 1]
            affected += items[j]
            j += 1
    chunks = split(affected) if split is not None else ([affected] if affected or not is_list else [])

    # Raw spelling of the affected text: old spelling for head and tail, fresh for the middle.
    hints = [raws[k].upper_hex() for k in range(i, j)] or [r.upper_hex() for r in raws]
    upper = next((h for h in hints if h is not None), style.upper_hex)
    slash = style.escape_slash

    def encoded(part: str) -> str:
        return encode(part, ensure_ascii=style.ensure_ascii, upper_hex=upper, escape_slash=slash)

    fresh = encoded(middle)

    def old_raw(a: int, b: int) -> str:
        pieces = []
        for k in range(max(i, bisect.bisect_right(starts, a) - 1), j):
            if starts[k] >= b:
                break
            pieces.append(raws[k].slice(max(a, starts[k]) - starts[k], min(b, starts[k + 1]) - starts[k]))
        return "".join(pieces)

    def raw_of(a: int, b: int) -> str:
        """Raw spelling of affected[a:b]."""
        h, m = len(head), len(head) + len(middle)
        out = []
        if a < h:
            out.append(old_raw(lo + a, lo + min(b, h)))
        if b > h and a < m:
            if a <= h and b >= m:
                out.append(fresh)
            else:
                out.append(encoded(middle[max(a, h) - h : min(b, m) - h]))
        if b > m:
            out.append(old_raw(q + max(a, m) - m, q + b - m))
        return "".join(out)

    rendered_items = []
    at = 0
    for chunk in chunks:
        rendered_items.append('"' + raw_of(at, at + len(chunk)) + '"')
        at += len(chunk)

    if not is_list:
        rendered = rendered_items[0] if rendered_items else '""'
        return rendered, new
    value = items[:i] + chunks + items[j:]
    if not value:
        return "[]", value
    separator = text[spans[0][1] : spans[1][0]] if count > 1 else "," + text[open_at + 1 : spans[0][0]]
    if rendered_items and j > i:  # replace items i..j-1
        start, end = spans[i][0], spans[j - 1][1]
        piece = separator.join(rendered_items)
    elif rendered_items:  # insert before item i, or after the last one
        if i < count:
            start = end = spans[i][0]
            piece = separator.join(rendered_items) + separator
        else:
            start = end = spans[-1][1]
            piece = separator + separator.join(rendered_items)
    elif j < count:
        start, end, piece = spans[i][0], spans[j][0], ""
    else:
        start, end, piece = spans[i - 1][1], spans[j - 1][1], ""
    rendered = text[value_start:start] + piece + text[end:value_end]
    return rendered, value
