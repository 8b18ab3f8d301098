"""The notebook document: faithful read, checks with file:line:col, addressing, edits, atomic write.

A notebook is kept as its original text plus the parsed document (both from one pass, see
`layout.scan_document`). Edits never re-serialise the whole file: the exact character span of the
changed value (one cell's `source`, or the place a new cell goes) is replaced with text rendered in
the file's own style, and a changed source rewrites only its changed items (`splice`). Everything
else - other cells, outputs, metadata, `nbformat_minor`, key order, the final newline - stays byte
for byte as it was, so `git diff` shows only the lines that were meant to change. Writes are atomic.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..atomic import atomic_write_bytes
from ..errors import Location, NotebookError, relative_display
from .cells import CELL_ID_PATTERN, CELL_TYPES, Cell, CellAddress, CellType
from .layout import (
    Layout,
    Style,
    detect_style,
    joined,
    line_col,
    line_prefix,
    scan_document,
    scan_layout,
    skip,
    split_source,
)
from .replacements import EditOutcome, Replacement, replace_in_cell
from .splice import splice_source

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = ["Notebook"]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


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
        self._start = skip(text, 0)
        self._layout_cache: Layout | None = None
        self._style_cache: Style | None = None
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
            line, col = line_col(before, len(before))
            raise NotebookError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                location=Location(shown, line, col),
                hint="notebooks are UTF-8 JSON; re-save the file from Jupyter",
            ) from None
        start = skip(text, 0)
        if start == len(text):  # (no `text.strip()`: that would copy a 20 MB text to test it)
            raise NotebookError(
                "the notebook file is empty",
                location=Location(shown, 1, 1),
                hint="restore it from git (`git checkout -- <file>`) or re-save it from Jupyter",
            )
        try:
            doc, layout = scan_document(text, start)
        except json.JSONDecodeError as exc:
            hint = "the file may be truncated or hand-edited; restore it from git or re-save it from Jupyter"
            if re.search(r"^(<<<<<<<|>>>>>>>) ", text, re.MULTILINE):
                hint = "the notebook has git merge-conflict markers; resolve them (nbdime's `nbmerge` helps)"
            raise NotebookError(
                f"not valid JSON: {exc.msg}", location=Location(shown, exc.lineno, exc.colno), hint=hint
            ) from None
        notebook = cls(path, text, doc if isinstance(doc, dict) else {}, bom=bom, disk=disk)
        notebook._layout_cache = layout
        notebook._check(doc)
        return notebook

    def _error_at(self, pos: int | None, message: str, hint: str | None = None) -> NotebookError:
        shown = relative_display(self.path)
        if pos is None:
            return NotebookError(message, location=Location(shown), hint=hint)
        line, col = line_col(self._text, pos)
        return NotebookError(message, location=Location(shown, line, col), hint=hint)

    def _top_position(self, key: str) -> int:
        """Where the value of top-level `key` starts (the file start if there is no such key)."""
        if self._text[self._start] != "{":
            return self._start
        member = self._layout.top.get(key)
        return member.value_start if member is not None else self._start

    def _cell_position(self, index: int) -> int:
        return self._layout.cells[index].start

    def _check_format(self, doc: dict[str, Any]) -> None:
        """nbformat 4 with an integer minor version, or an error saying which format this is."""
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

    def _check(self, doc: Any) -> None:
        # Positions are only computed (by scanning the text) when there is an error to report.
        if not isinstance(doc, dict):
            raise self._error_at(
                self._start, f"a notebook is a JSON object, this file holds a JSON {type(doc).__name__}"
            )
        self._check_format(doc)
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
        """Whether new cells get ids: nbformat 4.5 and later, or a 4.4 notebook whose cells already
        carry ids (editors add them; the file's own convention decides)."""
        if (self.nbformat, self.nbformat_minor) >= (4, 5):
            return True
        return any(isinstance(c, dict) and isinstance(c.get("id"), str) for c in self._doc["cells"])

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
            source=joined(raw.get("source", "")),
            tags=[t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
            metadata=metadata,
            outputs=raw.get("outputs", []) if isinstance(raw.get("outputs"), list) else [],
        )

    @property
    def _layout(self) -> Layout:
        if self._layout_cache is None:
            self._layout_cache = scan_layout(self._text, self._start)
        return self._layout_cache

    @property
    def _style(self) -> Style:
        if self._style_cache is None:
            self._style_cache = detect_style(self._text, self._start, self._layout, self._doc)
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

        The cell keeps its representation: a list stays a list chunked as it was (only the items
        whose text changed are rewritten, each keeping its own escaping), a string stays a string.
        """
        cell = self._raw_cell(index)
        if joined(cell.get("source", "")) == text:
            return False
        old = cell.get("source")
        layout = self._layout.cells[index]
        member = layout.members.get("source")
        value: str | list[str]
        if member is None:
            value = split_source(text) if self._style.source_as_lines else text
            self._insert_member(index, "source", value)
        else:
            rendered, value = splice_source(
                self._text, member.value_start, member.value_end, text, self._style, member.key_start
            )
            if json.loads(rendered) != value or joined(value) != text or type(value) is not type(old):
                # a bug guard: the file must say exactly what was meant
                raise RuntimeError(f"notebook splice would not round-trip: {rendered[:200]!r}")
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

        When the notebook has cell ids (`has_cell_ids`) the cell gets `id` or a generated one in the
        style of the ids already there (a uuid among uuids, else `cell_<index>_<8 hex>`); a 4.4
        notebook without any ids gets none (asking for one is an error).
        """
        if cell_type not in CELL_TYPES:
            raise self._error_at(None, f"unknown cell type {cell_type!r}", hint="use code, markdown or raw")
        count = len(self)
        if not 0 <= index <= count:
            raise self._error_at(None, f"cannot insert at position {index + 1}: the notebook has {count} cells")
        if id is not None and not self.has_cell_ids:
            raise self._error_at(
                None,
                f"nbformat {self.nbformat}.{self.nbformat_minor} notebooks have no cell ids (and no cell of "
                "this one has one)",
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
        uuids = sum(1 for i in existing if _UUID.match(i))
        salt = 0
        while True:
            seed = f"{index}\0{cell_type}\0{source}\0{salt}".encode("utf-8", "surrogatepass")
            digest = hashlib.sha256(seed).hexdigest()
            if existing and uuids * 2 > len(existing):
                candidate = str(uuid.UUID(digest[:32]))
            else:
                candidate = f"cell_{index}_{digest[:8]}"
            if candidate not in existing:
                return candidate
            salt += 1

    def _new_cell(self, cell_type: str, source: str, cell_id: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
        style = self._style
        value: str | list[str] = source
        if style.source_as_lines:
            value = split_source(source) if style.lines_per_item else ([source] if source else [])
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

    def _insert_member(self, index: int, key: str, value: Any) -> None:
        """Add a missing member at the end of cell `index`'s object (rare: a cell without source)."""
        self._materialize()
        layout = self._layout.cells[index]
        style = self._style
        members = sorted(layout.members.values(), key=lambda m: m.key_start)
        if not members:  # "{}": render the whole one-member object
            self._splice(layout.start, layout.end, style.render({key: value}, line_prefix(self._text, layout.start)))
            return
        last = members[-1]
        prefix = line_prefix(self._text, last.key_start)
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
            outer = line_prefix(text, cells_key)
            inner = outer + (style.indent or "")
            if style.indent is None:
                piece = "[" + style.render(cell, "") + "]"
            else:
                piece = "[" + style.newline + inner + style.render(cell, inner) + style.newline + outer + "]"
            self._splice(layout.cells_open, layout.cells_close + 1, piece)
        else:
            rendered = style.render(cell, line_prefix(text, cells[0].start))
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
