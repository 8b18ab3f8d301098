"""The timestamp log read back: its lines, what a status word means, and the times in it.

The timestamp log (`reports/timestamps/execution-log.jsonl`) is the workspace-wide list of phase
start / complete / fail lines that people also write by hand; unknown keys are kept, malformed lines
are skipped with a warning that names the line. Writing it, and the run records, belong to
`runbook.record`, which re-exports everything here. This module imports nothing heavy (no pydantic),
so `runbook status` can fold the log without loading the run-record models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

TIMESTAMP_LOG = Path("timestamps") / "execution-log.jsonl"
TERMINAL_ACTIONS = ("complete", "fail")
LOG_ACTIONS = ("start", *TERMINAL_ACTIONS)


def iso(moment: datetime) -> str:
    """UTC, ISO-8601, millisecond precision, with Z: 2025-11-14T04:15:00.000Z."""
    # isoformat truncates to the millisecond as `microsecond // 1000` would, ~5x faster than strftime
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Parse the ISO-8601 times we write and the ones people write by hand (Z or offset)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+14:00: a bad time, like any other
        raise ValueError(f"{text!r} is out of the range of times") from exc


@dataclass(frozen=True)
class LogLine:
    """One line of the timestamp log; `extra` keeps keys we do not know, untouched."""

    timestamp: datetime
    phase: str
    action: str
    description: str
    status: str | None
    cells_fixed: tuple[Any, ...]
    run_id: str | None
    extra: dict[str, Any]
    line: int

    @property
    def outcome(self) -> Outcome | None:
        """How a terminal line ended (None for a `start`): see `status_outcome`."""
        if self.action == "start":
            return None
        if self.action == "fail":
            return "failure"
        return status_outcome(self.status) if self.status is not None else "success"

    @property
    def succeeded(self) -> bool:
        return self.outcome == "success"

    @property
    def notes(self) -> dict[str, Any]:
        """The keys people add by hand (`servers_verified: 8`), without the ones runbook writes itself."""
        return {k: v for k, v in self.extra.items() if k not in WRITTEN_KEYS}


Outcome = Literal["success", "failure", "unknown"]
SUCCESS_WORDS = frozenset({"SUCCESS", "SUCCEEDED", "RESOLVED", "COMPLETE", "COMPLETED", "DONE", "OK", "PASS", "PASSED"})
FAILURE_WORDS = frozenset({"FAIL", "FAILED", "FAILURE", "ERROR"})
# Keys of a log line that runbook writes itself; anything else a person added is shown on the phase page.
WRITTEN_KEYS = frozenset({"source", "duration_s", "target", "stage", "started_at"})


def status_word(status: str) -> str:
    """`"RESOLVED ✅"`, `"complete!"`, `"**Done**"` -> `RESOLVED`, `COMPLETE`, `DONE`: letters only, upper case."""
    words = re.findall(r"[^\W\d_]+", status)
    return " ".join(words).upper()


def status_outcome(status: str) -> Outcome:
    """What a status word people write means: success, failure, or unknown (never silently failed)."""
    word = status_word(status)
    if word in SUCCESS_WORDS:
        return "success"
    if word in FAILURE_WORDS:
        return "failure"
    return "unknown"


def read_log(path: Path) -> tuple[list[LogLine], list[str]]:
    """All readable lines of the timestamp log, and a warning for each line skipped."""
    if not path.exists():
        return [], []
    lines: list[LogLine] = []
    warnings: list[str] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = parse_log_line(raw, number)
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                warnings.append(skipped_line_warning(path, number, exc))
                continue
            lines.append(line)
            warnings.extend(line_warnings(path, line))
    return lines, warnings


def skipped_line_warning(path: Path, number: int, error: Exception) -> str:
    """The warning for line `number` of the log at `path`, which could not be read."""
    from .errors import Location  # imported when there is something to say

    return f"{Location(str(path), number)}: skipped timestamp-log line: {error}"


def line_warnings(path: Path, line: LogLine) -> list[str]:
    """What a readable line of the log at `path` is warned about: a status word runbook does not know."""
    if line.outcome != "unknown":
        return []
    from .errors import Location

    return [
        f"{Location(str(path), line.line)}: status {line.status!r} of phase {line.phase} is not a word "
        f"runbook knows, counted as unknown (write one of {', '.join(sorted(SUCCESS_WORDS))} "
        f"or {', '.join(sorted(FAILURE_WORDS))})"
    ]


def parse_log_line(raw: bytes, number: int) -> LogLine:
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in ("timestamp", "phase", "action") if k not in obj]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    action = str(obj["action"]).lower()
    if action not in LOG_ACTIONS:
        raise ValueError(f"action {obj['action']!r} is not one of {', '.join(LOG_ACTIONS)}")
    known = {"timestamp", "phase", "action", "description", "status", "cells_fixed", "run_id"}
    cells = obj.get("cells_fixed") or ()
    return LogLine(
        timestamp=parse_time(str(obj["timestamp"])),
        phase=str(obj["phase"]),
        action=action,
        description=str(obj.get("description", "")),
        status=str(obj["status"]) if obj.get("status") is not None else None,
        # No cells_fixed (or an empty one) is no cells, not a tuple holding an empty tuple.
        cells_fixed=tuple(cells) if isinstance(cells, list) else (() if cells in (None, "", ()) else (cells,)),
        run_id=str(obj["run_id"]) if obj.get("run_id") else None,
        extra={k: v for k, v in obj.items() if k not in known},
        line=number,
    )
