"""Phase ids: what a phase id looks like, how people may write one, and the group it belongs to.

`runbook.model` re-exports these; they live apart so that `runbook status` (status_index, progress)
can name phases without importing pydantic and the runbook models.
"""

from __future__ import annotations

import re
from pathlib import Path

PHASE_ID = re.compile(r"^\d+(\.\d+)*$")


def normalise_phase(text: str) -> str:
    """`phase-1.5`, `Phase 1.5` and `1.5` all name phase "1.5"."""
    value = str(text).strip()
    lowered = value.lower()
    for prefix in ("phase-", "phase_", "phase "):
        if lowered.startswith(prefix):
            value = value[len(prefix) :]
            break
    return value.strip()


def phase_group(phase: str) -> str:
    """The group a phase belongs to: "1.5" -> "1"."""
    return phase.split(".", 1)[0]


def runbook_files_in(folder: Path) -> dict[str, Path]:
    """The runbooks in `folder` (`phase-<id>.yaml` / `.yml`) by phase id, in name order."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("phase-*.y*ml")):
            found[normalise_phase(path.stem)] = path
    return found
