"""Where the generated documents go in a workspace, and how paths are shown inside them.

Documents never contain absolute paths (the same run renders the same bytes wherever the workspace
is checked out): a path inside the workspace shows relative to its root, one outside by name only.
"""

from __future__ import annotations

from pathlib import Path

from ..workspace import Workspace

__all__ = ["CHANGELOG_NAME", "TIMELINE_NAME", "relative_path", "report_path"]

CHANGELOG_NAME = "CHANGELOG.md"
TIMELINE_NAME = "TIMELINE.md"


def relative_path(ws: Workspace, path: Path | str) -> str:
    """A workspace-relative posix path; a path outside the workspace shows as its name only."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    try:
        return candidate.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        return candidate.name


def report_path(ws: Workspace, phase: str) -> Path:
    """reports/phase-<id>.md: where a phase's resolution report is written."""
    return ws.reports_dir / f"phase-{phase}.md"
