"""What the command line prints besides a run's lines: JSON error events, GitHub annotations, `-q`.

No click here: `cli.py` calls these. Under `--json` every error is one JSON line on stdout
(`{"event": "error", "kind", "message", "hint", "location", "problems", "exit_code"}`);
`validate --format github` prints one workflow command per problem; `QuietPrinter` passes only
failures, warnings and the closing line of a run to the printer it wraps.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Problem, RunbookError, ValidationFailed


class QuietPrinter:
    """`-q`: only failed steps, warnings and the closing line of a run."""

    def __init__(self, printer: Any) -> None:
        self.printer = printer
        self.warning = printer.warning

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "event", None)
        failed = kind == "step_finished" and event.status == "failed" and event.stage != "reproduce"
        if kind in ("run_finished", "warning") or failed:
            self.printer(event)


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asked for JSON output (`--json` before any `--`)."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in words


def error_event(message: str, exit_code: int, *, hint: str | None = None, error: RunbookError | None = None) -> str:
    event: dict[str, Any] = {"event": "error", "kind": type(error).__name__ if error else "UsageError"}
    event["message"] = message
    if hint:
        event["hint"] = hint
    location = getattr(error, "location", None)
    if location is not None:
        event["location"] = {"file": location.path, "line": location.line, "column": location.column}
    if isinstance(error, ValidationFailed):
        event["message"] = f"{len(error.problems)} problem{'s' if len(error.problems) != 1 else ''} found"
        event["problems"] = [
            {"file": p.location.path, "line": p.location.line, "column": p.location.column, "message": p.message}
            for p in error.problems
        ]
    event["exit_code"] = exit_code
    return json.dumps(event, ensure_ascii=False)



def annotation_text(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotation(problem: Problem) -> str:
    """A GitHub Actions workflow command: the problem shows on the line in the pull request."""

    def prop(value: object) -> str:
        return annotation_text(str(value)).replace(":", "%3A").replace(",", "%2C")

    where = problem.location
    fields = [f"file={prop(where.path)}"]
    if where.line is not None:
        fields.append(f"line={where.line}")
        if where.column is not None:
            fields.append(f"col={where.column}")
    return f"::error {','.join(fields)}::{annotation_text(problem.message)}"
