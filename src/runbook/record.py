"""Run records and the timestamp log: writing them as things happen, and reading them back.

A run record is `reports/runs/<phase>/<run-id>.jsonl`: one JSON event per line, appended, flushed and
fsynced as it happens (a step's start line rides on the fsync of its end line), so a killed run
leaves a valid record of every step that completed. Readers tolerate a torn last line (reported,
then ignored). The timestamp log
(`reports/timestamps/execution-log.jsonl`) is the workspace-wide list of phase start / complete / fail
lines that people also write by hand; unknown keys are kept, malformed lines are skipped with a warning
that names the line.
"""

from __future__ import annotations

import json
import os
import secrets as _random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .atomic import crash_point
from .errors import InputError, Location

RUNS_DIR = "runs"
TIMESTAMP_LOG = Path("timestamps") / "execution-log.jsonl"
TERMINAL_ACTIONS = ("complete", "fail")
LOG_ACTIONS = ("start", *TERMINAL_ACTIONS)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC, ISO-8601, millisecond precision, with Z: 2025-11-14T04:15:00.000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse the ISO-8601 times we write and the ones people write by hand (Z or offset)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def new_run_id(moment: datetime | None = None) -> str:
    # Sortable by start time (to the millisecond), unique by the random suffix.
    moment = moment or utc_now()
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{_random.token_hex(3)}"


def _append_line(path: Path, obj: dict[str, Any], *, durable: bool = True) -> None:
    """Append one JSON line and (when `durable`) make it durable before returning."""
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: each event is one write(2), so concurrent readers never see two lines interleaved.
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A torn last line (a crash mid-append) stays a line of its own, skipped by readers,
            # instead of swallowing this one.
            line = "\n" + line
        data = line.encode("utf-8")
        crash_point("record-append", fd, data)
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


class RecordWriter:
    """Appends the events of one run to its record file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: dict[str, Any]) -> None:
        # A `step_started` line gets no fsync of its own (half the fsyncs of a run): the step's
        # `step_finished` is fsynced before the next step starts, and that fsync makes every earlier
        # line of the file durable too. A crash mid-step can lose only the start of an unfinished step.
        _append_line(self.path, event, durable=event.get("event") != "step_started")


@dataclass
class RunRecord:
    """A run record read back: its events, and what could not be read."""

    path: Path
    events: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.started.get("run_id", self.path.stem))

    @property
    def started(self) -> dict[str, Any]:
        return next((e for e in self.events if e.get("event") == "run_started"), {})

    @property
    def finished(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("event") == "run_finished"), None)

    @property
    def status(self) -> str:
        """success, failed, interrupted — or `incomplete` when the process died mid-run."""
        if self.finished is None:
            return "incomplete"
        return str(self.finished.get("status", "incomplete"))

    @property
    def phase(self) -> str:
        return str(self.started.get("phase", self.path.parent.name))

    def step_results(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "step_finished"]


def read_record(path: Path) -> RunRecord:
    """Read a record; a torn or malformed line is reported in `warnings` and skipped."""
    events: list[dict[str, Any]] = []
    warnings: list[str] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read run record: {exc.strerror}") from None
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            torn = number == len(lines) and not raw.endswith(b"\n")
            what = "torn last line (the run was killed while writing it)" if torn else f"unreadable line: {exc}"
            warnings.append(f"{path}:{number}: {what}; ignored")
            continue
        events.append(event)
    return RunRecord(path=path, events=events, warnings=warnings)


def record_paths(reports_dir: Path, phase: str | None = None) -> list[Path]:
    """Record files, oldest first (run ids start with their UTC start time)."""
    base = reports_dir / RUNS_DIR
    if phase is not None:
        return sorted((base / phase).glob("*.jsonl"), key=lambda p: p.name)
    return sorted(base.glob("*/*.jsonl"), key=lambda p: p.name)


# ---------------------------------------------------------------- timestamp log


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
    def succeeded(self) -> bool:
        return self.action == "complete" and (self.status or "SUCCESS").upper() in ("SUCCESS", "RESOLVED", "OK")


def log_entry(
    phase: str,
    action: str,
    description: str,
    *,
    moment: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A timestamp-log line in the shape people already keep by hand."""
    entry: dict[str, Any] = {
        "timestamp": iso(moment or utc_now()).replace(".000Z", "Z"),
        "phase": phase,
        "action": action,
        "description": description,
    }
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def append_log(path: Path, entry: dict[str, Any]) -> None:
    if entry.get("action") not in LOG_ACTIONS:
        raise InputError(f"timestamp-log action must be one of {', '.join(LOG_ACTIONS)}, not {entry.get('action')!r}")
    _append_line(path, entry)


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
                lines.append(_parse_log_line(raw, number))
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                warnings.append(f"{Location(str(path), number)}: skipped timestamp-log line: {exc}")
    return lines, warnings


def _parse_log_line(raw: bytes, number: int) -> LogLine:
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

