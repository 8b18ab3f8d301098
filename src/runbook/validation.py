"""Validating runbooks without running them: the plain API under `runbook validate`.

Kept apart from `runbook.api` (which runs phases) so checking a workspace loads the loader, the
schema's models and the action families the runbooks name, and none of the executor, the run
record's writer or the workspace lock. `runbook.api.validate` is this function.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, Location, Problem
from .loader import read_yaml, validate_document

if TYPE_CHECKING:
    from .workspace import Workspace


def validate(
    paths: Iterable[Path] = (), *, workspace: Workspace | None = None, documents: list[Any] | None = None
) -> tuple[int, list[Problem]]:
    """Validate runbooks (default: all of the workspace's). Returns (files checked, problems); the
    data of each runbook read is appended to `documents` when given (runbook.validation_cache)."""
    from .checks import runbook_problems, workspace_problems
    from .workspace import load_workspace

    ws = workspace
    files = [Path(p) for p in paths]
    if not files:
        ws = ws or load_workspace()
        files = list(ws.runbook_files().values())
    known = ws.phase_ids() if ws is not None else None
    problems: list[Problem] = workspace_problems(ws) if ws is not None else []
    for path in files:
        root = ws.root if ws is not None else None
        try:
            doc = read_yaml(path, root=Path.cwd() if root is None else None)
        except InputError as exc:
            problems.append(
                Problem(
                    exc.location or Location(str(path)), exc.message.split(": ", 1)[-1] if exc.location else exc.message
                )
            )
            continue
        if documents is not None:
            documents.append(doc.data)
        found = validate_document(doc, known_phases=known)
        problems.extend(found or runbook_problems(doc, ws.root if ws is not None else Path.cwd()))
    return len(files), problems
