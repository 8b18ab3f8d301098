"""`runbook validate`, `runbook schema` and `runbook actions`: check runbooks, print file formats, list actions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import CONTEXT, State
from .completion import _complete_action


@click.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: files checked, problems, warnings.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "github"]),
    default="text",
    show_default=True,
    help="github: also print GitHub Actions annotations (::error file=...,line=...,col=...::).",
)
@click.pass_obj
def validate(state: State, paths: tuple[Path, ...], as_json: bool, fmt: str) -> None:
    """Check runbooks and the workspace without running anything (default: every runbook).

    Reports every problem as file:line:col: schema and unknown keys (with "did you mean"), unknown
    actions, action parameters, duplicate step ids, `next` naming an unknown phase, Jinja syntax,
    template names nothing defines, notebook paths that do not exist, emulator settings, estate
    files. Warns when a committed schema file (runbook.schema.json ...) is out of date.
    Exits 2 when any problem is found.

    A clean result of the whole workspace is remembered in reports/.index/validate.json and
    printed again while nothing it read has changed (file checksums, folder listings, runbook's
    and the libraries' versions); problems are always found afresh. Delete the file to force a
    full check.
    """
    from ..validation_cache import recall

    remembered = recall(state.workspace_path) if not paths else None
    if remembered is not None:  # a clean validation whose inputs are all unchanged (validation_cache.py)
        _report_valid(state, *remembered, as_json=as_json, fmt=fmt)
        return
    from ..cli_output import annotation
    from ..errors import RunbookError, ValidationFailed
    from ..schema_freshness import stale_schemas
    from ..validation import validate as validate_runbooks
    from ..validation_cache import recording_reads, remember

    documents: list[Any] = []
    with recording_reads() as opened:
        try:
            workspace = state.workspace()
        except RunbookError:
            if not paths:
                raise
            workspace = None
        count, problems = validate_runbooks(paths, workspace=workspace, documents=documents)
        warnings = stale_schemas(workspace.root, workspace.reports_dir) if workspace is not None else []
    if problems:
        if fmt == "github":
            _report_warnings(warnings, fmt=fmt, as_json=as_json)
            for problem in problems:
                click.echo(annotation(problem))
        elif not as_json:
            _report_warnings(warnings, fmt=fmt, as_json=as_json)
        raise ValidationFailed(problems)
    if workspace is not None and not paths:
        config = workspace.config_doc.data if workspace.config_doc is not None else None
        remember(workspace, state.workspace_path, opened, [config, *documents], count, warnings)
    _report_valid(state, count, warnings, as_json=as_json, fmt=fmt)


def _report_warnings(warnings: list[str], *, fmt: str, as_json: bool) -> None:
    from ..cli_output import annotation_text

    if fmt == "github":
        for warning in warnings:
            click.echo(f"::warning::{annotation_text(warning)}")
    elif not as_json:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)


def _report_valid(state: State, count: int, warnings: list[str], *, as_json: bool, fmt: str) -> None:
    _report_warnings(warnings, fmt=fmt, as_json=as_json)
    if as_json:
        click.echo(json.dumps({"event": "validated", "files": count, "problems": [], "warnings": warnings}, indent=2))
    else:
        state.say(f"{count} runbook{'s' if count != 1 else ''} valid")


@click.command(context_settings=CONTEXT)
@click.option(
    "--kind",
    default="runbook",
    show_default=True,
    shell_complete=lambda _c, _p, incomplete: [
        k for k in ("runbook", "config", "estate", "fleet") if k.startswith(incomplete)
    ],
    help="runbook (runbooks/*.yaml), config (runbook.yaml), estate (emulator estate files), fleet (when installed).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout."
)
@click.pass_obj
def schema(state: State, kind: str, output: Path | None) -> None:
    """Print the JSON Schema of a file format (for yaml-language-server and editors).

    Files point at it with a first line like `# yaml-language-server: $schema=../runbook.schema.json`;
    `runbook init` writes runbook.schema.json, config.schema.json and estate.schema.json.
    """
    from ..atomic import atomic_write_text
    from ..schemas import schema_text

    text = schema_text(kind)
    if output:
        atomic_write_text(output, text)
        state.say(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@click.command(context_settings=CONTEXT)
@click.argument("name", required=False, shell_complete=_complete_action)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list with parameter schemas and output fields.")
def actions(name: str | None, as_json: bool) -> None:
    """List the actions steps can use, with their parameters and output fields (or one action's details).

    Output fields are what a step's `register` name gives later steps: `deployments[].model` is
    the `model` of each item of the list `deployments`, `by_account.*[].name` the `name` of each
    item of each value of the mapping `by_account`.
    """
    from .. import actions as registry

    specs = [registry.get(name)] if name else list(registry.all_specs())
    if as_json:
        click.echo(json.dumps([_action_json(spec) for spec in specs], indent=2))
        return
    for spec in specs:
        click.echo(f"{spec.name:<22} {spec.summary}{'' if spec.changes else '  (read-only)'}")
        for field_name, field in spec.params.model_fields.items():
            required = "required" if field.is_required() else f"default {field.default!r}"
            if field.default_factory is not None:
                required = "optional"
            click.echo(f"    {field.alias or field_name:<20} {field.description or ''} [{required}]")
        note = registry.output_note(spec.name)
        click.echo(f"  output: {note}" if note else "  output:")
        fields = registry.describe_outputs(spec.name)
        path_width = max((len(item.path) for item in fields), default=0)
        type_width = max((len(item.type) for item in fields), default=0)
        for item in fields:
            optional = "" if item.required else " [optional]"
            click.echo(f"    {item.path:<{path_width}}  {item.type:<{type_width}}  {item.description}{optional}")


def _action_json(spec: Any) -> dict[str, Any]:
    from .. import actions as registry

    return {
        "name": spec.name,
        "summary": spec.summary,
        "changes": spec.changes,
        "params": spec.params.model_json_schema(),
        "output": [item.to_dict() for item in registry.describe_outputs(spec.name)],
        "output_note": registry.output_note(spec.name),
        "output_schema": spec.output.model_json_schema(by_alias=True) if spec.output is not None else None,
    }
