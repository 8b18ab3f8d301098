"""Built-in general actions: `shell`, `set`, `assert` and `manual`.

`shell` runs a process from an argv list (values go in as separate arguments, never pasted into a
shell string); a string command is split with shlex, not given to a shell. It is stopped on timeout
or Ctrl-C (SIGTERM, then SIGKILL to its process group).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from ..errors import ActionError, CheckFailed
from . import ActionContext, Params, Result, action
from .outputs import Output

OUTPUT_LIMIT = 64_000


class ShellParams(Params):
    cmd: list[str] | str = Field(
        description="argv list (preferred) or a command line split like a shell would, without a shell"
    )
    cwd: str | None = Field(None, description="working directory, relative to the workspace")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")
    timeout: float | None = Field(None, gt=0, description="seconds before the process is stopped")
    parse: Literal["text", "json"] = Field("text", description="json: parse stdout as JSON into `output.json`")
    check: bool = Field(True, description="fail when the exit code is not 0")
    changes: bool = Field(True, description="false when the command only reads (discovery)")
    stdin: str | None = Field(None, description="text sent to the process' standard input")

    @field_validator("cmd")
    @classmethod
    def _not_empty(cls, value: list[str] | str) -> list[str] | str:
        if not value:
            raise ValueError("cmd must name a program")
        return value


class ShellOutput(Output):
    argv: list[str] = Field(description="the program and its arguments, as run (rendered)")
    rc: int | None = Field(None, description="exit code (absent under --dry-run)")
    stdout: str | None = Field(None, description="standard output, first 64,000 characters")
    stderr: str | None = Field(None, description="standard error, first 64,000 characters")
    elapsed_ms: float | None = Field(None, description="how long the process ran, in milliseconds")
    json_: Any = Field(None, alias="json", description="stdout parsed as JSON (with parse: json)")
    dry_run: bool | None = Field(None, description="true when the command was only shown (--dry-run)")


_EXPRESSION = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def _argv(cmd: list[str] | str, render: Callable[[Any], Any]) -> list[str]:
    """The argv of a `shell` step: split the command *before* rendering, then render each word.

    So a rendered value is always exactly one argument: `{{ name }}` holding `; rm -rf ~` or
    `a b` stays one word. A list is rendered item by item; a string that is one `{{ expr }}`
    rendering to a list gives that list.
    """
    if isinstance(cmd, list):
        return [str(render(part)) for part in cmd]
    whole = _EXPRESSION.fullmatch(cmd.strip())
    if whole is not None:
        value = render(cmd.strip())
        if isinstance(value, list):
            return [str(part) for part in value]
    # Hide template expressions from shlex (they may hold spaces and quotes), split, render words.
    hidden: list[str] = []

    def hide(match: re.Match[str]) -> str:
        hidden.append(match.group(0))
        return f"\x00{len(hidden) - 1}\x00"

    try:
        words = shlex.split(_EXPRESSION.sub(hide, cmd))
    except ValueError as exc:
        raise ActionError(f"cannot split command {cmd!r}: {exc}", hint="give `cmd` as an argv list") from None
    placeholder = re.compile("\x00(\\d+)\x00")
    return [str(render(placeholder.sub(lambda m: hidden[int(m.group(1))], word))) for word in words]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@action(
    "shell",
    params=ShellParams,
    changes=True,
    supports_dry_run=True,
    raw_params=("cmd",),
    output=ShellOutput,
    summary="Run a program (argv list; no shell) and capture exit code, stdout and stderr.",
)
def shell(params: ShellParams, ctx: ActionContext) -> Result:
    argv = _argv(params.cmd, ctx.render)
    cwd = ctx.resolve_path(params.cwd) if params.cwd else ctx.workspace_root
    env = {**os.environ, **getattr(ctx.target, "env", {}), **params.env}
    if ctx.dry_run and params.changes:
        return Result(
            status="changed", output={"argv": argv, "dry_run": True}, message=f"would run: {shlex.join(argv)}"
        )
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if params.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so we can stop its children too
        )
    except FileNotFoundError:
        raise ActionError(f"program not found: {argv[0]!r}", hint="install it or give its full path") from None
    except PermissionError:
        raise ActionError(f"program not executable: {argv[0]!r}") from None
    timeout = params.timeout or ctx.timeout
    deadline = None if timeout is None else started + timeout
    stdin = params.stdin.encode() if params.stdin is not None else None
    stdout = stderr = b""
    while True:
        try:
            slice_ = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            stdout, stderr = process.communicate(stdin, timeout=slice_)
            break
        except subprocess.TimeoutExpired:
            stdin = None
            if ctx.stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                _stop(process)
                stdout, stderr = process.communicate()
                why = "interrupted" if ctx.stop.is_set() else f"timed out after {timeout:g}s"
                raise ActionError(
                    f"{shlex.join(argv)} {why}",
                    output=_output(argv, process.returncode, stdout, stderr, started, ctx.redactor.bound),
                ) from None
    output = _output(argv, process.returncode, stdout, stderr, started, ctx.redactor.bound)
    if params.parse == "json":
        try:
            output["json"] = json.loads(stdout or b"null")
        except ValueError as exc:
            raise ActionError(f"stdout of {argv[0]} is not JSON: {exc}", output=output) from None
    if params.check and process.returncode != 0:
        raise CheckFailed(
            f"{shlex.join(argv)} exited with {process.returncode}: {_tail(output['stderr'] or output['stdout'])}",
            output=output,
        )
    return Result(status="changed" if params.changes else "ok", output=output)


def _output(
    argv: list[str], code: int | None, stdout: bytes, stderr: bytes, started: float, bound: Callable[[str, int], str]
) -> dict[str, Any]:
    # Cut never through a secret: the output keeps its secrets for later steps (the record masks them
    # whole), and a secret straddling the bound is left out rather than half kept.
    return {
        "argv": argv,
        "rc": code,
        "stdout": bound(stdout.decode("utf-8", "replace"), OUTPUT_LIMIT),
        "stderr": bound(stderr.decode("utf-8", "replace"), OUTPUT_LIMIT),
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


class SetParams(Params):
    model_config = ConfigDict(extra="allow")


class SetOutput(Output):
    """The output of `set` is its `with`: each key becomes a field."""

    model_config = ConfigDict(extra="allow")
    echoes_with = True


@action(
    "set",
    params=SetParams,
    changes=False,
    blocking=False,
    output=SetOutput,
    summary="Register computed values: every key of `with` becomes a field of the output.",
)
def set_values(params: SetParams, _ctx: ActionContext) -> Result:
    return Result(output=dict(params.model_extra or {}))


class Condition(Params):
    that: Any = Field(description="a value that must be true (usually `{{ expression }}`)")
    message: str | None = Field(None, description="what it means when it is false")


class AssertParams(Params):
    that: list[Condition | Any] = Field(description="conditions, each a value or {that, message}")

    @field_validator("that", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value if isinstance(value, list) else [value]


class CheckedCondition(Output):
    passed: bool = Field(description="whether the condition held")
    message: str | None = Field(description="the condition's message, if it has one")


class AssertOutput(Output):
    checked: list[CheckedCondition] = Field(description="each condition, in order")


@action(
    "assert",
    params=AssertParams,
    changes=False,
    blocking=False,
    output=AssertOutput,
    summary="Fail unless every condition is true; say which one was not.",
)
def assert_(params: AssertParams, _ctx: ActionContext) -> Result:
    failed = []
    checked = []
    for item in params.that:
        value, message = (item.that, item.message) if isinstance(item, Condition) else (item, None)
        ok = _truthy(value)
        checked.append({"passed": ok, "message": message})
        if not ok:
            failed.append(message or f"condition {len(checked)} is false ({value!r})")
    if failed:
        raise CheckFailed("; ".join(failed), output={"checked": checked})
    return Result(output={"checked": checked})


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "off")
    return bool(value)


class ManualParams(Params):
    instruction: str = Field(description="what the person must do before the run goes on")
    prompt: str = Field("Done?", description="the question asked")


class ManualOutput(Output):
    instruction: str = Field(description="the instruction shown")
    confirmed: Literal["tty", "--yes"] | None = Field(
        None, description="how it was confirmed: at the terminal, or by --yes (absent under --dry-run)"
    )
    dry_run: bool | None = Field(None, description="true when the instruction was only shown (--dry-run)")


@action(
    "manual",
    params=ManualParams,
    changes=True,
    supports_dry_run=True,
    output=ManualOutput,
    summary="Show an instruction and wait for a person to confirm (needs a TTY or --yes).",
)
def manual(params: ManualParams, ctx: ActionContext) -> Result:
    if ctx.dry_run:
        return Result(status="ok", output={"instruction": params.instruction, "dry_run": True})
    if ctx.assume_yes:
        return Result(status="changed", output={"instruction": params.instruction, "confirmed": "--yes"})
    instruction = ctx.redactor.text(params.instruction)
    if ctx.confirm is None or not sys.stdin.isatty():
        raise ActionError(
            f"manual step needs confirmation: {instruction}",
            hint="run in a terminal to confirm, or pass --yes to approve manual steps",
        )
    if not ctx.confirm(f"{instruction}\n{ctx.redactor.text(params.prompt)}"):
        raise ActionError(f"not confirmed: {instruction}")
    return Result(status="changed", output={"instruction": params.instruction, "confirmed": "tty"})


def approval_refusal(
    step_id: str, label: str, *, assume_yes: bool, confirm: Callable[[str], bool] | None
) -> ActionError | None:
    """None when a person approves a step with `approve: true` (at the terminal, or by --yes); else why not.

    The executor asks before such a step runs (never under --dry-run, which changes nothing).
    """
    if assume_yes:
        return None
    if confirm is None or not sys.stdin.isatty():
        return ActionError(
            f"step {step_id} needs approval before it changes anything",
            hint="run in a terminal to approve it, pass --yes, or look first with --dry-run",
        )
    if confirm(f"Approve step {step_id}: {label}?"):
        return None
    return ActionError(f"step {step_id} was not approved", hint="nothing was changed; run again to approve it")
