"""Notebook files: faithful read/edit/write, cell addressing and cell-source edits with diffs.

A notebook is kept as its original text plus the parsed document. Edits never re-serialise the
whole file: the exact character span of the changed value (one cell's `source`, or the place a new
cell goes) is replaced with text rendered in the file's own style (indent, separators, `\\uXXXX`
escaping, line endings, list-of-lines or single-string sources). Everything else - other cells,
outputs, metadata, `nbformat_minor`, key order, the final newline - stays byte-for-byte as it was,
so `git diff` shows only the lines that were meant to change. Writes are atomic.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runbook.atomic import atomic_write_bytes
from runbook.errors import Location, NotebookError, relative_display

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "Cell",
    "CellAddress",
    "EditOutcome",
    "Notebook",
    "Replacement",
    "ReplacementResult",
    "cell_diff",
    "replace_in_cell",
]

CellType = Literal["code", "markdown", "raw"]
CELL_TYPES: tuple[str, ...] = ("code", "markdown", "raw")
CELL_ID_PATTERN = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_ESCAPED_NON_ASCII = re.compile(r"(?<!\\)(?:\\\\)*\\u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F]|[1-9a-fA-F])")
_DECODER = json.JSONDecoder()
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# cells and addresses


@dataclass(frozen=True)
class Cell:
    """A read-only view of one cell. `number` is 1-based (as people say "cell 109"), `index` 0-based.

    `metadata` and `outputs` are the notebook's own objects: read them, change cells only through
    `Notebook` methods.
    """

    index: int
    id: str | None
    cell_type: str
    source: str
    tags: list[str]
    metadata: Mapping[str, Any]
    outputs: Sequence[Mapping[str, Any]]

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def label(self) -> str:
        """`cell 109 (cell_108_e274080d)`, or `cell 109` for a cell without an id."""
        return f"cell {self.number} ({self.id})" if self.id else f"cell {self.number}"

    def summary(self) -> dict[str, Any]:
        """What a run record needs to say which cell was meant (number and id, to spot drift)."""
        return {
            "index": self.index,
            "number": self.number,
            "id": self.id,
            "cell_type": self.cell_type,
            "tags": list(self.tags),
        }


class CellAddress(BaseModel):
    """How a step names cells: exactly one of `id`, `number` (1-based), `tag` or `pattern`.

    `pattern` is a regular expression searched in each cell's source (multiline mode). An address
    must resolve to exactly one cell unless `all` is true (only meaningful with `tag`/`pattern`).
    `cell_type` narrows `tag`/`pattern` matches (e.g. skip markdown that mentions the same text).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, description="the cell's notebook id")
    number: int | None = Field(default=None, ge=1, description="the cell's number, from 1 ('Cell 15')")
    tag: str | None = Field(default=None, description="cells with this tag")
    pattern: str | None = Field(default=None, description="cells whose source this regex finds (multiline)")
    all: bool = Field(default=False, description="allow several cells (with tag or pattern)")
    cell_type: CellType | None = Field(default=None, description="only cells of this type (with tag or pattern)")

    @model_validator(mode="after")
    def _exactly_one(self) -> CellAddress:
        given = [name for name in ("id", "number", "tag", "pattern") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a cell address needs exactly one of id, number, tag, pattern"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.all and given[0] in ("id", "number"):
            raise ValueError("`all` goes with tag or pattern; an id or number names one cell")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regular expression: {exc}") from exc
        return self

    def describe(self) -> str:
        if self.id is not None:
            return f"id {self.id!r}"
        if self.number is not None:
            return f"cell number {self.number}"
        if self.tag is not None:
            return f"tag {self.tag!r}"
        return f"pattern {self.pattern!r}"


# ---------------------------------------------------------------------------------------------
# replacements in a cell source


class Replacement(BaseModel):
    """One idempotent find/replace in a cell source.

    `find` present: it is replaced (every occurrence, which must number `count` when given).
    `find` absent but `replace` present: the fix is already applied. Neither: the edit fails.
    With `regex`, `find` is a pattern and `replace` a `re.sub` template.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    find: str = Field(min_length=1)
    replace: str
    regex: bool = False
    count: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _valid_pattern(self) -> Replacement:
        if self.regex:
            try:
                re.compile(self.find, re.MULTILINE)
            except re.error as exc:
                raise ValueError(f"find {self.find!r} is not a valid regular expression: {exc}") from exc
        return self


EditStatus = Literal["changed", "already", "failed"]


@dataclass(frozen=True)
class ReplacementResult:
    """What one replacement found: how many occurrences, and its status with a message."""

    find: str
    status: EditStatus
    occurrences: int
    message: str


@dataclass(frozen=True)
class EditOutcome:
    """The result of applying replacements to one cell source.

    `status` is "failed" if any replacement failed (then `after == before`: nothing is applied),
    "changed" if at least one replaced text, else "already".
    """

    before: str
    after: str
    status: EditStatus
    diff: str
    results: list[ReplacementResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.status == "changed"

    @property
    def message(self) -> str:
        return "; ".join(r.message for r in self.results if r.status == self.status) or self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "diff": self.diff,
            "results": [
                {"find": r.find, "status": r.status, "occurrences": r.occurrences, "message": r.message}
                for r in self.results
            ],
        }


def _shorten(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _apply_literal(text: str, rep: Replacement) -> tuple[str, ReplacementResult]:
    # When the replacement contains the searched text (find "f(" -> "f(model, "), occurrences
    # inside already-replaced text must not count, or a second run would replace them again.
    if rep.replace and rep.find in rep.replace:
        pieces = text.split(rep.replace)
        already = len(pieces) - 1
    else:
        pieces = [text]
        already = text.count(rep.replace) if rep.replace else 0
    found = sum(piece.count(rep.find) for piece in pieces)
    if found:
        if rep.count is not None and found != rep.count:
            return text, ReplacementResult(
                rep.find,
                "failed",
                found,
                f"expected {rep.count} occurrence{'s' if rep.count != 1 else ''} of "
                f"{_shorten(rep.find)}, found {found}",
            )
        after = rep.replace.join(piece.replace(rep.find, rep.replace) for piece in pieces)
        return after, ReplacementResult(
            rep.find,
            "changed",
            found,
            f"replaced {found} occurrence{'s' if found != 1 else ''} of {_shorten(rep.find)}",
        )
    if already:
        return text, ReplacementResult(rep.find, "already", 0, f"already applied: {_shorten(rep.replace)} present")
    return text, ReplacementResult(
        rep.find,
        "failed",
        0,
        f"text not found: {_shorten(rep.find)} (and the replacement is not there either)",
    )


_GROUP_REFERENCE = re.compile(r"\\(?:\d|g<)")


def _apply_regex(text: str, rep: Replacement) -> tuple[str, ReplacementResult]:
    pattern = re.compile(rep.find, re.MULTILINE)
    found = len(pattern.findall(text))
    if found:
        if rep.count is not None and found != rep.count:
            return text, ReplacementResult(
                rep.find, "failed", found, f"expected {rep.count} matches of /{rep.find}/, found {found}"
            )
        after = pattern.sub(rep.replace, text)
        if after == text:
            return text, ReplacementResult(rep.find, "already", found, f"/{rep.find}/ matches but changes nothing")
        return after, ReplacementResult(
            rep.find, "changed", found, f"replaced {found} match{'es' if found != 1 else ''} of /{rep.find}/"
        )
    if not _GROUP_REFERENCE.search(rep.replace):
        literal = re.sub(r"\A", rep.replace, "")  # the template's text, escapes resolved
        if literal and literal in text:
            return text, ReplacementResult(rep.find, "already", 0, f"already applied: {_shorten(literal)} present")
        return text, ReplacementResult(
            rep.find, "failed", 0, f"/{rep.find}/ matches nothing (and the replacement is not there either)"
        )
    return text, ReplacementResult(
        rep.find,
        "failed",
        0,
        f"/{rep.find}/ matches nothing; the replacement uses group references, so whether it was "
        "already applied cannot be told",
    )


def replace_in_cell(source: str, replacements: Sequence[Replacement], *, label: str = "cell") -> EditOutcome:
    """Apply `replacements` in order to `source`; all or nothing (see `Replacement` for the rules)."""
    text = source
    results: list[ReplacementResult] = []
    for rep in replacements:
        text, result = (_apply_regex if rep.regex else _apply_literal)(text, rep)
        results.append(result)
    statuses = {r.status for r in results}
    if "failed" in statuses:
        return EditOutcome(source, source, "failed", "", results)
    if text == source:
        return EditOutcome(source, source, "already", "", results)
    return EditOutcome(source, text, "changed", cell_diff(source, text, label), results)


def cell_diff(before: str, after: str, label: str) -> str:
    """A unified diff of one cell's source, labelled like `a/cell 109 (cell_108_e274080d)`."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=f"a/{label}", tofile=f"b/{label}", lineterm=""
    )
    return "\n".join(lines) + "\n" if before != after else ""


# ---------------------------------------------------------------------------------------------
# the file's layout: where each value sits in the text


@dataclass
class _Member:
    key_start: int
    value_start: int
    value_end: int


@dataclass
class _CellLayout:
    start: int
    end: int
    members: dict[str, _Member]


@dataclass
class _Layout:
    top: dict[str, _Member]
    cells: list[_CellLayout]
    cells_open: int  # index of "[" of the cells array
    cells_close: int  # index of "]"

    def shift(self, old_end: int, delta: int) -> None:
        """Move every offset at or after `old_end` by `delta`, after the text up to it was spliced."""

        def moved(offset: int) -> int:
            return offset + delta if offset >= old_end else offset

        def shift_members(members: dict[str, _Member]) -> None:
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


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    assert match is not None
    return match.end()


def _scan_object(text: str, pos: int, descend: str | None = None) -> tuple[dict[str, _Member], int, list[int]]:
    """Members of the JSON object starting at `pos` (a "{"), and the index after its "}".

    With `descend`, that member's array value is walked item by item instead of decoded in one go;
    the item start offsets come back as the third value (with the array's "[" and "]" positions).
    """
    assert text[pos] == "{"
    members: dict[str, _Member] = {}
    items: list[int] = []
    pos = _skip(text, pos + 1)
    if text[pos] == "}":
        return members, pos + 1, items
    while True:
        key_start = pos
        key, pos = _scanstring(text, pos + 1)
        pos = _skip(text, pos)
        pos = _skip(text, pos + 1)  # the ":"
        value_start = pos
        if key == descend and text[pos] == "[":
            items, pos = _scan_array(text, pos)
        else:
            _, pos = _DECODER.raw_decode(text, pos)
        members[key] = _Member(key_start, value_start, pos)
        pos = _skip(text, pos)
        if text[pos] == "}":
            return members, pos + 1, items
        pos = _skip(text, pos + 1)  # the ","


def _scan_array(text: str, pos: int) -> tuple[list[int], int]:
    """Item start offsets of the array at `pos`, then its "[" and "]" offsets, and the end."""
    assert text[pos] == "["
    open_at = pos
    starts: list[int] = []
    pos = _skip(text, pos + 1)
    if text[pos] != "]":
        while True:
            starts.append(pos)
            _, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos] == "]":
                break
            pos = _skip(text, pos + 1)
    return [open_at, *starts, pos], pos + 1


def _scan_layout(text: str, start: int) -> _Layout:
    top, _, bounds = _scan_object(text, start, descend="cells")
    if not bounds:  # no cells array: only error reporting scans such a file
        return _Layout(top, [], -1, -1)
    cells_open, *item_starts, cells_close = bounds
    cells = []
    for item_start in item_starts:
        if text[item_start] == "{":
            members, end, _ = _scan_object(text, item_start)
        else:
            members, end = {}, _DECODER.raw_decode(text, item_start)[1]
        cells.append(_CellLayout(item_start, end, members))
    return _Layout(top, cells, cells_open, cells_close)


def _array_items(text: str, start: int) -> tuple[int, list[tuple[int, int]], int]:
    """The "[" offset, (start, end) of every item, and the "]" offset of the array at `start`."""
    bounds, _ = _scan_array(text, start)
    open_at, *starts, close_at = bounds
    spans = [(s, _DECODER.raw_decode(text, s)[1]) for s in starts]
    return open_at, spans, close_at


def _line_prefix(text: str, pos: int) -> str:
    """The whitespace before `pos` on its line ("" when something else precedes it)."""
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = text[line_start:pos]
    return prefix if prefix.strip(" \t\r") == "" else ""


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


@dataclass(frozen=True)
class _Style:
    """How this file writes JSON, learnt from its own text."""

    indent: str | None  # one level of indentation; None for a one-line file
    item_separator: str
    key_separator: str
    ensure_ascii: bool
    newline: str
    source_as_lines: bool

    def render(self, value: Any, prefix: str) -> str:
        """`value` as this file writes it, for a spot whose line starts with `prefix`."""
        text = json.dumps(
            value,
            indent=self.indent,
            ensure_ascii=self.ensure_ascii,
            separators=(self.item_separator, self.key_separator),
        )
        if self.indent is None:
            return text
        return text.replace("\n", self.newline + prefix)


def _detect_style(text: str, start: int, layout: _Layout, doc: Mapping[str, Any]) -> _Style:
    newline = "\r\n" if "\r\n" in text else "\n"
    members = sorted(layout.top.values(), key=lambda m: m.key_start)
    first = members[0]
    head = text[start + 1 : first.key_start]
    indent: str | None = head[head.rfind("\n") + 1 :] if "\n" in head else None
    key_end = _scanstring(text, first.key_start + 1)[1]
    key_separator = text[key_end : first.value_start] or ":"
    if len(members) > 1:
        between = text[first.value_end : members[1].key_start]
        item_separator = between.split("\n")[0].rstrip("\r") if indent is not None else between
    else:
        item_separator = ","
    # Raw non-ASCII text means no escaping; an all-ASCII file escapes if it holds any \u0080+.
    ensure_ascii = text.isascii() and _ESCAPED_NON_ASCII.search(text) is not None
    as_lines = as_string = 0
    for cell in doc.get("cells", []):
        source = cell.get("source") if isinstance(cell, dict) else None
        if isinstance(source, list):
            as_lines += 1
        elif isinstance(source, str) and source:
            as_string += 1
    return _Style(indent, item_separator, key_separator, ensure_ascii, newline, as_lines >= as_string)


def _split_source(text: str) -> list[str]:
    """Lines with their "\\n" kept, as Jupyter stores a source list (no empty last item)."""
    lines = text.split("\n")
    result = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return "".join(value)
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------
# the notebook


class Notebook:
    """One notebook file, read faithfully; edits splice the text, `write()` saves atomically."""

    def __init__(self, path: Path, text: str, doc: dict[str, Any], *, bom: bool, disk: os.stat_result | None) -> None:
        self.path = path
        self._text = text  # the text with every structural edit applied
        self._pending: dict[int, tuple[int, int, str]] = {}  # value start -> (start, end, new text)
        self._saved_text = text
        self._doc = doc
        self._bom = bom
        self._disk = disk
        self._start = _skip(text, 0)
        self._layout_cache: _Layout | None = None
        self._style_cache: _Style | None = None
        self._cells_cache: list[Cell] | None = None

    # -- reading

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Notebook:
        """Read and check a notebook file; every problem is a `NotebookError` with file:line:col."""
        path = Path(path)
        where = Location(relative_display(path))
        try:
            raw = path.read_bytes()
            disk = path.stat()
        except FileNotFoundError:
            raise NotebookError(
                "notebook not found",
                location=where,
                hint="check the notebook path in the workspace config or step",
            ) from None
        except OSError as exc:
            raise NotebookError(f"cannot read the notebook: {exc.strerror or exc}", location=where) from exc
        return cls._parse(path, raw, disk)

    @classmethod
    def parse(cls, data: str | bytes, path: str | os.PathLike[str] = "<notebook>") -> Notebook:
        """A notebook from text in memory (`write()` then writes to `path`)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return cls._parse(Path(path), raw, None)

    @classmethod
    def _parse(cls, path: Path, raw: bytes, disk: os.stat_result | None) -> Notebook:
        shown = relative_display(path)
        bom = raw.startswith(b"\xef\xbb\xbf")
        try:
            text = raw[3:].decode("utf-8") if bom else raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw[: exc.start].decode("utf-8", errors="replace")
            line, col = _line_col(before, len(before))
            raise NotebookError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                location=Location(shown, line, col),
                hint="notebooks are UTF-8 JSON; re-save the file from Jupyter",
            ) from None
        if not text.strip():
            raise NotebookError(
                "the notebook file is empty",
                location=Location(shown, 1, 1),
                hint="restore it from git (`git checkout -- <file>`) or re-save it from Jupyter",
            )
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            hint = "the file may be truncated or hand-edited; restore it from git or re-save it from Jupyter"
            if re.search(r"^(<<<<<<<|>>>>>>>) ", text, re.MULTILINE):
                hint = "the notebook has git merge-conflict markers; resolve them (nbdime's `nbmerge` helps)"
            raise NotebookError(
                f"not valid JSON: {exc.msg}", location=Location(shown, exc.lineno, exc.colno), hint=hint
            ) from None
        notebook = cls(path, text, doc if isinstance(doc, dict) else {}, bom=bom, disk=disk)
        notebook._check(doc)
        return notebook

    def _error_at(self, pos: int | None, message: str, hint: str | None = None) -> NotebookError:
        shown = relative_display(self.path)
        if pos is None:
            return NotebookError(message, location=Location(shown), hint=hint)
        line, col = _line_col(self._text, pos)
        return NotebookError(message, location=Location(shown, line, col), hint=hint)

    def _top_position(self, key: str) -> int:
        """Where the value of top-level `key` starts (the file start if there is no such key)."""
        if self._text[self._start] != "{":
            return self._start
        member = self._layout.top.get(key)
        return member.value_start if member is not None else self._start

    def _cell_position(self, index: int) -> int:
        return self._layout.cells[index].start

    def _check(self, doc: Any) -> None:
        # Positions are only computed (by scanning the text) when there is an error to report.
        if not isinstance(doc, dict):
            raise self._error_at(
                self._start, f"a notebook is a JSON object, this file holds a JSON {type(doc).__name__}"
            )
        major = doc.get("nbformat")
        if major != 4 or not isinstance(doc.get("nbformat_minor"), int):
            if major is None:
                raise self._error_at(
                    self._start,
                    "not a Jupyter notebook: no `nbformat` field",
                    hint="runbook edits .ipynb files (nbformat 4)",
                )
            where = self._top_position("nbformat")
            if isinstance(major, int) and major < 4:
                raise self._error_at(
                    where,
                    f"nbformat {major} notebooks are not supported (runbook reads nbformat 4)",
                    hint="convert it: `jupyter nbconvert --to notebook --nbformat 4 --inplace FILE`",
                )
            if isinstance(major, int) and major > 4:
                raise self._error_at(
                    where,
                    f"nbformat {major} is newer than runbook understands (nbformat 4.x)",
                    hint="save the notebook as nbformat 4 from Jupyter, or upgrade runbook",
                )
            raise self._error_at(
                where,
                f"unknown notebook format {major!r}.{doc.get('nbformat_minor')!r}",
                hint="expected nbformat 4 with an integer nbformat_minor",
            )
        cells = doc.get("cells")
        if not isinstance(cells, list):
            raise self._error_at(self._top_position("cells"), "the notebook has no `cells` list")
        if not isinstance(doc.get("metadata", {}), dict):
            raise self._error_at(self._top_position("metadata"), "notebook `metadata` must be an object")
        seen: dict[str, int] = {}
        for index, cell in enumerate(cells):
            if not isinstance(cell, dict):
                raise self._error_at(self._cell_position(index), f"cell {index + 1} is not a JSON object")
            if cell.get("cell_type") not in CELL_TYPES:
                raise self._error_at(
                    self._cell_position(index),
                    f"cell {index + 1} has unknown cell_type {cell.get('cell_type')!r}",
                    hint="nbformat 4 cells are code, markdown or raw",
                )
            source = cell.get("source", "")
            if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
                raise self._error_at(
                    self._cell_position(index),
                    f"cell {index + 1} source is neither a string nor a list of strings",
                )
            if not isinstance(cell.get("metadata", {}), dict):
                raise self._error_at(self._cell_position(index), f"cell {index + 1} metadata is not an object")
            cell_id = cell.get("id")
            if cell_id is None:
                continue
            if not isinstance(cell_id, str):
                raise self._error_at(self._cell_position(index), f"cell {index + 1} id is not a string: {cell_id!r}")
            if cell_id in seen:
                raise self._error_at(
                    self._cell_position(index),
                    f"duplicate cell id {cell_id!r}: cells {seen[cell_id] + 1} and {index + 1}",
                    hint="cell ids must be unique; give one of them a new id (or remove its `id` "
                    "field and let Jupyter create one)",
                )
            seen[cell_id] = index

    # -- the document

    @property
    def nbformat(self) -> int:
        return int(self._doc["nbformat"])

    @property
    def nbformat_minor(self) -> int:
        return int(self._doc["nbformat_minor"])

    @property
    def has_cell_ids(self) -> bool:
        """Whether this format version has cell ids (4.5 and later)."""
        return (self.nbformat, self.nbformat_minor) >= (4, 5)

    @property
    def metadata(self) -> Mapping[str, Any]:
        value = self._doc.get("metadata", {})
        return value if isinstance(value, dict) else {}

    @property
    def cells(self) -> list[Cell]:
        if self._cells_cache is None:
            self._cells_cache = [self._view(i, c) for i, c in enumerate(self._doc["cells"])]
        return list(self._cells_cache)

    def __len__(self) -> int:
        return len(self._doc["cells"])

    def cell(self, index: int) -> Cell:
        if not 0 <= index < len(self):
            raise self._error_at(None, f"there is no cell {index + 1}: the notebook has {len(self)} cells")
        return self.cells[index]

    @staticmethod
    def _view(index: int, raw: dict[str, Any]) -> Cell:
        metadata = raw.get("metadata", {})
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else []
        return Cell(
            index=index,
            id=raw.get("id") if isinstance(raw.get("id"), str) else None,
            cell_type=raw["cell_type"],
            source=_joined(raw.get("source", "")),
            tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            metadata=metadata,
            outputs=raw.get("outputs", []) if isinstance(raw.get("outputs"), list) else [],
        )

    @property
    def _layout(self) -> _Layout:
        if self._layout_cache is None:
            self._layout_cache = _scan_layout(self._text, self._start)
        return self._layout_cache

    @property
    def _style(self) -> _Style:
        if self._style_cache is None:
            self._style_cache = _detect_style(self._text, self._start, self._layout, self._doc)
        return self._style_cache

    # -- addressing

    def find(
        self,
        *,
        id: str | None = None,
        number: int | None = None,
        tag: str | None = None,
        pattern: str | None = None,
        all: bool = False,
        cell_type: CellType | None = None,
    ) -> list[Cell]:
        """Cells named by one of id/number/tag/pattern; exactly one unless `all` (see `select`)."""
        try:
            address = CellAddress(id=id, number=number, tag=tag, pattern=pattern, all=all, cell_type=cell_type)
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise self._error_at(None, f"bad cell address: {reasons}") from None
        return self.select(address)

    def select(self, address: CellAddress) -> list[Cell]:
        """The cells `address` names: one, or (with `all`) one or more. Otherwise a NotebookError
        that says how many matched and which."""
        cells = self.cells
        if address.number is not None:
            if address.number > len(cells):
                raise self._error_at(
                    None, f"there is no cell number {address.number}: the notebook has {len(cells)} cells"
                )
            return [cells[address.number - 1]]
        if address.id is not None:
            matches = [c for c in cells if c.id == address.id]
            if not matches:
                raise self._error_at(None, f"no cell has id {address.id!r}", hint=self._near_ids(address.id, cells))
            return matches
        if address.tag is not None:
            matches = [c for c in cells if address.tag in c.tags]
        else:
            assert address.pattern is not None
            regex = re.compile(address.pattern, re.MULTILINE)
            matches = [c for c in cells if regex.search(c.source)]
        if address.cell_type is not None:
            matches = [c for c in matches if c.cell_type == address.cell_type]
        where = f"{address.cell_type} cell" if address.cell_type else "cell"
        if not matches:
            raise self._error_at(None, f"{address.describe()} matches no {where}")
        if len(matches) > 1 and not address.all:
            listed = ", ".join(c.label for c in matches[:10]) + (", …" if len(matches) > 10 else "")
            raise self._error_at(
                None,
                f"{address.describe()} matches {len(matches)} {where}s: {listed}",
                hint="make it match one cell, address the cell by id, or set `all: true`",
            )
        return matches

    def address(self, address: CellAddress) -> Cell:
        """The one cell `address` names (a NotebookError when it names none or several)."""
        matches = self.select(address.model_copy(update={"all": False}))
        return matches[0]

    @staticmethod
    def _near_ids(wanted: str, cells: list[Cell]) -> str:
        by_id = {c.id: c for c in cells if c.id}
        near = difflib.get_close_matches(wanted, list(by_id), n=3, cutoff=0.5)
        if near:
            return "did you mean " + ", ".join(f"{i!r} (cell {by_id[i].number})" for i in near) + "?"
        if not by_id:
            return "this notebook's cells have no ids; address cells by number, tag or pattern"
        return "list the cell ids with `runbook notebook cells`, or address the cell by number, tag or pattern"

    # -- edits

    def set_source(self, index: int, text: str) -> bool:
        """Give cell `index` (0-based) this source; False (nothing changes) if it already has it.

        The cell keeps its representation: a list of lines stays a list, a string stays a string.
        """
        cell = self._raw_cell(index)
        if _joined(cell.get("source", "")) == text:
            return False
        old = cell.get("source")
        value: str | list[str] = _split_source(text) if isinstance(old, list) or old is None else text
        layout = self._layout.cells[index]
        member = layout.members.get("source")
        if member is None:
            self._insert_member(index, "source", value)
        else:
            rendered = self._render_like(value, member)
            # Kept aside and applied in one pass by dumps()/write(): a 20 MB notebook is copied once
            # however many cells change.
            self._pending[member.value_start] = (member.value_start, member.value_end, rendered)
        cell["source"] = value
        self._cells_cache = None
        return True

    def edit_cell(self, index: int, replacements: Sequence[Replacement]) -> EditOutcome:
        """Apply `replacements` to cell `index`'s source and keep the result when it changed."""
        cell = self.cell(index)
        outcome = replace_in_cell(cell.source, replacements, label=cell.label)
        if outcome.status == "changed":
            self.set_source(index, outcome.after)
        return outcome

    def insert(
        self,
        index: int,
        cell_type: CellType,
        source: str,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Cell:
        """Insert a new cell before position `index` (`len(nb)` appends) and return it.

        In nbformat 4.5+ the cell gets `id` or a generated `cell_<index>_<8 hex>`; a 4.4 notebook
        never gets ids (asking for one is an error).
        """
        if cell_type not in CELL_TYPES:
            raise self._error_at(None, f"unknown cell type {cell_type!r}", hint="use code, markdown or raw")
        count = len(self)
        if not 0 <= index <= count:
            raise self._error_at(None, f"cannot insert at position {index + 1}: the notebook has {count} cells")
        if id is not None and not self.has_cell_ids:
            raise self._error_at(
                None,
                f"nbformat {self.nbformat}.{self.nbformat_minor} notebooks have no cell ids",
                hint="insert the cell without an id, or upgrade the notebook to 4.5 in Jupyter",
            )
        existing = {c.id for c in self.cells if c.id}
        if id is not None:
            if not CELL_ID_PATTERN.match(id):
                raise self._error_at(None, f"invalid cell id {id!r}", hint="ids are 1-64 of a-z A-Z 0-9 - _")
            if id in existing:
                raise self._error_at(None, f"cell id {id!r} is already used")
        elif self.has_cell_ids:
            id = self._new_id(index, cell_type, source, existing)
        cell = self._new_cell(cell_type, source, id, dict(metadata or {}))
        self._insert_cell(index, cell)
        return self.cells[index]

    @staticmethod
    def _new_id(index: int, cell_type: str, source: str, existing: set[str]) -> str:
        # Deterministic (same edit, same id) so generated files stay reproducible.
        salt = 0
        while True:
            digest = hashlib.sha256(f"{index}\0{cell_type}\0{source}\0{salt}".encode()).hexdigest()[:8]
            candidate = f"cell_{index}_{digest}"
            if candidate not in existing:
                return candidate
            salt += 1

    def _new_cell(self, cell_type: str, source: str, cell_id: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
        value: str | list[str] = _split_source(source) if self._style.source_as_lines else source
        fields: dict[str, Any] = {"cell_type": cell_type}
        if cell_type == "code":
            fields["execution_count"] = None
        if cell_id is not None:
            fields["id"] = cell_id
        fields["metadata"] = metadata
        if cell_type == "code":
            fields["outputs"] = []
        fields["source"] = value
        # Follow the key order the file already uses for this kind of cell (nbformat sorts keys).
        sibling = next((c for c in self._doc["cells"] if c.get("cell_type") == cell_type), None)
        order = sorted(fields) if sibling is None or list(sibling) == sorted(sibling) else list(sibling)
        ordered = {k: fields[k] for k in order if k in fields}
        ordered.update({k: v for k, v in fields.items() if k not in ordered})
        return ordered

    def _raw_cell(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise self._error_at(None, f"there is no cell {index + 1}: the notebook has {len(self)} cells")
        cell: dict[str, Any] = self._doc["cells"][index]
        return cell

    def _render_like(self, value: str | list[str], member: _Member) -> str:
        """Render a new source value the way the old one at `member` was laid out."""
        text = self._text
        style = self._style
        if isinstance(value, str) or text[member.value_start] != "[":
            rendered = style.render(value, "")
        else:
            open_at, spans, close_at = _array_items(text, member.value_start)
            if not value:
                rendered = "[]"
            elif not spans:
                rendered = style.render(value, _line_prefix(text, member.key_start))
            else:
                opener = text[open_at + 1 : spans[0][0]]
                closer = text[spans[-1][1] : close_at]
                separator = text[spans[0][1] : spans[1][0]] if len(spans) > 1 else "," + opener
                items = [json.dumps(line, ensure_ascii=style.ensure_ascii) for line in value]
                rendered = "[" + opener + separator.join(items) + closer + "]"
        if json.loads(rendered) != value:  # a bug guard: the file must say exactly what was meant
            raise RuntimeError(f"notebook splice would not round-trip: {rendered[:200]!r}")
        return rendered

    def _insert_member(self, index: int, key: str, value: Any) -> None:
        """Add a missing member at the end of cell `index`'s object (rare: a cell without source)."""
        self._materialize()
        layout = self._layout.cells[index]
        style = self._style
        members = sorted(layout.members.values(), key=lambda m: m.key_start)
        if not members:  # "{}": render the whole one-member object
            self._splice(layout.start, layout.end, style.render({key: value}, _line_prefix(self._text, layout.start)))
            return
        last = members[-1]
        prefix = _line_prefix(self._text, last.key_start)
        piece = style.item_separator + (style.newline + prefix if style.indent is not None else "")
        piece += json.dumps(key, ensure_ascii=style.ensure_ascii) + style.key_separator + style.render(value, prefix)
        self._splice(last.value_end, last.value_end, piece)

    def _insert_cell(self, index: int, cell: dict[str, Any]) -> None:
        self._materialize()
        layout = self._layout
        text = self._text
        style = self._style
        cells = layout.cells
        if not cells:
            cells_key = layout.top["cells"].key_start
            outer = _line_prefix(text, cells_key)
            inner = outer + (style.indent or "")
            if style.indent is None:
                piece = "[" + style.render(cell, "") + "]"
            else:
                piece = "[" + style.newline + inner + style.render(cell, inner) + style.newline + outer + "]"
            self._splice(layout.cells_open, layout.cells_close + 1, piece)
        else:
            rendered = style.render(cell, _line_prefix(text, cells[0].start))
            # What separates two cells in this file, e.g. ",\n  " (taken from the file when it can be).
            if len(cells) > 1:
                between = text[cells[0].end : cells[1].start]
            else:
                between = style.item_separator + text[layout.cells_open + 1 : cells[0].start]
            if index < len(cells):
                self._splice(cells[index].start, cells[index].start, rendered + between)
            else:
                self._splice(cells[-1].end, cells[-1].end, between + rendered)
        self._doc["cells"].insert(index, cell)
        self._cells_cache = None

    def _splice(self, start: int, end: int, replacement: str) -> None:
        """Replace text[start:end] (a structural edit: the layout is rescanned when next needed)."""
        self._text = self._text[:start] + replacement + self._text[end:]
        self._layout_cache = None

    def _materialize(self) -> None:
        """Apply the pending value replacements to the text in one pass, shifting the layout."""
        if not self._pending:
            return
        edits = sorted(self._pending.values())
        pieces: list[str] = []
        done = 0
        for start, end, replacement in edits:
            pieces += (self._text[done:start], replacement)
            done = end
        pieces.append(self._text[done:])
        self._text = "".join(pieces)
        layout = self._layout_cache
        if layout is not None:
            for start, end, replacement in reversed(edits):  # from the end: earlier offsets stay valid
                layout.shift(end, len(replacement) - (end - start))
        self._pending.clear()

    # -- output

    def dumps(self) -> str:
        """The notebook's text as it would be written (identical to the file when unchanged)."""
        self._materialize()
        return self._text

    @property
    def changed(self) -> bool:
        """Whether the text differs from what was read (or last written)."""
        return self.dumps() != self._saved_text

    def write(self) -> bool:
        """Save atomically to `path`; False (and nothing written) when there is nothing new to save.

        Refuses (NotebookError) to overwrite a file that changed on disk since it was read.
        """
        if self._disk is not None and self.dumps() == self._saved_text:
            return False
        target = self.path.resolve()  # write through a symlink, keep the link
        try:
            current: os.stat_result | None = target.stat()
        except FileNotFoundError:
            current = None
        data = (b"\xef\xbb\xbf" if self._bom else b"") + self.dumps().encode("utf-8")
        if self._disk is not None:
            seen = (self._disk.st_mtime_ns, self._disk.st_size)
            if current is None or (current.st_mtime_ns, current.st_size) != seen:
                raise self._error_at(
                    None,
                    "the notebook changed on disk since runbook read it; nothing was written",
                    hint="save or close the notebook in Jupyter, then run again",
                )
        elif current is not None and target.read_bytes() == data:
            self._saved_text, self._disk = self._text, current
            return False
        try:
            atomic_write_bytes(target, data)
        except OSError as exc:
            raise self._error_at(None, f"cannot write the notebook: {exc.strerror or exc}") from exc
        self._saved_text = self._text
        self._disk = target.stat()
        return True

    def as_nbformat(self) -> NotebookNode:
        """A separate `NotebookNode` copy (sources joined) for execution; changing it changes nothing here."""
        # nbformat (and jsonschema under it) costs ~0.1 s to import; only execution needs it.
        import nbformat
        from nbformat.v4.rwbase import rejoin_lines

        # from_dict builds new dicts and lists all the way down: the copy shares nothing mutable
        node: NotebookNode = nbformat.from_dict(self._doc)  # type: ignore[no-untyped-call]
        rejoin_lines(node)  # type: ignore[no-untyped-call]
        return node
