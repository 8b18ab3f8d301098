"""The status overview, remembered: `runbook status` with nothing changed reads one small file.

`status.workspace_status()` folds the timestamp log (through `history_index`) and crosses it with
the plan, the runbooks, the reports and, for phases without a log line, their latest run record.
That answer only changes when one of those inputs does, so after computing it `runbook status`
keeps it in `reports/.index/overview.json`: the screen's data (`WorkspaceStatus.to_dict()`), the
rendered text with and without colour, and the warnings, under a key made of every input:

- runbook.yaml's size, modification time, inode and a CRC-32 of its bytes (the plan, titles,
  planned cells, paths; a same-length edit within one clock tick keeps the rest);
- the timestamp log's, and the runs folder's listing (each phase folder with its modification time);
- the names of the runbooks (`phase-*`) and of the reports (`phase-*.md`);
- for each phase shown as not started or investigated that has runs, its latest record's stamp;
- the source listing of the `runbook` package (another version renders differently).

When the key matches, the overview is printed from the file and nothing else is imported: no
pydantic, no YAML loader, no model. Any difference, an unreadable file, or a reports folder other
than the default `reports/` (the file must be found before runbook.yaml is read) takes the full
path, which writes the file again. Like the status index, the file is derived and never committed.

When it must be computed again (a log line appended, a report added) while runbook.yaml is
unchanged, `workspace_view` supplies the config's part from its own remembered file, so that too
happens without pydantic, the YAML loader or the models.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .derived import INDEX_DIR, content_stamp, names_in, runs_listing, source_listing, stamp, write_derived_lines

if TYPE_CHECKING:
    from typing import Protocol

    from .status import WorkspaceStatus

    class Workspace(Protocol):
        """Where a workspace keeps things: `workspace.Workspace` or `workspace_view.WorkspaceView`."""

        @property
        def root(self) -> Path: ...
        @property
        def runbooks_dir(self) -> Path: ...
        @property
        def reports_dir(self) -> Path: ...
        @property
        def timestamp_log(self) -> Path: ...


NAME = "overview.json"
VERSION = 3  # 2: two lines, the key first; 3: runbook.yaml's bytes (CRC-32) in the key
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
    root = find_workspace_root(Path(start) if start else None)
    if root is None:
        return None
    try:
        # line 1: version, places and key; line 2: the screen (read only when the key matches)
        head, _, body = (root / DEFAULT_REPORTS / INDEX_DIR / NAME).read_bytes().partition(b"\n")
        saved = json.loads(head)
        if not isinstance(saved, dict) or saved.get("version") != VERSION:
            return None
        places, key = saved["places"], saved["key"]
        if not isinstance(key, dict) or set(key) != set(_KEY_PARTS):
            return None
        for part in _KEY_PARTS:  # the likeliest change first: a miss stops at the first difference
            if key[part] != _key_part(part, root, places):
                return None
        screen = json.loads(body)
        return RememberedOverview(
            data=screen["data"], text=screen["text"], coloured=screen["coloured"], warnings=list(screen["warnings"])
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError):
        return None


def overview_inputs(workspace: Workspace) -> dict[str, Any] | None:
    """The overview's key as far as it is known before the overview is computed (all but the
    latest records of the phases it shows not started), taken before its inputs are read so that a
    change meanwhile shows next time; None when the overview is not remembered (another reports folder)."""
    if workspace.reports_dir != workspace.root / DEFAULT_REPORTS:
        return None
    places = {
        "runbooks": os.path.relpath(workspace.runbooks_dir, workspace.root),
        "log": os.path.relpath(workspace.timestamp_log, workspace.root),
    }
    key = {part: _key_part(part, workspace.root, places) for part in _KEY_PARTS if part != "records"}
    return {"places": places, "key": key}


def remember_overview(
    workspace: Workspace,
    view: WorkspaceStatus,
    *,
    inputs: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    text: str | None = None,
    coloured: str | None = None,
) -> None:
    """Keep the overview just computed (when the workspace keeps its reports in the default folder);
    `inputs` is `overview_inputs()` from before it was computed (default: taken now); `data`, `text`
    and `coloured` are `view`'s dict and renderings when the caller has them already."""
    from .status import render_status

    if inputs is None:
        inputs = overview_inputs(workspace)
    if inputs is None:
        return
    runs = {name for name, _mtime in inputs["key"]["runs"]}
    watched = sorted(
        phase.id
        for group in view.groups
        for phase in group.phases
        if phase.state in ("not_started", "investigated") and phase.id in runs
    )
    places = {**inputs["places"], "watched": watched}
    key = {**inputs["key"], "records": _key_part("records", workspace.root, places)}
    screen = {
        "data": view.to_dict() if data is None else data,
        "text": render_status(view, colour=False) if text is None else text,
        "coloured": render_status(view, colour=True) if coloured is None else coloured,
        "warnings": list(view.warnings),
    }
    write_derived_lines(workspace.reports_dir, NAME, [{"version": VERSION, "places": places, "key": key}, screen])


# every input of the overview, the likeliest to change first
_KEY_PARTS = ("log", "runs", "reports", "runbooks", "config", "records", "root", "source")


def _key_part(part: str, root: Path, places: dict[str, Any]) -> Any:
    reports = root / DEFAULT_REPORTS
    if part == "log":
        return stamp(root / places["log"])
    if part == "runs":
        return runs_listing(reports)
    if part == "reports":
        return names_in(reports, "phase-", ".md")
    if part == "runbooks":
        return names_in(root / places["runbooks"], "phase-")
    if part == "config":
        return content_stamp(root / CONFIG_NAME)
    if part == "records":
        return {phase: _latest_record(reports / "runs" / phase) for phase in places["watched"]}
    if part == "root":
        return str(root)
    return source_listing()


def _latest_record(folder: Path) -> list[Any] | None:
    names = names_in(folder, "", ".jsonl")
    return [names[-1], stamp(folder / names[-1])] if names else None


def find_workspace_root(start: Path | None) -> Path | None:
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
