"""Find/replace edits of one cell's source: `Replacement`, their outcome, and the cell diff.

Replacements are idempotent: text already replaced counts as applied ("already"), a missing text
with no replacement present fails, and a failure anywhere applies nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
