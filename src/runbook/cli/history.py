"""`runbook report`, `changelog`, `timeline`, `checkpoint` and `status`: what the history says, as files or screens."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from .common import CONTEXT, State
from .completion import _complete_phase


@click.command(context_settings=CONTEXT)
@click.argument("phase", shell_complete=_complete_phase)
@click.option("--run", "run_id", metavar="RUN_ID", help="The run to render (id or unique prefix; default: the latest).")
@click.option("--template", metavar="NAME", help="Template name (workspace templates/ first, then the defaults).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write here; `-` for stdout. Default: reports/phase-PHASE.md (markdown), stdout (junit).",
)
@click.option("--format", "fmt", type=click.Choice(["markdown", "junit"]), default="markdown", show_default=True)
@click.option("--commit", is_flag=True, help="Commit the report and its run record (nothing else).")
@click.option("--tag", is_flag=True, help="With --commit: tag a resolved run's commit phase-<id>-resolved.")
@click.pass_obj
def report(
    state: State,
    phase: str,
    run_id: str | None,
    template: str | None,
    output: Path | None,
    fmt: str,
    commit: bool,
    tag: bool,
) -> None:
    """Render the resolution report of PHASE from a stored run record (default: its latest run)."""
    from ..publish import report_phase

    if tag and not commit:
        raise click.UsageError("--tag needs --commit")
    result = report_phase(
        state.workspace(), phase, run_id=run_id, template=template, fmt=fmt, output=output, commit=commit, tag=tag
    )
    if result.path is None:
        click.echo(result.text, nl=False)
    else:
        state.say(f"wrote {result.path}")
    if result.commit:
        state.say(f"committed {result.commit[:10]}")


@click.command(context_settings=CONTEXT)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when CHANGELOG.md is missing or stale.")
@click.pass_obj
def changelog(state: State, check: bool) -> None:
    """(Re)write CHANGELOG.md (Keep a Changelog): one version per resolved phase; hand-written parts are kept."""
    from ..reports import changelog_is_current, write_changelog

    if check:
        if not changelog_is_current(state.workspace()):
            click.echo("CHANGELOG.md is stale: run `runbook changelog` to bring it up to date", err=True)
            raise SystemExit(1)
        click.echo("CHANGELOG.md is current")
        return
    state.say(f"wrote {write_changelog(state.workspace())}")


@click.command(context_settings=CONTEXT)
@click.pass_obj
def timeline(state: State) -> None:
    """(Re)write TIMELINE.md: every phase's start, end and duration (UTC), from the timestamp log."""
    from ..reports import write_timeline

    state.say(f"wrote {write_timeline(state.workspace())}")


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint's facts as JSON (the file is written too).")
@click.pass_obj
def checkpoint(state: State, as_json: bool) -> None:
    """Write a status update into reports/status/<time>.md: progress and what changed since the last one."""
    from ..checkpoint import write_checkpoint

    path, data = write_checkpoint(state.workspace())
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(f"wrote {path}")


@click.command(context_settings=CONTEXT)
@click.argument("phase", required=False, shell_complete=_complete_phase)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the same numbers as the text).")
@click.pass_obj
def status(state: State, phase: str | None, as_json: bool) -> None:
    """Show the progress of every phase group, or one PHASE with its runs.

    Progress comes from the timestamp log: "Phase 1 Progress: 62.5% (5/8 subphases complete)".
    Unreadable timestamp-log lines are skipped with a warning naming file:line (on stderr).
    """
    from ..text import use_colour

    if phase is None:
        # Nothing changed since the last `runbook status`: the overview as it was, with no model loaded.
        from .. import status_index

        remembered = status_index.remembered_overview(state.workspace_path)
        if remembered is not None:
            for warning in remembered.warnings:
                click.echo(f"warning: {warning}", err=True)
            if as_json:
                click.echo(json.dumps(remembered.data, indent=2, ensure_ascii=False))
            else:
                click.echo(remembered.coloured if use_colour(sys.stdout) else remembered.text, nl=False)
            return
        # runbook.yaml unchanged since it was last validated: the overview from its remembered
        # part, still without pydantic, the YAML loader or the models; else the config is loaded.
        from .. import status as screens
        from .. import workspace_view

        workspace = workspace_view.remembered_workspace(state.workspace_path)
        if workspace is None:
            before = workspace_view.config_stamp(state.workspace_path)
            workspace = state.workspace()
            workspace_view.remember_workspace(workspace, before)
        inputs = status_index.overview_inputs(workspace)  # before the inputs are read
        overview = screens.workspace_status(workspace)
        data = overview.to_dict()
        texts = {colour: screens.render_status(overview, colour=colour) for colour in (False, True)}
        status_index.remember_overview(
            workspace, overview, inputs=inputs, data=data, text=texts[False], coloured=texts[True]
        )
        _show(overview.warnings, data, as_json, texts.__getitem__)
        return
    from .. import status as screens

    view = screens.phase_status(state.workspace(), phase)
    _show(view.warnings, view.to_dict(), as_json, lambda colour: screens.render_phase(view, colour=colour))


def _show(warnings: list[str], data: object, as_json: bool, render: Callable[[bool], str]) -> None:
    """A status screen: its warnings on stderr, then the JSON or the text (coloured on a terminal)."""
    from ..text import use_colour

    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    click.echo(render(use_colour(sys.stdout)), nl=False)
