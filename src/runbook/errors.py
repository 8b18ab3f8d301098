"""The RunbookError tree: every failure a user can meet has a class, a clear message and an exit code.

`cli.py` is the one place that turns these into exit codes; the core raises them and never exits.
Messages name what failed and end with what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Location:
    """A place in a file, 1-based, as editors and compilers print it."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        text = self.path
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text


@dataclass(frozen=True)
class Problem:
    """One finding of validation: where, and what is wrong (with the fix)."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RunbookError(Exception):
    """Base of every error `runbook` reports to a user. `exit_code` says how the CLI ends."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InputError(RunbookError):
    """The user's input is wrong (a file, an option, a value): exit 2, nothing was changed."""

    exit_code = EXIT_INPUT

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message, hint=hint)


class ValidationFailed(InputError):
    """Validation found one or more problems; all of them are listed, each with file:line:col."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(str(p) for p in problems)
        RunbookError.__init__(self, f"{lines}\n{count} problem{'s' if count != 1 else ''} found")
        self.location = problems[0].location if problems else None


class WorkspaceNotFound(InputError):
    """No workspace config above the current directory."""


class UnknownPhase(InputError):
    """A phase that is neither in the plan nor has a runbook."""


class TemplateError(InputError):
    """A Jinja expression failed to render (undefined name, sandbox violation, syntax)."""


class SecurityViolation(InputError):
    """Something tried to leave the sandbox: a template escape, a path outside the workspace."""


class ActionError(RunbookError):
    """An action failed while running a step; the executor records it and stops the run."""

    def __init__(self, message: str, *, output: object = None, hint: str | None = None) -> None:
        self.output = output
        super().__init__(message, hint=hint)


class CheckFailed(ActionError):
    """A check did not hold: an expectation, an HTTP status, an assertion, a cell that raised.

    The step's outcome is *failed* — evidence about the system. Every other `ActionError` is an
    *error*: the runbook or the machine is wrong (undefined name, no such cell, a crash, a timeout),
    which says nothing about the fault.
    """


class ExpectationFailed(CheckFailed):
    """A step ran but its `expect` assertions did not hold; `expectations` says which (recorded)."""

    def __init__(
        self,
        message: str,
        *,
        output: object = None,
        hint: str | None = None,
        expectations: list[dict[str, object]] | None = None,
    ) -> None:
        self.expectations: list[dict[str, object]] = list(expectations or [])
        super().__init__(message, output=output, hint=hint)


class StepTimeout(ActionError):
    """A step ran longer than its `timeout`."""


class RunFailed(RunbookError):
    """A run ended with a failed step or verification (exit 1). The record and report exist."""


class RunInterrupted(RunbookError):
    """The user pressed Ctrl-C (exit 130). The step was stopped and recorded as interrupted."""

    exit_code = EXIT_INTERRUPTED


class LockHeld(RunbookError):
    """Another run holds the workspace lock."""

    exit_code = EXIT_INPUT


class AzureError(ActionError):
    """Azure (or the emulator) answered with an error, or could not be reached."""


class CredentialError(AzureError):
    """No usable Azure credential."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "no Azure credential: run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID, "
            "AZURE_CLIENT_SECRET"
        )


class GitError(RunbookError):
    """A git operation cannot be done as asked (not a repository, detached HEAD, no identity…)."""

    exit_code = EXIT_INPUT


class NotebookError(InputError):
    """A notebook cannot be read, addressed or written as asked."""


class StorageError(RunbookError):
    """The disk refused a write (full, read-only, over quota): what was written before is intact."""


# errno values that mean "the storage refused", not "runbook has a bug".
STORAGE_ERRNOS = frozenset({28, 30, 122, 13, 1})  # ENOSPC, EROFS, EDQUOT, EACCES, EPERM


def storage_error(exc: OSError, *, resume: str | None = None) -> StorageError:
    """A clear error for a refused write, saying that nothing already recorded was lost and how to go on."""
    import errno
    import os

    reasons = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "the operation is not permitted",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    where = f" writing {relative_display(Path(os.fsdecode(exc.filename)))}" if exc.filename else ""
    next_step = f"then `{resume}` continues where it stopped" if resume else "then run the command again"
    return StorageError(
        f"{reason}{where}: nothing already recorded was lost (run records are appended and synced step by "
        "step; reports, notebooks and logs are replaced atomically or not at all)",
        hint=f"free some space or make the folder writable, {next_step}",
    )


def did_you_mean(word: str, choices: Iterable[str], *, quote: bool = True) -> str:
    """`"did you mean 'x'? "` for the closest of `choices`, or `""` when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    if not close:
        return ""
    shown = repr(close[0]) if quote else close[0]
    return f"did you mean {shown}? "


def relative_display(path: Path, root: Path | None = None) -> str:
    """Show `path` relative to `root` (or the cwd) when it is inside it, else as given."""
    base = root or Path.cwd()
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
