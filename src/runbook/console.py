"""What a run shows in the terminal: one line per step, a closing summary, or JSON lines for CI.

Colour follows `runbook.text.use_colour` (a terminal; NO_COLOR off, FORCE_COLOR/CLICOLOR_FORCE on).
Every event reaching here has already been redacted by the executor.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from .record import (
    Note,
    RunEvent,
    RunFinished,
    RunResumed,
    RunStarted,
    RunWarning,
    StepFinished,
    StepRestored,
    StepResult,
    StepStarted,
)
from .text import paint as _paint
from .text import use_colour

COLOURS = {
    "ok": "32",
    "changed": "33",
    "failed": "31",
    "error": "31;1",
    "skipped": "90",
    "interrupted": "35",
    "success": "32",
    "restored": "36",
}


class ConsolePrinter:
    """Human output: `04:15:00.123  discovery  list-accounts  ok  0.12s`."""

    def __init__(self, stream: TextIO | None = None, *, colour: bool | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stdout
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.tty = tty
        self.colour = use_colour(self.stream) if colour is None else colour
        self.verbose = verbose
        self._live = False

    def paint(self, text: str, status: str) -> str:
        return _paint(text, COLOURS.get(status), self.colour)

    def write(self, line: str) -> None:
        if self._live:
            self.stream.write("\r\033[K")
            self._live = False
        self.stream.write(line + "\n")
        self.stream.flush()

    def warning(self, message: str) -> None:
        self.write(self.paint(f"warning: {message}", "changed"))

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            dry_run = "  [dry-run]" if event.options.dry_run else ""
            self.write(
                f"runbook: phase {event.phase} - {event.title} (run {event.run_id}, target {event.target}){dry_run}"
            )
        elif isinstance(event, RunResumed):
            self.write(f"runbook: resuming run {event.run_id}")
        elif isinstance(event, StepStarted) and self.tty:
            self.stream.write(f"{_clock(event.time or '')}  {event.stage:<10} {event.step:<28} ...")
            self.stream.flush()
            self._live = True
        elif isinstance(event, StepFinished | StepRestored):
            self._step(event)
        elif isinstance(event, Note):
            self.write(f"note: {event.message}")
        elif isinstance(event, RunWarning):
            self.warning(event.message)
        elif isinstance(event, RunFinished):
            self._summary(event)

    def _step(self, event: StepResult) -> None:
        restored = isinstance(event, StepRestored)
        status = event.status
        shown = f"{status} (restored)" if restored else status
        when = event.finished_at or (event.time if isinstance(event, StepRestored) else None) or ""
        line = (
            f"{_clock(when)}  {event.stage:<10} "
            f"{event.step:<28} {self.paint(f'{shown:<9}', 'restored' if restored else status)} "
            f"{event.duration_s or 0:>7.2f}s"
        )
        extra = event.reason or event.message
        if extra:
            line += f"  {extra}"
        self.write(line)
        self._error(event)
        if event.diff and (self.verbose or event.dry_run):
            for diff_line in event.diff.splitlines():
                self.write(f"    {diff_line}")
        for warning in event.warnings or []:
            self.warning(f"{event.step}: {warning}")

    def _error(self, event: StepResult) -> None:
        error = event.error
        if error is None or event.status == "skipped":
            return
        expected = event.stage == "reproduce" and event.status == "failed"
        prefix = "expected failure (pre-fix)" if expected else "error"
        self.write(f"    {prefix}: {error.message}")
        if error.hint and not expected:
            self.write(f"    hint: {error.hint}")

    def _summary(self, event: RunFinished) -> None:
        counts = event.counts or {}
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        status = str(event.status)
        self.write(
            f"{self.paint(status.upper(), status)}: run {event.run_id} in {event.duration_s or 0:.2f}s"
            f" ({parts or 'no steps'})"
        )


class JsonPrinter:
    """`--json`: every event as one JSON line on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: RunEvent) -> None:
        self.stream.write(json.dumps(event.as_record(), ensure_ascii=False, default=str) + "\n")
        self.stream.flush()

    def warning(self, message: str) -> None:
        self(RunWarning(message=message))


def _clock(stamp: str) -> str:
    return stamp[11:23] if len(stamp) >= 23 else stamp
