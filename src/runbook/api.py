"""The plain Python API under the CLI: run a phase, validate runbooks, log by hand, scaffold.

`cli.py` parses options and calls these; tests call them too. A run goes: load the workspace and
the runbook (fully validated) -> open the target -> resolve inputs -> take the workspace lock -> open
the run record and log `start` -> execute -> log `complete`/`fail` -> write the report, changelog and
timeline -> optionally commit. Errors are `RunbookError`s; nothing here exits the process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InputError, RunFailed, RunInterrupted
from .executor import Executor, Listener, RunOptions, RunResult, in_process_action
from .inputs import resolve_inputs
from .loader import LoadedRunbook
from .lock import WorkspaceLock
from .model import normalise_phase
from .record import (
    TERMINAL_ACTIONS,
    RecordWriter,
    RunEvent,
    RunResumed,
    RunStarted,
    StepResult,
    append_log,
    iso,
    log_entry,
    new_run_id,
    parse_time,
    read_log,
    read_record,
    record_paths,
    utc_now,
)
from .secrets import Redactor, environment_redactor, is_secret_name
from .validation import validate
from .workspace import Workspace, load_workspace

__all__ = [
    "RunOptions",
    "RunResult",
    "load_workspace",
    "log_phase",
    "run_phase",
    "validate",
]


@dataclass
class RunOutputs:
    """A finished run and the files it wrote besides its record."""

    result: RunResult
    record_path: Path | None
    written: list[Path] = field(default_factory=list)
    commit: str | None = None


def _cells_fixed(result: RunResult) -> list[Any]:
    cells: list[Any] = []
    for outcome in result.outcomes:
        if outcome.stage != "fix" or outcome.status != "changed":
            continue
        output = outcome.output if isinstance(outcome.output, dict) else {}
        cell = output.get("cell") if isinstance(output.get("cell"), dict) else None
        if cell and cell.get("number") is not None and cell["number"] not in cells:
            cells.append(cell["number"])
    return cells


Restorable = dict[tuple[str, str], StepResult]


def _restorable(workspace: Workspace, phase: str) -> tuple[Path, Restorable] | None:
    """The latest unfinished run of `phase` and the step results it completed."""
    for path in reversed(record_paths(workspace.reports_dir, phase)):
        record = read_record(path)
        if record.status == "success" and (
            record.options.partial or _logged(workspace, record.run_id, TERMINAL_ACTIONS)
        ):
            return None
        # A success whose end never reached the timestamp log (killed right after its last event)
        # is resumable too: every step is restored, and the end is logged and the report written.
        if record.status in ("success", "failed", "interrupted", "incomplete"):
            done: Restorable = {}
            for event in record.step_outcomes():
                key = (event.stage, event.step)
                if event.succeeded or (event.stage == "reproduce" and event.status == "failed"):
                    done[key] = event
                else:
                    done.pop(key, None)
            return path, done
    return None


def _logged(workspace: Workspace, run_id: str, actions: tuple[str, ...]) -> bool:
    """True when the timestamp log has a line of one of `actions` for `run_id`."""
    lines, _warnings = read_log(workspace.timestamp_log)
    return any(line.run_id == run_id and line.action in actions for line in lines)


def _start_logger(ws: Workspace, loaded: LoadedRunbook, run_id: str, started_at: str | None) -> Listener:
    """Log the phase's `start` line once the record holds the run's first event, never before it,
    so a crash cannot leave a timestamp-log line for a run that has no record to resume."""
    done = False

    def listener(event: RunEvent) -> None:
        nonlocal done
        if done or not isinstance(event, RunStarted | RunResumed):
            return
        done = True
        phase_id = loaded.runbook.phase
        moment = parse_time(started_at) if started_at else None
        title = f"Phase {phase_id} - {loaded.runbook.title}: run started"
        append_log(ws.timestamp_log, log_entry(phase_id, "start", title, moment=moment, run_id=run_id))

    return listener


def _previous_steps(workspace: Workspace, phase: str) -> dict[str, StepResult]:
    """Per step id, its latest non-reproduce result across this phase's records (newest wins)."""
    latest: dict[str, StepResult] = {}
    for path in record_paths(workspace.reports_dir, phase)[-20:]:
        for event in read_record(path).step_outcomes():
            if event.stage != "reproduce" and event.succeeded:
                latest[event.step] = event
    return latest


def _repair_torn_tail(path: Path) -> bool:
    """Cut a torn last line (a kill during an append) so new events start on a line of their own."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(cut)
    return True


def run_phase(
    phase: str | Path,
    *,
    workspace: Workspace | Path | str | None = None,
    options: RunOptions | None = None,
    listeners: Iterable[Listener] = (),
    warn: Callable[[str], None] | None = None,
    confirm: Callable[[str], bool] | None = None,
    environ: Mapping[str, str] | None = None,
    report: bool = True,
    commit: bool = False,
    tag: bool = False,
    junit: Path | None = None,
    raise_on_failure: bool = True,
) -> RunOutputs:
    """Run one phase's runbook end to end. Raises RunFailed (exit 1) or RunInterrupted (130).

    The steps: seed the redactor with every secret known before the run, then (under the workspace
    lock) prepare the resume, open the target and the record and execute, then publish the report
    and commit, and last turn a failed or interrupted run into its error.
    """
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    loaded = ws.load_runbook(phase)
    if report:
        _check_report_material(loaded, ws.root)
    if commit:
        from .gitops import check_repository

        check_repository(ws.root)
    run = _PhaseRun(
        ws=ws,
        loaded=loaded,
        options=options or RunOptions(),
        environ=dict(os.environ if environ is None else environ),
        dotenv=ws.read_env_file(),
        warn=warn or (lambda _message: None),
        confirm=confirm,
    )
    redactor = _seed_redactor(run)
    result, record_path = _execute(run, redactor, list(listeners))
    outputs = RunOutputs(result=result, record_path=record_path)
    if record_path is not None:
        _publish_and_commit(run, outputs, record_path, report=report, junit=junit, commit=commit, tag=tag)
    if raise_on_failure:
        _raise_for(result, run.loaded.runbook.phase, record_path)
    return outputs


def _check_report_material(loaded: LoadedRunbook, root: Path) -> None:
    """What `validate` says of the report text and report cells, before any step runs: an undefined
    name found only when the report renders would stop the run after its fix was applied."""
    from .checks import report_problems
    from .errors import ValidationFailed

    problems = report_problems(loaded.doc, loaded.runbook, root)
    if problems:
        raise ValidationFailed(problems)


def phases_to_run(workspace: Workspace, words: Iterable[str]) -> list[str]:
    """The phases `words` name, in plan order: ids (`1.5`, `phase-1.6`) or `group N` (its phases with a runbook)."""
    from .errors import InputError
    from .model import normalise_phase

    items = list(words)
    runbooks = workspace.runbook_files()
    order = workspace.phase_ids()
    wanted: list[str] = []
    index = 0
    while index < len(items):
        word = items[index].strip()
        if word.lower() == "group":
            if index + 1 >= len(items):
                raise InputError("`group` needs a group id, e.g. `runbook run group 1`")
            group_id = items[index + 1].strip()
            groups = {str(g.group): g for g in workspace.config.plan}
            if group_id not in groups:
                raise InputError(f"no group {group_id!r} in the plan", hint=f"groups: {', '.join(groups) or 'none'}")
            wanted += [p.id for p in groups[group_id].phases if p.id in runbooks]
            index += 2
            continue
        wanted.append(normalise_phase(word))
        index += 1
    unique = list(dict.fromkeys(wanted))
    return sorted(unique, key=lambda phase: order.index(phase) if phase in order else len(order))


def run_phases(
    phases: Iterable[str],
    *,
    workspace: Workspace | Path | str | None = None,
    on_finished: Callable[[RunOutputs], None] | None = None,
    **run_options: Any,
) -> list[RunOutputs]:
    """Run several phases in plan order (`["group", "1"]` or ids), stopping after the first that fails.

    Each phase is a full `run_phase` (record, report, progress) before the next starts; `on_finished`
    hears each one. Raises like `run_phase` unless `raise_on_failure=False` is passed.
    """
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    done: list[RunOutputs] = []
    for phase in phases_to_run(ws, phases):
        outputs = run_phase(phase, workspace=ws, **run_options)
        done.append(outputs)
        if on_finished is not None:
            on_finished(outputs)
        if outputs.result.status != "success":
            break
    return done


@dataclass
class _PhaseRun:
    """What one `run_phase` call works with, gathered once."""

    ws: Workspace
    loaded: LoadedRunbook
    options: RunOptions
    environ: dict[str, str]
    dotenv: dict[str, str]
    warn: Callable[[str], None]
    confirm: Callable[[str], bool] | None

    @property
    def phase_id(self) -> str:
        return self.loaded.runbook.phase


@dataclass
class _RecordPlan:
    """Where this run's events go: a new record, the interrupted one (--resume), or none (dry-run)."""

    run_id: str
    path: Path | None = None
    restored: Restorable | None = None
    started_at: str | None = None
    has_header: bool = False
    # --resume: where the interrupted run's emulator listened (its `target_address` line)
    address: dict[str, str | None] | None = None


def _seed_redactor(run: _PhaseRun) -> Redactor:
    """Every secret known before the run: secret-looking environment and .env values, secret --vars."""
    redactor = environment_redactor(run.environ, run.dotenv)
    for key, value in run.options.vars.items():
        spec = run.loaded.runbook.inputs.get(key)
        if (spec is not None and spec.secret) or is_secret_name(key):
            redactor.add(value)
    return redactor


def _prepare_resume(run: _PhaseRun) -> _RecordPlan:
    """The record this run writes to: with --resume, the latest unfinished run's and what it completed."""
    if not run.options.resume:
        run_id = new_run_id()
        path = None if run.options.dry_run else run.ws.reports_dir / "runs" / run.phase_id / f"{run_id}.jsonl"
        return _RecordPlan(run_id=run_id, path=path)
    resume_from = _restorable(run.ws, run.phase_id)
    if resume_from is None:
        raise InputError(
            f"nothing to resume for phase {run.phase_id}: its latest run finished successfully or none exists",
            hint=f"run it again with `runbook run {run.phase_id}`; `runbook report {run.phase_id}` rewrites the "
            "latest run's report",
        )
    path, restored = resume_from
    if _repair_torn_tail(path):
        run.warn(f"{path}: cut a torn last line left by the interrupted run")
    previous = read_record(path)
    for warning in previous.warnings:  # a step whose line is unreadable runs again; say why
        run.warn(f"{warning} (the resumed run goes on without that line)")
    header = previous.run_started
    address = previous.target_address
    return _RecordPlan(
        run_id=previous.run_id,
        path=path,
        restored=restored,
        started_at=header.time if header is not None else None,
        has_header=header is not None,
        address={"arm_url": address.arm_url, "gateway_url": address.gateway_url} if address is not None else None,
    )


def _logs_phase(run: _PhaseRun, plan: _RecordPlan) -> bool:
    """A recorded, whole run (not --only/--step) writes its start and end to the timestamp log."""
    return plan.path is not None and run.options.only is None and run.options.step is None


def _execute(run: _PhaseRun, redactor: Redactor, listeners: list[Listener]) -> tuple[RunResult, Path | None]:
    """Under the workspace lock: prepare the resume, open the target, execute, log the end."""
    from .targets import open_target

    # The lock comes first: what to resume is decided under it, and a lock left by a killed run is
    # taken over (with a warning) by whatever `runbook run` comes next, even one with nothing to do.
    lock = (
        None
        if run.options.dry_run
        else WorkspaceLock(run.ws.root, run.phase_id, run.warn, break_lock=run.options.break_lock).acquire()
    )
    target = None
    try:
        plan = _prepare_resume(run)
        target = open_target(
            run.ws, run.options.target, redactor, environ=run.environ, emulator_address=plan.address, warn=run.warn
        )
        public_inputs, secret_inputs = resolve_inputs(
            run.loaded, run.options, run.environ, run.dotenv, target.env, target.settings, redactor
        )
        variables = {**run.loaded.runbook.vars, **public_inputs}
        variables.update({k: v for k, v in run.options.vars.items() if k not in run.loaded.runbook.inputs})
        executor = Executor(
            run.loaded,
            workspace_root=run.ws.root,
            target=target,
            options=run.options,
            redactor=redactor,
            variables=variables,
            secrets=secret_inputs,
            environ=run.environ,
            listeners=_listeners(run, plan, listeners),
            run_id=plan.run_id,
            allowed_paths=run.ws.allowed_paths,
            confirm=run.confirm,
            warn=run.warn,
            restored=plan.restored,
            previous_steps=_previous_steps(run.ws, run.phase_id),
        )
        with _interrupts_to(executor):
            # A record killed before its first line was whole gets the full header on resume.
            result = executor.run(resumed=plan.has_header)
        result.record_path = plan.path
        if _logs_phase(run, plan):
            _log_end(run.ws, run.loaded, result)
    finally:
        if target is not None:
            target.close()
        if lock is not None:
            lock.release()
    return result, plan.path


def _listeners(run: _PhaseRun, plan: _RecordPlan, listeners: list[Listener]) -> list[Listener]:
    """The record writer first, then the timestamp log's `start` line, then the caller's listeners."""
    ours: list[Listener] = []
    if plan.path is not None:
        ours.append(RecordWriter(plan.path, in_process=in_process_action).write)
    if _logs_phase(run, plan) and (plan.restored is None or not _logged(run.ws, plan.run_id, ("start",))):
        ours.append(_start_logger(run.ws, run.loaded, plan.run_id, plan.started_at))
    return [*ours, *listeners]


def _publish_and_commit(
    run: _PhaseRun, outputs: RunOutputs, record_path: Path, *, report: bool, junit: Path | None, commit: bool, tag: bool
) -> None:
    """Report, changelog, timeline (and JUnit) for the finished run; then the commit when asked."""
    if report:
        outputs.written.extend(_publish(run.ws, run.loaded, record_path, junit))
    if commit:
        from .publish import commit_run

        paths = [record_path, run.ws.timestamp_log, *outputs.written, *outputs.result.changed_files]
        outputs.commit = commit_run(run.ws, run.loaded, read_record(record_path), paths, tag=tag)


def _raise_for(result: RunResult, phase_id: str, record_path: Path | None) -> None:
    """An interrupted run is RunInterrupted (130); a failed one RunFailed (1) naming its failed step."""
    if result.status == "interrupted":
        raise RunInterrupted(f"run {result.run_id} interrupted; resume it with `runbook run {phase_id} --resume`")
    if result.status == "failed":
        failed = next((o for o in result.outcomes if o.status == "failed" and o.stage != "reproduce"), None)
        what = f"step {failed.step.id} failed: {failed.error.message if failed.error else ''}" if failed else "failed"
        raise RunFailed(f"phase {phase_id}: {what}", hint=f"see {record_path}" if record_path else None)


def _log_end(ws: Workspace, loaded: LoadedRunbook, result: RunResult) -> None:
    phase_id = loaded.runbook.phase
    title = loaded.runbook.title
    duration = round(result.duration_s, 3)
    if result.status == "success":
        entry = log_entry(
            phase_id,
            "complete",
            f"Phase {phase_id} - {title}: resolved",
            cells_fixed=_cells_fixed(result),
            status="SUCCESS",
            run_id=result.run_id,
            duration_s=duration,
        )
    else:
        failed = next(
            (o.step.id for o in result.outcomes if o.status in ("failed", "interrupted") and o.stage != "reproduce"),
            None,
        )
        entry = log_entry(
            phase_id,
            "fail",
            f"Phase {phase_id} - {title}: {'interrupted' if result.status == 'interrupted' else 'failed'}"
            + (f" at step {failed}" if failed else ""),
            status="INTERRUPTED" if result.status == "interrupted" else "FAILED",
            run_id=result.run_id,
            duration_s=duration,
        )
    append_log(ws.timestamp_log, entry)


def _publish(ws: Workspace, loaded: LoadedRunbook, record_path: Path, junit: Path | None) -> list[Path]:
    """Report, changelog, timeline (and JUnit when asked) for a finished run."""
    from .publish import publish_run

    return publish_run(ws, loaded, record_path, junit=junit)


class _interrupts_to:
    """While a run is going, Ctrl-C (and SIGTERM) ask the executor to stop the step cleanly."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, lambda _s, _f: self.executor.interrupt())

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- log, init, new


def log_phase(
    workspace: Workspace,
    phase: str,
    action: str,
    message: str,
    *,
    cells: list[Any] | None = None,
    status: str | None = None,
    at: datetime | str | None = None,
    started: datetime | str | None = None,
) -> dict[str, Any]:
    """Append a hand-written line to the timestamp log (for phases done without a runbook).

    `at` backdates the line (ISO 8601; a time without an offset is UTC); `started` also writes the
    `start` line of the pair first, so a phase done earlier gets its real duration. Returns the
    terminal (or start) line written; with `started` its `started_at` names the start line's time.
    """
    phase_id = normalise_phase(phase)
    if phase_id not in workspace.phase_ids():
        raise InputError(
            f"phase {phase_id} is not in the plan",
            hint=f"add it with `runbook new {phase_id} --title ...` or check the number",
        )
    moment = _log_time(at, "--at") if at is not None else utc_now()
    begun = _log_time(started, "--started") if started is not None else None
    if begun is not None:
        if action == "start":
            raise InputError(
                "--started goes with a complete or fail line (it writes the start line of the pair)",
                hint=f"use `runbook log {phase_id} start -m ... --at TIME` to log only a start",
            )
        if begun > moment:
            raise InputError(
                f"--started {iso(begun)} is after the line's own time {iso(moment)}",
                hint="a phase ends after it starts: check the two times (a time without an offset is UTC)",
            )
    if moment > utc_now():
        raise InputError(f"--at {iso(moment)} is in the future", hint="log what happened: a time up to now")
    if not message.strip():
        raise InputError("-m/--message is empty", hint="say what was done, e.g. -m \"Embeddings fixed\"")
    if action == "complete" and status is None:
        status = "SUCCESS"
    if status is not None:
        _check_status_word(action, status)
    message = environment_redactor(os.environ, workspace.read_env_file())(message)  # a key pasted into -m never reaches the log (it is committed)
    if begun is not None:
        append_log(workspace.timestamp_log, log_entry(phase_id, "start", message, moment=begun, source="manual"))
    entry = log_entry(
        phase_id,
        action,
        message,
        moment=moment,
        cells_fixed=cells or None,
        status=status,
        source="manual",
        started_at=iso(begun).replace(".000Z", "Z") if begun is not None else None,
    )
    append_log(workspace.timestamp_log, entry)
    return entry


def _check_status_word(action: str, status: str) -> None:
    """A status written by `runbook log` is one the log reads back as meant, and agrees with the action."""
    from .record import FAILURE_WORDS, SUCCESS_WORDS, status_outcome

    outcome = status_outcome(status)
    words = f"success: {', '.join(sorted(SUCCESS_WORDS))}; failure: {', '.join(sorted(FAILURE_WORDS))}"
    if outcome == "unknown":
        raise InputError(f"--status {status!r} is not a status word the log reads", hint=f"use one of {words}")
    if action == "start" or (action == "complete") != (outcome == "success"):
        raise InputError(
            f"--status {status!r} contradicts the action {action!r}",
            hint="a complete line takes a success word, a fail line a failure word, a start line none",
        )


def _log_time(value: datetime | str, option: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return parse_time(value)
    except ValueError:
        raise InputError(
            f"{option} {value!r} is not a time",
            hint="write an ISO-8601 time such as 2025-11-14T04:15:00Z or 2025-11-14 04:15 (UTC unless it has an offset)",
        ) from None

