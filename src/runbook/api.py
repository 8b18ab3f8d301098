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
from pathlib import Path
from typing import Any

from .errors import InputError, Problem, RunFailed, RunInterrupted, ValidationFailed
from .executor import Executor, Listener, RunOptions, RunResult, resolve_inputs
from .loader import LoadedRunbook, read_yaml, validate_document
from .lock import WorkspaceLock
from .model import normalise_phase
from .record import (
    RecordWriter,
    append_log,
    iso,
    log_entry,
    new_run_id,
    read_record,
    record_paths,
    utc_now,
)
from .secrets import Redactor, is_secret_name
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


def _restorable(workspace: Workspace, phase: str) -> tuple[Path, dict[tuple[str, str], dict[str, Any]]] | None:
    """The latest unfinished run of `phase` and the step results it completed."""
    for path in reversed(record_paths(workspace.reports_dir, phase)):
        record = read_record(path)
        if record.status == "success":
            return None
        if record.status in ("failed", "interrupted", "incomplete"):
            done: dict[tuple[str, str], dict[str, Any]] = {}
            for event in record.events:
                if event.get("event") not in ("step_finished", "step_restored"):
                    continue
                key = (str(event.get("stage")), str(event.get("step")))
                if event.get("status") in ("ok", "changed") or (
                    event.get("stage") == "reproduce" and event.get("status") == "failed"
                ):
                    done[key] = {k: v for k, v in event.items() if k not in ("event", "time")}
                else:
                    done.pop(key, None)
            return path, done
    return None


def _previous_steps(workspace: Workspace, phase: str) -> dict[str, dict[str, Any]]:
    """Per step id, its latest non-reproduce result across this phase's records (newest wins)."""
    latest: dict[str, dict[str, Any]] = {}
    for path in record_paths(workspace.reports_dir, phase)[-20:]:
        for event in read_record(path).events:
            if (
                event.get("event") in ("step_finished", "step_restored")
                and event.get("stage") != "reproduce"
                and event.get("status") in ("ok", "changed")
            ):
                latest[str(event.get("step"))] = event
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
    """Run one phase's runbook end to end. Raises RunFailed (exit 1) or RunInterrupted (130)."""
    options = options or RunOptions()
    ws = workspace if isinstance(workspace, Workspace) else load_workspace(workspace)
    warn = warn or (lambda _message: None)
    environ = dict(os.environ if environ is None else environ)
    loaded = ws.load_runbook(phase)
    phase_id = loaded.runbook.phase
    if commit:
        from .gitops import check_repository

        check_repository(ws.root)
    redactor = Redactor()
    for key, value in environ.items():
        if is_secret_name(key):
            redactor.add(value)
    dotenv = ws.read_env_file()
    for key, value in dotenv.items():
        if is_secret_name(key):
            redactor.add(value)
    for key, value in options.vars.items():
        spec = loaded.runbook.inputs.get(key)
        if (spec is not None and spec.secret) or is_secret_name(key):
            redactor.add(value)

    resume_from: tuple[Path, dict[tuple[str, str], dict[str, Any]]] | None = None
    if options.resume:
        resume_from = _restorable(ws, phase_id)
        if resume_from is None:
            raise InputError(
                f"nothing to resume for phase {phase_id}: its latest run finished successfully or none exists",
                hint=f"run it again with `runbook run {phase_id}`",
            )

    from .targets import open_target

    lock = None if options.dry_run else WorkspaceLock(ws.root, phase_id, warn).acquire()
    target = None
    try:
        target = open_target(ws, options.target, redactor, environ=environ)
        variables = dict(loaded.runbook.vars)
        public_inputs, secret_inputs = resolve_inputs(
            loaded, options, environ, dotenv, target.env, target.settings, redactor
        )
        variables.update(public_inputs)
        for key, value in options.vars.items():
            if key not in loaded.runbook.inputs:
                variables[key] = value
        record_path: Path | None = None
        all_listeners: list[Listener] = list(listeners)
        if resume_from is not None:
            record_path = resume_from[0]
            repaired = _repair_torn_tail(record_path)
            if repaired:
                warn(f"{record_path}: cut a torn last line left by the interrupted run")
            run_id = read_record(record_path).run_id
        else:
            run_id = new_run_id()
            if not options.dry_run:
                record_path = ws.reports_dir / "runs" / phase_id / f"{run_id}.jsonl"
        if record_path is not None:
            all_listeners.insert(0, RecordWriter(record_path).write)
        executor = Executor(
            loaded,
            workspace_root=ws.root,
            target=target,
            options=options,
            redactor=redactor,
            variables=variables,
            secrets=secret_inputs,
            environ=environ,
            listeners=all_listeners,
            run_id=run_id,
            allowed_paths=ws.allowed_paths,
            confirm=confirm,
            warn=warn,
            restored=resume_from[1] if resume_from else None,
            previous_steps=_previous_steps(ws, phase_id),
        )
        logging = record_path is not None and options.only is None and options.step is None
        if logging and resume_from is None:
            append_log(
                ws.timestamp_log,
                log_entry(phase_id, "start", f"Phase {phase_id} - {loaded.runbook.title}: run started", run_id=run_id),
            )
        with _interrupts_to(executor):
            result = executor.run(resumed=resume_from is not None)
        result.record_path = record_path
        if logging:
            _log_end(ws, loaded, result)
    finally:
        if target is not None:
            target.close()
        if lock is not None:
            lock.release()

    outputs = RunOutputs(result=result, record_path=record_path)
    if record_path is not None and report:
        outputs.written.extend(_publish(ws, loaded, record_path, junit))
    if record_path is not None and commit:
        from .gitops import commit_run

        outputs.commit = commit_run(ws, loaded, read_record(record_path), [record_path, ws.timestamp_log, *outputs.written, *result.changed_files], tag=tag)
    if raise_on_failure:
        if result.status == "interrupted":
            raise RunInterrupted(f"run {result.run_id} interrupted; resume it with `runbook run {phase_id} --resume`")
        if result.status == "failed":
            failed = next((o for o in result.outcomes if o.status == "failed" and o.stage != "reproduce"), None)
            what = f"step {failed.step.id} failed: {failed.error.message if failed.error else ''}" if failed else "failed"
            raise RunFailed(
                f"phase {phase_id}: {what}",
                hint=f"see {record_path}" if record_path else None,
            )
    return outputs


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
        failed = next((o.step.id for o in result.outcomes if o.status in ("failed", "interrupted") and o.stage != "reproduce"), None)
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
    from . import reports

    return reports.publish_run(ws, loaded, record_path, junit=junit)


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


# ---------------------------------------------------------------- validate


def validate(paths: Iterable[Path] = (), *, workspace: Workspace | None = None) -> tuple[int, list[Problem]]:
    """Validate runbooks (default: all of the workspace's). Returns (files checked, problems)."""
    ws = workspace
    files = [Path(p) for p in paths]
    if not files:
        ws = ws or load_workspace()
        files = list(ws.runbook_files().values())
    known = ws.phase_ids() if ws is not None else None
    problems: list[Problem] = []
    for path in files:
        root = ws.root if ws is not None else None
        try:
            doc = read_yaml(path, root=Path.cwd() if root is None else None)
        except InputError as exc:
            problems.append(Problem(exc.location or _loc(path), exc.message.split(": ", 1)[-1] if exc.location else exc.message))
            continue
        problems.extend(validate_document(doc, known_phases=known))
    return len(files), problems


def _loc(path: Path) -> Any:
    from .errors import Location

    return Location(str(path))


def check_all(workspace: Workspace) -> None:
    _count, problems = validate(workspace=workspace)
    if problems:
        raise ValidationFailed(problems)


# ---------------------------------------------------------------- log, init, new


def log_phase(
    workspace: Workspace,
    phase: str,
    action: str,
    message: str,
    *,
    cells: list[Any] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Append a hand-written line to the timestamp log (for phases done without a runbook)."""
    phase_id = normalise_phase(phase)
    if phase_id not in workspace.phase_ids():
        raise InputError(
            f"phase {phase_id} is not in the plan",
            hint=f"add it with `runbook new {phase_id} --title ...` or check the number",
        )
    if action == "complete" and status is None:
        status = "SUCCESS"
    entry = log_entry(phase_id, action, message, cells_fixed=cells or None, status=status, source="manual")
    append_log(workspace.timestamp_log, entry)
    return entry


def now_iso() -> str:
    return iso(utc_now())
