"""An action's own `with.expect` as a sentence a person would write, for the reports' tables.

`status 200; json data[0].b64_json exists True` reads "answers HTTP 200 with data[0].b64_json in its
JSON"; `cell tag image-config; output_contains [...]` reads "the cell tagged “image-config” prints
“[image] Primary image generated”". No code spans: the sentences go into table cells. Shapes this module does not know fall back to the
compact form (`views.declared_expect`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["cell_check_sentence", "expect_sentence", "verified_cells"]


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
    headers = [
        f"{header} set" if str(value) in (".+", ".*", "^.+$") else f"{header} matching /{value}/"
        for header, value in (expect.get("headers") or {}).items()
    ]
    if headers:
        parts.append(("and " if checks else "with ") + f"header{'s' if len(headers) > 1 else ''} " + " and ".join(headers))
    if expect.get("max_latency_ms"):
        parts.append(f"within {expect['max_latency_ms']:g} ms")
    return " ".join(parts) if parts else None


def cell_check_sentence(item: Mapping[str, Any], *, infinitive: bool = False) -> str:
    """What one per-cell expectation of notebook.run asks, without naming the cell: "prints “x” without error"
    (with `infinitive`: "print “x” without error", to follow "should")."""
    prints, runs = ("print", "run") if infinitive else ("prints", "runs")
    what = []
    if item.get("output_contains"):
        what.append(f"{prints} {_quoted(item['output_contains'])}")
    if item.get("output_matches"):
        what.append(f"{prints} text matching {' and '.join(f'/{m}/' for m in item['output_matches'])}")
    if item.get("output_not_contains"):
        what.append(f"never {prints} {_quoted(item['output_not_contains'])}")
    if item.get("output_not_matches"):
        what.append(f"{prints} nothing matching {' or '.join(f'/{m}/' for m in item['output_not_matches'])}")
    if item.get("no_error", True):
        what.append(f"{runs} without error" if not what else "without error")
    return " ".join(what) if what else runs


def _cells(expect: list[Any]) -> str | None:
    sentences = []
    for item in expect:
        if not isinstance(item, Mapping) or "cell" not in item:
            return None
        sentences.append(f"{_cell_name(item['cell'])} {cell_check_sentence(item)}")
    return "; ".join(sentences) if sentences else None


def verified_cells(output: Any, declared: Any) -> list[dict[str, Any]]:
    """notebook.run's checked cells, each with what was expected (a sentence) and what it printed.

    `declared` is the step's `with.expect` as written; each entry is matched to its checked cell
    through `output.addressed` (the address as the step described it -> the cell's number).
    """
    from ..notebooks.cells import CellAddress, to_address

    if not isinstance(output, Mapping) or not isinstance(output.get("expectations"), list):
        return []
    numbers = {
        str(a.get("ref")): a.get("number") for a in output.get("addressed") or [] if isinstance(a, Mapping)
    }
    wanted: dict[Any, tuple[str, str | None]] = {}
    for item in declared if isinstance(declared, list) else []:
        if not isinstance(item, Mapping) or "cell" not in item:
            continue
        try:
            ref = item["cell"]
            address = CellAddress.model_validate(ref) if isinstance(ref, Mapping) else to_address(ref)
        except ValueError:
            continue
        number = numbers.get(address.describe(), address.number)
        wanted.setdefault(number, (cell_check_sentence(item, infinitive=True), address.tag))
    rows = []
    for checked in output["expectations"]:
        if not isinstance(checked, Mapping):
            continue
        sentence, tag = wanted.get(checked.get("cell"), ("run without error", None))
        rows.append(
            {
                "cell": checked.get("cell"),
                "id": checked.get("id"),
                "tag": tag,
                "expected": sentence,
                "passed": bool(checked.get("passed")),
                "failed": [str(f) for f in checked.get("failed") or []],
                "status": checked.get("status"),
                "excerpt": str(checked["excerpt"] if "excerpt" in checked else _printed(output, checked.get("cell"))),
            }
        )
    return rows


def _printed(output: Mapping[str, Any], number: Any) -> str:
    """What a cell showed, from its result (records written before `excerpt` existed)."""
    for cell in output.get("cells") or []:
        if isinstance(cell, Mapping) and cell.get("number") == number and not cell.get("setup"):
            parts = [str(cell.get(k) or "").rstrip("\n") for k in ("stdout", "text", "stderr")]
            error = cell.get("error")
            if isinstance(error, Mapping):
                parts.append(f"{error.get('ename')}: {error.get('evalue')}")
            return "\n".join(part for part in parts if part)
    return ""


def expect_sentence(expect: Any) -> str | None:
    """The sentence for an action's `with.expect` (HTTP checks or per-cell checks), or None."""
    if isinstance(expect, Mapping):
        return _http(expect)
    if isinstance(expect, list):
        return _cells(expect)
    return None
