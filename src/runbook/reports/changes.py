"""What a run's fix changed: before/after blocks from its diffs, the cells to fix and the cells modified.

Fix steps record unified diffs (one section per file or notebook cell); `key_changes` shows each
as one `diff` fence (and keeps the `before`/`after` lines for templates that want the seed's blocks). The authored `report.cells` notes of the
runbook are matched to the cells the run actually saw (by number, id or tag) for the "Cells to
Fix" and "Cells Modified" tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..loader import LoadedRunbook
from ..notebooks.cells import CellAddress
from ..text import Markdown, code, fence
from .authored import resolve_cell
from .markdown import cell_title, first_line
from .views import as_number

__all__ = ["cell_directory", "cells_modified", "cells_to_fix", "key_changes"]


def _said(text: Any, value: str | None, loc: list[str | int]) -> str | None:
    """Authored text rendered with the run's values (`authored.AuthoredText`), or as written without one."""
    return text.text(value, loc) if text is not None else value

_STEP_PREFIX = re.compile(r"^\s*(?:(?:update|fix|edit|change)\s+)?cell\s+\d+\s*[-:–—]\s*", re.IGNORECASE)
_CELL_LABEL = re.compile(r"cell\s+(\d+)(?:\s*\(([^)]+)\))?", re.IGNORECASE)


def _diff_sections(diff: str) -> list[tuple[str, str]]:
    """Split a (possibly multi-file) unified diff into (label, text) per file or cell."""
    sections: list[tuple[str, list[str]]] = []
    for line in diff.split("\n"):
        if line.startswith("--- "):
            label = line[4:].strip()
            label = label[2:] if label.startswith("a/") else label
            sections.append((label, [line]))
        elif sections:
            sections[-1][1].append(line)
        else:
            sections.append(("", [line]))
    return [(label, "\n".join(lines).strip("\n")) for label, lines in sections if any(lines)]


def _before_after(section: str, limit: int = 40) -> tuple[list[str], list[str]]:
    before: list[str] = []
    after: list[str] = []
    for line in section.split("\n"):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            if before and before[-1] != "# …":
                before.append("# …")
            if after and after[-1] != "# …":
                after.append("# …")
        elif line.startswith("-"):
            before.append(line[1:])
        elif line.startswith("+"):
            after.append(line[1:])

    def cut(lines: list[str]) -> list[str]:
        lines = [line for line in lines if line != "# …"] if len([x for x in lines if x != "# …"]) <= 1 else lines
        while lines and lines[-1] == "# …":
            lines.pop()
        if len(lines) > limit:
            return [*lines[:limit], f"# … ({len(lines) - limit} more lines)"]
        return lines

    return cut(before), cut(after)


DIFF_LINES = 80  # lines of one cell's or file's diff shown in the report (the record keeps all of it)


def _bounded_diff(section: str, limit: int = DIFF_LINES) -> str:
    lines = section.split("\n")
    if len(lines) <= limit:
        return section
    return "\n".join([*lines[:limit], f"… ({len(lines) - limit} more lines of diff in the run record)"])


def key_changes(fix_views: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    for view in fix_views:
        if not view["diff"] or view["status"] != "changed":
            continue
        for label, section in _diff_sections(view["diff"]):
            match = _CELL_LABEL.search(label)
            ref = None
            if match:
                number = int(match.group(1))
                ref = next((c for c in view["cells"] if c["number"] == number), None) or {
                    "number": number,
                    "id": match.group(2),
                }
            elif len(view["cells"]) == 1:
                ref = view["cells"][0]
            before, after = _before_after(section)
            title = _STEP_PREFIX.sub("", view["title"]) if ref is not None else view["title"]
            if ref is not None:
                subject = cell_title(ref)
            else:
                subject = label or (view["files"][0] if view["files"] else view["id"])
            # One unified diff per cell or file (the site colours it): what was removed and added, in place.
            block = fence(_bounded_diff(section), "diff")
            changes.append(
                {
                    "subject": subject,
                    "title": title or view["title"],
                    "step": view["id"],
                    "cell": ref,
                    "before": before,
                    "after": after,
                    "diff": section,
                    "markdown": block,
                }
            )
    return changes


# ---------------------------------------------------------------- cells to fix, cells modified


def cell_directory(views: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every cell the run saw, with number, id, tags and matching lines (notebook.cells outputs, steps' cells)."""
    cells: list[dict[str, Any]] = []
    for view in views:
        output = view["output"]
        listed = output.get("cells") if isinstance(output, Mapping) else None
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, Mapping) and as_number(item.get("number")) is not None:
                tags = [str(t) for t in item.get("tags") or [] if isinstance(t, str)]
                lines = [str(m.get("text")) for m in item.get("matches") or [] if isinstance(m, Mapping)]
                cells.append({"number": as_number(item["number"]), "id": item.get("id"), "tags": tags, "lines": lines})
        cells.extend({"number": r["number"], "id": r["id"], "tags": r["tags"]} for r in view["cells"])
    return cells


def _same_cell(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two references name one cell: by number when both know it, else by id, else by a shared tag."""
    if a.get("number") is not None and b.get("number") is not None:
        return bool(a["number"] == b["number"])
    if a.get("id") and b.get("id"):
        return bool(a["id"] == b["id"])
    return bool(set(a.get("tags") or []) & set(b.get("tags") or []))


def _note_cell(note: Any, directory: Sequence[Mapping[str, Any]], notebook: Any) -> dict[str, Any]:
    """An authored `cells:` entry, addressed as a step would address it (see `authored.resolve_cell`)."""
    cell = resolve_cell(note.cell, notebook, directory)
    cell["id"] = cell["id"] or note.id
    return cell


def _cell_display(cell: Mapping[str, Any], address: CellAddress | None = None) -> Any:
    """`15`, or `15 (image-config)` when the runbook names the cell by tag."""
    tag = address.tag if address is not None else None
    if cell.get("number") is None:
        return code(tag or cell.get("id") or (address.describe() if address is not None else "?"))
    return Markdown(f"{cell['number']} ({code(tag)})") if tag else cell["number"]


def cells_to_fix(
    loaded: LoadedRunbook,
    fix: Sequence[Mapping[str, Any]],
    directory: Sequence[Mapping[str, Any]],
    notebook: Any = None,
    text: Any = None,
) -> list[dict[str, Any]]:
    """The "Cells to Fix" rows: the authored `report.cells` (each once, numbered), then fix steps' other cells."""
    rows: list[dict[str, Any]] = []
    for index, note in enumerate(loaded.runbook.report.cells):
        cell = _note_cell(note, directory, notebook)
        if any(_same_cell(cell, row) for row in rows):
            continue
        rows.append(
            {
                **cell,
                "cell": cell["number"] if cell["number"] is not None else cell["id"],
                "display": _cell_display(cell, cell["address"]),
                "description": _said(text, note.description, ["report", "cells", index, "description"]),
                "change": _said(text, note.change, ["report", "cells", index, "change"]),
            }
        )
    for view in fix:
        for ref in view["cells"]:
            if any(_same_cell(ref, row) for row in rows):
                continue
            rows.append(
                {
                    **ref,
                    "cell": ref["number"] if ref["number"] is not None else ref["id"],
                    "display": _cell_display(ref),
                    "description": ref["description"] or view["title"],
                    "change": view["description"],
                }
            )
    return rows


def cells_modified(
    loaded: LoadedRunbook,
    fix: Sequence[Mapping[str, Any]],
    directory: Sequence[Mapping[str, Any]],
    notebook: Any = None,
    text: Any = None,
) -> list[dict[str, Any]]:
    notes: list[tuple[int, Any, dict[str, Any]]] = []
    for position, authored in enumerate(loaded.runbook.report.cells):
        cell = _note_cell(authored, directory, notebook)
        if not any(_same_cell(cell, known) for _i, _n, known in notes):
            notes.append((position, authored, cell))
    rows: list[dict[str, Any]] = []
    for view in fix:
        for ref in view["cells"]:
            found = next(((n, cell) for _i, n, cell in notes if _same_cell(ref, cell)), None)
            note = found[0] if found else None
            address = found[1]["address"] if found else None
            status = view["status"]
            if status == "changed":
                made, state = ref["description"] or view["description"] or view["title"], "✅"
            elif status == "ok":
                made, state = "already applied - no changes needed", "✅ already applied"
            elif status in ("failed", "error"):
                error = view["error"] or {}
                made, state = f"not changed: {first_line(error.get('message') or 'failed')}", "❌ failed"
            else:
                made, state = f"not changed: {view['reason'] or 'did not run'}", f"{view['icon']} not run"
            rows.append(
                {
                    **ref,
                    "id": ref["id"] or (note.id if note else None),
                    "display": _cell_display(ref, address),
                    "change": made,
                    "status": status,
                    "state": state,
                    "step": view["id"],
                }
            )
    for index, note, cell in notes:
        if any(_same_cell(cell, row) for row in rows):
            continue
        rows.append(
            {
                **cell,
                "display": _cell_display(cell, cell["address"]),
                "change": _said(text, note.change, ["report", "cells", index, "change"]) or "not touched by this run",
                "status": "untouched",
                "state": "—",
                "step": None,
            }
        )
    # Changed cells first, then the ones that needed nothing, then the rest (the seed's order).
    rank = {"changed": 0, "ok": 1}
    return sorted(rows, key=lambda r: rank.get(r["status"], 2))
