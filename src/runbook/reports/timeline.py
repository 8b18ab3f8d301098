"""TIMELINE.md: every attempt at every phase, from the timestamp log, grouped by phase group.

Each `start` line is paired with its `complete`/`fail` line (the same run, or the next line of that
phase when either was logged by hand); progress lines and phases not started close each group. The
same runs are drawn as a static SVG timeline (`runbook.charts`) in reports/charts/timeline.svg,
which TIMELINE.md links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..atomic import write_if_changed
from ..charts import Bar, timeline_svg
from ..progress import compute_progress, logged_duration
from ..record import LogLine, read_log
from ..text import clean_text, duration_text, utc_text
from ..workspace import Workspace
from .environment import TIMELINE_TEMPLATE, render_template
from .markdown import escape_html
from .paths import TIMELINE_NAME, relative_path

__all__ = ["TIMELINE_CHART", "build_timeline_context", "own_words", "render_timeline", "write_timeline"]

TIMELINE_CHART = "charts/timeline.svg"  # under reports/, linked from TIMELINE.md


def own_words(line: LogLine, title: str) -> str:
    """A log line's description without the `Phase 1.5 - Title: ` prefix runs write."""
    text = line.description.strip()
    for prefix in (f"Phase {line.phase} - {title}: ", f"Phase {line.phase}: "):
        if title and text.startswith(prefix):
            return text[len(prefix) :].strip()
    match = re.match(rf"Phase {re.escape(line.phase)} - [^:]*: (?P<rest>.*)$", text, re.DOTALL)
    return match.group("rest").strip() if match and line.run_id else text


def _by_hand(line: LogLine) -> bool:
    return line.extra.get("source") == "manual" or not line.run_id


def _attempts(lines: Sequence[LogLine], titles: Mapping[str, str]) -> list[dict[str, Any]]:
    """Pair each phase's start lines with their complete/fail line (same run, or the next one)."""
    attempts: list[dict[str, Any]] = []
    open_by_phase: dict[str, dict[str, Any]] = {}
    for line in sorted(lines, key=lambda item: (item.timestamp, item.line)):
        current = open_by_phase.get(line.phase)
        if line.action == "start":
            if current is not None:
                current["result"] = "no end logged"
                current["icon"] = "⚠️"
            attempt: dict[str, Any] = {
                "phase": line.phase,
                "start": line,
                "end": None,
                "result": "in progress",
                "icon": "⏳",
            }
            attempts.append(attempt)
            open_by_phase[line.phase] = attempt
            continue
        if current is not None and (
            current["start"].run_id == line.run_id or not line.run_id or not current["start"].run_id
        ):
            attempt = current
            open_by_phase.pop(line.phase)
        else:
            attempt = {"phase": line.phase, "start": None, "end": None}
            attempts.append(attempt)
        attempt["end"] = line
        if line.outcome == "unknown":
            attempt["result"] = f"unknown status “{line.status}”"
            attempt["icon"] = "❔"
        else:
            attempt["result"] = "complete" if line.succeeded else (line.status or line.action).lower()
            attempt["icon"] = "✅" if line.succeeded else "❌"
    rows: list[dict[str, Any]] = []
    for attempt in attempts:
        start: LogLine | None = attempt["start"]
        end: LogLine | None = attempt["end"]
        duration: float | None = None
        if end is not None and logged_duration(end) is not None:
            duration = logged_duration(end)
        elif start is not None and end is not None:
            duration = (end.timestamp - start.timestamp).total_seconds()
        first = start or end
        assert first is not None
        hand = any(_by_hand(line) for line in (start, end) if line is not None)
        rows.append(
            {
                "phase": attempt["phase"],
                "started_at": utc_text(start.timestamp) if start else "—",
                "finished_at": utc_text(end.timestamp) if end else "—",
                "result": f"{attempt['icon']} {attempt['result']}",
                "duration": duration_text(duration),
                "duration_s": duration,
                # markdown as people log it (`code` stays code), but no raw HTML tag nor control byte
                "description": escape_html(clean_text(own_words(end or first, titles.get(attempt["phase"], "")))),
                "run_id": (end.run_id if end and end.run_id else None) or (start.run_id if start else None),
                "by_hand": hand,
                "bar": Bar(
                    label=attempt["phase"],
                    start=start.timestamp if start else first.timestamp,
                    end=end.timestamp if end else None,
                    outcome=("resolved" if end.succeeded else "unknown" if end.outcome == "unknown" else "failed")
                    if end
                    else "in progress",
                ),
                "sort": (first.timestamp, first.line),
            }
        )
    rows.sort(key=lambda row: row["sort"])
    for row in rows:
        del row["sort"]
    return rows


def build_timeline_context(ws: Workspace) -> dict[str, Any]:
    """groups[group, title, progress, attempts[phase,title,started_at,finished_at,result,duration,
    description,run_id,by_hand], not_started], log (workspace-relative path), skipped_lines."""
    lines, warnings = read_log(ws.timestamp_log)
    progress = compute_progress(ws, log=(lines, warnings))
    attempts = _attempts(lines, {p.id: p.title for g in progress for p in g.phases})
    groups = []
    for group in progress:
        ids = [p.id for p in group.phases]
        titles = {p.id: p.title for p in group.phases}
        mine = [dict(a, title=titles.get(a["phase"], "")) for a in attempts if a["phase"] in ids]
        label, _, value = group.line.partition(": ")
        groups.append(
            {
                "group": group.group,
                "title": group.title,
                "progress": {"line": group.line, "markdown": f"**{label}**: {value}"},
                "attempts": mine,
                "not_started": [p.id for p in group.phases if p.state == "not_started"],
            }
        )
    skipped = [w.rsplit(": skipped timestamp-log line: ", 1)[0].rsplit(":", 1)[-1] for w in warnings]
    titles = {p.id: p.title for g in progress for p in g.phases}
    bars = [replace(a["bar"], label=f"{a['phase']} {titles.get(a['phase'], '')}".strip()) for a in attempts]
    return {
        "groups": groups,
        "log": relative_path(ws, ws.timestamp_log),
        "skipped_lines": skipped,
        "chart": relative_path(ws, ws.reports_dir / TIMELINE_CHART) if bars else None,
        "bars": bars,
    }


def render_timeline(ws: Workspace, context: dict[str, Any] | None = None) -> str:
    """TIMELINE.md's text: every phase attempt with its start, end, result and duration (UTC)."""
    text = render_template(ws, TIMELINE_TEMPLATE, context or build_timeline_context(ws))
    return text if text.endswith("\n") else text + "\n"


def write_timeline(ws: Workspace) -> Path:
    """(Re)write TIMELINE.md at the workspace root from the timestamp log, and the SVG chart it links
    (reports/charts/timeline.svg: static, no script, opens from disk)."""
    context = build_timeline_context(ws)
    if context["bars"]:
        write_if_changed(ws.reports_dir / TIMELINE_CHART, timeline_svg(context["bars"]))
    path = ws.root / TIMELINE_NAME
    write_if_changed(path, render_timeline(ws, context))
    return path
