"""The status screen: how far every phase group is, and one phase with its runs, as text or JSON.

This module owns how `runbook status` looks; every number comes from `progress.compute_progress`.
The overview reads only the timestamp log and directory listings (never a run record), so it stays
fast on a workspace with hundreds of phases and thousands of runs; the one-phase view also reads
that phase's run records. Run summaries (`phase_runs`) are shared with the docs site.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .phase_ids import normalise_phase
from .progress import GroupProgress, PhaseProgress, compute_progress
from .text import duration_text, utc_short
from .text import paint as _paint
from .timestamp_log import LogLine, iso, read_log

if TYPE_CHECKING:
    from .progress import Workspace as PlanWorkspace
    from .record import RunRecord
    from .workspace import Workspace

BAR_MAX_WIDTH = 40
STATE_COLOURS = {"resolved": "32", "in_progress": "33", "failed": "31", "unknown": "35", "investigated": "36", "not_started": "90"}
RUN_COLOURS = {"success": "32", "failed": "31", "interrupted": "35", "incomplete": "33"}
STEP_COUNTS = ("ok", "changed", "failed", "error", "skipped")


# ---------------------------------------------------------------- what the screens show


@dataclass
class WorkspaceStatus:
    """Every phase group's progress, and the timestamp-log lines that could not be read."""

    project: str
    groups: list[GroupProgress]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "groups": [group.to_dict() for group in self.groups],
            "warnings": list(self.warnings),
        }


@dataclass
class RunSummary:
    """One run of a phase, summarised from its run record."""

    run_id: str
    phase: str
    status: str
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    steps: dict[str, int]
    record: str
    target: str | None = None
    failed_step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "phase": self.phase,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "steps": dict(self.steps),
            "record": self.record,
            "target": self.target,
            "failed_step": self.failed_step,
        }


@dataclass
class PhaseStatus:
    """One phase: its progress, its group's, its runs and its lines in the timestamp log."""

    phase: PhaseProgress
    group: GroupProgress
    runs: list[RunSummary]
    log: list[LogLine]
    runbook: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.to_dict(),
            "group": {key: value for key, value in self.group.to_dict().items() if key != "phases"},
            "runbook": self.runbook,
            "runs": [run.to_dict() for run in self.runs],
            "log": [log_line_dict(line) for line in self.log],
            "warnings": list(self.warnings),
        }


def workspace_status(workspace: PlanWorkspace) -> WorkspaceStatus:
    """Progress of every phase group, from the status index (history_index) and no run record."""
    from .history_index import folded_states

    states, warnings = folded_states(workspace)
    groups = compute_progress(workspace, states=states, remember_records=True)
    return WorkspaceStatus(project=workspace.config.project, groups=groups, warnings=warnings)


def phase_status(workspace: Workspace, phase: str) -> PhaseStatus:
    """One phase with its runs (from its run records); an unknown phase says which ones exist."""
    lines, warnings = read_log(workspace.timestamp_log)
    groups = compute_progress(workspace, log=(lines, warnings))
    phase_id = normalise_phase(phase)
    for group in groups:
        for item in group.phases:
            if item.id == phase_id:
                runs, run_warnings = phase_runs(workspace, phase_id)
                runbook = workspace.runbook_files().get(phase_id)
                return PhaseStatus(
                    phase=item,
                    group=group,
                    runs=runs,
                    log=[line for line in lines if line.phase == phase_id],
                    runbook=_relative(runbook, workspace.root) if runbook else None,
                    warnings=[*warnings, *run_warnings],
                )
    from .errors import UnknownPhase, did_you_mean

    known = [item.id for group in groups for item in group.phases]
    hint = did_you_mean(phase_id, known, quote=False)
    raise UnknownPhase(
        f"no phase {phase!r} in the plan or the timestamp log",
        hint=f"{hint}known phases: {', '.join(known) or 'none'}",
    )


def phase_runs(workspace: Workspace, phase: str) -> tuple[list[RunSummary], list[str]]:
    """Summaries of a phase's run records, oldest first, and the warnings reading them gave."""
    from .record import read_record, record_paths

    runs: list[RunSummary] = []
    warnings: list[str] = []
    for path in record_paths(workspace.reports_dir, phase):
        record = read_record(path)
        warnings.extend(record.warnings)
        runs.append(run_summary(record, workspace.root))
    return runs, warnings


def run_summary(record: RunRecord, root: Path) -> RunSummary:
    """Status, times and step counts of one run record (a record cut short counts what it has)."""
    started = record.run_started
    finished = record.run_finished
    steps = dict.fromkeys(STEP_COUNTS, 0)
    if finished is not None and finished.counts is not None:
        steps.update(finished.counts)
    else:
        for event in record.step_outcomes():
            if event.stage != "reproduce":
                steps[event.status] = steps.get(event.status, 0) + 1
    return RunSummary(
        run_id=record.run_id,
        phase=record.phase,
        status=record.status,
        started_at=started.time if started is not None else None,
        finished_at=finished.time if finished is not None else None,
        duration_s=float(finished.duration_s) if finished is not None and finished.duration_s is not None else None,
        steps=steps,
        record=_relative(record.path, root),
        target=started.target if started is not None else None,
        failed_step=finished.failed_step if finished is not None else None,
    )


def log_line_dict(line: LogLine) -> dict[str, Any]:
    """A timestamp-log line as JSON, unknown keys included."""
    entry: dict[str, Any] = {
        "line": line.line,
        "timestamp": iso(line.timestamp),
        "phase": line.phase,
        "action": line.action,
        "description": line.description,
        "status": line.status,
        "cells_fixed": list(line.cells_fixed),
        "run_id": line.run_id,
    }
    entry.update(line.extra)
    return entry


# ---------------------------------------------------------------- shared formatting


def progress_bar(resolved: int, total: int, *, width: int | None = None) -> str:
    """`[#####---]`: one mark per phase, scaled down to 40 marks for big groups."""
    size = width if width is not None else max(1, min(total, BAR_MAX_WIDTH))
    filled = round(size * resolved / total) if total else 0
    if 0 < resolved < total:
        filled = min(max(filled, 1), size - 1)  # partly done never looks empty or complete
    return "[" + "#" * filled + "-" * (size - filled) + "]"


# The reports' and the site's texts (runbook.text), so the screen and the pages agree:
# durations "6.0 s", "1 minute 15 s" (unknown "—"); times `2025-11-14 04:35:00Z` (unknown "-").
format_duration = duration_text
format_moment = utc_short


def format_cells(cells: list[Any] | tuple[Any, ...]) -> str:
    shown = [str(cell) for cell in cells if cell not in (None, "", (), [])]
    return ", ".join(shown) if shown else "-"


def state_text(phase: PhaseProgress) -> str:
    """RESOLVED, IN PROGRESS, FAILED, NOT STARTED — and `FAILED (regressed)`."""
    return f"{phase.label} (regressed)" if phase.regressed else phase.label


def last_run(phase: PhaseProgress) -> datetime | None:
    return phase.finished_at or phase.started_at


def _table(header: list[str], rows: list[list[str]], colours: list[str | None], colour: bool) -> list[str]:
    """Left-aligned columns; a row's colour code applies to its third column (the state)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  " + "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    for row, code in zip(rows, colours, strict=True):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        cells[2] = _paint(cells[2], code, colour)
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


# ---------------------------------------------------------------- text screens


def render_status(status: WorkspaceStatus, *, colour: bool = False) -> str:
    """The overview: per group a bar with "62.5% (5/8 subphases complete)", then one row per phase."""
    out: list[str] = []
    for group in status.groups:
        if out:
            out.append("")
        title = f" - {group.title}" if group.title else ""
        out.append(_paint(f"Phase {group.group}{title}", "1", colour))
        bar = progress_bar(group.resolved, group.total)
        out.append(
            f"{_paint(bar, '32' if group.resolved == group.total and group.total else None, colour)} "
            f"{group.percent_text}% ({group.resolved}/{group.total} subphases complete)"
        )
        header = ["PHASE", "TITLE", "STATE", "LAST RUN", "DURATION", "CELLS FIXED", "REPORT"]
        rows = [
            [
                phase.id,
                phase.title,
                state_text(phase),
                format_moment(last_run(phase)),
                format_duration(phase.duration_s),
                format_cells(phase.cells_fixed),
                phase.report or "-",
            ]
            for phase in group.phases
        ]
        out.extend(_table(header, rows, [STATE_COLOURS[p.state] for p in group.phases], colour))
        planned = [f"{p.id}: {format_cells(p.planned_cells)}" for p in group.phases if p.pending and p.planned_cells]
        if planned:
            out.append(f"  Planned cells of pending phases: {'; '.join(planned)}")
    if not status.groups:
        out.append("no phases: add a plan to runbook.yaml or a runbook under runbooks/")
    return "\n".join(out) + "\n"


def render_phase(status: PhaseStatus, *, colour: bool = False) -> str:
    """One phase: its state and facts, then one row per run, then its timestamp-log lines."""
    phase = status.phase
    run_note = f" (run {phase.run_id})" if phase.run_id else ""
    facts = [
        ("state", _paint(state_text(phase), STATE_COLOURS[phase.state], colour)),
        ("last run", format_moment(last_run(phase)) + run_note),
        ("duration", format_duration(phase.duration_s)),
        ("cells fixed", format_cells(phase.cells_fixed)),
        ("report", phase.report or "-"),
        ("runbook", status.runbook or "-"),
        ("progress", status.group.line),
    ]
    out = [_paint(f"Phase {phase.id} - {phase.title}", "1", colour)]
    out.extend(f"  {name:<12} {value}" for name, value in facts)
    out.append("")
    if status.runs:
        out.append(f"Runs ({len(status.runs)}):")
        header = ["RUN ID", "TARGET", "STATUS", "STARTED", "DURATION", *(name.upper() for name in STEP_COUNTS)]
        rows = [
            [
                run.run_id,
                run.target or "-",
                run.status,
                format_moment(run.started_at),
                format_duration(run.duration_s),
                *(str(run.steps.get(name, 0)) for name in STEP_COUNTS),
            ]
            for run in status.runs
        ]
        out.extend(_table(header, rows, [RUN_COLOURS.get(run.status) for run in status.runs], colour))
    else:
        out.append("Runs: none recorded (phases done by hand appear in the timestamp log only)")
    out.append("")
    if status.log:
        out.append(f"Timestamp log ({len(status.log)} lines):")
        for line in status.log:
            state = f" [{line.status}]" if line.status else ""
            out.append(f"  {format_moment(line.timestamp)}  {line.action:<8} {line.description}{state}")
    else:
        out.append("Timestamp log: no lines for this phase")
    return "\n".join(out) + "\n"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
