"""The runbooks a document needs for their authored material, each parsed at most once.

A report, the changelog and the next-phase line read a phase's authored material (titles, report
notes, changelog lines). The runbook that just ran is already loaded: `PhaseRunbooks` is seeded with
it, so publishing a run never parses it again. Another phase's runbook is read leniently (action
parameters unchecked; a file that does not parse gives None, never an error) on first use and kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from ..errors import RunbookError
from ..loader import LoadedRunbook, read_yaml
from ..model import Runbook
from ..workspace import Workspace

__all__ = ["PhaseRunbooks"]


class PhaseRunbooks:
    """Loaded runbooks by phase id: the ones given, and the workspace's others read on demand."""

    def __init__(self, ws: Workspace, loaded: Iterable[LoadedRunbook] = ()) -> None:
        self._ws = ws
        self._known: dict[str, LoadedRunbook | None] = {item.runbook.phase: item for item in loaded}
        self._files: dict[str, Path] | None = None

    def get(self, phase: str) -> LoadedRunbook | None:
        """The phase's runbook; None when it has none or it does not parse."""
        if phase not in self._known:
            self._known[phase] = self._read(phase)
        return self._known[phase]

    def _read(self, phase: str) -> LoadedRunbook | None:
        if self._files is None:
            self._files = self._ws.runbook_files()
        path = self._files.get(phase)
        if path is None:
            return None
        try:
            doc = read_yaml(path, root=self._ws.root)
            return LoadedRunbook(runbook=Runbook.model_validate(doc.data), path=path, doc=doc)
        except (RunbookError, ValidationError):
            return None
