"""The reference pages, generated from the code so they cannot drift: actions and the command line.

The actions page reads the action registry (each parameter from its pydantic model); the command-line
page reads the command tree as plain data (`CommandDoc`), which `runbook.cli` builds from click and
hands in: nothing here imports the CLI.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..text import code
from .layout import GENERATED_NOTE
from .markdown import md_text, table

if typing.TYPE_CHECKING:
    from ..actions import ActionSpec


class ParamDoc(TypedDict):
    """One option or argument of a command, as `runbook COMMAND --help` shows it."""

    kind: Literal["option", "argument"]
    name: str | None
    opts: list[str]
    metavar: str | None
    type: str
    choices: list[str]
    required: bool
    multiple: bool
    is_flag: bool
    default: Any
    help: str


class CommandDoc(TypedDict):
    """One command of the tree (`runbook docs build`): usage, help text, parameters, subcommands."""

    name: str
    usage: str
    help: str
    short_help: str
    params: list[ParamDoc]
    subcommands: list[str]


def actions_reference(specs: Sequence[ActionSpec]) -> str:
    """Every registered action: summary, read-only or not, and each parameter from its pydantic model."""
    out = [GENERATED_NOTE, "# Actions\n"]
    out.append(
        "A step names its action in `uses:` and gives the parameters in `with:` (rendered by the sandboxed "
        "Jinja environment first). This page is generated from the action registry, the same one "
        "`runbook actions` lists, so it cannot drift from the code. "
        f"{len(specs)} actions are registered.\n"
    )
    rows = [
        [
            f"[{code(spec.name)}](#{_action_anchor(spec.name)})",
            _effect_word(spec),
            "yes" if spec.supports_dry_run or not spec.changes else "no",
            md_text(spec.summary, table=True),
        ]
        for spec in specs
    ]
    out.append(table(["Action", "Effect", "Safe in `--dry-run`", "Summary"], rows))
    for spec in specs:
        out.append(f"## {code(spec.name)} {{ #{_action_anchor(spec.name)} }}\n")
        out.append(f"{md_text(spec.summary)}\n")
        if spec.changes_when is not None:
            effect = (
                "**Depends on its parameters.** A call that can change things (for `http.request`: any method "
                "but GET, HEAD and OPTIONS) is skipped under `--dry-run`, which shows what it would send; a "
                "read-only call runs."
            )
        elif spec.changes:
            effect = "**Changes things.** " + (
                "With `--dry-run` it shows what it would change and changes nothing."
                if spec.supports_dry_run
                else "Skipped under `--dry-run`."
            )
        else:
            effect = "**Read-only**: it never changes anything, and runs under `--dry-run`."
        out.append(effect + "\n")
        out.append(_model_table(spec.params))
        for nested in _nested_models(spec.params):
            out.append(f"**{code(nested.__name__)}** (used by the parameters above):\n")
            out.append(_model_table(nested))
    return "\n".join(out)


def _action_anchor(name: str) -> str:
    return "action-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _model_table(model: type[BaseModel]) -> str:
    extra = model.model_config.get("extra")
    if not model.model_fields:
        if extra == "allow":
            return "Any keys: each key of `with` becomes a field of the output.\n"
        return "No parameters.\n"
    rows = []
    for name, info in model.model_fields.items():
        rows.append(
            [
                code(info.alias or name),
                code(type_text(info.annotation)),
                _default_text(info),
                md_text(_describe(info), table=True) or "-",
            ]
        )
    text = table(["Parameter", "Type", "Default", "Description"], rows)
    if extra == "allow":
        text += "\nOther keys are accepted too.\n"
    return text


def _describe(info: FieldInfo) -> str:
    description = info.description or ""
    limits = []
    for item in info.metadata:
        for attr, symbol in (
            ("gt", ">"),
            ("ge", ">="),
            ("lt", "<"),
            ("le", "<="),
            ("min_length", "min length"),
            ("max_length", "max length"),
        ):
            value = getattr(item, attr, None)
            if value is not None:
                limits.append(f"{symbol} {value}")
    if limits:
        description = f"{description} ({', '.join(limits)})" if description else ", ".join(limits)
    return description


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "computed"
        return code(json.dumps(value, default=str))
    return code(json.dumps(info.default, default=str))


def type_text(annotation: Any) -> str:
    """A parameter's type as people read it: `list[str] | str`, `"text" | "json"`, `float | null`."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(arg) for arg in args)}]" if args else name
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """Models used inside a parameter model's fields (one level deep, then theirs), in field order."""
    found: list[type[BaseModel]] = []

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found and annotation is not model:
                found.append(annotation)
                for info in annotation.model_fields.values():
                    visit(info.annotation)
            return
        for arg in typing.get_args(annotation):
            visit(arg)

    for info in model.model_fields.values():
        visit(info.annotation)
    return found


# ---------------------------------------------------------------- the command line


def cli_reference(commands: Sequence[CommandDoc]) -> str:
    """Every command's usage, help and parameters, from the click command tree (as plain data)."""
    out = [GENERATED_NOTE, "# Command line\n"]
    out.append(
        "Generated from the command tree itself (the same text as `runbook COMMAND --help`). "
        "Every command also takes `-h` / `--help`.\n"
    )
    rows = [
        [f"[{code(command['name'])}](#{_command_anchor(command['name'])})", md_text(command["short_help"], table=True)]
        for command in commands
    ]
    out.append(table(["Command", "What it does"], rows))
    for command in commands:
        out.append(f"## {code(command['name'])} {{ #{_command_anchor(command['name'])} }}\n")
        out.append(f"```text\n{command['usage']}\n```\n")
        out.append(help_markdown(command["help"]))
        if command["params"]:
            rows = [_param_row(param) for param in command["params"]]
            out.append(table(["Parameter", "Type", "Default", "Description"], rows))
        if command["subcommands"]:
            links = ", ".join(
                f"[{code(name)}](#{_command_anchor(command['name'] + ' ' + name)})" for name in command["subcommands"]
            )
            out.append(f"Subcommands: {links}.\n")
    return "\n".join(out)


def _command_anchor(name: str) -> str:
    return "command-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _param_row(param: ParamDoc) -> list[str]:
    if param["kind"] == "argument":
        shown: str = code(param["metavar"] or str(param["name"] or "").upper())
    else:
        shown = ", ".join(code(opt) for opt in param["opts"] or [param["name"] or ""])
    if param["choices"]:
        kind = " \\| ".join(code(str(choice)) for choice in param["choices"])
    elif param["is_flag"]:
        kind = "flag"
    else:
        kind = md_text(param["type"], table=True)
    if param["multiple"]:
        kind += " (repeatable)"
    default = param["default"]
    if param["required"]:
        default_text = "required"
    elif default in (None, (), []):
        default_text = "-"
    else:
        default_text = code(str(default))
    description = md_text(param["help"] or "", table=True) or "-"
    return [shown, kind, default_text, description]


def help_markdown(text: str) -> str:
    """Click help text as markdown: paragraphs, and `\\b` blocks (kept as written) as code."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = paragraph.splitlines()
        if lines and lines[0].strip() == "\b":
            out.append("```text\n" + "\n".join(lines[1:]) + "\n```")
        elif paragraph.strip():
            out.append(md_text(" ".join(line.strip() for line in lines)))
    return "\n\n".join(out) + "\n" if out else ""


def _effect_word(spec: Any) -> str:
    if spec.changes_when is not None:
        return "depends on its parameters"
    return "changes things" if spec.changes else "read-only"
