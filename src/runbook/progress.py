"""How far each phase group is: the plan crossed with the timestamp log.

This is the one function behind every progress number — the status screen, the reports' "Phase 1
Progress: 62.5% (5/8 subphases complete)" line and the docs site — so they never disagree.

A phase is `resolved` when its latest terminal line (complete/fail) is a successful `complete`;
`failed` when that line is a failure (a later failed run of a resolved phase marks it failed again,
and `regressed` says so); `in_progress` when a `start` came after its latest terminal line (or it
only has starts: a run that is going, or was killed); `unknown` when its latest terminal line carries a
status word that is neither a success nor a failure word (`record.status_outcome`; read_log warns with
file:line); `investigated` when it has no log line but its latest run record is a successful
discovery-only run (`--only discovery`: findings, no fix yet); `not_started` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .phase_ids import PHASE_ID
from .timestamp_log import LogLine, iso, read_log

if TYPE_CHECKING:  # what progress reads of a workspace (typing only: Protocol classes cost import time)
    from collections.abc import Sequence

    class PlannedPhase(Protocol):
        @property
        def id(self) -> str: ...
        @property
        def title(self) -> str: ...
        @property
        def cells(self) -> Sequence[Any]: ...

    class PlannedGroup(Protocol):
        @property
        def group(self) -> str: ...
        @property
        def title(self) -> str | None: ...
        @property
        def phases(self) -> Sequence[PlannedPhase]: ...

    class PlanConfig(Protocol):
        @property
        def project(self) -> str: ...
        @property
        def plan(self) -> Sequence[PlannedGroup]: ...

    class Workspace(Protocol):
        """What progress reads of a workspace: `workspace.Workspace`, or the status overview's
        `workspace_view.WorkspaceView` (the same values, remembered without pydantic)."""

        @property
        def root(self) -> Path: ...
        @property
        def config(self) -> PlanConfig: ...
        @property
        def reports_dir(self) -> Path: ...
        @property
        def timestamp_log(self) -> Path: ...
        def runbook_files(self) -> dict[str, Path]: ...
        def phase_title(self, phase: str) -> str: ...


State = Literal["resolved", "in_progress", "failed", "unknown", "investigated", "not_started"]
STATE_LABELS: dict[str, str] = {
    "resolved": "RESOLVED",
    "in_progress": "IN PROGRESS",
    "failed": "FAILED",
    "unknown": "UNKNOWN",
    "investigated": "INVESTIGATED",
    "not_started": "NOT STARTED",
}


@dataclass
class PhaseProgress:
    id: str
    title: str
    group: str
    state: State = "not_started"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    cells_fixed: list[Any] = field(default_factory=list)
    run_id: str | None = None
    report: str | None = None
    has_runbook: bool = False
    regressed: bool = False
    resolved_at: datetime | None = None
    runs: int = 0
    description: str | None = None
    status_word: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    planned_cells: list[Any] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.state != "resolved"

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "group": self.group,
            "state": self.state,
            "started_at": iso(self.started_at) if self.started_at else None,
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "duration_s": self.duration_s,
            "cells_fixed": self.cells_fixed,
            "run_id": self.run_id,
            "report": self.report,
            "has_runbook": self.has_runbook,
            "regressed": self.regressed,
            "resolved_at": iso(self.resolved_at) if self.resolved_at else None,
            "runs": self.runs,
            "label": self.label,
            "description": self.description,
            "status_word": self.status_word,
            "notes": self.notes,
            "planned_cells": self.planned_cells,
        }


@dataclass
class GroupProgress:
    group: str
    title: str | None
    phases: list[PhaseProgress]

    @property
    def total(self) -> int:
        return len(self.phases)

    @property
    def resolved(self) -> int:
        return sum(1 for p in self.phases if p.state == "resolved")

    @property
    def percent(self) -> float:
        return 100.0 * self.resolved / self.total if self.total else 0.0

    @property
    def percent_text(self) -> str:
        return format_percent(self.percent)

    @property
    def line(self) -> str:
        """`Phase 1 Progress: 62.5% (5/8 subphases complete)` — the seed's own wording."""
        return f"Phase {self.group} Progress: {self.percent_text}% ({self.resolved}/{self.total} subphases complete)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "title": self.title,
            "resolved": self.resolved,
            "total": self.total,
            "percent": round(self.percent, 1),
            "percent_text": self.percent_text,
            "line": self.line,
            "phases": [p.to_dict() for p in self.phases],
        }


# A logged duration past this (about a century) is not a phase's duration: a typo or a hand-edited
# overflow (`1e308`), which would overflow every date computed from it.
MAX_LOGGED_DURATION_S = 100 * 365.25 * 24 * 3600


def logged_duration(line: LogLine) -> float | None:
    """The `duration_s` a log line states, when it is a real one: a finite, non-negative number of
    seconds (a hand-edited `NaN`, `-50`, `1e308` or `"25m"` is not, and the start/complete pair's
    own times are used instead)."""
    value = line.extra.get("duration_s")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if 0 <= value <= MAX_LOGGED_DURATION_S else None  # NaN fails both comparisons


def shown_notes(line: LogLine) -> dict[str, Any]:
    """The keys people added to a log line, as pages and `status --json` show them: a value under a
    secret-looking name (`api_key`, `token`, `password`) is masked, since the log is published."""
    from .secrets import MASK, is_secret_name

    return {key: MASK if is_secret_name(key) else value for key, value in line.notes.items()}


def format_percent(value: float) -> str:
    """62.5 -> "62.5", 100.0 -> "100", 33.333 -> "33.3"."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def phase_states(lines: list[LogLine], start: dict[str, PhaseProgress] | None = None) -> dict[str, PhaseProgress]:
    """Fold timestamp-log lines (in file order, then time) into one state per phase; `start`
    continues an earlier fold (history_index), its states updated in place."""
    states: dict[str, PhaseProgress] = {} if start is None else start
    ordered = sorted(lines, key=attrgetter("timestamp", "line"))
    for line in ordered:
        phase = states.setdefault(line.phase, PhaseProgress(id=line.phase, title="", group=line.phase.split(".")[0]))
        if line.action == "start":
            phase.state = "in_progress"
            phase.started_at = line.timestamp
            phase.finished_at = None
            phase.duration_s = None
            phase.run_id = line.run_id
            phase.runs += 1
            continue
        if phase.state != "in_progress":
            # A hand-written terminal line without a start: nothing of an earlier run carries over.
            phase.runs += 1
            phase.started_at = None
            phase.duration_s = None
            phase.run_id = None
        phase.finished_at = line.timestamp
        phase.description = line.description
        phase.status_word = line.status
        phase.notes = shown_notes(line)
        phase.run_id = line.run_id or phase.run_id
        duration = logged_duration(line)
        if duration is not None:
            phase.duration_s = duration
        elif phase.started_at is not None:
            phase.duration_s = (line.timestamp - phase.started_at).total_seconds()
        if line.succeeded:
            phase.state = "resolved"
            phase.regressed = False
            phase.resolved_at = line.timestamp
            cells = [cell for cell in line.cells_fixed if cell not in (None, "", (), [])]
            if cells:
                phase.cells_fixed = cells
        elif line.outcome == "unknown":
            phase.state = "unknown"
            phase.regressed = False
        else:
            phase.regressed = phase.resolved_at is not None
            phase.state = "failed"
    return states


def compute_progress(
    workspace: Workspace,
    *,
    log: tuple[list[LogLine], list[str]] | None = None,
    states: dict[str, PhaseProgress] | None = None,
    remember_records: bool = False,
) -> list[GroupProgress]:
    """Progress of every phase group of the plan (phases outside the plan form their own groups);
    `states` is the log already folded (history_index.folded_states). With `remember_records`, what
    the latest run record of a phase without log lines says (a discovery-only run or not) is kept
    in reports/.index/investigated.json under the record's name and stamp (`runbook status`: the
    record, and the run-record models, are read again only when another record is the latest)."""
    if states is None:
        lines, _warnings = log if log is not None else read_log(workspace.timestamp_log)
        states = phase_states(lines)
    investigated = _Investigated(workspace, remember_records)
    runbooks = workspace.runbook_files()
    groups: list[GroupProgress] = []
    listed: set[str] = set()
    for group in workspace.config.plan:
        phases = []
        for plan_phase in group.phases:
            listed.add(plan_phase.id)
            item = _merge(workspace, plan_phase.id, plan_phase.title, group.group, states, runbooks, investigated)
            item.planned_cells = list(plan_phase.cells)
            phases.append(item)
        groups.append(GroupProgress(group=group.group, title=group.title, phases=phases))
    # A phase outside the plan is shown when it is a phase id: a hand-edited log line naming
    # `9/../../x` or `['x']` is no phase (and would name pages outside the docs folder).
    extra = [p for p in sorted(set(runbooks) | set(states), key=_phase_key) if p not in listed and PHASE_ID.match(p)]
    for phase_id in extra:
        group_id = phase_id.split(".")[0]
        existing = next((g for g in groups if g.group == group_id), None)
        title = workspace.phase_title(phase_id)
        item = _merge(workspace, phase_id, title, group_id, states, runbooks, investigated)
        if existing is None:
            existing = GroupProgress(group=group_id, title=None, phases=[])
            groups.append(existing)
        existing.phases.append(item)
    investigated.save()
    return groups


def _merge(
    workspace: Workspace,
    phase_id: str,
    title: str,
    group: str,
    states: dict[str, PhaseProgress],
    runbooks: dict[str, Path],
    investigated: _Investigated,
) -> PhaseProgress:
    state = states.get(phase_id) or PhaseProgress(id=phase_id, title=title, group=group)
    state.title = title
    state.group = group
    state.has_runbook = phase_id in runbooks
    if state.state == "not_started" and investigated(phase_id):
        state.state = "investigated"
    report = workspace.reports_dir / f"phase-{phase_id}.md"
    if report.exists():
        state.report = str(report.relative_to(workspace.root))
    return state


class _Investigated:
    """Whether a phase's latest run record is a successful discovery-only run; remembered (when
    asked to) by the record's name and stamp, so the record models load only for a new record."""

    NAME = "investigated.json"

    def __init__(self, workspace: Workspace, remember: bool) -> None:
        self._reports = workspace.reports_dir
        self._remember = remember
        self._known: dict[str, Any] | None = None
        self._changed = False

    def __call__(self, phase_id: str) -> bool:
        folder = self._reports / "runs" / phase_id  # record.RUNS_DIR
        if not folder.is_dir():
            return False  # no run record: the record models are not even imported
        paths = sorted(folder.glob("*.jsonl"), key=lambda p: p.name)  # record.record_paths
        if not paths:
            return False
        if not self._remember:
            return _discovery_only(paths[-1])
        from .derived import read_derived, source_listing, stamp

        if self._known is None:
            saved = read_derived(self._reports, self.NAME) or {}
            # another runbook version may read records otherwise: its answers are not reused
            fresh = saved.get("source") == source_listing() and isinstance(saved.get("phases"), dict)
            self._known = saved["phases"] if fresh else {}
        key = [paths[-1].name, stamp(paths[-1])]
        entry = self._known.get(phase_id)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == key and isinstance(entry[1], bool):
            return entry[1]
        answer = _discovery_only(paths[-1])
        self._known[phase_id] = [key, answer]
        self._changed = True
        return answer

    def save(self) -> None:
        if self._changed and self._known is not None:
            from .derived import source_listing, write_derived

            write_derived(self._reports, self.NAME, {"source": source_listing(), "phases": self._known})


def _discovery_only(path: Path) -> bool:
    from .record import read_record

    record = read_record(path)
    return record.options.only == "discovery" and record.status == "success"


def _phase_key(phase: str) -> list[int]:
    return [int(x) if x.isdigit() else 0 for x in phase.split(".")]


def group_of(groups: list[GroupProgress], phase: str) -> GroupProgress | None:
    return next((g for g in groups if any(p.id == phase for p in g.phases)), None)
