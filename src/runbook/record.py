"""Run records and the timestamp log: writing them as things happen, and reading them back.

A run record is `reports/runs/<phase>/<run-id>.jsonl`: one JSON event per line, appended as it
happens. Every line is one typed event (`RunStarted`,
`StepStarted`, `StepFinished`, `RunResumed`, `StepRestored`, `Note`, `RunFinished`; `RunWarning`
only on the console and in `--json`), a pydantic model chosen by the line's `event` key; events are
written and read through these models, and a line keeps only the fields its producer set, so records
written before the models existed read back unchanged. Readers tolerate a torn last line and a
mistyped one (reported, then ignored), keep unknown keys, and keep lines of unknown kinds as
`OtherEvent`. The timestamp log
(`reports/timestamps/execution-log.jsonl`) is the workspace-wide list of phase start / complete / fail
lines that people also write by hand; unknown keys are kept, malformed lines are skipped with a warning
that names the line.

Durability of a run record (`RecordWriter`; docs/reliability.md says the same to users):

- Every line is handed to the kernel with one `write(2)` the moment its event happens. A process
  killed at any point (SIGKILL, the OOM killer, a crash of Python) therefore loses no line it wrote:
  the data sits in the page cache and reaches the file whatever becomes of the process. What a
  SIGKILL can leave is at most one torn last line (a kill inside the write), which readers skip.
- `fsync` is only about the machine itself going down (power loss, kernel panic). The record is
  fsynced: after `run_started`, `run_resumed`, every `note` and `run_finished`; after the
  `step_finished` of every step whose action can act outside this process (shell, http, azure,
  notebook and file writes, manual, every plug-in action: anything but the in-process actions
  below), before the next step starts; before such a step starts, when earlier lines are not yet
  on disk (so everything a side effect follows is durable before it happens); and when the run
  moves to another stage.
- Lines of in-process steps (actions that are not blocking and change nothing, today `set` and
  `assert`), of skipped steps and of restored ones share one fsync: the pending lines are fsynced
  once `GROUP_LINES` of them are pending or `GROUP_SECONDS` have passed since the first (checked as
  each step's end line is written), and in any case at the next barrier above. A machine crash can therefore
  lose the ends of at most the last few steps that did nothing outside the process; `--resume`
  runs them again, which changes nothing anywhere. No step with an effect outside the process is
  ever run twice because an fsync was saved, and a `step_started` line alone (the start of an
  unfinished step) is the most a crash mid-step can lose.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import time
from collections.abc import Callable, KeysView
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .atomic import crash_point
from .errors import InputError
from .record_lines import LineEncoder, record_line
from .record_lines import encode as _encode

# The timestamp log is read by runbook.timestamp_log (no pydantic, for `runbook status`); re-exported.
from .timestamp_log import FAILURE_WORDS as FAILURE_WORDS  # noqa: PLC0414
from .timestamp_log import LOG_ACTIONS as LOG_ACTIONS  # noqa: PLC0414
from .timestamp_log import SUCCESS_WORDS as SUCCESS_WORDS  # noqa: PLC0414
from .timestamp_log import TERMINAL_ACTIONS as TERMINAL_ACTIONS  # noqa: PLC0414
from .timestamp_log import TIMESTAMP_LOG as TIMESTAMP_LOG  # noqa: PLC0414
from .timestamp_log import WRITTEN_KEYS as WRITTEN_KEYS  # noqa: PLC0414
from .timestamp_log import LogLine as LogLine  # noqa: PLC0414
from .timestamp_log import Outcome as Outcome  # noqa: PLC0414
from .timestamp_log import iso as iso  # noqa: PLC0414
from .timestamp_log import parse_time as parse_time  # noqa: PLC0414
from .timestamp_log import read_log as read_log  # noqa: PLC0414
from .timestamp_log import status_outcome as status_outcome  # noqa: PLC0414
from .timestamp_log import status_word as status_word  # noqa: PLC0414

RUNS_DIR = "runs"


def utc_now() -> datetime:
    return datetime.now(UTC)


def now_us() -> int:
    """Microseconds since the epoch, UTC: the clock `utc_now()` reads, floored to the microsecond as
    `datetime.now` floors it (two of them subtract exactly as the datetimes would)."""
    return time.time_ns() // 1000


_second_text: tuple[int, str] = (-1, "")


def iso_us(microseconds: int) -> str:
    """`iso()` of a `now_us()` reading (the same text), without building a datetime: a step's start
    and end are stamped this way, and the date and time of one second are formatted once."""
    global _second_text
    second, within = divmod(microseconds, 1_000_000)
    cached, text = _second_text
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if len(text) != 19:  # a year before 1000 or after 9999: the datetime's own format
            return iso(datetime.fromtimestamp(second, UTC).replace(microsecond=within))
        _second_text = (second, text)
    return f"{text}.{within // 1000:03d}Z"


def new_run_id(moment: datetime | None = None) -> str:
    # Sortable by start time (to the millisecond), unique by the random suffix.
    moment = moment or utc_now()
    stamp = moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"
    return f"{stamp}-{_random.token_hex(3)}"


def _open_for_append(path: Path) -> tuple[int, bool]:
    """An O_APPEND descriptor of `path` (created when missing), and whether its last line is torn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: each event is one write(2), so concurrent readers never see two lines interleaved.
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        return fd, bool(size) and os.pread(fd, 1, size - 1) != b"\n"
    except BaseException:
        os.close(fd)
        raise


def _write_all(fd: int, data: bytes) -> None:
    crash_point("record-append", fd, data)
    written = os.write(fd, data)  # one write(2) takes a whole line (short writes are for full disks and signals)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _append_line(path: Path, obj: dict[str, Any], *, durable: bool = True) -> None:
    """Append one JSON line and (when `durable`) make it durable before returning."""
    fd, torn = _open_for_append(path)
    try:
        # A torn last line (a crash mid-append) stays a line of its own, skipped by readers,
        # instead of swallowing this one.
        _write_all(fd, (b"\n" if torn else b"") + _encode(obj))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- run-record events


class _Event(BaseModel):
    """One line of a run record. Fields a line does not carry stay unset and are not written back.

    Unknown keys (from an older or newer runbook) are kept, so reading never breaks on them and a
    restored step carries them over. `get`/`[]`/`in` read the event as the JSON object it is on
    disk: a compatibility view for code that still reads string keys (reports.py, older tests).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event: str

    def as_record(self) -> dict[str, Any]:
        """The event as the JSON object written on its line (`event` first, unset fields left out)."""
        data = self.model_dump(mode="python", by_alias=True, exclude_unset=True)
        return {"event": self.event, **{k: v for k, v in data.items() if k != "event"}}

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_record().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.as_record()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.as_record()

    def keys(self) -> KeysView[str]:
        return self.as_record().keys()


class RunOptionsRecord(BaseModel):
    """The options a run started with, as its `run_started` line records them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    dry_run: bool = False
    only: str | None = None
    from_step: str | None = Field(default=None, alias="from")
    step: str | None = None
    reproduce: bool = False

    @property
    def partial(self) -> bool:
        """`--only` or `--step`: a run that resolves nothing."""
        return bool(self.only or self.step)


class RunStarted(_Event):
    event: Literal["run_started"] = "run_started"
    run_id: str | None = None
    phase: str | None = None
    title: str | None = None
    runbook: str | None = None
    digest: str | None = None
    target: str | None = None
    target_settings: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    options: RunOptionsRecord = Field(default_factory=RunOptionsRecord)
    time: str | None = None
    pid: int | None = None
    host: str | None = None


class RunResumed(_Event):
    event: Literal["run_resumed"] = "run_resumed"
    run_id: str | None = None
    time: str | None = None
    pid: int | None = None


class StepStarted(_Event):
    event: Literal["step_started"] = "step_started"
    stage: str
    step: str
    title: str | None = None
    uses: str | None = None
    time: str | None = None


class StepErrorRecord(BaseModel):
    """Why a step failed: the error's class name, its message and the hint shown with it."""

    model_config = ConfigDict(extra="allow")

    type: str | None = None
    message: str | None = None
    hint: str | None = None


class ExpectationRecord(BaseModel):
    """One `expect:` check of a step and whether it held."""

    model_config = ConfigDict(extra="allow")

    that: str
    passed: bool
    message: str | None = None


class _StepResult(_Event):
    """What a step came to: the fields `step_finished` and `step_restored` share."""

    stage: str
    step: str
    title: str | None = None
    uses: str | None = None
    status: str
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: int | float | None = None
    attempts: int | None = None
    output: Any = None
    reason: str | None = None
    dry_run: bool | None = None
    expectations: list[ExpectationRecord] | None = None
    diff: str | None = None
    changes: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None
    message: str | None = None
    error: StepErrorRecord | None = None
    # reproduce stage, when the step declares its expected failure: what was expected and seen.
    signature: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status in ("ok", "changed")

    def changed_paths(self) -> list[str]:
        """Workspace-relative paths of the files the step changed."""
        return [c["path"] for c in self.changes or [] if isinstance(c, dict) and isinstance(c.get("path"), str)]


class StepFinished(_StepResult):
    event: Literal["step_finished"] = "step_finished"


class StepRestored(_StepResult):
    """`--resume`: a step that completed in the interrupted run, its result kept."""

    event: Literal["step_restored"] = "step_restored"
    time: str | None = None

    @classmethod
    def of(cls, result: _StepResult, time: str) -> StepRestored:
        fields = result.model_dump(by_alias=True, exclude_unset=True, exclude={"event", "time"})
        return cls.model_validate({**fields, "time": time})


class Note(_Event):
    """Something worth telling about the run as a whole (today: `fault_not_reproduced`)."""

    event: Literal["note"] = "note"
    kind: str | None = None
    time: str | None = None
    message: str | None = None


class TargetAddress(_Event):
    """Where the run's emulator listens: written once, before the end of the first step after it
    started. A resumed run binds the same ports again, so restored outputs that hold these URLs (a
    search service's endpoint, a gateway URL) still reach it."""

    event: Literal["target_address"] = "target_address"
    target: str | None = None
    arm_url: str | None = None
    gateway_url: str | None = None
    time: str | None = None


class RunFinished(_Event):
    event: Literal["run_finished"] = "run_finished"
    run_id: str | None = None
    status: str | None = None
    time: str | None = None
    duration_s: int | float | None = None
    counts: dict[str, int] | None = None
    failed_step: str | None = None
    reproduced: bool | None = None
    changed_files: list[str] = Field(default_factory=list)


class RunWarning(_Event):
    """A warning (a retry, a torn line cut, a lock taken over): shown, in `--json` too; not recorded."""

    event: Literal["warning"] = "warning"
    message: str


class OtherEvent(_Event):
    """A line of a kind this version does not know (written by a newer runbook): kept, not used."""

    event: str = ""


RunEvent = Annotated[
    RunStarted | RunResumed | StepStarted | StepFinished | StepRestored | Note | TargetAddress | RunFinished | RunWarning,
    Field(discriminator="event"),
]
StepResult = StepFinished | StepRestored
_EVENT: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)
EVENT_KINDS = (
    "run_started",
    "run_resumed",
    "step_started",
    "step_finished",
    "step_restored",
    "note",
    "target_address",
    "run_finished",
    "warning",
)


def parse_event(obj: dict[str, Any]) -> RunEvent | OtherEvent:
    """The typed event of one record line; raises ValueError for a known kind with bad fields."""
    if obj.get("event") not in EVENT_KINDS:
        return OtherEvent.model_validate({**obj, "event": str(obj.get("event") or "")})
    try:
        return _EVENT.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "event"
        raise ValueError(f"not a valid {obj['event']} event: {where}: {first['msg']}") from None


# Fields only the executor writes, from its own vocabulary (kinds, stages, statuses, action names,
# its clock, counts): no secret can be in them, and masking a short secret there would only break
# a timestamp. Every other field (ids, titles, outputs, messages, errors) is masked.
_OWN_FIELDS = frozenset(
    {
        "event",
        "stage",
        "status",
        "uses",
        "time",
        "started_at",
        "finished_at",
        "duration_s",
        "attempts",
        "dry_run",
        "pid",
    }
)


def redact_event(event: RunEvent, redactor: Callable[[Any], Any]) -> RunEvent:
    """`event` with every secret masked (the fields it carries keep being the ones set): the event
    itself when it holds none, else a copy."""
    data = record_line(event)
    masked = {key: value if key in _OWN_FIELDS else redactor(value) for key, value in data.items()}
    if masked == data:
        return event
    return type(event).model_validate({**masked, "event": event.event})


def append_durably(path: Path, obj: dict[str, Any]) -> None:
    """Append one JSON line to a record (run or fleet) and make it durable before returning."""
    _append_line(path, obj, durable=True)


class RecordWriter:
    """Appends the events of one run to its record file, durably as the module docstring says.

    `in_process(uses)` tells whether an action acts only inside this process (its steps' lines may
    share an fsync); without it every step counts as acting outside, and every step result is
    fsynced before the next step starts. The file stays open from the first event to `run_finished`
    (or `close()`); each line is still one `write(2)`.
    """

    GROUP_LINES = 512
    GROUP_SECONDS = 0.2

    def __init__(self, path: Path, *, in_process: Callable[[str], bool] | None = None) -> None:
        self.path = path
        self._in_process = in_process
        self._kinds: dict[str, bool] = {}
        self._fd: int | None = None
        self._pending = 0  # lines written since the last fsync
        self._first_pending = 0.0  # time.monotonic() when the first of them was written
        self._stage: str | None = None
        self._line = LineEncoder()
        self.fsyncs = 0

    def __call__(self, event: RunEvent) -> None:
        self.write(event)

    def _local(self, uses: str | None) -> bool:
        if uses is None or self._in_process is None:
            return False
        known = self._kinds.get(uses)
        if known is None:
            known = self._kinds[uses] = bool(self._in_process(uses))
        return known

    def write(self, event: RunEvent) -> None:
        if isinstance(event, RunWarning):
            return  # warnings go to the console and `--json`, not into the record
        data = self._line.event(event)
        stage = getattr(event, "stage", None)
        if self._pending and stage is not None and stage != self._stage:
            self._sync()  # the stage that ended is on disk before the next one starts
        self._stage = stage if stage is not None else self._stage
        if isinstance(event, StepStarted):
            # A start line is never fsynced for itself: the step's end line is. The start of a step
            # that may act outside the process is a barrier for every line before it.
            barrier = self._pending > 0 and not self._local(event.uses)
            self._write(data)
            if barrier:
                self._sync()
            return
        self._write(data)
        grouped = isinstance(event, StepRestored) or (
            isinstance(event, StepFinished) and (event.status == "skipped" or self._local(event.uses))
        )
        due = self._pending >= self.GROUP_LINES or time.monotonic() - self._first_pending >= self.GROUP_SECONDS
        if not grouped or due:
            self._sync()
        if isinstance(event, RunFinished):
            self.close()

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            fd, torn = _open_for_append(self.path)
            self._fd = fd
            if torn:
                # A torn last line (a crash mid-append) stays a line of its own, skipped by readers,
                # instead of swallowing this one.
                data = b"\n" + data
        try:
            _write_all(self._fd, data)
        except BaseException:
            self._drop()  # reopened (and the tail checked again) by the next write
            raise
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending += 1

    def _sync(self) -> None:
        if self._fd is not None and self._pending:
            os.fsync(self._fd)
            self.fsyncs += 1
        self._pending = 0

    def _drop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """fsync what is pending and close the file (a later event opens it again)."""
        try:
            self._sync()
        finally:
            self._drop()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()


@dataclass
class RunRecord:
    """A run record read back: its typed events, and what could not be read."""

    path: Path
    events: list[RunEvent | OtherEvent]
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        header = self.run_started
        return header.run_id if header is not None and header.run_id else self.path.stem

    @property
    def run_started(self) -> RunStarted | None:
        return next((e for e in self.events if isinstance(e, RunStarted)), None)

    @property
    def run_finished(self) -> RunFinished | None:
        return next((e for e in reversed(self.events) if isinstance(e, RunFinished)), None)

    @property
    def options(self) -> RunOptionsRecord:
        header = self.run_started
        return header.options if header is not None else RunOptionsRecord()

    @cached_property
    def raw_events(self) -> list[dict[str, Any]]:
        """Compatibility: every event as the JSON object on its line (for reports.py until it moves
        to the typed events). Computed once per record read."""
        return [event.as_record() for event in self.events]

    @property
    def started(self) -> dict[str, Any]:
        """Compatibility: the `run_started` line as a dict (`{}` when the record has none)."""
        header = self.run_started
        return header.as_record() if header is not None else {}

    @property
    def finished(self) -> dict[str, Any] | None:
        """Compatibility: the last `run_finished` line as a dict (None while the run is unfinished)."""
        end = self.run_finished
        return end.as_record() if end is not None else None

    @property
    def status(self) -> str:
        """success, failed, interrupted — or `incomplete` when the process died mid-run."""
        end = self.run_finished
        if end is None:
            return "incomplete"
        return end.status or "incomplete"

    @property
    def phase(self) -> str:
        header = self.run_started
        return header.phase if header is not None and header.phase else self.path.parent.name

    @property
    def target_address(self) -> TargetAddress | None:
        """Where the run's emulator listened last (None when it never started one)."""
        return next((e for e in reversed(self.events) if isinstance(e, TargetAddress)), None)

    def step_results(self) -> list[StepFinished]:
        return [e for e in self.events if isinstance(e, StepFinished)]

    def step_outcomes(self) -> list[StepResult]:
        """Every `step_finished` and `step_restored`, in record order."""
        return [e for e in self.events if isinstance(e, StepFinished | StepRestored)]


def read_record(path: Path) -> RunRecord:
    """Read a record; a torn, malformed or mistyped line is reported in `warnings` and skipped."""
    events: list[RunEvent | OtherEvent] = []
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
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            torn = number == len(lines) and not raw.endswith(b"\n")
            what = "torn last line (the run was killed while writing it)" if torn else f"unreadable line: {exc}"
            warnings.append(f"{path}:{number}: {what}; ignored")
            continue
        try:
            events.append(parse_event(obj))
        except ValueError as exc:
            warnings.append(f"{path}:{number}: {exc}; ignored")
    return RunRecord(path=path, events=events, warnings=warnings)


def record_paths(reports_dir: Path, phase: str | None = None) -> list[Path]:
    """Record files, oldest first (run ids start with their UTC start time)."""
    base = reports_dir / RUNS_DIR
    if phase is not None:
        return sorted((base / phase).glob("*.jsonl"), key=lambda p: p.name)
    return sorted(base.glob("*/*.jsonl"), key=lambda p: p.name)


# ---------------------------------------------------------------- timestamp log


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
