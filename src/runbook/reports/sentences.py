"""An action's own `with.expect` as a sentence a person would write, for the reports' tables.

`status 200; json data[0].b64_json exists True` reads "answers HTTP 200 with data[0].b64_json in its
JSON"; `cell tag image-config; output_contains [...]` reads "the cell tagged “image-config” prints
“[image] Primary image generated”". No code spans: the sentences go into table cells. Shapes this module does not know fall back to the
compact form (`views.declared_expect`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["expect_sentence"]


def _quoted(values: Any) -> str:
    items = values if isinstance(values, list) else [values]
    return " and ".join(f"“{item}”" for item in items)


def _json_check(path: str, check: Any) -> str:
    where = path
    if isinstance(check, Mapping):
        if "exists" in check:
            return f"{where} in its JSON" if check["exists"] else f"no {where} in its JSON"
        if "equals" in check:
            return f"{where} equal to {_quoted(check['equals'])}"
        if "contains" in check:
            return f"{where} containing {_quoted(check['contains'])}"
        if "regex" in check:
            return f"{where} matching /{check['regex']}/"
        if "min_length" in check:
            return f"at least {check['min_length']} items in {where}"
    return f"{where} equal to {_quoted(check)}"


def _cell_name(cell: Any) -> str:
    if isinstance(cell, Mapping):
        for key, words in (("tag", "tagged"), ("id", "with id"), ("number", "numbered"), ("contains", "containing")):
            if key in cell:
                return f"the cell {words} {_quoted(cell[key])}"
        return "the cell"
    if isinstance(cell, int) and not isinstance(cell, bool):
        return f"cell {cell}"
    return f"cell {_quoted(cell)}"


def _http(expect: Mapping[str, Any]) -> str | None:
    known = {"status", "json", "headers", "body_contains", "body_regex", "max_latency_ms"}
    if not expect or set(expect) - known:
        return None
    parts: list[str] = []
    status = expect.get("status")
    if isinstance(status, list):
        parts.append("answers HTTP " + " or ".join(str(s) for s in status))
    elif status is not None:
        parts.append(f"answers HTTP {status}")
    checks = [_json_check(str(path), check) for path, check in (expect.get("json") or {}).items()]
    if checks:
        parts.append(("with " if parts else "answers with ") + " and ".join(checks))
    if expect.get("body_contains"):
        parts.append(f"whose body contains {_quoted(expect['body_contains'])}")
    if expect.get("body_regex"):
        parts.append(f"whose body matches /{expect['body_regex']}/")
    for header, value in (expect.get("headers") or {}).items():
        parts.append(f"with header {header}: {value}")
    if expect.get("max_latency_ms"):
        parts.append(f"within {expect['max_latency_ms']:g} ms")
    return " ".join(parts) if parts else None


def _cells(expect: list[Any]) -> str | None:
    sentences = []
    for item in expect:
        if not isinstance(item, Mapping) or "cell" not in item:
            return None
        name = _cell_name(item["cell"])
        what = []
        if item.get("output_contains"):
            what.append(f"prints {_quoted(item['output_contains'])}")
        if item.get("output_matches"):
            what.append(f"prints text matching {' and '.join(f'/{m}/' for m in item['output_matches'])}")
        if item.get("no_error", True):
            what.append("runs without error" if not what else "without error")
        sentences.append(f"{name} {' '.join(what) if what else 'runs'}")
    return "; ".join(sentences) if sentences else None


def expect_sentence(expect: Any) -> str | None:
    """The sentence for an action's `with.expect` (HTTP checks or per-cell checks), or None."""
    if isinstance(expect, Mapping):
        return _http(expect)
    if isinstance(expect, list):
        return _cells(expect)
    return None
