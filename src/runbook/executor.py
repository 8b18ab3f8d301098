"""The executor: runs one runbook's stages (discovery -> reproduce -> fix -> verify) step by step.

For each step it evaluates `when`, renders parameters in the sandbox, runs the action (in a worker
thread when it can block, so timeouts and Ctrl-C stop it cleanly; runbook.step_thread), checks
`expect`, retries with `until`, registers the output, and emits events. Listeners turn events into
the run record (appended as they happen, fsynced as runbook.record says), the console lines and
`--json` output. Before a step, it starts the kernel of the next `notebook.run` step when only steps
that change nothing here come first (`_prestart_ahead`). The executor does not render reports;
`api.run_phase` does that once the run is over.
"""

from __future__ import annotations

import json
import os
import platform
import threading
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from . import actions
from .actions import ActionContext, ActionSpec, Result
from .actions.core import approval_refusal
from .collector import frozen_while
from .errors import (
    ActionError,
    CheckFailed,
    ExpectationFailed,
    InputError,
    Problem,
    RunbookError,
    SecurityViolation,
    TemplateError,
    ValidationFailed,
    did_you_mean,
)
from .evidence import describe_params as _describe_params
from .evidence import match_signature, reproduce_verdict, used_later
from .loader import LoadedRunbook
from .model import Step
from .record import (
    Note,
    RunEvent,
    RunFinished,
    RunOptionsRecord,
    RunResumed,
    RunStarted,
    StepErrorRecord,
    StepFinished,
    StepRestored,
    StepResult,
    StepStarted,
    TargetAddress,
    iso,
    iso_us,
    new_run_id,
    now_us,
    redact_event,
    utc_now,
)
from .schema_errors import schema_problems
from .secrets import MASK, Redactor, derived_secrets, is_secret_name
from .step_thread import Interrupted, run_in_thread
from .step_thread import in_process_action as in_process_action  # noqa: PLC0414 - re-exported: api.py reads it here
from .templating import evaluate, render_value

Only = Literal["discovery", "fix", "verify"]
Listener = Callable[[RunEvent], None]
RunStatus = Literal["success", "failed", "interrupted"]
_REMOTE_ONLY = frozenset({"http.request"})  # actions that change nothing on this machine


@dataclass
class RunOptions:
    """What the user asked for on the command line (or through the API)."""

    target: str | None = None
    vars: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    only: Only | None = None
    from_step: str | None = None
    step: str | None = None
    assume_yes: bool = False
    reproduce: bool | None = None  # None: as the runbook says
    resume: bool = False
    break_lock: bool = False  # take over a lock that names another host


@dataclass
class StepOutcome:
    stage: str
    step: Step
    status: str
    output: Any = None
    error: RunbookError | None = None
    signature: dict[str, Any] | None = None  # reproduce: the expected failure signature, expected vs seen


@dataclass
class RunResult:
    run_id: str
    phase: str
    status: RunStatus
    record_path: Path | None
    started_at: datetime
    finished_at: datetime
    outcomes: list[StepOutcome]
    changed_files: set[Path]
    reproduced: bool | None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


@dataclass
class _Tries:
    """What the attempts at one step came to so far."""

    status: str = "ok"
    result: Result | None = None
    error: RunbookError | None = None
    attempts: int = 0
    expectations: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None


class Executor:
    """Runs one loaded runbook against an opened target."""

    def __init__(
        self,
        loaded: LoadedRunbook,
        *,
        workspace_root: Path,
        target: Any,
        options: RunOptions,
        redactor: Redactor,
        variables: dict[str, Any],
        secrets: dict[str, Any],
        environ: Mapping[str, str],
        listeners: list[Listener],
        run_id: str | None = None,
        allowed_paths: tuple[Path, ...] = (),
        confirm: Callable[[str], bool] | None = None,
        warn: Callable[[str], None] | None = None,
        restored: dict[tuple[str, str], StepResult] | None = None,
        previous_steps: dict[str, StepResult] | None = None,
    ) -> None:
        self.loaded = loaded
        self.runbook = loaded.runbook
        self.root = workspace_root
        self.target = target
        self.options = options
        self.redactor = redactor
        self.listeners = listeners
        self.run_id = run_id or new_run_id()
        self.allowed_paths = allowed_paths
        self.confirm = confirm
        sink = warn or (lambda _msg: None)
        # Warnings (retries above all) quote errors, URLs and outputs: they pass the redactor like events.
        self.warn: Callable[[str], None] = lambda message: sink(redactor.text(message))
        self.restored = restored or {}
        self.previous_steps = previous_steps or {}
        self._address_noted = False  # the emulator's URLs are in the record (TargetAddress)
        self.run_state: dict[str, Any] = {}
        self.changed_files: set[Path] = set()
        self.outcomes: list[StepOutcome] = []
        self._prestarted: set[int] = set()  # plan positions whose kernel was started ahead
        self._ahead: list[tuple[int, int]] | None = None
        self._current_stop: threading.Event | None = None
        self._interrupted = threading.Event()
        self._in_process_stop = threading.Event()
        public_env = {k: v for k, v in environ.items() if not is_secret_name(k) and v not in redactor}
        self.context: dict[str, Any] = {
            **variables,
            "vars": dict(variables),
            "secrets": dict(secrets),
            "env": public_env,
            "target": getattr(target, "settings", {}),  # not copied: reading it may start the emulator
            "target_name": getattr(target, "name", None),
            "phase": self.runbook.phase,
            "run": {"id": self.run_id},
            "steps": {},
        }

    # ------------------------------------------------------------------ events

    def emit(self, event: RunEvent) -> None:
        if self.redactor:
            event = redact_event(event, self.redactor)
        for listener in self.listeners:
            listener(event)

    def progress(self, step: str, text: str) -> None:
        """Live progress of the running step ("cell 109 (2/4)"): for screens only, never recorded."""
        shown = self.redactor(text) if self.redactor else text
        for listener in self.listeners:
            show = getattr(listener, "progress", None)
            if callable(show):
                show(step, shown)

    def interrupt(self) -> None:
        """Ask the running step to stop (Ctrl-C); the run ends as `interrupted`."""
        self._interrupted.set()
        if self._current_stop is not None:
            self._current_stop.set()

    # ------------------------------------------------------------------ the run

    def run(self, *, resumed: bool = False) -> RunResult:
        # Not walking what existed before the run: a full collection walked every node of a big
        # runbook again (~0.03 ms a step at 5,000 steps).
        with frozen_while():
            return self._run(resumed=resumed)

    def _run(self, *, resumed: bool) -> RunResult:
        # A bad --from/--step is an input error before the run starts, not a run left unfinished.
        plan = self._plan()
        started = utc_now()
        self.context["run"]["started_at"] = iso(started)
        if resumed:
            self.emit(RunResumed(run_id=self.run_id, time=iso(started), pid=os.getpid()))
        else:
            self.emit(
                RunStarted(
                    run_id=self.run_id,
                    phase=self.runbook.phase,
                    title=self.runbook.title,
                    runbook=self.loaded.doc.display,
                    digest=self.loaded.digest,
                    target=getattr(self.target, "name", None),
                    target_settings=self.target.public_settings() if self.target is not None else {},
                    vars=dict(self.context["vars"]),
                    options=RunOptionsRecord(
                        dry_run=self.options.dry_run,
                        only=self.options.only,
                        from_step=self.options.from_step,
                        step=self.options.step,
                        reproduce=self._reproduce_enabled(),
                    ),
                    time=iso(started),
                    pid=os.getpid(),
                    host=platform.node(),
                )
            )
        status: RunStatus = "success"
        reproduced: bool | None = None
        failed_step: str | None = None
        try:
            failed = False
            for position, (stage, step, planned) in enumerate(plan):
                if not failed:
                    self._prestart_ahead(plan, position)
                selected = planned
                if not failed and not selected and stage != "reproduce":
                    try:
                        # --from/--step: a read-only step whose recorded output was masked runs again
                        selected = self._masked_and_needed(stage, step, from_record=False)
                    except InputError as exc:
                        self._error_step(stage, step, exc)
                        failed, failed_step, status = True, step.id, "failed"
                        continue
                if failed or not selected:
                    reason = self._after_failure_reason(failed_step) if failed else self._skip_reason(stage)
                    self._record_skip(stage, step, reason)
                    continue
                if stage == "reproduce" and reproduced is None:
                    reproduced = False  # a reproduce step runs: from now on the fault may show
                outcome = self._run_step(stage, step)
                if stage == "reproduce":
                    verdict = self._reproduce_verdict(step, outcome)
                    if verdict is None:
                        reproduced = True if outcome.status == "failed" else reproduced
                        continue
                    # The runbook could not check the fault (an error, or a failure unlike the fault):
                    # stop before any fix, so nothing is changed on evidence that is not there.
                    self.emit(Note(kind=verdict[0], time=iso(utc_now()), message=verdict[1]))
                    failed, failed_step, status = True, step.id, "failed"
                    reproduced = None  # the fault was not checked: neither reproduced nor not
                    continue
                if outcome.status in ("failed", "error") and not step.continue_on_error:
                    failed = True
                    failed_step = step.id
                    status = "failed"
            if reproduced is False:
                self.emit(
                    Note(
                        kind="fault_not_reproduced",
                        time=iso(utc_now()),
                        message="fault did not reproduce: every verify step already passed before the fix",
                    )
                )
        except Interrupted:
            status = "interrupted"
        finally:
            self._close_run_state()
        finished = utc_now()
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            if outcome.stage != "reproduce":
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
        self.emit(
            RunFinished(
                run_id=self.run_id,
                status=status,
                time=iso(finished),
                duration_s=round((finished - started).total_seconds(), 3),
                counts=counts,
                failed_step=failed_step,
                reproduced=reproduced,
                changed_files=sorted(self._relative(p) for p in self.changed_files),
            )
        )
        return RunResult(
            run_id=self.run_id,
            phase=self.runbook.phase,
            status=status,
            record_path=None,
            started_at=started,
            finished_at=finished,
            outcomes=self.outcomes,
            changed_files=set(self.changed_files),
            reproduced=reproduced,
            interrupted=status == "interrupted",
        )

    def _after_failure_reason(self, failed_step: str | None) -> str:
        for outcome in reversed(self.outcomes):
            if outcome.step.id == failed_step and outcome.stage == "reproduce":
                return "the fault could not be checked before the fix"
        return "an earlier step failed"

    def _reproduce_verdict(self, step: Step, outcome: StepOutcome) -> tuple[str, str] | None:
        """None when the reproduce step is evidence (failed as the fault does, or passed); else why not."""
        return reproduce_verdict(step.id, outcome.status, outcome.error, outcome.signature)

    def _signature(self, stage: str, step: Step, status: str, output: Any) -> dict[str, Any] | None:
        """Reproduce: does the failure match the step's expected failure signature?"""
        if stage != "reproduce" or step.reproduce is None or status != "failed":
            return None
        return match_signature(step.reproduce.expect, self._with_output(output))

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def _reproduce_enabled(self) -> bool:
        if self.options.dry_run or self.options.only is not None or self.options.step or self.options.from_step:
            return False
        if self.options.reproduce is not None:
            return self.options.reproduce
        return self.runbook.reproduce and bool(self.runbook.verify)

    def _plan(self) -> list[tuple[str, Step, bool]]:
        """(stage, step, selected) in execution order."""
        order: list[tuple[str, Step]] = []
        order.extend(("discovery", s) for s in self.runbook.discovery)
        if self._reproduce_enabled():
            order.extend(("reproduce", s) for s in self.runbook.verify)
        order.extend(("fix", s) for s in self.runbook.fix)
        order.extend(("verify", s) for s in self.runbook.verify)
        ids = [s.id for _, s in order]
        for wanted in (self.options.from_step, self.options.step):
            if wanted and wanted not in ids:
                hint = did_you_mean(wanted, ids)
                raise InputError(
                    f"no step {wanted!r} in {self.loaded.doc.display}: {hint}steps: {', '.join(dict.fromkeys(ids))}"
                )
        plan: list[tuple[str, Step, bool]] = []
        reached = self.options.from_step is None
        for stage, step in order:
            if not reached and step.id == self.options.from_step and stage != "reproduce":
                reached = True
            selected = reached
            if self.options.step is not None:
                selected = step.id == self.options.step and stage != "reproduce"
            if self.options.only is not None and stage != self.options.only:
                selected = False
            if self.options.dry_run and stage == "verify":
                selected = False
            plan.append((stage, step, selected))
        return plan

    def _skip_reason(self, stage: str) -> str:
        if self.options.dry_run and stage == "verify":
            return "dry-run: verify does not run"
        if self.options.only is not None:
            return f"--only {self.options.only}"
        if self.options.step is not None:
            return f"--step {self.options.step}"
        return f"before --from {self.options.from_step}"

    def _masked_and_needed(self, stage: str, step: Step, *, from_record: bool) -> bool:
        """A recorded output that was redacted cannot be handed to later steps: it holds `***`, not the secret.

        True when the step must run again instead (it only reads, and a later step uses its output).
        A step that changes things is not re-run behind the user's back: that is a clear error.
        """
        previous = self.restored.get((stage, step.id)) if from_record else self.previous_steps.get(step.id)
        if previous is None or stage == "reproduce" or not previous.succeeded:
            return False
        if MASK not in json.dumps(previous.output, default=str) or not self._used_later(step):
            return False
        spec = actions.get(step.uses)
        if spec.changes and spec.changes_when is None and step.changes is not False:
            raise InputError(
                f"step {step.id}'s recorded output was masked (it held a secret) and later steps use it, but the "
                f"step changes things ({spec.name}), so it is not run again behind your back",
                hint=f"run the phase again without --resume/--from/--step, or mark {step.id} `changes: false` "
                "if it only reads",
            )
        self.warn(f"{step.id}: its recorded output was masked (it held a secret); running it again (it only reads)")
        return True

    def _used_later(self, step: Step) -> bool:
        return used_later(step.id, step.register_, self.loaded.doc.text)

    def _error_step(self, stage: str, step: Step, error: RunbookError) -> StepOutcome:
        """Record `step` as an error without running it (the runbook cannot go on as asked)."""
        started = now_us()
        self.emit(StepStarted(stage=stage, step=step.id, title=step.label, uses=step.uses, time=iso_us(started)))
        tries = _Tries()
        tries.status, tries.error = "error", error
        return self._finish(stage, step, actions.get(step.uses), started, tries)

    def _record_skip(self, stage: str, step: Step, reason: str) -> None:
        # Outputs of steps not run this time are restored from the last record that has them,
        # so later steps can still use `steps.<id>.output` and registered names.
        previous = self.previous_steps.get(step.id)
        if previous is not None and stage != "reproduce" and previous.succeeded:
            self._register(step, previous.output, previous.status)
        now = iso_us(now_us())
        outcome = StepOutcome(stage, step, "skipped")
        self.outcomes.append(outcome)
        self.emit(
            StepFinished(
                stage=stage,
                step=step.id,
                title=step.label,
                uses=step.uses,
                status="skipped",
                started_at=now,
                finished_at=now,
                duration_s=0.0,
                reason=reason,
            )
        )

    # ------------------------------------------------------------------ one step

    def _register(self, step: Step, output: Any, status: str) -> None:
        self.context["steps"][step.id] = {"output": output, "status": status}
        if step.register_:
            self.context[step.register_] = output

    def _run_step(self, stage: str, step: Step) -> StepOutcome:
        """One step: restored from the interrupted run, or gated, attempted and finished."""
        restored = self.restored.get((stage, step.id))
        if restored is not None:
            try:
                rerun = self._masked_and_needed(stage, step, from_record=True)
            except InputError as exc:
                return self._error_step(stage, step, exc)
            if not rerun:
                return self._restore(stage, step, restored)
        spec = actions.get(step.uses)
        started = now_us()
        self.emit(StepStarted(stage=stage, step=step.id, title=step.label, uses=step.uses, time=iso_us(started)))
        tries = _Tries()
        try:
            if self._gate(step, spec, tries):
                self._attempts(stage, step, spec, tries)
        except Interrupted:
            tries.status = "interrupted"
            tries.error = RunbookError("interrupted by the user (Ctrl-C)")
        return self._finish(stage, step, spec, started, tries)

    def _restore(self, stage: str, step: Step, restored: StepResult) -> StepOutcome:
        """--resume: this step completed in the interrupted run; keep its result."""
        # Registered as when it ran: a restored reproduce step's output is what the next reproduce step
        # reads (the verify stage overwrites it after the fix, as in a run that was never killed).
        self._register(step, restored.output, restored.status)
        if stage != "reproduce":
            # Files it changed belong to this run too (a resumed `--commit` must commit them).
            self.changed_files.update(self.root / path for path in restored.changed_paths())
        outcome = StepOutcome(stage, step, restored.status, restored.output)
        self.outcomes.append(outcome)
        self.emit(StepRestored.of(restored, iso(utc_now())))
        return outcome

    def _gate(self, step: Step, spec: ActionSpec, tries: _Tries) -> bool:
        """`when:` and dry-run: True when the step runs; otherwise `tries` says skipped or failed."""
        try:
            skip = step.when is not None and not self._truthy(step.when)
        except RunbookError as exc:  # a `when` that cannot be evaluated: the runbook is wrong, recorded
            tries.status, tries.error = "error", exc
            return False
        if skip:
            tries.status, tries.reason = "skipped", f"when: {step.when}"
            return False
        if self.options.dry_run and not spec.supports_dry_run:
            would = self._would_change(step, spec)
            if would is not None:
                tries.status, tries.reason = "skipped", would
                return False
        return True

    def _would_change(self, step: Step, spec: ActionSpec) -> str | None:
        """Under --dry-run: what the step would do when it may change something, else None (it runs).

        A step's `changes: false` says it only reads; otherwise the action decides, from its rendered
        parameters where that matters (an HTTP DELETE changes, a GET does not). Parameters that cannot
        be rendered yet count as changing: dry-run never guesses in favour of sending.
        """
        if step.changes is False:
            return None
        if step.changes is None and not spec.changes and spec.changes_when is None:
            return None
        try:
            params = self._params(step, spec)
        except RunbookError:
            return f"dry-run: would run {spec.name} (its parameters cannot be rendered before earlier steps run)"
        if step.changes is None and not spec.changes_for(params):
            return None
        return f"dry-run: would run {spec.name}: {self.redactor.text(_describe_params(params))}"

    def _attempts(self, stage: str, step: Step, spec: ActionSpec, tries: _Tries) -> None:
        """Run the action until it passes `expect` and `until`, at most 1 + `retries` times."""
        if step.approve and not self.options.dry_run:
            refused = approval_refusal(step.id, step.label, assume_yes=self.options.assume_yes, confirm=self.confirm)
            if refused is not None:
                tries.error, tries.status = refused, "failed"
                return
        while True:
            tries.attempts += 1
            try:
                tries.result = self._attempt(stage, step, spec)
                tries.expectations = self._check(step, tries.result.output)
                if step.until is not None and not self._truthy(step.until, tries.result.output):
                    raise CheckFailed(f"`until` still false: {step.until}", output=tries.result.output)
                tries.error = None
                break
            except (ActionError, InputError) as exc:
                tries.error = exc
                if tries.attempts > step.retries or self._interrupted.is_set():
                    break
                self.warn(f"{step.id}: attempt {tries.attempts} failed ({exc.message}); retrying in {step.delay:g}s")
                if self._wait(step.delay):
                    raise Interrupted() from None
        if tries.error is not None:
            # A check that did not hold is evidence (failed); anything else means the runbook or the
            # machine is wrong (error).
            tries.status = "failed" if isinstance(tries.error, CheckFailed) else "error"
        elif tries.result is not None:
            tries.status = tries.result.status

    def _finish(self, stage: str, step: Step, spec: ActionSpec, started: int, tries: _Tries) -> StepOutcome:
        """Register the output, emit `step_finished`, and stop the run when the step was interrupted."""
        finished = now_us()
        result, error, status = tries.result, tries.error, tries.status
        output = result.output if result is not None else getattr(error, "output", None)
        # Reproduce registers too, so later verify steps see the pre-fix values they depend on;
        # the verify stage overwrites them after the fix.
        signature = self._signature(stage, step, status, output)
        if status in ("ok", "changed"):
            self._register(step, output, status)
        else:
            self.context["steps"][step.id] = {"output": output, "status": status}
        address = None if self._address_noted else getattr(self.target, "address", lambda: None)()
        if address is not None:  # the emulator started: where, before any output that may hold it
            self._address_noted = True
            self.emit(TargetAddress(target=self.target.name, time=iso(utc_now()), **address))
        self.emit(
            StepFinished(
                stage=stage,
                step=step.id,
                title=step.label,
                uses=step.uses,
                status=status,
                started_at=iso_us(started),
                finished_at=iso_us(finished),
                duration_s=round((finished - started) / 1_000_000, 3),  # as timedelta.total_seconds()
                attempts=tries.attempts,
                output=output,
                **({"signature": signature} if signature is not None else {}),
                **self._evidence(spec, tries),
            )
        )
        outcome = StepOutcome(stage, step, status, output, error, signature)
        self.outcomes.append(outcome)
        if status == "interrupted":
            raise Interrupted()
        return outcome

    def _evidence(self, spec: ActionSpec, tries: _Tries) -> dict[str, Any]:
        """The optional fields of a `step_finished`: only those that say something are written."""
        result, error = tries.result, tries.error
        expectations = tries.expectations
        if isinstance(error, ExpectationFailed) and not expectations:
            expectations = list(error.expectations)
        fields: dict[str, Any] = {
            "reason": tries.reason,
            "dry_run": True if self.options.dry_run and (spec.changes or tries.reason) else None,
            "expectations": expectations,
        }
        if result is not None:
            fields.update(diff=result.diff, changes=result.changes, warnings=result.warnings, message=result.message)
        if error is not None:
            fields["error"] = StepErrorRecord(type=type(error).__name__, message=error.message, hint=error.hint)
        return {key: value for key, value in fields.items() if value}

    def _previous_record(self, step: Step) -> dict[str, Any] | None:
        """The step's latest earlier result as its record line (what an action may compare with)."""
        previous = self.previous_steps.get(step.id)
        return previous.as_record() if previous is not None else None

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds` unless interrupted; True when interrupted."""
        return self._interrupted.wait(seconds)

    def _with_output(self, output: Any) -> Mapping[str, Any]:
        """The context with `output` on top, read in place (a copy would cost every registered value)."""
        return ChainMap({"output": output}, self.context)

    def _truthy(self, expression: str | bool, output: Any = None) -> bool:
        if isinstance(expression, bool):
            return expression
        context = self.context if output is None else self._with_output(output)
        return bool(evaluate(expression, context))

    def _attempt(self, stage: str, step: Step, spec: ActionSpec) -> Result:
        params = self._params(step, spec)
        in_process = not spec.blocking and step.timeout is None
        # run in this thread, only the action could set its stop event (interrupt() stops worker threads)
        stop = self._in_process_stop if in_process else threading.Event()
        stop.clear()
        if self._interrupted.is_set():
            raise Interrupted()
        context = self._action_context(stage, step, stop)
        if in_process:
            try:
                return spec.func(params, context)
            except RunbookError:
                raise
            except Exception as exc:  # the same as in a worker thread: a failed step, not a dead run
                raise ActionError(f"{spec.name} crashed: {type(exc).__name__}: {exc}") from exc
        return self._in_thread(spec, params, context, step)

    def _action_context(self, stage: str, step: Step, stop: threading.Event) -> ActionContext:
        return ActionContext(
            workspace_root=self.root,
            step_id=step.id,
            stage=stage,
            dry_run=self.options.dry_run,
            redactor=self.redactor,
            target=self.target,
            timeout=step.timeout,
            stop=stop,
            allowed_paths=self.allowed_paths,
            confirm=self.confirm,
            assume_yes=self.options.assume_yes,
            warn=lambda message: self.warn(f"{step.id}: {message}"),
            run_state=self.run_state,
            previous=self._previous_record(step),
            changed_files=self.changed_files,
            render=lambda value: render_value(value, self.context),
            progress=lambda text: self.progress(step.id, text),
        )

    def _prestart_ahead(self, plan: list[tuple[str, Step, bool]], position: int) -> None:
        """Start the kernel of the next `notebook.run` step now, when only steps that change nothing
        here come before it (what the kernel is started with cannot change meanwhile): it starts while
        they run, and the step adopts it (actions.notebook.prestart_kernel). Best effort: any
        problem leaves the step to start its own kernel."""
        if self.options.dry_run:
            return
        if self._ahead is None:  # once per run: the kernel steps and the last possible change before each
            self._ahead = []
            running = [i for i, (stage, step, on) in enumerate(plan) if on and (stage, step.id) not in self.restored]
            barrier = -1
            for index in running if any(plan[i][1].uses == "notebook.run" for i in running) else ():
                if plan[index][1].uses == "notebook.run":
                    self._ahead.append((index, barrier))
                if self._may_change(plan[index][1]):
                    barrier = index
        upcoming = next(((i, b) for i, b in self._ahead if i > position), None)
        if upcoming is None or upcoming[1] >= position or upcoming[0] in self._prestarted:
            return
        self._prestarted.add(upcoming[0])
        stage, step, _selected = plan[upcoming[0]]
        from .actions.notebook import prestart_kernel

        try:
            params = self._params(step, actions.get(step.uses))
            prestart_kernel(params, self._action_context(stage, step, threading.Event()))
        except Exception as exc:  # the step will start its own kernel and report what fails
            self.warn(f"{step.id}: kernel not started ahead ({exc}); it starts when the step runs")

    def _may_change(self, step: Step) -> bool:
        """Whether `step` may change what a kernel started before it would see at its start: files
        here (a kernel's environment is compared when it is adopted). HTTP and Azure calls change
        only what is behind them."""
        spec = actions.get(step.uses)
        if step.changes is False or (not spec.changes and spec.changes_when is None):
            return False
        if spec.name in _REMOTE_ONLY or spec.name.startswith("azure."):
            return False
        try:
            return spec.changes_for(self._params(step, spec))
        except RunbookError:
            return True

    def _in_thread(self, spec: ActionSpec, params: Any, context: ActionContext, step: Step) -> Result:
        self._current_stop = context.stop
        try:
            return run_in_thread(spec, params, context, step.id, step.timeout, self._interrupted)
        finally:
            self._current_stop = None

    def _params(self, step: Step, spec: ActionSpec) -> Any:
        raw = {k: v for k, v in step.with_.items() if k not in spec.raw_params}
        try:
            rendered = render_value(raw, self.context)
        except (TemplateError, SecurityViolation) as exc:  # a step error that says where the step is
            stage = self._stage_of(step)
            index = [s.id for s in getattr(self.runbook, stage)].index(step.id)
            where = self.loaded.doc.location([stage, index, "with"])
            raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None
        for value in derived_secrets(raw, rendered):  # a secret through a filter is still a secret
            self.redactor.add(value)
        rendered.update({k: v for k, v in step.with_.items() if k in spec.raw_params})
        try:
            return spec.params.model_validate(rendered)
        except ValidationError as exc:
            stage = self._stage_of(step)
            index = [s.id for s in getattr(self.runbook, stage)].index(step.id)
            problems = schema_problems(exc, self.loaded.doc, [stage, index, "with"], model=spec.params)
            raise ValidationFailed(
                [Problem(p.location, f"{spec.name} (after rendering): {p.message}") for p in problems]
            ) from None

    def _stage_of(self, step: Step) -> str:
        for stage, steps in self.runbook.stages():
            if step in steps:
                return stage
        return "fix"

    def _check(self, step: Step, output: Any) -> list[dict[str, Any]]:
        if not step.expect:
            return []
        context = self._with_output(output)
        results = []
        failed = []
        for item in step.expect:
            that, message = (item, None) if isinstance(item, str) else (item.that, item.message)
            passed = bool(evaluate(that, context))
            entry = {"that": that, "passed": passed}
            if message:
                entry["message"] = message
            results.append(entry)
            if not passed:
                failed.append(message or that)
        if failed:
            raise ExpectationFailed(f"expectation failed: {'; '.join(failed)}", output=output, expectations=results)
        return results

    def _close_run_state(self) -> None:
        for key, value in list(self.run_state.items()):
            closer = getattr(value, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # cleanup must not hide the run's own result
                    self.warn(f"closing {key}: {exc}")
        self.run_state.clear()
