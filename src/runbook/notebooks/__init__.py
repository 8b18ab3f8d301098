"""Notebook files: faithful read/edit/write, cell addressing and cell-source edits with diffs.

The package's parts: `cells` (the `Cell` view, `CellAddress`, fingerprints), `layout` (one pass over the text: the document and where each
value sits, and the file's JSON style), `splice` (rewriting one source value at the smallest unit)
and `document` (the `Notebook`: read, check, address, edit, write atomically). Cell-source edits use
the one find/replace engine files use too (`runbook.replacements`), re-exported here under the cell
names `replace_in_cell` and `cell_diff`. Import from here.
"""

from __future__ import annotations

from ..replacements import EditOutcome, Replacement, ReplacementResult
from ..replacements import replace_in_text as replace_in_cell
from ..replacements import text_diff as cell_diff
from .cells import CELL_ID_PATTERN, CELL_TYPES, Cell, CellAddress, CellType, fingerprint
from .document import Notebook

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
