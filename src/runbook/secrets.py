"""Redaction of secret values wherever output leaves the process.

A `Redactor` knows the secret values of one run (declared `secret: true` inputs, keys handed out by a
target, values of secret-looking `.env` keys) and replaces them by `***` in every string, list and dict
that goes to a run record, the console, a report or a commit. Redaction is by value, so a secret is
caught even when an action echoes it inside a URL or an error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Names that hold secrets by convention (variables, inputs, `.env` keys, HTTP headers, URL query
# parameters); values under such names are masked even when undeclared. One heuristic for all of them.
SECRET_NAME = re.compile(
    r"(?i)key|secret|token|password|passwd|credential|connection_?string|sas|signature|authori[sz]ation|cookie"
)
# Short names that are secrets only as the whole name: a SAS `sig`, an Azure Functions `code`.
SECRET_WORDS = frozenset({"sig", "code"})
# Names that look secret but are not: ARM paging (`$skiptoken`) and the API version.
PUBLIC_NAMES = frozenset({"$skiptoken", "skiptoken", "api-version"})
# Shorter values would mask innocent words ("1", "true"); such secrets are rejected at declaration.
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """True when a value named `name` holds a secret by convention.

    The same answer for a variable (API_KEY, CLIENT_SECRET), a header (api-key, Authorization,
    Set-Cookie) and a query parameter (`sig`, `code`, `subscription-key`).
    """
    lowered = name.lower()
    if lowered in PUBLIC_NAMES:
        return False
    return lowered in SECRET_WORDS or bool(SECRET_NAME.search(lowered))


class Redactor:
    """Masks known secret values in any JSON-like structure."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET_LENGTH or value in self._values:
            return
        self._values.add(value)
        # Longest first so a secret that contains another is masked whole.
        ordered = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def __contains__(self, value: str) -> bool:
        return value in self._values

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(MASK, value)

    def __call__(self, value: Any) -> Any:
        """Return a copy of `value` with every secret masked (strings, lists, tuples, dicts)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value
