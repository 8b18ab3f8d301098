"""Redaction of secret values wherever output leaves the process.

A `Redactor` knows the secret values of one run (declared `secret: true` inputs, keys handed out by a
target, values of secret-looking `.env` keys) and replaces them by `***` in every string, list and dict
that goes to a run record, the console, a report or a commit. Redaction is by value, so a secret is
caught even when an action echoes it inside a URL or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping
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
# Values this short would mask innocent text inside words ("1", "true"); they are masked only as
# whole tokens (not inside a longer run of letters and digits).
MIN_SECRET_LENGTH = 4
# Runs of base64 characters long enough to hide a secret: decoded and masked when they contain one.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def is_secret_name(name: str) -> bool:
    """True when a value named `name` holds a secret by convention.

    The same answer for a variable (API_KEY, CLIENT_SECRET), a header (api-key, Authorization,
    Set-Cookie) and a query parameter (`sig`, `code`, `subscription-key`).
    """
    lowered = name.lower()
    if lowered in PUBLIC_NAMES:
        return False
    return lowered in SECRET_WORDS or bool(SECRET_NAME.search(lowered))


def encodings(value: str) -> set[str]:
    """The forms a secret takes on its way out: as written, URL-encoded, JSON- and repr-escaped.

    Base64 forms (the value alone, or inside `user:value` as HTTP Basic auth sends it) are not listed:
    they depend on what surrounds the value, so `Redactor.text` decodes base64 runs instead.
    """
    from urllib.parse import quote, quote_plus

    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }
    return {form for form in forms if form}


def _b64decode(run: str) -> str | None:
    text = run.rstrip("=")
    if len(text) % 4 == 1:
        return None
    padded = text + "=" * (-len(text) % 4)
    for alphabet in (None, b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
        return raw.decode("utf-8", "replace")
    return None


class Redactor:
    """Masks known secret values, and their common encodings, in any JSON-like structure."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._plain: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def add(self, value: str | None) -> None:
        if not value or value in self._values:
            return
        self._values.add(value)
        forms: set[str] = set()
        for secret in self._values:
            forms |= encodings(secret)
        # Longest first so a secret that contains another is masked whole; short ones only as tokens.
        ordered = sorted(forms, key=len, reverse=True)
        parts = [
            re.escape(form) if len(form) >= MIN_SECRET_LENGTH else rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])"
            for form in ordered
        ]
        self._pattern = re.compile("|".join(parts))
        self._plain = re.compile("|".join(re.escape(v) for v in sorted(self._values, key=len, reverse=True)))

    def __contains__(self, value: str) -> bool:
        return value in self._values

    def __bool__(self) -> bool:
        return bool(self._values)

    def _mask_base64(self, match: re.Match[str]) -> str:
        run = match.group(0)
        decoded = _b64decode(run)
        if decoded is not None and self._plain is not None and self._plain.search(decoded):
            return MASK
        return run

    def bound(self, value: str, limit: int) -> str:
        """`value` cut to at most `limit` characters, never through a secret (or an encoding of one).

        The text keeps its secrets (later steps may need them; the record masks them whole), but a
        secret the bound would cut in two is left out entirely, so no half of it survives masking.
        """
        if len(value) <= limit or self._pattern is None:
            return value[:limit]
        cut = limit
        for pattern in (self._pattern, _BASE64_RUN):
            for match in pattern.finditer(value, max(0, limit - 4096), limit + 4096):
                if match.start() < cut < match.end() and (pattern is self._pattern or self._mask_base64(match) == MASK):
                    cut = match.start()
        return value[:cut]

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        masked = self._pattern.sub(MASK, value)
        return _BASE64_RUN.sub(self._mask_base64, masked)

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


def environment_redactor(*sources: Mapping[str, str]) -> Redactor:
    """A redactor of every secret-looking value of these environments (os.environ, a `.env` file)."""
    redactor = Redactor()
    for source in sources:
        for key, value in source.items():
            if is_secret_name(key):
                redactor.add(value)
    return redactor


_READS_SECRETS = re.compile(r"\bsecrets\b")


def derived_secrets(raw: Any, rendered: Any) -> Iterator[str]:
    """Strings rendered from a template that reads `secrets`: a secret run through a filter
    (`{{ secrets.token | reverse }}`, `| b64encode`, `"Bearer " ~ …`) is no value the redactor knows,
    so each such string (of at least MIN_SECRET_LENGTH characters) becomes a secret of the run too.
    `raw` is the step's parameter as written, `rendered` the same after rendering."""
    if isinstance(raw, str):
        if ("{{" in raw or "{%" in raw) and _READS_SECRETS.search(raw):
            yield from (leaf for leaf in _strings(rendered) if len(leaf) >= MIN_SECRET_LENGTH)
    elif isinstance(raw, dict) and isinstance(rendered, dict):
        for key, value in raw.items():
            if key in rendered:
                yield from derived_secrets(value, rendered[key])
    elif isinstance(raw, list) and isinstance(rendered, list) and len(raw) == len(rendered):
        for before, after in zip(raw, rendered, strict=True):
            yield from derived_secrets(before, after)


def _strings(value: Any) -> Iterator[str]:
    # loader.strings_in walks the same way, but this module sits below the loader (no import cycle)
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
