"""The status overview, remembered: `runbook status` with nothing changed reads one small file.

`status.workspace_status()` folds the timestamp log (through `history_index`) and crosses it with
the plan, the runbooks, the reports and, for phases without a log line, their latest run record.
That answer only changes when one of those inputs does, so after computing it `runbook status`
keeps it in `reports/.index/overview.json`: the screen's data (`WorkspaceStatus.to_dict()`), the
rendered text with and without colour, and the warnings, under a key made of every input:

- runbook.yaml's size, modification time and inode (the plan, titles, planned cells, paths);
- the timestamp log's, and the runs folder's listing (each phase folder with its modification time);
- the names of the runbooks (`phase-*`) and of the reports (`phase-*.md`);
- for each phase shown as not started or investigated that has runs, its latest record's stamp;
- the source listing of the `runbook` package (another version renders differently).

When the key matches, the overview is printed from the file and nothing else is imported: no
pydantic, no YAML loader, no model. Any difference, an unreadable file, or a reports folder other
than the default `reports/` (the file must be found before runbook.yaml is read) takes the full
path, which writes the file again. Like the status index, the file is derived and never committed.

The overview's inputs change at different rates: the log with every run, runbook.yaml rarely. So
the part that depends on runbook.yaml alone is remembered on its own, in
`reports/.index/config.json`: what the overview reads of the validated config (the project name,
the plan with titles and planned cells, the runbooks and reports folders), keyed by runbook.yaml's
stamp, the workspace root and runbook's source listing, and written only from a config that
`workspace.load_workspace` validated. When the overview must be computed again (a log line was
appended, a report appeared) and that part is current, `WorkspaceView` stands in for the loaded
`Workspace`: the same status code folds the log (through the status index) and renders the same
screen, without importing pydantic, the YAML loader or the models. An edited runbook.yaml always
takes the full path, which validates it (a broken one fails there with file:line:col, exit 2) and
remembers it again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .derived import names_in, read_derived, runs_listing, source_listing, stamp, write_derived

if TYPE_CHECKING:
    from .status import WorkspaceStatus
    from .workspace import Workspace

NAME = "overview.json"
VERSION = 1
CONFIG_MEMO = "config.json"
CONFIG_VERSION = 1
CONFIG_NAME = "runbook.yaml"  # workspace.CONFIG_NAME (not imported: it would load pydantic)
DEFAULT_REPORTS = "reports"


@dataclass
class RememberedOverview:
    """The overview as `runbook status` printed it last time (nothing it depends on changed since)."""

    data: dict[str, Any]
    text: str
    coloured: str
    warnings: list[str]


def remembered_overview(start: Path | str | None) -> RememberedOverview | None:
    """The remembered overview of the workspace at or above `start` (default: the current folder),
    or None when there is none or anything it was computed from changed."""
    root = _find_root(Path(start) if start else None)
    if root is None:
        return None
    reports = root / DEFAULT_REPORTS
    saved = read_derived(reports, NAME)
    if saved is None or saved.get("version") != VERSION:
        return None
    try:
        places = saved["places"]
        if saved["key"] != _key(root, places):
            return None
        return RememberedOverview(
            data=saved["data"], text=saved["text"], coloured=saved["coloured"], warnings=list(saved["warnings"])
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def remember_overview(
    workspace: Workspace | WorkspaceView,
    view: WorkspaceStatus,
    *,
    data: dict[str, Any] | None = None,
    text: str | None = None,
    coloured: str | None = None,
) -> None:
    """Keep the overview just computed (when the workspace keeps its reports in the default folder);
    `data`, `text` and `coloured` are `view`'s dict and renderings when the caller has them already."""
    from .status import render_status

    if workspace.reports_dir != workspace.root / DEFAULT_REPORTS:
        return
    runs = {name for name, _mtime in runs_listing(workspace.reports_dir)}
    watched = sorted(
        phase.id
        for group in view.groups
        for phase in group.phases
        if phase.state in ("not_started", "investigated") and phase.id in runs
    )
    places = {
        "runbooks": os.path.relpath(workspace.runbooks_dir, workspace.root),
        "log": os.path.relpath(workspace.timestamp_log, workspace.root),
        "watched": watched,
    }
    write_derived(
        workspace.reports_dir,
        NAME,
        {
            "version": VERSION,
            "places": places,
            "key": _key(workspace.root, places),
            "data": view.to_dict() if data is None else data,
            "text": render_status(view, colour=False) if text is None else text,
            "coloured": render_status(view, colour=True) if coloured is None else coloured,
            "warnings": list(view.warnings),
        },
    )


def _key(root: Path, places: dict[str, Any]) -> dict[str, Any]:
    reports = root / DEFAULT_REPORTS
    return {
        "root": str(root),
        "config": stamp(root / CONFIG_NAME),
        "log": stamp(root / places["log"]),
        "runs": runs_listing(reports),
        "runbooks": names_in(root / places["runbooks"], "phase-"),
        "reports": names_in(reports, "phase-", ".md"),
        "records": {phase: _latest_record(reports / "runs" / phase) for phase in places["watched"]},
        "source": _source(),
    }


_SOURCE: list[list[Any]] = []


def _source() -> list[list[Any]]:
    """runbook's source listing, taken once per process (every key of a command shares it)."""
    if not _SOURCE:
        _SOURCE.extend(source_listing())
    return _SOURCE


def _latest_record(folder: Path) -> list[Any] | None:
    names = names_in(folder, "", ".jsonl")
    return [names[-1], stamp(folder / names[-1])] if names else None


def _find_root(start: Path | None) -> Path | None:
    """The folder `workspace.find_root` would find, or None (which leaves the error to it)."""
    if start is not None and not start.is_dir():
        return None
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:
        return None
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


# ---------------------------------------------------------------- the config, remembered


@dataclass(frozen=True)
class PlannedPhaseView:
    """A phase of the plan as the overview reads it (workspace.PlanPhase's values)."""

    id: str
    title: str
    cells: list[Any]


@dataclass(frozen=True)
class PlanGroupView:
    """A group of the plan as the overview reads it (workspace.PlanGroup's values)."""

    group: str
    title: str | None
    phases: list[PlannedPhaseView]


@dataclass(frozen=True)
class ConfigView:
    """What the overview reads of a validated runbook.yaml."""

    project: str
    plan: list[PlanGroupView]
    runbooks: str
    reports: str


@dataclass
class WorkspaceView:
    """A workspace whose validated config was remembered: what `progress` and `status` read of a
    `workspace.Workspace`, with the same values, and no pydantic behind it."""

    root: Path
    config: ConfigView

    @property
    def runbooks_dir(self) -> Path:
        return self.root / self.config.runbooks

    @property
    def reports_dir(self) -> Path:
        return self.root / self.config.reports

    @property
    def timestamp_log(self) -> Path:
        from .timestamp_log import TIMESTAMP_LOG

        return self.reports_dir / TIMESTAMP_LOG

    @cached_property
    def phases(self) -> dict[str, tuple[PlanGroupView, PlannedPhaseView]]:
        return {p.id: (g, p) for g in self.config.plan for p in g.phases}

    def phase_title(self, phase: str) -> str:
        if phase in self.phases:
            return self.phases[phase][1].title
        return f"Phase {phase}"

    def runbook_files(self) -> dict[str, Path]:
        from .phase_ids import normalise_phase

        found: dict[str, Path] = {}
        if self.runbooks_dir.is_dir():
            for path in sorted(self.runbooks_dir.glob("phase-*.y*ml")):
                found[normalise_phase(path.stem)] = path
        return found


def remembered_workspace(start: Path | str | None) -> WorkspaceView | None:
    """The workspace at or above `start` from its remembered config, or None when runbook.yaml (or
    runbook itself) changed since a full load validated it, or nothing was remembered."""
    root = _find_root(Path(start) if start else None)
    if root is None:
        return None
    saved = read_derived(root / DEFAULT_REPORTS, CONFIG_MEMO)
    if saved is None or saved.get("version") != CONFIG_VERSION:
        return None
    try:
        if saved["key"] != _config_key(root):
            return None
        config = saved["config"]
        plan = [
            PlanGroupView(
                group=str(group["group"]),
                title=None if group["title"] is None else str(group["title"]),
                phases=[
                    PlannedPhaseView(id=str(phase["id"]), title=str(phase["title"]), cells=list(phase["cells"]))
                    for phase in group["phases"]
                ],
            )
            for group in config["plan"]
        ]
        view = ConfigView(
            project=str(config["project"]), plan=plan, runbooks=str(config["runbooks"]), reports=str(config["reports"])
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    workspace = WorkspaceView(root=root, config=view)
    if workspace.reports_dir != root / DEFAULT_REPORTS:
        return None
    return workspace


def config_stamp(start: Path | str | None) -> list[int] | None:
    """runbook.yaml's stamp, taken before `load_workspace` reads it (see `remember_workspace`)."""
    root = _find_root(Path(start) if start else None)
    return stamp(root / CONFIG_NAME) if root is not None else None


def remember_workspace(workspace: Workspace, before: list[int] | None) -> None:
    """Keep what the overview reads of a config `load_workspace` just validated; `before` is
    runbook.yaml's stamp from before it was read (a file changed meanwhile is not remembered).
    Default reports folder only: the file must be found before runbook.yaml is read."""
    if workspace.reports_dir != workspace.root / DEFAULT_REPORTS:
        return
    if before is None or stamp(workspace.config_path) != before:
        return
    config = workspace.config
    saved = {
        "version": CONFIG_VERSION,
        "key": _config_key(workspace.root),
        "config": {
            "project": config.project,
            "runbooks": config.paths.runbooks,
            "reports": config.paths.reports,
            "plan": [
                {
                    "group": group.group,
                    "title": group.title,
                    "phases": [{"id": p.id, "title": p.title, "cells": list(p.cells)} for p in group.phases],
                }
                for group in config.plan
            ],
        },
    }
    if read_derived(workspace.reports_dir, CONFIG_MEMO) != saved:
        write_derived(workspace.reports_dir, CONFIG_MEMO, saved)


def _config_key(root: Path) -> dict[str, Any]:
    return {"root": str(root), "config": stamp(root / CONFIG_NAME), "source": _source()}
