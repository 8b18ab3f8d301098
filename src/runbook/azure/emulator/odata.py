"""`$filter` on API Management lists, as the REST API documents it: honoured, or answered 400.

APIM's `ApiOperation_ListByApi` and `Api_ListByService` accept a `$filter` over named fields with
`eq`, `ne`, `gt`, `ge`, `lt`, `le` and the functions `contains`, `startswith`, `endswith` and
`substringof`, joined by `and` / `or` (no parentheses). `filter_items(items, text, fields)` keeps
the items that match; anything it cannot read (an unknown field, operator or shape) raises
`ArmFailureError` 400 `ValidationError`, so a filter is never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runbook.azure.emulator.arm import ArmFailureError

__all__ = ["API_FIELDS", "OPERATION_FIELDS", "filter_items"]

#: `$filter` field -> where it is in a list item (the ARM JSON), for API operations and APIs.
OPERATION_FIELDS = {
    "name": ("name",),
    "displayName": ("properties", "displayName"),
    "method": ("properties", "method"),
    "description": ("properties", "description"),
    "urlTemplate": ("properties", "urlTemplate"),
}
API_FIELDS = {
    "name": ("name",),
    "displayName": ("properties", "displayName"),
    "description": ("properties", "description"),
    "serviceUrl": ("properties", "serviceUrl"),
    "path": ("properties", "path"),
}

_STRING = r"'((?:[^']|'')*)'"
_COMPARE = re.compile(rf"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+{_STRING}\s*$", re.IGNORECASE)
_FUNCTION = re.compile(rf"^\s*(contains|startswith|endswith)\s*\(\s*(\w+)\s*,\s*{_STRING}\s*\)\s*$", re.IGNORECASE)
_SUBSTRINGOF = re.compile(rf"^\s*substringof\s*\(\s*{_STRING}\s*,\s*(\w+)\s*\)\s*$", re.IGNORECASE)
_COMPARISONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda value, text: text in value,
    "startswith": lambda value, text: value.startswith(text),
    "endswith": lambda value, text: value.endswith(text),
}

Predicate = Callable[[Mapping[str, Any]], bool]


def filter_items(items: Sequence[Mapping[str, Any]], text: str | None, fields: Mapping[str, Sequence[str]]) -> list[Any]:
    """The items `$filter` keeps (all of them when there is no filter)."""
    if text is None or not text.strip():
        return list(items)
    predicate = _parse(text, fields)
    return [item for item in items if predicate(item)]


def _parse(text: str, fields: Mapping[str, Sequence[str]]) -> Predicate:
    alternatives = [_all_of(part, text, fields) for part in re.split(r"\s+or\s+", text, flags=re.IGNORECASE)]
    return lambda item: any(p(item) for p in alternatives)


def _all_of(text: str, whole: str, fields: Mapping[str, Sequence[str]]) -> Predicate:
    terms = [_term(part, whole, fields) for part in re.split(r"\s+and\s+", text, flags=re.IGNORECASE)]
    return lambda item: all(t(item) for t in terms)


def _term(text: str, whole: str, fields: Mapping[str, Sequence[str]]) -> Predicate:
    if found := _COMPARE.match(text):
        field, operator, value = found.group(1), found.group(2).lower(), found.group(3).replace("''", "'")
        path = _field(field, whole, fields)
        compare = _COMPARISONS[operator]
        return lambda item: compare(_value(item, path), value)
    if found := _FUNCTION.match(text):
        function, field, value = found.group(1).lower(), found.group(2), found.group(3).replace("''", "'")
        path = _field(field, whole, fields)
        test = _FUNCTIONS[function]
        return lambda item: test(_value(item, path).lower(), value.lower())
    if found := _SUBSTRINGOF.match(text):
        value, field = found.group(1).replace("''", "'"), found.group(2)
        path = _field(field, whole, fields)
        return lambda item: value.lower() in _value(item, path).lower()
    raise ArmFailureError(
        400,
        "ValidationError",
        f"Invalid filter clause '{text.strip()}' in $filter '{whole}': use field eq|ne|gt|ge|lt|le 'value', "
        "contains(field,'value'), startswith(field,'value'), endswith(field,'value') or "
        "substringof('value',field), joined by and / or.",
    )


def _field(name: str, whole: str, fields: Mapping[str, Sequence[str]]) -> Sequence[str]:
    for known, path in fields.items():
        if known.lower() == name.lower():
            return path
    raise ArmFailureError(
        400,
        "ValidationError",
        f"Invalid field '{name}' in $filter '{whole}'. Supported fields: {', '.join(fields)}.",
    )


def _value(item: Mapping[str, Any], path: Sequence[str]) -> str:
    node: Any = item
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)
