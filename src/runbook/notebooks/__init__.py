"""Notebook files: faithful read/edit/write, cell addressing and cell-source edits with diffs.

The package's parts: `cells` (the `Cell` view, `CellAddress`, fingerprints), `replacements`
(find/replace edits and their diffs), `layout` (one pass over the text: the document and where each
value sits, and the file's JSON style), `splice` (rewriting one source value at the smallest unit)
and `document` (the `Notebook`: read, check, address, edit, write atomically). Import from here.
"""

from __future__ import annotations

from .cells import CELL_ID_PATTERN, CELL_TYPES, Cell, CellAddress, CellType, fingerprint
from .document import Notebook
from .replacements import EditOutcome, Replacement, ReplacementResult, cell_diff, replace_in_cell

__all__ = [
    "CELL_ID_PATTERN",
    "CELL_TYPES",
    "Cell",
    "CellAddress",
    "CellType",
    "EditOutcome",
    "Notebook",
    "Replacement",
    "ReplacementResult",
    "cell_diff",
    "fingerprint",
    "replace_in_cell",
]
