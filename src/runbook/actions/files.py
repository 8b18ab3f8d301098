"""Built-in file actions: `file.replace` (text edits with a diff) and `env.set` (dotenv keys).

Both are idempotent: an edit already applied reports `ok`, not `changed`, and writes nothing. Writes
are atomic. `env.set` keeps the file's comments, blank lines and key order; values of secret keys are
masked in the record (the file itself holds them, and `.env` is never committed).
"""

import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..atomic import atomic_write_text
from ..errors import ActionError, InputError, Location
from ..replacements import Replacement, replace_in_text
from ..secrets import MASK, is_secret_name
from . import ActionContext, Params, Result, action
from .outputs import Output


class FileReplaceParams(Params):
    path: str = Field(description="file, relative to the workspace")
    replacements: list[Replacement] = Field(min_length=1, description="the edits, applied in order")


class FileReplaceOutput(Output):
    path: str = Field(description="the file, as given")
    replacements: list[Literal["changed", "already"]] = Field(
        description="per replacement, in order: changed now, or already applied"
    )


def apply_replacements(text: str, replacements: list[Replacement], where: str) -> tuple[str, list[str]]:
    """Apply replacements in order (the shared engine); return the new text and, per replacement, changed/already."""
    outcome = replace_in_text(text, replacements, label=where)
    failed = [r for r in outcome.results if r.status == "failed"]
    if failed:
        raise ActionError(
            f"{where}: " + "; ".join(r.message for r in failed),
            hint="the file changed since the runbook was written, or `find`/`count` need updating",
        )
    return outcome.after, [r.status for r in outcome.results]


def unified_diff(before: str, after: str, label: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{label}",
            tofile=f"b/{label}",
        )
    )


@action(
    "file.replace",
    params=FileReplaceParams,
    changes=True,
    supports_dry_run=True,
    output=FileReplaceOutput,
    summary="Literal or regex replacements in a text file, with expected counts; idempotent; records a diff.",
)
def file_replace(params: FileReplaceParams, ctx: ActionContext) -> Result:
    path = ctx.resolve_path(params.path)
    try:
        before = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ActionError(f"no such file: {params.path}") from None
    after, states = apply_replacements(before, params.replacements, params.path)
    if after == before:
        return Result(status="ok", output={"path": params.path, "replacements": states}, message="already applied")
    diff = unified_diff(before, after, params.path)
    if not ctx.dry_run:
        atomic_write_text(path, after)
        ctx.changed_files.add(path)
    return Result(
        status="changed",
        output={"path": params.path, "replacements": states},
        diff=diff,
        changes=[{"kind": "file", "path": params.path}],
    )


# ---------------------------------------------------------------- dotenv

_ASSIGNMENT = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=")


def read_dotenv(path: Path) -> dict[str, str]:
    """Keys and values of a dotenv file, parsed by python-dotenv (quotes, escapes, export)."""
    from dotenv import dotenv_values

    try:
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    except UnicodeDecodeError as exc:
        head = path.read_bytes()[: exc.start]
        where = Location(str(path), head.count(b"\n") + 1, exc.start - (head.rfind(b"\n") + 1) + 1)
        raise InputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", location=where, hint="save the file as UTF-8"
        ) from None


def _format_value(value: str) -> str:
    if value == "" or re.search(r"[\s#'\"\\$]", value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


class EnvSetParams(Params):
    path: str = Field(".env", description="dotenv file, relative to the workspace")
    values: dict[str, Any] = Field(description="keys to set (others are kept as they are)")
    secret: list[str] = Field(default_factory=list, description="keys whose values are secrets")
    comment: str | None = Field(None, description="comment written above keys that are added")


class EnvSetOutput(Output):
    path: str = Field(description="the dotenv file, as given")
    values: dict[str, str] = Field(description="every key asked for and its value (secret ones masked)")
    changed: list[str] = Field(description="keys added or updated by this step (empty when already set)")


@action(
    "env.set",
    params=EnvSetParams,
    changes=True,
    supports_dry_run=True,
    output=EnvSetOutput,
    summary="Set keys in a dotenv file, keeping comments and order; secret values masked in records.",
)
def env_set(params: EnvSetParams, ctx: ActionContext) -> Result:
    path = ctx.resolve_path(params.path)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    current = read_dotenv(path) if path.exists() else {}
    wanted = {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.values.items()}
    secret_keys = {k for k in wanted if k in params.secret or is_secret_name(k)}
    for key in secret_keys:
        ctx.redactor.add(wanted[key])
    lines = before.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    done: set[str] = set()
    changes = []
    for i, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if not match or match.group("key") not in wanted:
            continue
        key = match.group("key")
        done.add(key)
        if current.get(key) != wanted[key]:
            lines[i] = f"{match.group('lead')}{key}={_format_value(wanted[key])}\n"
            changes.append({"kind": "env", "key": key, "action": "updated"})
    added = [k for k in wanted if k not in done]
    if added:
        if lines and lines[-1].strip():
            lines.append("\n")
        if params.comment:
            lines.append(f"# {params.comment}\n")
        for key in added:
            lines.append(f"{key}={_format_value(wanted[key])}\n")
            changes.append({"kind": "env", "key": key, "action": "added"})
    after = "".join(lines)
    shown = {k: (MASK if k in secret_keys else v) for k, v in wanted.items()}
    for change in changes:
        change["value"] = shown[change["key"]]
        change["path"] = params.path
    output = {"path": params.path, "values": shown, "changed": [c["key"] for c in changes]}
    if after == before:
        return Result(status="ok", output=output, message="already set")
    if not ctx.dry_run:
        atomic_write_text(path, after)
        ctx.changed_files.add(path)
    return Result(status="changed", output=output, changes=changes)
