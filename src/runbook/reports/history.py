"""A phase's reports over its runs: every run's report kept beside its record, and the phase report.

`reports/runs/<phase>/<run-id>.md` is the report of that run, written when it ran and never
replaced by a later one. `reports/phase-<id>.md` is the report of the run that resolved the phase
(the first success after its last failure in the timestamp log), or of the latest attempt while
the phase is unresolved (a discovery-only run gives an investigation report), followed by a "Later
Runs" section listing the runs after it (re-verified, regressed, failed, investigated), linked.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_if_changed
from ..progress import phase_states
from ..record import RUNS_DIR, RunRecord, read_log, read_record, record_paths
from ..text import md_table
from ..workspace import Workspace
from .paths import report_path
from .runbooks import PhaseRunbooks

__all__ = ["later_run_word", "resolving_run_id", "run_report_path", "write_phase_report", "write_run_report"]


def run_report_path(ws: Workspace, phase: str, run_id: str) -> Path:
    """`reports/runs/<phase>/<run-id>.md`, next to the run's record."""
    return ws.reports_dir / RUNS_DIR / phase / f"{run_id}.md"


def write_run_report(ws: Workspace, phase: str, run_id: str, text: str) -> Path:
    path = run_report_path(ws, phase, run_id)
    write_if_changed(path, text)
    return path


def resolving_run_id(ws: Workspace, phase: str) -> str | None:
    """The run id of the line that resolved the phase (first success after its last failure), if resolved now."""
    lines, _warnings = read_log(ws.timestamp_log)
    mine = sorted((line for line in lines if line.phase == phase), key=lambda item: (item.timestamp, item.line))
    state = phase_states(mine).get(phase)
    if state is None or state.state != "resolved":
        return None
    resolver = None
    for line in mine:
        if line.action == "start":
            continue
        resolver = (resolver or line) if line.succeeded else None
    return resolver.run_id if resolver is not None else None


def _partial(record: RunRecord) -> str | None:
    return record.options.only or record.options.step


def later_run_word(record: RunRecord, resolved_before: bool) -> str:
    """How a run after the chosen one reads: re-verified, regressed, failed, investigated, interrupted."""
    partial = _partial(record)
    if partial == "discovery" and record.status == "success":
        return "investigated"
    if record.status == "success":
        return "re-verified" if resolved_before else "succeeded"
    if record.status == "failed":
        return "regressed" if resolved_before and not partial else "failed"
    return record.status


def write_phase_report(ws: Workspace, phase: str, runbooks: PhaseRunbooks) -> Path | None:
    """reports/phase-<id>.md from the kept run reports (see the module doc); None when no run has a report."""
    from .resolution import render_report

    records = [read_record(path) for path in record_paths(ws.reports_dir, phase)]
    if not records:
        return None
    by_id = {record.run_id: record for record in records}
    resolver = resolving_run_id(ws, phase)
    chosen = by_id.get(resolver) if resolver else None
    if chosen is None:
        whole = [record for record in records if not _partial(record)]
        chosen = whole[-1] if whole else records[-1]
        if whole and records[-1] is not chosen and _partial(records[-1]) == "discovery" and chosen.status != "success":
            chosen = records[-1]  # an investigation after a failed attempt is the latest word
    own = run_report_path(ws, phase, chosen.run_id)
    if own.exists():
        text = own.read_text(encoding="utf-8")
    else:
        loaded = runbooks.get(phase)
        if loaded is None:
            return None
        text = render_report(ws, loaded, chosen, runbooks=runbooks)
    later = [record for record in records if record.run_id > chosen.run_id]
    if later:
        rows = []
        for record in later:
            link = run_report_path(ws, phase, record.run_id)
            name = f"`{record.run_id}`"
            if link.exists():
                name = f"[{record.run_id}]({link.relative_to(ws.reports_dir).as_posix()})"
            rows.append([name, later_run_word(record, resolver is not None), (record.run_started.time if record.run_started else None) or "—"])
        what = "resolved the phase" if resolver else "is the latest attempt"
        text = (
            text.rstrip("\n")
            + f"\n\n---\n\n## Later Runs\n\nThis report is of run `{chosen.run_id}`, which {what}; runs since then:\n\n"
            + md_table(rows, ["Run", "Outcome", "Started (UTC)"])
            + "\n"
        )
    path = report_path(ws, phase)
    write_if_changed(path, text if text.endswith("\n") else text + "\n")
    return path
