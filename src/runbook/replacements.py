"""The one find/replace engine for files and notebook cells: literal or regex, counted, idempotent.

A replacement is a fix, so running it twice must change nothing: `find` present -> replaced (every
occurrence, which must number `count` when given); `find` absent but `replace` present -> already
applied; neither -> the edit fails and nothing is written. Two traps are handled here, once:

- a replacement that contains the text it replaces (`f(` -> `f(model, `): occurrences inside text that
  is already the replacement do not count, so a second run finds nothing to do;
- a regex whose result matches the pattern again: refused, because a second run would apply it again
  (make the pattern exclude the fixed text, e.g. with a negative lookahead).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EditStatus = Literal["changed", "already", "failed"]

_GROUP_REFERENCE = re.compile(r"\\(?:\d|g<)")


class Replacement(BaseModel):
    """One idempotent find/replace (see the module docstring for the rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    find: str = Field(min_length=1, description="text (or, with regex: true, a pattern) to look for")
    replace: str = Field(description="what it becomes (with regex: a re.sub template, \\1 for groups)")
    regex: bool = Field(False, description="treat find as a regular expression (multiline)")
    count: int | None = Field(default=None, ge=1, description="expected number of occurrences (fail otherwise)")

    @model_validator(mode="after")
    def _valid_pattern(self) -> Replacement:
        if self.regex:
            try:
                re.compile(self.find, re.MULTILINE)
            except re.error as exc:
                raise ValueError(f"find {self.find!r} is not a valid regular expression: {exc}") from exc
        return self


@dataclass(frozen=True)
class ReplacementResult:
    """What one replacement found: how many occurrences, and its status with a message."""

    find: str
    status: EditStatus
    occurrences: int
    message: str


@dataclass(frozen=True)
class EditOutcome:
    """The result of applying replacements to one text.

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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _apply_literal(text: str, rep: Replacement) -> tuple[str, ReplacementResult]:
    # Occurrences inside text that already is the replacement do not count (find "f(" -> "f(model, ").
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
                f"expected {_plural(rep.count, 'occurrence')} of {_shorten(rep.find)}, found {found}",
            )
        after = rep.replace.join(piece.replace(rep.find, rep.replace) for piece in pieces)
        return after, ReplacementResult(
            rep.find, "changed", found, f"replaced {_plural(found, 'occurrence')} of {_shorten(rep.find)}"
        )
    if already:
        return text, ReplacementResult(rep.find, "already", 0, f"already applied: {_shorten(rep.replace)} present")
    return text, ReplacementResult(
        rep.find, "failed", 0, f"text not found: {_shorten(rep.find)} (and the replacement is not there either)"
    )


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
        if pattern.sub(rep.replace, after) != after:
            return text, ReplacementResult(
                rep.find,
                "failed",
                found,
                f"/{rep.find}/ matches its own result, so a second run would apply it again; make the "
                "pattern exclude the fixed text (e.g. a negative lookahead) so the fix is idempotent",
            )
        return after, ReplacementResult(rep.find, "changed", found, f"replaced {_plural(found, 'match')} of /{rep.find}/")
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


def replace_in_text(text: str, replacements: Sequence[Replacement], *, label: str = "text") -> EditOutcome:
    """Apply `replacements` in order to `text`; all or nothing."""
    current = text
    results: list[ReplacementResult] = []
    for rep in replacements:
        current, result = (_apply_regex if rep.regex else _apply_literal)(current, rep)
        results.append(result)
    if any(r.status == "failed" for r in results):
        return EditOutcome(text, text, "failed", "", results)
    if current == text:
        return EditOutcome(text, text, "already", "", results)
    return EditOutcome(text, current, "changed", text_diff(text, current, label), results)


def text_diff(before: str, after: str, label: str) -> str:
    """A unified diff of one text, labelled like `a/cell 109 (cell_108_e274080d)` or `a/.env`."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=f"a/{label}", tofile=f"b/{label}", lineterm=""
    )
    return "\n".join(lines) + "\n" if before != after else ""
