"""What a fleet run did: the status view, the markdown report and its SVG chart, from the fleet record.

Everything here reads the fleet record (and nothing else), so `runbook fleet status` works while a
fleet runs and after its coordinator was killed. The report is `reports/fleet/<phase>/<id>.md` next
to its record, with `<id>.svg`: one bar per member, its length the member run's duration, its colour
the outcome. Output is deterministic: the same record gives byte-identical files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..atomic import write_if_changed
from .record import FleetRecord

COLOURS = {
    "success": "#2e7d32",
    "failed": "#c62828",
    "error": "#6a1b9a",
    "interrupted": "#ef6c00",
    "not_started": "#9e9e9e",
    "running": "#1565c0",
    "pending": "#bdbdbd",
}
ORDER = ("success", "failed", "error", "interrupted", "running", "not_started", "pending")


@dataclass
class FleetView:
    """A fleet run as rows and totals (also its `--json` form)."""

    fleet_run_id: str
    fleet: str
    phase: str
    status: str
    started_at: str | None
    duration_s: float | None
    engine: str | None
    record: str
    members: list[dict[str, Any]]
    warnings: list[str]
    emulator: dict[str, Any] | None = None  # what the fleet's shared emulator served (its emulator_stopped event)

    @property
    def totals(self) -> dict[str, int]:
        totals = {"members": len(self.members)}
        for status in ORDER:
            count = sum(1 for m in self.members if m["status"] == status)
            if count or status in ("success", "failed", "error", "not_started"):
                totals[status] = count
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleet_run_id": self.fleet_run_id,
            "fleet": self.fleet,
            "phase": self.phase,
            "status": self.status,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "engine": self.engine,
            "record": self.record,
            "totals": self.totals,
            "members": self.members,
            "warnings": self.warnings,
            "emulator": self.emulator,
        }


def fleet_view(record: FleetRecord) -> FleetView:
    started = record.started
    finished = record.finished
    rows = []
    halted = finished is not None
    for name, state in record.members().items():
        done = state.finished or {}
        status = state.status
        if status == "running" and halted:
            status = "interrupted"  # started, never finished, and the coordinator is done: lost
        rows.append(
            {
                "member": name,
                "status": status,
                "mode": done.get("mode"),
                "duration_s": done.get("duration_s"),
                "wall_s": done.get("wall_s"),
                "cells_changed": done.get("cells_changed", []),
                "changed_steps": done.get("changed_steps", 0),
                "failed_step": done.get("failed_step"),
                "error": done.get("error"),
                "run_id": done.get("run_id"),
                "record": done.get("record"),
                "report": done.get("report"),
                "commit": done.get("commit"),
                "attempts": done.get("attempts"),
                "note": state.skipped,
            }
        )
    return FleetView(
        fleet_run_id=record.fleet_run_id,
        fleet=str(started.get("fleet", "")),
        phase=record.phase,
        status=record.status,
        started_at=started.get("time"),
        duration_s=finished.get("duration_s") if finished else None,
        engine=started.get("engine"),
        record=str(record.path),
        members=rows,
        warnings=list(record.warnings),
        emulator=next(({k: v for k, v in e.items() if k not in ("event", "time")}
                       for e in reversed(record.events) if e["event"] == "emulator_stopped"), None),
    )


def _seconds(value: Any) -> str:
    return f"{float(value):.1f}s" if isinstance(value, int | float) else "-"


def render_status(view: FleetView) -> str:
    """The `runbook fleet status` screen: one line per member, then the totals."""
    lines = [f"fleet {view.fleet} · phase {view.phase} · run {view.fleet_run_id} · {view.status}"]
    width = max((len(m["member"]) for m in view.members), default=6)
    for member in view.members:
        detail = ""
        if member["failed_step"]:
            detail = f"step {member['failed_step']}: {member['error'] or ''}"
        elif member["note"] and member["status"] == "not_started":
            detail = member["note"]
        elif member["cells_changed"]:
            detail = "cells " + ", ".join(str(c) for c in member["cells_changed"])
        lines.append(f"  {member['member']:<{width}}  {member['status']:<11}  {_seconds(member['duration_s']):>7}  {detail}".rstrip()[:200])
    lines.append("  " + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in view.totals.items()))
    return "\n".join(lines) + "\n"


def _link(target: str | None, base: Path, label: str) -> str:
    if not target:
        return ""
    try:
        relative = os.path.relpath(target, base)
    except ValueError:
        relative = target
    return f"[{label}]({relative.replace(os.sep, '/')})"


def render_markdown(view: FleetView, base: Path, chart: str | None, *, links: bool = True,
                    cell: Callable[[str], str] | None = None) -> str:
    """The fleet report; links are relative to `base` (the folder the report is written to).

    `chart` is the chart's markdown (an image link, or an inline SVG block on a site page); the site
    passes `links=False` (member records live outside its pages) and its own `cell` escaping.
    """
    escaped = cell or (lambda text: text.replace("|", "\\|").replace("\n", " "))
    totals = view.totals
    out = [
        f"# Fleet {view.fleet}: phase {view.phase}",
        "",
        f"Fleet run `{view.fleet_run_id}` · engine {view.engine or '-'} · started {view.started_at or '-'} · "
        f"{_seconds(view.duration_s) if view.duration_s is not None else 'not finished'} · **{view.status}**",
        "",
        "**Totals:** " + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in totals.items()),
        "",
    ]
    if view.emulator is not None:
        out += [emulator_line(view.emulator), ""]
    if chart:
        out += [chart, ""]
    out += [
        f"| member | status | duration | cells changed | failing step | error | {'links' if links else 'run'} |",
        "|---|---|---:|---|---|---|---|",
    ]
    for m in view.members:
        if links:
            last = " ".join(filter(None, (_link(m["report"], base, "report"), _link(m["record"], base, "record"))))
        else:
            last = f"`{m['run_id']}`" if m["run_id"] else ""
        error = escaped((m["error"] or (m["note"] if m["status"] == "not_started" else "") or "")[:300])
        cells = ", ".join(str(c) for c in m["cells_changed"]) or "-"
        out.append(
            f"| {escaped(m['member'])} | {m['status'].replace('_', ' ')} | {_seconds(m['duration_s'])} | {cells} | "
            f"{escaped(m['failed_step'] or '-')} | {error or '-'} | {last or '-'} |"
        )
    if view.warnings:
        out += ["", "Warnings:", ""] + [f"- {escaped(w)}" for w in view.warnings]
    return "\n".join(out) + "\n"


def emulator_line(stats: dict[str, Any]) -> str:
    """One sentence on the shared emulator: requests served and which subscriptions ARM throttled."""
    throttled = sorted((sub, c["throttled"]) for sub, c in stats.get("subscriptions", {}).items() if c.get("throttled"))
    said = ", ".join(f"{n} in subscription `{sub}`" for sub, n in throttled) or "none"
    return (f"**Emulator:** one process served {stats.get('requests', 0)} requests "
            f"({stats.get('arm_requests', 0)} ARM, {stats.get('gateway_requests', 0)} gateway); ARM throttled (429): {said}")


def _words(status: str) -> str:
    """A status as the chart shows it, in the legend's words (`not_started` -> `not started`)."""
    return escape(status.replace("_", " "))


def render_svg(view: FleetView) -> str:
    """A horizontal bar per member (length: duration, colour: outcome) and a legend; no script."""
    rows = view.members
    label_w, bar_w, row_h, top = 150, 420, 18, 34
    longest = max((float(m["duration_s"] or 0) for m in rows), default=0.0) or 1.0
    height = top + row_h * len(rows) + 40
    width = label_w + bar_w + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="11" role="img">',
        f"<title>Fleet {escape(view.fleet)} phase {escape(view.phase)}: member outcomes and durations</title>",
        f'<text x="8" y="18" font-size="13" font-weight="bold">{escape(view.fleet)} · phase {escape(view.phase)} · '
        f"{escape(view.fleet_run_id)}</text>",
    ]
    for i, m in enumerate(rows):
        y = top + i * row_h
        seconds = float(m["duration_s"] or 0)
        length = max(2.0, bar_w * seconds / longest) if m["duration_s"] is not None else 2.0
        colour = COLOURS.get(m["status"], "#000000")
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(m["member"])}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{length:.1f}" height="{row_h - 5}" fill="{colour}">'
            f"<title>{escape(m['member'])}: {_words(m['status'])}, {_seconds(m['duration_s'])}</title></rect>"
        )
        parts.append(f'<text x="{label_w + length + 4:.1f}" y="{y + 12}">{_seconds(m["duration_s"]) if m["duration_s"] is not None else _words(m["status"])}</text>')
    x = 8
    legend_y = top + row_h * len(rows) + 20
    for status, count in view.totals.items():
        if status == "members":
            continue
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{COLOURS.get(status, "#000")}"/>')
        text = f"{_words(status)} {count}"
        parts.append(f'<text x="{x + 14}" y="{legend_y}">{text}</text>')
        x += 24 + 7 * len(text)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_report(record: FleetRecord) -> tuple[Path, Path]:
    """Write `<id>.md` and `<id>.svg` next to the fleet record; returns both paths."""
    view = fleet_view(record)
    md_path = record.path.with_suffix(".md")
    svg_path = record.path.with_suffix(".svg")
    write_if_changed(svg_path, render_svg(view))
    write_if_changed(md_path, render_markdown(view, md_path.parent, f"![Member outcomes and durations]({svg_path.name})"))
    return md_path, svg_path


def event_line(event: dict[str, Any]) -> str | None:
    """One console line for a fleet event (None: nothing worth a line)."""
    kind = event["event"]
    clock = str(event.get("time", ""))[11:23]
    if kind == "fleet_started":
        return f"{clock}  fleet {event['fleet']}: phase {event['phase']} on {len(event['members'])} members (run {event['fleet_run_id']})"
    if kind == "fleet_resumed":
        return f"{clock}  resuming fleet run {event['fleet_run_id']} ({len(event['members'])} members)"
    if kind == "member_started":
        return f"{clock}  {event['member']:<16} {'resumed' if event['mode'] == 'resume' else 'started'}"
    if kind == "member_finished":
        detail = f"step {event['failed_step']}: {event.get('error') or ''}" if event.get("failed_step") else (event.get("error") or "")
        if event["status"] == "success" and event.get("cells_changed"):
            detail = "cells " + ", ".join(str(c) for c in event["cells_changed"])
        return f"{clock}  {event['member']:<16} {event['status']:<11} {_seconds(event.get('duration_s')):>7}  {detail}".rstrip()[:240]
    if kind == "member_skipped":
        return f"{clock}  {event['member']:<16} skipped     {event['reason']}"
    if kind == "fleet_halted":
        return f"{clock}  HALTED: {event['reason']}"
    if kind == "fleet_interrupted":
        running = ", ".join(event["running"]) or "none"
        return f"{clock}  INTERRUPTED ({event['signal']}): no new member starts; waiting for the running ones ({running})"
    if kind == "emulator_waiting":
        return (f"{clock}  waiting for the killed run's emulator (pid {event['pid']}) to finish serving its orphaned "
                "members, so this one can listen where it did (at most about 2 minutes)")
    if kind == "emulator_started":
        moved = (f" (warning: the interrupted run's address {event['moved_from']} is taken: restored outputs that hold it "
                 "will not reach this one)") if event.get("moved_from") else ""
        return f"{clock}  emulator serving {event['estate']}: ARM {event['arm_url']}, gateway {event['gateway_url']}{moved}"
    if kind == "emulator_stopped":
        throttled = {sub: c["throttled"] for sub, c in event["subscriptions"].items() if c.get("throttled")}
        detail = ", ".join(f"{sub} {n}" for sub, n in sorted(throttled.items())) or "none"
        return f"{clock}  emulator served {event['requests']} requests ({event['arm_requests']} ARM); throttled (429): {detail}"
    if kind == "fleet_finished":
        totals = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in event["totals"].items())
        return f"{clock}  fleet {event['status'].upper()} in {_seconds(event['duration_s'])}: {totals}"
    return None
