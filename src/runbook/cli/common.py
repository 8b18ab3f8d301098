"""What every `runbook` command module shares: click's context settings, the handle on the workspace
each command gets (`State`), the parsers of `--var` and `--cells`, and the phase of the run in
progress (for the resume hint `main()` prints after a storage error)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pathlib import Path

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

RUNNING: dict[str, str] = {}  # the phase of the `run` command in progress, for the resume hint


class State:
    def __init__(self, workspace: Path | None, *, quiet: bool = False) -> None:
        self.workspace_path = workspace
        self.quiet = quiet

    def workspace(self) -> Any:
        from ..workspace import load_workspace

        return load_workspace(self.workspace_path)

    def say(self, text: str) -> None:
        """Informational output ("wrote ...", "1 runbook valid"): silent under -q."""
        if not self.quiet:
            click.echo(text)


def resume_command() -> str | None:
    """`runbook run PHASE --resume` when the failed command was a run of PHASE."""
    phase = RUNNING.get("phase")
    return f"runbook run {phase} --resume" if phase else None


def parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--var")
        key, value = item.split("=", 1)
        if not _NAME.fullmatch(key.strip()):
            raise click.BadParameter(
                f"{item!r}: {key.strip()!r} is not a variable name (letters, digits and _, not starting with a digit)",
                param_hint="--var",
            )
        parsed[key.strip()] = value
    return parsed


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A cell is named by its number (as people write them: 109) or its nbformat id.
_CELL = re.compile(r"[0-9]+|(?=[^,]*[A-Za-z_])[A-Za-z0-9_-]{1,64}")


def parse_cells(text: str) -> list[Any]:
    cells: list[Any] = []
    for piece in text.split(","):
        item = piece.strip()
        if not _CELL.fullmatch(item):
            raise click.BadParameter(
                f"{item!r} in {text!r} is not a cell number or id; write numbers and ids separated by commas, "
                "e.g. --cells 109,130,cell_14_f21837aa",
                param_hint="--cells",
            )
        cells.append(int(item) if item.isdigit() else item)
    return cells
