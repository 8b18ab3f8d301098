"""Status checkpoints: the "Phase 1 Status Update - 62.5%" people write by hand, computed.

`write_checkpoint(ws)` writes `reports/status/<timestamp>.md` (and the same facts as
`<timestamp>.json`, which the next checkpoint compares against): progress, cells fixed and time
elapsed as was / now / delta against the previous checkpoint; each phase's duration and fix
summary; cells renumbered (a cell id seen at different numbers across run records: "76 (was 74)");
pending phases with their planned cells and known issues; errors resolved and remaining; an
estimate of the time remaining that says how it was computed; files modified and lessons gathered
across phases; next actions. Everything comes from the timestamp log, the run records and the plan.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from .atomic import write_if_changed
from .errors import InputError, Location, RunbookError
from .progress import GroupProgress, PhaseProgress, compute_progress, format_percent
from .record import iso, read_log, read_record, record_paths, utc_now
from .reports.markdown import escape_html
from .text import clean_text
from .text import duration_text as format_duration
from .workspace import Workspace

__all__ = ["STATUS_DIR", "build_checkpoint", "render_checkpoint", "write_checkpoint"]

STATUS_DIR = "status"


_STAMP = re.compile(r"^\d{8}T\d{9}Z$")  # what write_checkpoint names its files: 20251114T041500000Z


def _checkpoint_files(ws: Workspace) -> list[Path]:
    """The checkpoints written so far, oldest first (other files people keep in the folder are not checkpoints)."""
    return sorted(path for path in (ws.reports_dir / STATUS_DIR).glob("*.json") if _STAMP.match(path.stem))


def _cell_refs(value: Any, found: list[tuple[str, int]]) -> None:
    """Every `{"id": ..., "number": ...}` in a step output (the notebook actions' cell references)."""
    if isinstance(value, dict):
        if isinstance(value.get("id"), str) and isinstance(value.get("number"), int) and not isinstance(value.get("number"), bool):
            found.append((value["id"], value["number"]))
        for item in value.values():
            _cell_refs(item, found)
    elif isinstance(value, list):
        for item in value:
            _cell_refs(item, found)


def _records_facts(ws: Workspace) -> tuple[dict[str, list[int]], list[str]]:
    """Cell numbers by cell id across every run record (oldest first), and every file a run changed."""
    numbers: dict[str, list[int]] = {}
    files: list[str] = []
    for path in record_paths(ws.reports_dir):
        record = read_record(path)
        for step in record.step_outcomes():
            found: list[tuple[str, int]] = []
            _cell_refs(step.output, found)
            for cell_id, number in found:
                seen = numbers.setdefault(cell_id, [])
                if not seen or seen[-1] != number:
                    seen.append(number)
            if step.status == "changed":
                files.extend(p for p in step.changed_paths() if p not in files)
    return numbers, files


def _lessons(ws: Workspace, phases: list[PhaseProgress]) -> list[dict[str, str]]:
    """The lessons of the phases worked on, as their reports say them: rendered with the phase's latest
    run's values (`{{ image.model }}` named, never printed as a template), a contradicted claim flagged.
    A phase nobody started has taught nothing yet: its authored lessons are not gathered."""
    from .reports.authored import AuthoredText, authored_context
    from .reports.authored import lessons as authored_lessons
    from .reports.views import step_results

    lessons: list[dict[str, str]] = []
    for phase in phases:
        if not phase.has_runbook or phase.state == "not_started":
            continue
        try:
            loaded = ws.load_runbook(phase.id)
        except RunbookError:  # a runbook that does not load has no lessons to gather; `runbook validate` says why
            loaded = None
        if loaded is None or not loaded.runbook.report.lessons:
            continue
        # a run id as logged (hand-edited lines included): a file name, never a path out of reports/runs/
        named = phase.run_id if phase.run_id and Path(phase.run_id).name == phase.run_id else None
        path = ws.reports_dir / "runs" / phase.id / f"{named}.jsonl" if named else None
        record = read_record(path) if path is not None and path.is_file() else None
        views = step_results(loaded, record) if record is not None else []
        text = AuthoredText(loaded, authored_context(loaded, record, views))
        for lesson in authored_lessons(text, loaded.runbook):
            said = " ".join((lesson["text"] or "").split())
            claim = lesson["claim"]
            if claim is not None and claim["status"] == "contradicted":
                said += f" ({claim['note']})"
            lessons.append({"phase": phase.id, "text": said})
    return lessons


def _errors(lines: list[Any]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Failures later resolved, and failures (or unknown endings) that are each phase's latest word."""
    resolved: list[dict[str, str]] = []
    open_errors: dict[str, dict[str, str]] = {}
    for line in sorted(lines, key=lambda item: (item.timestamp, item.line)):
        if line.action == "start":
            continue
        if line.succeeded:
            if line.phase in open_errors:
                error = open_errors.pop(line.phase)
                resolved.append({**error, "resolved_at": iso(line.timestamp)})
        else:
            open_errors[line.phase] = {"phase": line.phase, "error": line.description or (line.status or "failed"), "at": iso(line.timestamp)}
    return resolved, list(open_errors.values())


def build_checkpoint(ws: Workspace, *, now: datetime | None = None) -> dict[str, Any]:
    """The checkpoint's facts (plain JSON data), compared with the previous checkpoint file if any."""
    now = now or utc_now()
    lines, warnings = read_log(ws.timestamp_log)
    groups = compute_progress(ws, log=(lines, warnings))
    phases = [phase for group in groups for phase in group.phases]
    numbers, files = _records_facts(ws)
    resolved_errors, remaining_errors = _errors(lines)
    first = min((line.timestamp for line in lines), default=None)
    elapsed = (now - first).total_seconds() if first is not None else 0.0
    cells_fixed = sorted({str(c) for p in phases if p.state == "resolved" for c in p.cells_fixed}, key=_cell_key)
    durations = [p.duration_s for p in phases if p.state == "resolved" and p.duration_s is not None]
    pending = [p for p in phases if p.pending]
    estimate: dict[str, Any]
    if durations and pending:
        mean = sum(durations) / len(durations)
        estimate = {
            "seconds": mean * len(pending),
            "method": (
                f"mean duration of the {len(durations)} resolved phase{'s' if len(durations) != 1 else ''} with a known "
                f"duration ({format_duration(mean)}) x {len(pending)} pending phase{'s' if len(pending) != 1 else ''}"
            ),
        }
    elif pending:
        estimate = {"seconds": None, "method": "no resolved phase has a known duration yet, so there is nothing to estimate from"}
    else:
        estimate = {"seconds": 0.0, "method": "every planned phase is resolved"}
    data: dict[str, Any] = {
        "time": iso(now),
        "project": ws.config.project,
        "groups": [_group_facts(group) for group in groups],
        "progress": {"resolved": sum(g.resolved for g in groups), "total": sum(g.total for g in groups)},
        "cells_fixed": cells_fixed,
        "elapsed_s": elapsed,
        "phases": [
            {
                "id": p.id,
                "title": p.title,
                "state": p.state,
                "label": p.label,
                "duration_s": p.duration_s,
                "summary": _summary(p),
                "cells_fixed": [str(c) for c in p.cells_fixed],
            }
            for p in phases
            if p.state != "not_started"
        ],
        "renumbered": [{"id": cell_id, "now": seen[-1], "was": seen[-2]} for cell_id, seen in sorted(numbers.items()) if len(seen) > 1],
        "pending": [
            {
                "id": p.id,
                "title": p.title,
                "state": p.state,
                "planned_cells": [str(c) for c in p.planned_cells],
                "known_issue": p.description if p.state in ("failed", "unknown") else None,
            }
            for p in pending
        ],
        "errors_resolved": resolved_errors,
        "errors_remaining": remaining_errors,
        "estimate_remaining": estimate,
        "files_modified": files,
        "lessons": _lessons(ws, phases),
        "next_actions": _next_actions(pending),
        "log_warnings": len(warnings),
    }
    previous = _checkpoint_files(ws)
    data["previous"] = _compare(_read_previous(previous[-1]), data, previous[-1].stem) if previous else None
    return data


def _read_previous(path: Path) -> dict[str, Any]:
    """The previous checkpoint's facts; a file that is not one (hand-edited, torn) is a located error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _unreadable(path, f"not JSON ({exc.msg})", exc.lineno, exc.colno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, f"unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise _unreadable(path, f"a JSON {type(data).__name__}, not the object a checkpoint writes", 1, 1)
    progress = data.get("progress")
    counts = progress if isinstance(progress, dict) else {}
    numbers = [counts.get("resolved"), counts.get("total"), data.get("elapsed_s", 0.0)]
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers) or not isinstance(
        data.get("cells_fixed", []), list
    ) or not isinstance(data.get("phases", []), list) or not all(isinstance(p, dict) for p in data.get("phases", [])):
        raise _unreadable(path, "missing the facts a checkpoint writes (progress.resolved, progress.total, elapsed_s, cells_fixed, phases)", 1, 1)
    return data


def _unreadable(path: Path, what: str, line: int | None = None, column: int | None = None) -> InputError:
    return InputError(
        f"the previous checkpoint is {what}",
        location=Location(str(path), line, column),
        hint=(
            f"restore it (`git checkout -- {path}` if it is committed), or delete it and {path.with_suffix('.md').name}: "
            "the new checkpoint then compares with the one before it"
        ),
    )


def _summary(phase: PhaseProgress) -> str:
    """The phase's logged message in its own words (without `Phase 1.5 - Title: `)."""
    text = (phase.description or "").strip()
    for prefix in (f"Phase {phase.id} - {phase.title}: ", f"Phase {phase.id}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text in ("resolved", "run started") and phase.cells_fixed:
        return f"resolved by a run that fixed cells {', '.join(str(c) for c in phase.cells_fixed)}"
    return text


def _cell_key(cell: str) -> tuple[int, str]:
    return (int(cell), "") if cell.isdigit() else (1 << 30, cell)


def _group_facts(group: GroupProgress) -> dict[str, Any]:
    return {"group": group.group, "title": group.title, "resolved": group.resolved, "total": group.total, "percent": round(group.percent, 1)}


def _next_actions(pending: list[PhaseProgress]) -> list[str]:
    actions = []
    for phase in pending[:3]:
        if phase.state in ("failed", "unknown"):
            actions.append(f"Phase {phase.id}: fix what stopped it ({phase.description or phase.label}), then `runbook run phase-{phase.id}`")
        elif phase.state == "investigated":
            actions.append(f"Phase {phase.id}: apply the fixes the investigation found: `runbook run phase-{phase.id}`")
        elif phase.has_runbook:
            actions.append(f"Phase {phase.id}: `runbook run phase-{phase.id}`")
        else:
            cells = f" (cells {', '.join(str(c) for c in phase.planned_cells)})" if phase.planned_cells else ""
            actions.append(f"Phase {phase.id} - {phase.title}{cells}: write its runbook with `runbook new {phase.id}`")
    return actions


def _compare(before: dict[str, Any], now: dict[str, Any], name: str) -> dict[str, Any]:
    def percent(data: dict[str, Any]) -> float:
        total = data["progress"]["total"]
        return 100.0 * data["progress"]["resolved"] / total if total else 0.0

    was_cells, now_cells = len(before.get("cells_fixed", [])), len(now["cells_fixed"])
    return {
        "checkpoint": name,
        "time": before.get("time"),
        "progress": {"was": percent(before), "now": percent(now), "delta": percent(now) - percent(before)},
        "cells_fixed": {"was": was_cells, "now": now_cells, "delta": now_cells - was_cells},
        "elapsed_s": {"was": before.get("elapsed_s", 0.0), "now": now["elapsed_s"], "delta": now["elapsed_s"] - before.get("elapsed_s", 0.0)},
        "newly_resolved": [
            p["id"] for p in now["phases"] if p["state"] == "resolved"
            and not any(q["id"] == p["id"] and q["state"] == "resolved" for q in before.get("phases", []))
        ],
    }


def _signed(value: float, text: str) -> str:
    return ("+" if value > 0 else "") + text if value >= 0 else text


def render_checkpoint(data: dict[str, Any]) -> str:
    """The checkpoint as markdown, in the shape of a hand-written status update."""
    total = data["progress"]["total"]
    percent = format_percent(100.0 * data["progress"]["resolved"] / total if total else 0.0)
    moment = data["time"][:16].replace("T", " ")
    out = [f"# Status Update - {percent}% ({moment} UTC)\n", f"**Time**: {data['time']}  ", f"**Project**: {_text(data['project'])}\n"]
    for group in data["groups"]:
        title = f" - {group['title']}" if group["title"] else ""
        out.append(f"**Phase {group['group']}{title}**: {format_percent(group['percent'])}% ({group['resolved']}/{group['total']} subphases complete)  ")
    out.append("")
    prev = data["previous"]
    out.append("## Since the Previous Checkpoint\n")
    if prev is None:
        out.append("This is the first checkpoint: nothing to compare with yet.\n")
    else:
        p, c, e = prev["progress"], prev["cells_fixed"], prev["elapsed_s"]
        out.append(f"Compared with checkpoint `{prev['checkpoint']}` ({prev['time']}).\n")
        out.append("| | Was | Now | Delta |\n|---|---|---|---|")
        out.append(f"| Progress | {format_percent(p['was'])}% | {format_percent(p['now'])}% | {_signed(p['delta'], format_percent(p['delta']))} points |")
        out.append(f"| Cells fixed | {c['was']} | {c['now']} | {_signed(c['delta'], str(c['delta']))} |")
        out.append(f"| Time elapsed | {format_duration(e['was'])} | {format_duration(e['now'])} | +{format_duration(e['delta'])} |\n")
        if prev["newly_resolved"]:
            out.append(f"Resolved since then: {', '.join(prev['newly_resolved'])}.\n")
    out.append("## Phases\n")
    if data["phases"]:
        out.append("| Phase | Title | State | Duration | Cells fixed | Fix summary |\n|---|---|---|---|---|---|")
        for phase in data["phases"]:
            out.append(
                f"| {_cell(phase['id'])} | {_cell(phase['title'])} | {phase['label']} | {format_duration(phase['duration_s'])} | "
                f"{', '.join(phase['cells_fixed']) or '—'} | {_cell(phase['summary']) or '—'} |"
            )
        out.append("")
    else:
        out.append("No phase has been started yet.\n")
    out.append(f"**Cells fixed**: {len(data['cells_fixed'])}" + (f" ({', '.join(data['cells_fixed'])})" if data["cells_fixed"] else "") + "\n")
    if data["renumbered"]:
        out.append("**Cells renumbered**: " + ", ".join(f"{r['now']} (was {r['was']}, id `{r['id']}`)" for r in data["renumbered"]) + "\n")
    out.append("## Pending Phases\n")
    if data["pending"]:
        for phase in data["pending"]:
            cells = f" - cells {', '.join(phase['planned_cells'])}" if phase["planned_cells"] else ""
            issue = f" - known issue: {_text(phase['known_issue'])}" if phase["known_issue"] else ""
            out.append(f"- **{_text(phase['id'])}** {_text(phase['title'])} ({phase['state'].replace('_', ' ')}){cells}{issue}")
        out.append("")
    else:
        out.append("None: every planned phase is resolved.\n")
    out.append("## Errors\n")
    if data["errors_resolved"]:
        out.append("Resolved:\n")
        out.extend(f"- {_text(e['phase'])}: {_text(e['error'])} (at {e['at']}, resolved {e['resolved_at']})" for e in data["errors_resolved"])
        out.append("")
    out.append("Remaining:\n" if data["errors_remaining"] else "Remaining: none.\n")
    out.extend(f"- {_text(e['phase'])}: {_text(e['error'])} (at {e['at']})" for e in data["errors_remaining"])
    if data["errors_remaining"]:
        out.append("")
    estimate = data["estimate_remaining"]
    out.append("## Time\n")
    out.append(f"**Elapsed**: {format_duration(data['elapsed_s'])} (since the first timestamp-log line)  ")
    shown = format_duration(estimate["seconds"]) if estimate["seconds"] is not None else "unknown"
    out.append(f"**Estimated remaining**: {shown} ({estimate['method']})\n")
    if data["files_modified"]:
        out.append("## Files Modified\n")
        out.extend(f"- `{path}`" for path in data["files_modified"])
        out.append("")
    if data["lessons"]:
        out.append("## Lessons Learned\n")
        out.extend(f"{i}. {_text(lesson['text'])} (phase {lesson['phase']})" for i, lesson in enumerate(data["lessons"], start=1))
        out.append("")
    out.append("## Next Actions\n")
    out.extend(f"{i}. {_text(action)}" for i, action in enumerate(data["next_actions"], start=1))
    if not data["next_actions"]:
        out.append("Nothing left in the plan.")
    return "\n".join(out).rstrip("\n") + "\n"


def _text(text: Any) -> str:
    """Logged words (messages, titles) as one markdown line: control bytes shown, no live HTML tag."""
    return escape_html(" ".join(clean_text(text).split()))


def _cell(text: Any) -> str:
    return _text(text).replace("|", "\\|")


def write_checkpoint(ws: Workspace, *, now: datetime | None = None) -> tuple[Path, dict[str, Any]]:
    """Write reports/status/<timestamp>.md and .json; return the markdown path and the facts."""
    data = build_checkpoint(ws, now=now)
    stamp = data["time"].replace("-", "").replace(":", "").replace(".", "")
    base = ws.reports_dir / STATUS_DIR / stamp
    page = render_checkpoint(data)  # rendered before anything is written: never a .json without its page
    write_if_changed(base.with_suffix(".json"), json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    write_if_changed(base.with_suffix(".md"), page)
    return base.with_suffix(".md"), data
