"""`runbook report`, `changelog`, `timeline`, `checkpoint` and `status`: what the history says, as files or screens."""

from __future__ import annotations

import json
import sys
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
        from ..status_index import remembered_overview

        remembered = remembered_overview(state.workspace_path)
        if remembered is not None:
            for warning in remembered.warnings:
                click.echo(f"warning: {warning}", err=True)
            if as_json:
                click.echo(json.dumps(remembered.data, indent=2, ensure_ascii=False))
            else:
                click.echo(remembered.coloured if use_colour(sys.stdout) else remembered.text, nl=False)
            return
    from .. import status as screens

    workspace = state.workspace()
    view = screens.phase_status(workspace, phase) if phase else screens.workspace_status(workspace)
    if isinstance(view, screens.WorkspaceStatus):
        from ..status_index import remember_overview

        remember_overview(workspace, view)
    for warning in view.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(view.to_dict(), indent=2, ensure_ascii=False))
        return
    colour = use_colour(sys.stdout)
    if isinstance(view, screens.PhaseStatus):
        click.echo(screens.render_phase(view, colour=colour), nl=False)
    else:
        click.echo(screens.render_status(view, colour=colour), nl=False)
