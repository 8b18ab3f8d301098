"""Cells as steps see them and how steps name them: the `Cell` view, `CellAddress`, fingerprints.

A `Cell` is a read-only view (1-based `number`, 0-based `index`, id, type, source, tags). A
`CellAddress` names cells by exactly one of id, number, tag or pattern; `CellRef` is how runbooks
write one (a number, an id, or the mapping) and `to_address` reads it, for steps and reports alike. `fingerprint()` is a short
hash of a cell's type and source, kept in run records so a number that now names another cell
(cells were inserted or removed) is noticed even when cells have no ids.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

CellType = Literal["code", "markdown", "raw"]
CELL_TYPES: tuple[str, ...] = ("code", "markdown", "raw")
CELL_ID_PATTERN = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


def fingerprint(cell_type: str, source: str) -> str:
    """A 12-hex digest of a cell's type and source (what drift detection compares)."""
    return hashlib.sha256(f"{cell_type}\0{source}".encode("utf-8", "surrogatepass")).hexdigest()[:12]


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
    def fingerprint(self) -> str:
        """The content fingerprint of this cell (see `fingerprint()`)."""
        return fingerprint(self.cell_type, self.source)

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
            "fingerprint": self.fingerprint,
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


def _numbered_from_one(ref: Any) -> Any:
    if isinstance(ref, int) and not isinstance(ref, bool) and ref < 1:
        raise ValueError(f"cell numbers start at 1 (the notebook's first cell is cell 1), not {ref}")
    return ref


# A bare number is a cell number, from 1: `cell: 0` is a located schema error, not a step that crashes
# later (CellAddress refuses it) nor an internal error in `runbook validate`.
CellRef = Annotated[int | str | CellAddress, AfterValidator(_numbered_from_one)]


def to_address(ref: CellRef) -> CellAddress:
    """`15` -> number 15; `"cell_14_f21837aa"` -> that id; a mapping -> as written."""
    if isinstance(ref, CellAddress):
        return ref
    if isinstance(ref, int):
        return CellAddress(number=ref)
    text = str(ref).strip()
    if text.isdigit():
        return CellAddress(number=int(text))
    return CellAddress(id=text)
