"""The coordinator: which member starts when, and the fleet record of what happened.

Rate control follows AWS SSM Automation: `max_concurrency` members run at once (N or P% of the
selected members); once more than `max_errors` members failed (N or P%, rounded down), no new member
starts and the running ones finish. `per_subscription` caps the members running at once in one
subscription (ARM throttles per subscription and principal). Members start in file order; a member
whose subscription is full waits while later members of other subscriptions go ahead.

`--resume` continues the latest fleet run of the phase under the same fleet run id: a member whose
run for this fleet run finished (read from the member's own records) is not run again, an
interrupted one is resumed, the rest start. Errors are counted per invocation, so members that failed
before a resume do not use up the resumed run's error budget.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError, RunbookError
from ..model import normalise_phase
from ..record import iso, new_run_id, utc_now
from .member import MemberJob, decide
from .model import LoadedFleet, MemberSpec
from .record import (
    FAILURES,
    EmulatorStarted,
    EmulatorStopped,
    FleetFinished,
    FleetHalted,
    FleetInterrupted,
    FleetRecord,
    FleetRecordWriter,
    FleetResumed,
    FleetStarted,
    MemberFinished,
    MemberSkipped,
    MemberStarted,
    MemberState,
    fleet_record_path,
    latest_fleet_record,
)

if TYPE_CHECKING:
    from .emulator import FleetEmulator
    from .engines import Engine

Listener = Callable[[dict[str, Any]], None]


def parse_limit(value: int | str | None, total: int, what: str, *, minimum: int = 0) -> int | None:
    """`4` -> 4, `"25%"` -> 25% of `total` rounded down (at least `minimum`); None stays None."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return max(minimum, int(total * share / 100))
        number = int(text)
        if number < minimum:
            raise ValueError
        return number
    except ValueError:
        raise InputError(
            f"{what} {value!r} is not a count or a percentage",
            hint=f"write a whole number (at least {minimum}) like 2, or a percentage like 10%",
        ) from None


@dataclass
class FleetOptions:
    """What `runbook fleet run` was asked to do."""

    members: tuple[str, ...] = ()
    max_concurrency: int | str | None = None
    max_errors: int | str | None = None
    per_subscription: int | None = None
    dry_run: bool = False
    assume_yes: bool = False
    commit: bool = False
    branch: bool = False
    resume: bool = False
    engine: str = "local"
    scheduler: str | None = None


@dataclass
class FleetPlan:
    """A fleet run before it starts: who, how fast, where."""

    fleet: LoadedFleet
    phase: str
    fleet_run_id: str
    members: list[MemberSpec]
    max_concurrency: int
    max_errors: int | None
    per_subscription: int | None
    options: FleetOptions
    previous: FleetRecord | None = None
    estate_keys: dict[str, str] = field(default_factory=dict)  # the shared emulator's gateway keys (fake ones)

    @property
    def record_path(self) -> Path:
        return fleet_record_path(self.fleet.reports_dir, self.phase, self.fleet_run_id)

    def describe(self) -> dict[str, Any]:
        return {
            "max_concurrency": self.max_concurrency,
            "max_errors": self.max_errors,
            "per_subscription": self.per_subscription,
            "dry_run": self.options.dry_run,
            "commit": self.options.commit,
            "branch": self.branch,
            "selected": list(self.options.members),
        }

    @property
    def branch(self) -> str | None:
        return f"fleet/{self.phase}/{self.fleet_run_id}" if self.options.commit and self.options.branch else None


@dataclass
class FleetOutcome:
    fleet_run_id: str
    status: str
    statuses: dict[str, str]
    record_path: Path | None
    duration_s: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return _totals(self.statuses)


def _totals(statuses: dict[str, str]) -> dict[str, int]:
    totals = {"members": len(statuses)}
    for status in ("success", "failed", "error", "interrupted", "not_started"):
        totals[status] = sum(1 for s in statuses.values() if s == status)
    return totals


def plan_fleet(fleet: LoadedFleet, phase: str, options: FleetOptions) -> FleetPlan:
    """Resolve the members and limits of a fleet run (nothing runs, nothing is written)."""
    phase_id = normalise_phase(phase)
    if options.branch and not options.commit:
        raise InputError("--branch needs --commit", hint="add --commit, or drop --branch")
    previous = None
    members = fleet.select(options.members)
    if options.resume:
        previous = latest_fleet_record(fleet.reports_dir, phase_id)
        if previous.status == "success":
            raise InputError(
                f"nothing to resume: fleet run {previous.fleet_run_id} of phase {phase_id} finished with every member successful",
                hint=f"start a new fleet run with `runbook fleet run {phase_id}`",
            )
        original = set(previous.started.get("members", []))
        for event in previous.events:
            if event["event"] == "fleet_resumed":
                original.update(event["members"])
        members = [m for m in members if m.name in original]
        if not members:
            raise InputError(f"none of the selected members is part of fleet run {previous.fleet_run_id}")
    rate = fleet.config.rate
    total = len(members)
    concurrency = parse_limit(options.max_concurrency if options.max_concurrency is not None else rate.max_concurrency, total, "--max-concurrency", minimum=1)
    max_errors = parse_limit(options.max_errors if options.max_errors is not None else rate.max_errors, total, "--max-errors")
    per_subscription = options.per_subscription or rate.per_subscription
    if options.engine == "dask" and not options.scheduler:
        raise InputError("--engine dask needs --scheduler tcp://HOST:PORT", hint="e.g. --scheduler tcp://127.0.0.1:8786")
    if options.engine == "local" and options.scheduler:
        raise InputError("--scheduler goes with --engine dask", hint="add --engine dask, or drop --scheduler")
    keys = _check_estate(fleet, members) if fleet.config.emulator is not None else {}
    return FleetPlan(
        fleet=fleet,
        phase=phase_id,
        fleet_run_id=previous.fleet_run_id if previous else new_run_id(),
        members=members,
        max_concurrency=concurrency or 1,
        max_errors=max_errors,
        per_subscription=per_subscription,
        options=options,
        previous=previous,
        estate_keys=keys,
    )


def _check_estate(fleet: LoadedFleet, members: list[MemberSpec]) -> dict[str, str]:
    """Load the shared emulator's estate and check each member's subscription and gateway are in it."""
    from ..azure.estate import load_estate
    from ..errors import did_you_mean
    from .emulator import estate_keys

    assert fleet.estate_path is not None
    estate = load_estate(fleet.estate_path)
    keys = estate_keys(estate)
    subscriptions = [sub.id for sub in estate.subscriptions]
    for spec in members:
        sub = spec.settings.get("subscription_id")
        if sub is not None and estate.find_subscription(str(sub)) is None:
            raise InputError(f"{spec.location}: member {spec.name!r}: subscription {sub} is not in the fleet's estate {fleet.estate_path.name}",
                             hint=f"{did_you_mean(str(sub), subscriptions)}add it to the estate, or fix the member's subscription")
        service = spec.settings.get("apim_service")
        if service is not None and str(service).lower() not in keys:
            raise InputError(f"{spec.location}: member {spec.name!r}: API Management service {service!r} is not in the fleet's estate {fleet.estate_path.name}",
                             hint=f"{did_you_mean(str(service), sorted(keys))}add it to the estate, or fix the member's apim_service")
    return keys


def member_job(plan: FleetPlan, spec: MemberSpec) -> MemberJob:
    return MemberJob(
        name=spec.name,
        phase=plan.phase,
        fleet_run_id=plan.fleet_run_id,
        workspace=str(spec.workspace) if spec.workspace is not None else None,
        repo=spec.repo,
        ref=spec.ref,
        path=spec.path,
        work_dir=str(plan.fleet.work_dir),
        target=spec.target,
        subscription=spec.subscription,
        settings=dict(spec.settings),
        secrets=dict(spec.secrets),
        vars=dict(spec.vars),
        dry_run=plan.options.dry_run,
        assume_yes=plan.options.assume_yes,
        commit=plan.options.commit,
        branch=plan.branch,
    )


def _recorded(plan: FleetPlan, job: MemberJob) -> dict[str, Any] | None:
    """On resume: the member's finished run of this fleet run, read from its own records (if reachable here)."""
    from .member import member_root as root_of
    from .member import summarise

    if job.repo is not None and not (Path(job.work_dir) / job.name / ".git").exists():
        return None  # not cloned yet: nothing can have run
    try:
        from ..workspace import load_workspace

        ws = load_workspace(root_of(job))
        phase = ws.load_runbook(plan.phase).runbook.phase
        mode, record = decide(ws, phase, plan.fleet_run_id)
    except RunbookError:
        return None  # the member's run will say what is wrong
    return {**summarise(record, ws, phase), "mode": "recorded"} if mode == "completed" else None


def run_fleet(plan: FleetPlan, listeners: Iterable[Listener] = ()) -> FleetOutcome:
    """Run the plan: start members under the limits, write the fleet record, return the outcome.

    Ctrl-C (SIGINT) or SIGTERM, when this runs in the main thread: no new member starts, the running
    ones finish (a terminal's Ctrl-C also reaches them: they stop their step and record it as
    interrupted), and the fleet record says `interrupted`. A second signal stops the running members.
    """
    from .engines import open_engine

    listeners = list(listeners)
    writer = None if plan.options.dry_run else FleetRecordWriter(plan.record_path)
    events: list[dict[str, Any]] = []

    def emit(event: Any) -> None:
        data = writer.write(event) if writer is not None else event.model_dump(mode="json")
        events.append(data)
        for listener in listeners:
            listener(data)

    started = time.monotonic()
    names = [m.name for m in plan.members]
    engine_name = plan.options.engine
    statuses: dict[str, str] = {}
    finished_before = plan.previous.members() if plan.previous else {}
    pending, done_before = _split_recorded(plan)
    # The emulator and the engine start before the first line is written: a failure leaves no record.
    def show(data: dict[str, Any]) -> None:  # a console line, not a record line
        for listener in listeners:
            listener(data)

    emulator = _start_emulator(plan, pending, show) if pending and plan.fleet.config.emulator is not None else None
    try:
        engine = open_engine(engine_name, scheduler=plan.options.scheduler, fleet_run_id=plan.fleet_run_id,
                             max_concurrency=plan.max_concurrency, per_subscription=plan.per_subscription) if pending else None
    except BaseException:
        if emulator is not None:
            emulator.stop()
        raise
    if plan.previous is None:
        emit(FleetStarted(fleet_run_id=plan.fleet_run_id, fleet=plan.fleet.config.fleet, phase=plan.phase,
                          fleet_file=str(plan.fleet.path), engine=engine_name, members=names, options=plan.describe()))
    else:
        emit(FleetResumed(fleet_run_id=plan.fleet_run_id, engine=engine_name, members=names, options=plan.describe()))
    if emulator is not None:
        emit(EmulatorStarted(estate=str(plan.fleet.estate_path), arm_url=emulator.arm_url, gateway_url=emulator.gateway_url,
                             pid=emulator.process.pid, **({"moved_from": emulator.moved_from} if emulator.moved_from else {})))
    _replay_finished(done_before, finished_before, statuses, emit)
    signals = _Signals()
    with signals:  # until the fleet record is complete: a signal is counted, never raised mid-write
        try:
            _drive(plan, engine, pending, finished_before, statuses, emit, signals)
        finally:
            if engine is not None:
                engine.close()
            if emulator is not None:
                stats = emulator.stop()
                emit(EmulatorStopped(**(stats or {})))
        interrupted = signals.count > 0
        for spec, _job in pending:
            statuses[spec.name] = "not_started"
            emit(MemberSkipped(member=spec.name, reason="interrupted" if interrupted else "--max-errors exceeded"))
        for spec in plan.members:
            statuses.setdefault(spec.name, "not_started")
        everyone = all(s == "success" for s in statuses.values())
        status: Literal["success", "failed", "interrupted"] = "interrupted" if interrupted else "success" if everyone else "failed"
        duration = round(time.monotonic() - started, 3)
        emit(FleetFinished(status=status, totals=_totals(statuses), duration_s=duration))
    return FleetOutcome(plan.fleet_run_id, status, statuses, plan.record_path if writer else None, duration, events)


def _drive(plan: FleetPlan, engine: Engine | None, pending: list[tuple[MemberSpec, MemberJob]],
           finished_before: dict[str, MemberState], statuses: dict[str, str], emit: Callable[[Any], None],
           signals: _Signals) -> None:
    """The coordinator's loop: start members while the limits allow, record each as it finishes."""
    running: dict[Any, tuple[MemberSpec, float]] = {}
    errors = 0
    halted = False
    while pending or running:
        halted = signals.check(running, engine, emit) or halted
        if not halted:
            _start_members(plan, engine, pending, running, finished_before, emit)
        if not running:
            break
        assert engine is not None
        done = engine.wait(list(running), timeout=0.5)
        halted = signals.check(running, engine, emit) or halted  # members a signal stopped were running when it came
        for handle in done:
            spec, began = running.pop(handle)
            result = engine.result(handle)
            result.setdefault("status", "error")
            result["wall_s"] = round(time.monotonic() - began, 3)
            statuses[spec.name] = result["status"]
            emit(MemberFinished(member=spec.name, **_fields(result)))
            if result["status"] in FAILURES:
                errors += 1
                if plan.max_errors is not None and errors > plan.max_errors and not halted:
                    halted = True
                    emit(FleetHalted(reason=f"{errors} members failed, more than --max-errors {plan.max_errors}: no new member starts",
                                     errors=errors, max_errors=plan.max_errors))


def _start_emulator(
    plan: FleetPlan, pending: list[tuple[MemberSpec, MemberJob]], show: Callable[[dict[str, Any]], None] = lambda _data: None
) -> FleetEmulator:
    """Start the fleet's shared emulator and give each pending member its URLs and gateway key."""
    from .emulator import is_fleet_emulator, start_fleet_emulator, wait_for_orphaned

    config = plan.fleet.config.emulator
    assert config is not None and plan.fleet.estate_path is not None
    # A resumed fleet run: its members restore outputs that may hold the earlier emulator's URLs
    # (endpoints built from the gateway URL), so the emulator listens where it did, when it can.
    earlier = [e for e in plan.previous.events if e["event"] == "emulator_started"] if plan.previous else []
    ports = _recorded_ports(earlier[-1]) if earlier else None
    if ports is not None:  # the killed coordinator's emulator may still serve its orphans there
        pid = earlier[-1].get("pid")
        if pid and is_fleet_emulator(pid):
            show({"event": "emulator_waiting", "time": iso(utc_now()), "pid": pid})
        wait_for_orphaned(pid)
    emulator = start_fleet_emulator(plan.fleet.estate_path, latency=config.latency, seed=config.seed,
                                    page_size=config.page_size, keys=plan.estate_keys, ports=ports)
    if emulator.moved:
        emulator.moved_from = f"{earlier[-1].get('arm_url')}, {earlier[-1].get('gateway_url')}"
    for _spec, job in pending:
        job.settings, job.secret_settings = emulator.member_settings(job.settings)
    return emulator


def _recorded_ports(started: dict[str, Any]) -> tuple[int, int] | None:
    """(ARM, gateway) ports of a recorded `emulator_started` event, or None."""
    from ..targets import _recorded_ports as ports_of

    found = ports_of(started)
    return (found["arm_port"], found["gateway_port"]) if found is not None else None


class _Signals:
    """While the coordinator runs (in the main thread): SIGINT and SIGTERM are counted, not raised."""

    def __init__(self) -> None:
        self.count = 0
        self.name = ""
        self.seen = False
        self.stopping = False
        self._saved: dict[int, Any] = {}

    def check(self, running: dict[Any, tuple[MemberSpec, float]], engine: Engine | None, emit: Callable[[Any], None]) -> bool:
        """Record the first signal (and who was running); on the second, stop the running members. True once signalled."""
        if self.count and not self.seen:
            self.seen = True
            emit(FleetInterrupted(signal=self.name, running=[spec.name for spec, _ in running.values()]))
        if self.count > 1 and not self.stopping and engine is not None:
            self.stopping = True
            engine.interrupt()  # each member stops its step and records it as interrupted
        return self.seen

    def _handle(self, signum: int, _frame: Any) -> None:
        self.count += 1
        self.name = self.name or signal.Signals(signum).name

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def _split_recorded(plan: FleetPlan) -> tuple[list[tuple[MemberSpec, MemberJob]], list[tuple[MemberSpec, dict[str, Any]]]]:
    """The members still to run (with their jobs), and those whose run of this fleet run finished earlier."""
    pending: list[tuple[MemberSpec, MemberJob]] = []
    done_before: list[tuple[MemberSpec, dict[str, Any]]] = []
    for spec in plan.members:
        job = member_job(plan, spec)
        recorded = _recorded(plan, job) if plan.previous is not None else None
        if recorded is None:
            pending.append((spec, job))
        else:
            done_before.append((spec, recorded))
    return pending, done_before


def _replay_finished(done_before: list[tuple[MemberSpec, dict[str, Any]]], finished_before: dict[str, MemberState],
                     statuses: dict[str, str], emit: Callable[[Any], None]) -> None:
    """On resume: record each member that finished earlier (once) and that it is skipped now."""
    for spec, recorded in done_before:
        statuses[spec.name] = recorded["status"]
        earlier = finished_before.get(spec.name)
        if earlier is None or earlier.finished is None or earlier.finished.get("run_id") != recorded.get("run_id"):
            emit(MemberFinished(member=spec.name, **_fields(recorded)))
        emit(MemberSkipped(member=spec.name, reason=f"its run {recorded.get('run_id')} finished earlier ({recorded['status']})"))


def _start_members(plan: FleetPlan, engine: Engine | None, pending: list[tuple[MemberSpec, MemberJob]],
                   running: dict[Any, tuple[MemberSpec, float]], finished_before: dict[str, MemberState],
                   emit: Callable[[Any], None]) -> None:
    """Submit pending members, in file order, while the concurrency and per-subscription limits leave room."""
    while pending and len(running) < plan.max_concurrency:
        index = _next_startable(pending, running, plan.per_subscription)
        if index is None:
            break
        spec, job = pending.pop(index)
        mode = "resume" if plan.previous is not None and finished_before.get(spec.name) is not None \
            and finished_before[spec.name].started is not None else "start"
        emit(MemberStarted(member=spec.name, mode=mode, subscription=spec.subscription))
        assert engine is not None
        running[engine.submit(job)] = (spec, time.monotonic())


def _next_startable(pending: list[tuple[MemberSpec, MemberJob]], running: dict[Any, tuple[MemberSpec, float]], per_subscription: int | None) -> int | None:
    """Index of the first pending member whose subscription has room (file order otherwise)."""
    if not per_subscription:
        return 0
    busy: dict[str, int] = {}
    for spec, _ in running.values():
        if spec.subscription:
            busy[spec.subscription] = busy.get(spec.subscription, 0) + 1
    for index, (spec, _job) in enumerate(pending):
        if not spec.subscription or busy.get(spec.subscription, 0) < per_subscription:
            return index
    return None


_FINISHED_FIELDS = set(MemberFinished.model_fields) - {"event", "time", "member"}


def _fields(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k in _FINISHED_FIELDS and v is not None}
