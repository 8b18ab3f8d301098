"""The fleet record: `reports/fleet/<phase>/<fleet-run-id>.jsonl`, one typed event per line.

Each line is one event model below (one pydantic model per kind, unknown keys rejected when
written; when read, a top-level key a newer runbook added to a known kind is dropped, so its records
stay readable here, as run records are), appended
with the run record's own durable append (`runbook.record.append_durably`: one write(2) per line,
fsynced before the coordinator goes on), so a killed coordinator leaves a valid record of every
member start and finish it saw. `read_fleet_record` folds the events back into one state per member;
a torn last line is reported and skipped, like in run records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..errors import InputError
from ..record import append_durably, iso, utc_now

FLEET_DIR = "fleet"
#: Outcomes of a member in a fleet run. `not_started`: held back by --max-errors (or an interrupt).
MemberStatus = Literal["success", "failed", "error", "interrupted", "not_started"]
FAILURES = ("failed", "error", "interrupted")


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: str = Field(default_factory=lambda: iso(utc_now()))


class FleetStarted(_Event):
    event: Literal["fleet_started"] = "fleet_started"
    fleet_run_id: str
    fleet: str
    phase: str
    fleet_file: str
    engine: str
    members: list[str]
    options: dict[str, Any]


class FleetResumed(_Event):
    event: Literal["fleet_resumed"] = "fleet_resumed"
    fleet_run_id: str
    engine: str
    members: list[str]
    options: dict[str, Any]


class MemberStarted(_Event):
    event: Literal["member_started"] = "member_started"
    member: str
    mode: Literal["start", "resume"]
    subscription: str | None = None


class MemberFinished(_Event):
    event: Literal["member_finished"] = "member_finished"
    member: str
    status: MemberStatus
    mode: str = "start"  # start, resume, or recorded: a run that had finished before this coordinator saw it
    run_id: str | None = None
    record: str | None = None  # the member's run record
    report: str | None = None  # the member's resolution report
    workspace: str | None = None
    duration_s: float | None = None  # the member's run, from its record
    wall_s: float | None = None  # from hand-over to result, as the coordinator saw it (process start included)
    cells_changed: list[Any] = Field(default_factory=list)
    changed_steps: int = 0
    failed_step: str | None = None
    error: str | None = None
    commit: str | None = None
    attempts: int = 1  # member runs behind this result: 2+ when it was resumed


class MemberSkipped(_Event):
    event: Literal["member_skipped"] = "member_skipped"
    member: str
    reason: str


class FleetHalted(_Event):
    event: Literal["fleet_halted"] = "fleet_halted"
    reason: str
    errors: int
    max_errors: int


class FleetInterrupted(_Event):
    """Ctrl-C (SIGINT) or SIGTERM reached the coordinator: no new member starts; `running` finish."""

    event: Literal["fleet_interrupted"] = "fleet_interrupted"
    signal: str
    running: list[str]


class EmulatorStarted(_Event):
    """The fleet's shared emulator listens (every member's Azure for this fleet run)."""

    event: Literal["emulator_started"] = "emulator_started"
    estate: str
    arm_url: str
    gateway_url: str
    pid: int | None = None  # its process (it outlives a killed coordinator until the members go quiet)
    # a resumed fleet run whose earlier emulator's ports were taken: that address (members' restored
    # outputs that hold it will not reach this emulator)
    # (left out of the line when unset: a reader from before this field still reads the line)
    moved_from: str | None = Field(None, exclude_if=lambda value: value is None)


class EmulatorStopped(_Event):
    """What the shared emulator served: request counts and, per subscription, ARM requests granted and throttled."""

    event: Literal["emulator_stopped"] = "emulator_stopped"
    requests: int = 0
    arm_requests: int = 0
    gateway_requests: int = 0
    subscriptions: dict[str, dict[str, int]] = Field(default_factory=dict)


class FleetFinished(_Event):
    event: Literal["fleet_finished"] = "fleet_finished"
    status: Literal["success", "failed", "interrupted"]
    totals: dict[str, int]
    duration_s: float


FleetEvent = Annotated[
    FleetStarted | FleetResumed | MemberStarted | MemberFinished | MemberSkipped | FleetHalted | FleetInterrupted
    | EmulatorStarted | EmulatorStopped | FleetFinished,
    Field(discriminator="event"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(FleetEvent)


def fleet_record_path(reports_dir: Path, phase: str, fleet_run_id: str) -> Path:
    return reports_dir / FLEET_DIR / phase / f"{fleet_run_id}.jsonl"


def fleet_record_paths(reports_dir: Path, phase: str) -> list[Path]:
    """Fleet records of `phase`, oldest first (ids start with their UTC start time)."""
    return sorted((reports_dir / FLEET_DIR / phase).glob("*.jsonl"), key=lambda p: p.name)


class FleetRecordWriter:
    """Appends validated events to one fleet record, durably."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: BaseModel) -> dict[str, Any]:
        data = event.model_dump(mode="json")
        append_durably(self.path, data)
        return data


@dataclass
class MemberState:
    """What the fleet record says about one member (the latest of its events wins)."""

    name: str
    status: str = "pending"  # pending, running, not_started, or a MemberStatus
    started: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    skipped: str | None = None


@dataclass
class FleetRecord:
    """A fleet record read back."""

    path: Path
    events: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def fleet_run_id(self) -> str:
        return self.path.stem

    @property
    def started(self) -> dict[str, Any]:
        return next((e for e in self.events if e["event"] == "fleet_started"), {})

    @property
    def finished(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e["event"] == "fleet_finished"), None)

    @property
    def phase(self) -> str:
        return str(self.started.get("phase", self.path.parent.name))

    @property
    def status(self) -> str:
        """success, failed, interrupted — or `incomplete` while running or after a killed coordinator."""
        return str(self.finished["status"]) if self.finished else "incomplete"

    def members(self) -> dict[str, MemberState]:
        names = list(self.started.get("members", []))
        for event in self.events:
            if event["event"] == "fleet_resumed":
                names.extend(n for n in event["members"] if n not in names)
        states = {name: MemberState(name) for name in names}
        for event in self.events:
            name = event.get("member")
            if name is None:
                continue
            state = states.setdefault(str(name), MemberState(str(name)))
            if event["event"] == "member_started":
                state.status, state.started, state.finished, state.skipped = "running", event, None, None
            elif event["event"] == "member_finished":
                state.status, state.finished = str(event["status"]), event
            elif event["event"] == "member_skipped":
                state.skipped = str(event["reason"])
                if state.finished is None:
                    state.status = "not_started"
        return states


def _read_event(obj: Any) -> Any:
    """One line as its event model. Top-level keys the model does not know (a newer runbook's) are
    dropped; any other problem, or an unknown key with it, still makes the line unreadable."""
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = {e["loc"][1] for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 2}
        if not isinstance(obj, dict) or not unknown or len(unknown) != len(errors):
            raise
        return _ADAPTER.validate_python({key: value for key, value in obj.items() if key not in unknown})


def read_fleet_record(path: Path) -> FleetRecord:
    """Read a fleet record; torn or invalid lines are reported in `warnings` and skipped."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read fleet record: {exc.strerror}") from None
    events: list[dict[str, Any]] = []
    warnings: list[str] = []
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = _read_event(json.loads(line))
        except (ValueError, UnicodeDecodeError, ValidationError) as exc:
            torn = number == len(lines) and not raw.endswith(b"\n")
            what = "torn last line (the coordinator was killed while writing it)" if torn else f"unreadable line: {str(exc).splitlines()[0]}"
            warnings.append(f"{path}:{number}: {what}; ignored")
            continue
        events.append(event.model_dump(mode="json"))
    return FleetRecord(path=path, events=events, warnings=warnings)


def latest_fleet_record(reports_dir: Path, phase: str, fleet_run_id: str | None = None) -> FleetRecord:
    """The fleet run `fleet_run_id` (id or unique prefix) of `phase`, or its latest one."""
    paths = fleet_record_paths(reports_dir, phase)
    if fleet_run_id:
        paths = [p for p in paths if p.stem.startswith(fleet_run_id)]
        if len(paths) > 1:
            raise InputError(f"fleet run id {fleet_run_id!r} is ambiguous: {', '.join(p.stem for p in paths)}")
    if not paths:
        what = f"fleet run {fleet_run_id!r}" if fleet_run_id else "fleet run"
        raise InputError(
            f"no {what} of phase {phase} in {reports_dir / FLEET_DIR / phase}",
            hint=f"start one with `runbook fleet run {phase}`",
        )
    return read_fleet_record(paths[-1])
