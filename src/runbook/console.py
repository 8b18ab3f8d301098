"""What a run shows in the terminal: one line per step, a closing summary, or JSON lines for CI.

Colour follows `runbook.text.use_colour` (a terminal; NO_COLOR off, FORCE_COLOR/CLICOLOR_FORCE on).
On a terminal the running step has a live line, redrawn every half second with its elapsed time and
what the step reports (`cell 109 (2/4)` for kernel steps); the step's result line replaces it. A
failure of the reproduce stage is expected (the fault is still there) and has its own colour.
Every event reaching here has already been redacted by the executor.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
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
from .text import duration_text, use_colour
from .text import paint as _paint

COLOURS = {
    "ok": "32",
    "changed": "33",
    "failed": "31",
    "error": "31;1",
    "skipped": "90",
    "interrupted": "35",
    "success": "32",
    "restored": "36",
    "expected": "36",  # a reproduce-stage failure: the fault, seen before the fix
}
#: Seconds between redraws of the live line.
TICK = 0.5


class ConsolePrinter:
    """Human output: `04:15:00.123  discovery  list-accounts  ok  0.12s`."""

    def __init__(self, stream: TextIO | None = None, *, colour: bool | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stdout
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.tty = tty
        self.colour = use_colour(self.stream) if colour is None else colour
        self.verbose = verbose
        self._live = False
        self._lock = threading.RLock()
        self._running: tuple[str, str, str, float] | None = None  # clock, stage, step, started (monotonic)
        self._detail = ""
        self._ticker: threading.Thread | None = None
        self.clock: Callable[[], float] = time.monotonic

    def paint(self, text: str, status: str) -> str:
        return _paint(text, COLOURS.get(status), self.colour)

    def write(self, line: str) -> None:
        with self._lock:
            if self._live:
                self.stream.write("\r\033[K")
                self._live = False
            self.stream.write(line + "\n")
            self.stream.flush()

    # -- the live line of the running step (terminals only)

    def live_line(self) -> str:
        """The running step with its elapsed time and progress: `12:00:01.000  fix  run-cells  1.5s  cell 3 (1/2)`."""
        if self._running is None:
            return ""
        clock, stage, step, started = self._running
        elapsed = f"{self.clock() - started:.1f}s"
        detail = f"  {self._detail}" if self._detail else ""
        return f"{clock}  {stage:<10} {step:<28} {self.paint('running', 'skipped')}  {elapsed}{detail}"

    def tick(self) -> None:
        """Redraw the live line (the ticker thread calls this every TICK seconds)."""
        with self._lock:
            if self._running is None or not self.tty:
                return
            self.stream.write("\r\033[K" + self.live_line())
            self.stream.flush()
            self._live = True

    def progress(self, step: str, text: str) -> None:
        """What the running step reports (the executor calls this; it is never recorded)."""
        with self._lock:
            if self._running is not None and self._running[2] == step:
                self._detail = text
        self.tick()

    def _start_live(self, event: StepStarted) -> None:
        with self._lock:
            self._running = (_clock(event.time or ""), event.stage, event.step, self.clock())
            self._detail = ""
        self.tick()
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_forever, name="runbook-live-line", daemon=True)
            self._ticker.start()

    def _stop_live(self) -> None:
        if self._running is None and not self._detail:
            return  # no live line (not a terminal, or no step running): nothing to stop
        with self._lock:
            self._running = None
            self._detail = ""

    def _tick_forever(self) -> None:
        while True:
            time.sleep(TICK)
            with self._lock:
                if self._running is None:
                    self._ticker = None
                    return
            self.tick()

    def warning(self, message: str) -> None:
        self.write(self.paint(f"warning: {message}", "changed"))

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, StepStarted):  # the step events first: there are two a step
            if self.tty:
                self._start_live(event)
        elif isinstance(event, StepFinished | StepRestored):
            self._stop_live()
            self._step(event)
        elif isinstance(event, RunStarted):
            dry_run = "  [dry-run]" if event.options.dry_run else ""
            self.write(
                f"runbook: phase {event.phase} - {event.title} (run {event.run_id}, target {event.target}){dry_run}"
            )
        elif isinstance(event, RunResumed):
            self.write(f"runbook: resuming run {event.run_id}")
        elif isinstance(event, Note):
            self.write(f"note: {event.message}")
        elif isinstance(event, RunWarning):
            self.warning(event.message)
        elif isinstance(event, RunFinished):
            self._stop_live()
            self._summary(event)

    def _step(self, event: StepResult) -> None:
        restored = isinstance(event, StepRestored)
        status = event.status
        shown = f"{status} (restored)" if restored else status
        when = event.finished_at or (event.time if isinstance(event, StepRestored) else None) or ""
        line = (
            f"{_clock(when)}  {event.stage:<10} "
            f"{event.step:<28} {self.paint(f'{shown:<9}', _colour_of(event, restored))} "
            f"{duration_text(event.duration_s or 0):>10}"
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
        self.write(self.paint(f"    {prefix}: {error.message}", "expected" if expected else "failed"))
        if error.hint and not expected:
            self.write(f"    hint: {error.hint}")

    def _summary(self, event: RunFinished) -> None:
        counts = event.counts or {}
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        status = str(event.status)
        self.write(
            f"{self.paint(status.upper(), status)}: run {event.run_id} in {duration_text(event.duration_s or 0)}"
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


def _colour_of(event: StepResult, restored: bool) -> str:
    if restored:
        return "restored"
    if event.stage == "reproduce" and event.status == "failed":
        return "expected"
    return event.status


def _clock(stamp: str) -> str:
    return stamp[11:23] if len(stamp) >= 23 else stamp
