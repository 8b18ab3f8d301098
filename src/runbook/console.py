"""What a run shows in the terminal: one line per step, a closing summary, or JSON lines for CI.

Colour follows `runbook.text.use_colour` (a terminal; NO_COLOR off, FORCE_COLOR/CLICOLOR_FORCE on).
Every event reaching here has already been redacted by the executor.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .text import paint as _paint
from .text import use_colour

COLOURS = {
    "ok": "32",
    "changed": "33",
    "failed": "31",
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

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "run_started":
            self.write(
                f"runbook: phase {event['phase']} - {event['title']} (run {event['run_id']}, "
                f"target {event.get('target')}){'  [dry-run]' if event.get('options', {}).get('dry_run') else ''}"
            )
        elif kind == "run_resumed":
            self.write(f"runbook: resuming run {event['run_id']}")
        elif kind == "step_started" and self.tty:
            self.stream.write(f"{_clock(event['time'])}  {event['stage']:<10} {event['step']:<28} ...")
            self.stream.flush()
            self._live = True
        elif kind in ("step_finished", "step_restored"):
            self._step(event, restored=kind == "step_restored")
        elif kind == "note":
            self.write(f"note: {event.get('message')}")
        elif kind == "run_finished":
            self._summary(event)

    def _step(self, event: dict[str, Any], *, restored: bool) -> None:
        status = str(event.get("status"))
        shown = f"{status} (restored)" if restored else status
        line = (
            f"{_clock(event.get('finished_at') or event.get('time', ''))}  {event['stage']:<10} "
            f"{event['step']:<28} {self.paint(f'{shown:<9}', 'restored' if restored else status)} "
            f"{event.get('duration_s', 0):>7.2f}s"
        )
        extra = event.get("reason") or event.get("message")
        if extra:
            line += f"  {extra}"
        self.write(line)
        error = event.get("error")
        if error and status != "skipped":
            prefix = "expected failure (pre-fix)" if event.get("stage") == "reproduce" else "error"
            self.write(f"    {prefix}: {error.get('message')}")
            if error.get("hint") and event.get("stage") != "reproduce":
                self.write(f"    hint: {error['hint']}")
        if event.get("diff") and (self.verbose or event.get("dry_run")):
            for diff_line in str(event["diff"]).splitlines():
                self.write(f"    {diff_line}")
        for warning in event.get("warnings") or []:
            self.warning(f"{event['step']}: {warning}")

    def _summary(self, event: dict[str, Any]) -> None:
        counts = event.get("counts") or {}
        parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        status = str(event.get("status"))
        self.write(
            f"{self.paint(status.upper(), status)}: run {event['run_id']} in {event.get('duration_s', 0):.2f}s"
            f" ({parts or 'no steps'})"
        )


class JsonPrinter:
    """`--json`: every event as one JSON line on stdout."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()

    def warning(self, message: str) -> None:
        self({"event": "warning", "message": message})


def _clock(stamp: str) -> str:
    return stamp[11:23] if len(stamp) >= 23 else stamp
