"""The pre-rendered top-level help screen (`runbook --help`): click's own rendering of the real group,
written to `runbook/cli/help-WIDTH.txt` for the widths `runbook.__main__` prints it from.

`python -m runbook.cli.help_screen` rewrites the files (after a change to a command's table entry,
the root group's help or options, or another click); tests/test_cli_commands.py fails while they
differ from what click renders. Each file is a `fingerprint ...` line (runbook.__main__.help_fingerprint)
followed by the screen exactly as click prints it, newline included.
"""

from __future__ import annotations

from pathlib import Path

from ..__main__ import HELP_WIDTHS, help_fingerprint, help_path


def render(width: int) -> str:
    """The top-level help screen click prints at formatter width `width` (its final newline included)."""
    from . import cli

    ctx = cli.context_class(cli, info_name="runbook", terminal_width=width, **cli.context_settings)
    with ctx:
        return ctx.get_help() + "\n"


def expected_file(width: int) -> str:
    return f"fingerprint {help_fingerprint()}\n{render(width)}"


def write() -> list[Path]:
    written = []
    for width in HELP_WIDTHS:
        path = Path(help_path(width))
        path.write_text(expected_file(width), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover
    for path in write():
        print(f"wrote {path}")
