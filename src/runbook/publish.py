"""Publishing runs: write a run's report, changelog, timeline and JUnit, and commit them through git.

The plain Python API under `runbook run` (via `api.run_phase`) and `runbook report`: it joins the
documents of `runbook.reports` with the commits of `runbook.gitops`, which know nothing of each
other. Reports stay pure renderers; gitops commits the paths and message text it is given; the
commit message (`phase-1.5: <Title> Resolution (resolved)` and the steps) is built here from the
step views. The runbook that ran is passed down as loaded, so publishing never parses it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import gitops
from .atomic import write_if_changed
from .errors import InputError
from .loader import LoadedRunbook
from .record import RunRecord, read_record, record_paths
from .reports import (
    REPORT_TEMPLATE,
    PhaseRunbooks,
    relative_path,
    render_junit,
    render_report,
    report_path,
    resolution_title,
    resolving_run_id,
    step_results,
    write_changelog,
    write_phase_report,
    write_run_report,
    write_timeline,
)
from .reports.timeline import TIMELINE_CHART
from .workspace import Workspace

__all__ = [
    "COMMIT_WORDS",
    "PhaseReport",
    "commit_message",
    "commit_run",
    "find_record",
    "publish_run",
    "report_phase",
    "tag_name",
]

COMMIT_WORDS = {"success": "resolved", "failed": "failed", "interrupted": "interrupted", "incomplete": "incomplete"}


# ---------------------------------------------------------------- after a run


def publish_run(ws: Workspace, loaded: LoadedRunbook, record_path: Path, *, junit: Path | None = None) -> list[Path]:
    """After a run: its report (reports/phase-<id>.md), CHANGELOG.md, TIMELINE.md, and JUnit if asked.

    A partial run (`--only`, `--step`) does not replace the phase's report: it resolves nothing, and
    `runbook report PHASE --run ID -o -` still renders it. Returns the paths written.
    """
    record = read_record(record_path)
    runbooks = PhaseRunbooks(ws, [loaded])
    written: list[Path] = []
    # Every run keeps its own report beside its record; the phase report is the resolving run's.
    phase = loaded.runbook.phase
    run_text = render_report(ws, loaded, record, runbooks=runbooks)
    written.append(write_run_report(ws, phase, record.run_id, run_text))
    phase_report = write_phase_report(ws, phase, runbooks)
    if phase_report is not None:
        written.append(phase_report)
    written.append(write_changelog(ws, runbooks=runbooks))
    written.append(write_timeline(ws))
    chart = ws.reports_dir / TIMELINE_CHART
    if chart.exists():  # the SVG TIMELINE.md links: committed with it
        written.append(chart)
    if junit is not None:
        write_if_changed(junit, render_junit(loaded, record))
        written.append(junit)
    return written


# ---------------------------------------------------------------- commits


def tag_name(phase: str) -> str:
    """`phase-1.5-resolved`: the tag of a resolved run's commit."""
    return f"phase-{phase}-resolved"


def commit_message(loaded: LoadedRunbook, record: RunRecord) -> str:
    """`phase-1.5: <Title> Resolution (resolved)`, then the steps with statuses, cells changed, run id."""
    runbook = loaded.runbook
    word = COMMIT_WORDS.get(record.status, record.status)
    lines = [f"phase-{runbook.phase}: {resolution_title(runbook.title)} ({word})", ""]
    views = step_results(loaded, record)
    lines.append(f"Run {record.run_id} of {loaded.doc.display}.")
    lines.append("")
    lines.append("Steps:")
    for view in views:
        status = view["status"].replace("_", " ")
        if view["stage"] == "reproduce":
            status = {
                "failed": "failed (fault reproduced)",
                "error": "error (the fault could not be checked)",
            }.get(view["status"], f"{status} (fault not reproduced)")
        lines.append(f"- {view['stage']} {view['id']}: {status}")
    cells = [c for v in views if v["stage"] == "fix" and v["status"] == "changed" for c in v["cells"]]
    if cells:
        lines.append("")
        lines.append("Cells changed:")
        for cell in cells:
            number = cell["number"] if cell["number"] is not None else "?"
            lines.append(f"- {number}" + (f" ({cell['id']})" if cell["id"] else ""))
    lines.extend(["", f"Runbook-Run: {record.run_id}"])
    return "\n".join(lines) + "\n"


def commit_run(
    ws: Workspace,
    loaded: LoadedRunbook,
    record: RunRecord,
    paths: Sequence[Path | str],
    *,
    tag: bool = False,
) -> str | None:
    """Commit exactly `paths` of a run (ignored ones dropped); None when nothing changed.

    The user's other staged and unstaged changes stay as they were. With `tag`, a resolved run's
    commit is tagged `phase-<id>-resolved` (a failed run is never tagged).
    """
    phase = loaded.runbook.phase
    name = tag_name(phase) if tag and record.status == "success" else None
    return gitops.commit_paths(
        ws.root,
        paths,
        commit_message(loaded, record),
        tag=name,
        tag_message=f"Phase {phase} resolved by run {record.run_id}",
    )


# ---------------------------------------------------------------- on demand: `runbook report`


def find_record(ws: Workspace, phase: str, run_id: str | None = None) -> Path:
    """The record of `run_id` (a full id or a unique prefix) of `phase`; default: its latest."""
    paths = record_paths(ws.reports_dir, phase)
    where = relative_path(ws, ws.reports_dir / "runs" / phase)
    if not paths:
        raise InputError(f"no run records for phase {phase} in {where}/", hint=f"run it first: `runbook run {phase}`")
    if run_id is None:
        return paths[-1]
    exact = [p for p in paths if p.stem == run_id]
    matches = exact or [p for p in paths if p.stem.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    recent = ", ".join(p.stem for p in paths[-5:])
    if not matches:
        raise InputError(f"no run {run_id!r} of phase {phase} in {where}/", hint=f"latest runs: {recent}")
    raise InputError(
        f"run id {run_id!r} matches {len(matches)} runs of phase {phase}",
        hint="give more of the id: " + ", ".join(p.stem for p in matches[:5]),
    )


@dataclass
class PhaseReport:
    """What `runbook report` produced: the text, where it went (None: stdout) and the commit."""

    text: str
    path: Path | None
    record: RunRecord
    loaded: LoadedRunbook
    commit: str | None = None


def report_phase(
    ws: Workspace,
    phase: str,
    *,
    run_id: str | None = None,
    template: str | None = None,
    fmt: str = "markdown",
    output: Path | None = None,
    commit: bool = False,
    tag: bool = False,
) -> PhaseReport:
    """Render a stored run of `phase` (default: its latest) as markdown or JUnit, write it, commit it.

    `output`: a file, or `-` for stdout. Default: reports/phase-<id>.md for markdown, stdout for JUnit.
    """
    loaded = ws.load_runbook(phase)
    phase_id = loaded.runbook.phase
    record = read_record(find_record(ws, phase_id, run_id))
    if fmt == "junit":
        text = render_junit(loaded, record)
        default: Path | None = None
    elif fmt == "markdown":
        text = render_report(ws, loaded, record, template=template or REPORT_TEMPLATE)
        default = report_path(ws, phase_id)
    else:
        raise InputError(f"unknown report format {fmt!r}: use markdown or junit")
    path = default if output is None else (None if str(output) == "-" else output)
    if commit and path is None:
        raise InputError("--commit needs a file to commit", hint="drop `-o -`, or give -o PATH")
    if commit:
        gitops.check_repository(ws.root)
    written: list[Path] = []
    if path is not None and path == default:
        # The run's own report is kept beside its record; the phase report stays the resolving run's
        # (re-rendering a later rerun must not replace it with "Cells Fixed: 0").
        written.append(write_run_report(ws, phase_id, record.run_id, text))
        phase_report = write_phase_report(ws, phase_id, PhaseRunbooks(ws, [loaded]))
        if phase_report is not None:
            written.append(phase_report)
        path = phase_report if phase_report is not None and resolving_run_id(ws, phase_id) in (None, record.run_id) else written[0]
    elif path is not None:
        write_if_changed(path, text)
        written.append(path)
    result = PhaseReport(text=text, path=path, record=record, loaded=loaded)
    if commit and path is not None:
        result.commit = commit_run(ws, loaded, record, [*written, record.path], tag=tag)
    return result
