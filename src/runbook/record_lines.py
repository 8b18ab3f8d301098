"""How run-record events become JSON lines: the bytes `json.dumps` writes for `event.as_record()`.

A record line is `json.dumps(event.as_record(), ensure_ascii=False, separators=(",", ":"),
default=str)` and a newline, in UTF-8 (`encode`). Writing thousands of them, that was most of a
cheap step's cost: `model_dump` copies the event and `json.dumps` builds a new C encoder per call.
`LineEncoder` keeps one encoder (the one json.dumps would build) and, for an event whose fields are
all plain JSON (exact str, int, float, bool, None, and dicts and lists of those: what `model_dump`
copies unchanged), writes each key and value as json.dumps writes it, joined as it joins them. Any
other event (a nested model, a tuple, a Path, a field written under an alias) goes the model's way.
tests/test_record_events.py checks both ways byte for byte against model_dump + json.dumps.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable
from functools import cache
from json.encoder import encode_basestring
from typing import Any


def encode(obj: dict[str, Any]) -> bytes:
    """One record line: `obj` as compact JSON (non-ASCII kept, anything else as str()), newline, UTF-8."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")


class LineEncoder:
    """`encode` with one JSON encoder kept (json.dumps builds one per call): the same bytes, cheaper.
    Its circular-reference markers are its own: one encoder per writer, never shared by two threads."""

    def __init__(self) -> None:
        self._markers: dict[int, Any] = {}
        make = getattr(json.encoder, "c_make_encoder", None)  # json's C accelerator (absent on some Pythons)
        self._encoder: Callable[[Any, int], Any] | None = (
            None if make is None else make(self._markers, str, encode_basestring, None, ":", ",", False, False, True)
        )

    def __call__(self, obj: dict[str, Any]) -> bytes:
        if self._encoder is None:  # no C accelerator: json's own (pure Python) encoder
            return encode(obj)
        return (self._value(obj) + "\n").encode("utf-8")

    def event(self, event: Any) -> bytes:
        """`self(event.as_record())`, written straight off the fields of a plain event (see the module)."""
        if self._encoder is None or _aliased(event.__class__):
            return self(event.as_record())
        chosen = event.__pydantic_fields_set__
        parts = ['{"event":' + encode_basestring(event.event)]
        for key, value in event.__dict__.items():
            if key in chosen and key != "event":
                text = scalar_json(value)
                if text is None:
                    if not plain(value):
                        return self(event.as_record())
                    text = self._value(value)
                parts.append(f'"{key}":{text}')  # field names are identifiers: nothing to escape
        extra = event.__pydantic_extra__
        if extra:
            for key, value in extra.items():
                if type(key) is not str or not plain(value):
                    return self(event.as_record())
                parts.append(f"{encode_basestring(key)}:{scalar_json(value) or self._value(value)}")
        return (",".join(parts) + "}\n").encode("utf-8")

    def _value(self, value: Any) -> str:
        assert self._encoder is not None
        try:
            return "".join(self._encoder(value, 0))
        except BaseException:
            self._markers.clear()  # an error mid-way leaves the containers it was in marked
            raise


def scalar_json(value: Any) -> str | None:
    """What json.dumps writes for an exact str, int, float, bool or None; None for anything else."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if math.isfinite(value):
            return float.__repr__(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None


def plain(value: Any, depth: int = 0) -> bool:
    """Whether `value` is JSON as it is (exact str, int, float, bool, None; dicts with str keys and
    lists of such): what `model_dump` would copy unchanged."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return True
    if depth > 32:
        return False
    if kind is dict:
        return all(type(key) is str and plain(item, depth + 1) for key, item in value.items())
    if kind is list:
        return all(plain(item, depth + 1) for item in value)
    return False


def record_line(event: Any) -> dict[str, Any]:
    """`event.as_record()` for reading it right away: a plain event's line is read off its fields
    (the same keys in the same order, the same values). Nested values are the event's own, not
    copies: never keep or change the result."""
    if _aliased(event.__class__):
        return event.as_record()  # type: ignore[no-any-return]
    chosen = event.__pydantic_fields_set__
    line: dict[str, Any] = {"event": event.event}
    for key, value in event.__dict__.items():
        if key in chosen and key != "event":
            if not plain(value):
                return event.as_record()  # type: ignore[no-any-return]
            line[key] = value
    for key, value in (event.__pydantic_extra__ or {}).items():
        if not plain(value):
            return event.as_record()  # type: ignore[no-any-return]
        line[key] = value
    return line


@cache
def _aliased(kind: type) -> bool:
    """Whether a model class writes a field under another name (then model_dump writes its lines)."""
    fields = getattr(kind, "model_fields", {})
    return any(
        info.alias not in (None, name) or info.serialization_alias not in (None, name) for name, info in fields.items()
    )
