"""The terminal during a run: a live line with the running step's elapsed time and its progress
(per cell for kernel steps), and expected reproduce failures in their own colour."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest

from runbook.console import COLOURS, ConsolePrinter
from runbook.record import StepErrorRecord, StepFinished, StepStarted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_line_shows_elapsed_time_and_progress() -> None:
    screen = Terminal()
    printer = ConsolePrinter(screen, colour=False)
    now = [100.0]
    printer.clock = lambda: now[0]
    printer(StepStarted(stage="verify", step="run-cells", time="2026-12-01T12:00:01.000000Z"))
    now[0] = 101.5
    printer.progress("run-cells", "cell 109 (2/4)")
    assert screen.getvalue().endswith("12:00:01.000  verify     run-cells                    running  1.5s  cell 109 (2/4)")
    now[0] = 103.0
    printer.tick()
    assert screen.getvalue().endswith("running  3.0s  cell 109 (2/4)")
    printer(StepFinished(stage="verify", step="run-cells", status="ok", duration_s=3.0, finished_at="2026-12-01T12:00:04.000000Z"))
    last = screen.getvalue().rsplit("\r\033[K", 1)[1]
    assert last.startswith("12:00:04.000  verify     run-cells") and "ok" in last and "running" not in last
    printer.tick()  # nothing runs: no live line comes back
    assert screen.getvalue().endswith("\n")


def test_no_live_line_when_not_a_terminal() -> None:
    screen = io.StringIO()
    printer = ConsolePrinter(screen, colour=False)
    printer(StepStarted(stage="fix", step="slow", time="2026-12-01T12:00:01.000000Z"))
    printer.progress("slow", "cell 1 (1/1)")
    assert screen.getvalue() == ""


def test_expected_reproduce_failures_have_their_own_colour() -> None:
    screen = Terminal()
    printer = ConsolePrinter(screen, colour=True)
    error = StepErrorRecord(type="ExpectationFailed", message="still broken")
    printer(StepFinished(stage="reproduce", step="check", status="failed", duration_s=0.1, error=error))
    printer(StepFinished(stage="verify", step="check", status="failed", duration_s=0.1, error=error))
    reproduce, _expected_line, verify, _error_line = screen.getvalue().splitlines()
    assert f"\033[{COLOURS['expected']}m" in reproduce and f"\033[{COLOURS['failed']}m" not in reproduce
    assert f"\033[{COLOURS['failed']}m" in verify
    assert COLOURS["expected"] != COLOURS["failed"]


@pytest.mark.kernel
def test_kernel_steps_report_each_cell(local_workspace: Path) -> None:
    from runbook.api import run_phase

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell("notes"), nbformat.v4.new_code_cell("y = x + 1")]
    nbformat.write(nb, local_workspace / "n.ipynb")
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        textwrap.dedent(
            """\
            phase: "1.1"
            title: t
            reproduce: false
            verify:
              - {id: cells, uses: notebook.run, with: {path: n.ipynb, cells: [1, 3]}}
            """
        )
    )

    class Listener:
        def __init__(self) -> None:
            self.seen: list[tuple[str, str]] = []

        def __call__(self, event: Any) -> None:
            pass

        def progress(self, step: str, text: str) -> None:
            self.seen.append((step, text))

    listener = Listener()
    outputs = run_phase("1.1", workspace=local_workspace, listeners=[listener], report=False, raise_on_failure=False)
    assert outputs.result.status == "success"
    assert [step for step, _ in listener.seen] == ["cells", "cells"]
    assert listener.seen[0][1].startswith("1/2 cells done, last cell 1") and listener.seen[0][1].endswith(" ok")
    assert listener.seen[1][1].startswith("2/2 cells done, last cell 3") and listener.seen[1][1].endswith(" ok")
