"""Running one blocking action in a worker thread, so a step's timeout and Ctrl-C can stop it.

The executor hands a step's action here when it can block (processes, HTTP, kernels) or has a
`timeout:`. The main thread waits in short slices: past the deadline, or once the run is
interrupted, it sets the action's `stop` event and gives it `STOP_GRACE_SECONDS` to finish before
the step is given up as timed out or interrupted. Actions that neither block nor change anything
(`in_process_action`: `set`, `assert`) run in the executor's own thread. An exception the action raises is handed back to
the main thread: runbook's own errors as they are, anything else as an `ActionError` (a failed step,
not a dead run).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from . import actions
from .actions import ActionContext, ActionSpec, Result
from .errors import ActionError, RunbookError, StepTimeout

STOP_GRACE_SECONDS = 10.0


def in_process_action(uses: str) -> bool:
    """Whether action `uses` acts only inside this process (`set`, `assert`): not blocking, changes
    nothing. The run record lets the lines of such steps share an fsync (runbook.record)."""
    try:
        spec = actions.get(uses)
    except RunbookError:
        return False
    return not spec.blocking and not spec.changes and spec.changes_when is None


class Interrupted(Exception):
    """Raised inside the executor when Ctrl-C arrives; turned into RunInterrupted by the API."""


def run_in_thread(
    spec: ActionSpec,
    params: Any,
    context: ActionContext,
    step_id: str,
    timeout: float | None,
    interrupted: threading.Event,
) -> Result:
    """`spec.func(params, context)` in a worker thread, stopped on `timeout` or when `interrupted`."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["result"] = spec.func(params, context)
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"step-{step_id}", daemon=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        worker.start()
        while not done.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                context.stop.set()
                done.wait(STOP_GRACE_SECONDS)
                raise StepTimeout(
                    f"step {step_id} timed out after {timeout:g}s",
                    hint="raise `timeout:` on the step, or find why it hangs",
                )
            done.wait(0.2 if remaining is None else min(remaining, 0.2))
            if interrupted.is_set():
                context.stop.set()
                done.wait(STOP_GRACE_SECONDS)
                raise Interrupted()
    except KeyboardInterrupt:
        interrupted.set()
        context.stop.set()
        done.wait(STOP_GRACE_SECONDS)
        raise Interrupted() from None
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, RunbookError):
            raise exc
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted()
        raise ActionError(f"{spec.name} crashed: {type(exc).__name__}: {exc}") from exc
    result: Result = box["result"]
    return result
