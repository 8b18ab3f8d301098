"""The part of runbook.yaml that `runbook status` reads, remembered: the overview without pydantic.

The overview's inputs change at different rates: the timestamp log with every run, runbook.yaml
rarely. So what the overview reads of the validated config (the project name, the plan with its
titles and planned cells, the runbooks and reports folders) is kept on its own in
`reports/.index/config.json`, keyed by runbook.yaml's stamp (size, modification time, inode, a
CRC-32 of its bytes: a same-length edit within one clock tick keeps the rest), the
workspace root and runbook's source listing (derived.source_listing), and written only from a config that
`workspace.load_workspace` validated, stamped before it was read. When the overview must be
computed again (a log line was appended, a report appeared) and that part is current,
`WorkspaceView` stands in for the loaded `Workspace`: the same status code folds the log (through
the status index) and renders the same screen, without importing pydantic, the YAML loader or the
models. An edited runbook.yaml always takes the full path, which validates it (a broken one fails
there with file:line:col, exit 2) and remembers it again. Like every file in `reports/.index/`, it
is derived, never committed and never the source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .derived import content_stamp, read_derived, source_listing, write_derived
from .status_index import CONFIG_NAME, DEFAULT_REPORTS, find_workspace_root

if TYPE_CHECKING:
    from .workspace import Workspace

NAME = "config.json"
VERSION = 2  # 2: runbook.yaml's CRC-32 in the key


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
        from .phase_ids import runbook_files_in

        return runbook_files_in(self.runbooks_dir)


def remembered_workspace(start: Path | str | None) -> WorkspaceView | None:
    """The workspace at or above `start` from its remembered config, or None when runbook.yaml (or
    runbook itself) changed since a full load validated it, or nothing was remembered."""
    root = find_workspace_root(Path(start) if start else None)
    if root is None:
        return None
    saved = read_derived(root / DEFAULT_REPORTS, NAME)
    if saved is None or saved.get("version") != VERSION:
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
    """runbook.yaml's stamp and CRC-32, taken before `load_workspace` reads it (see `remember_workspace`)."""
    root = find_workspace_root(Path(start) if start else None)
    return content_stamp(root / CONFIG_NAME) if root is not None else None


def remember_workspace(workspace: Workspace, before: list[int] | None) -> None:
    """Keep what the overview reads of a config `load_workspace` just validated; `before` is
    runbook.yaml's stamp from before it was read (a file changed meanwhile is not remembered).
    Default reports folder only: the file must be found before runbook.yaml is read."""
    if workspace.reports_dir != workspace.root / DEFAULT_REPORTS:
        return
    if before is None or content_stamp(workspace.config_path) != before:
        return
    config = workspace.config
    saved = {
        "version": VERSION,
        "key": _config_key(workspace.root, before),
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
    if read_derived(workspace.reports_dir, NAME) != saved:
        write_derived(workspace.reports_dir, NAME, saved)


def _config_key(root: Path, config: list[int] | None = None) -> dict[str, Any]:
    """The key of the remembered config: `config` is runbook.yaml's content stamp (default: taken now)."""
    if config is None:
        config = content_stamp(root / CONFIG_NAME)
    return {"root": str(root), "config": config, "source": source_listing()}
