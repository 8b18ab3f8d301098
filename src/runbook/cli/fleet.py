"""`runbook fleet …`: one phase across many deployments (the core is `runbook.fleet`; click stays in runbook.cli)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_INTERRUPTED
from .common import CONTEXT


@click.group("fleet", context_settings=CONTEXT)
@click.option(
    "-f",
    "--file",
    "fleet_file",
    type=click.Path(path_type=Path),
    default=Path("fleet.yaml"),
    show_default=True,
    help="The fleet file listing the members.",
)
@click.pass_context
def fleet_group(ctx: click.Context, fleet_file: Path) -> None:
    """Roll one phase across many deployments: rate-controlled, recorded, resumable.

    Each member is a workspace (a folder, or a git repository cloned into the fleet's work folder)
    with its target settings; each member run is an ordinary `runbook run` with its own record.
    With `emulator:` in the fleet file, one emulator serves every member's Azure while the fleet runs.
    The fleet record is reports/fleet/<phase>/<fleet-run-id>.jsonl next to the fleet file.
    """
    ctx.obj = (ctx.obj, fleet_file)


@fleet_group.command("run", context_settings=CONTEXT)
@click.argument("phase")
@click.option("--members", "members", multiple=True, metavar="GLOB", help="Only members whose name matches (repeatable).")
@click.option("--max-concurrency", metavar="N|P%", help="Members running at once (default: the fleet file's, else 4).")
@click.option("--max-errors", metavar="N|P%", help="Once more members than this failed, no new member starts; running ones finish.")
@click.option("--per-subscription", type=click.IntRange(min=1), metavar="N", help="Members running at once in one subscription.")
@click.option("--dry-run", is_flag=True, help="Every member runs with --dry-run; no fleet record is written.")
@click.option("-y", "--yes", is_flag=True, help="Start without asking, and approve `manual` steps in every member.")
@click.option("--commit", is_flag=True, help="Each member commits its run in its own repository.")
@click.option("--branch", is_flag=True, help="With --commit: commit on the branch fleet/<phase>/<fleet-run-id>.")
@click.option("--resume", is_flag=True, help="Continue the latest fleet run of PHASE: finished members are skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print fleet events as JSON lines on stdout.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True, help="Where member runs execute.")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="With --engine dask: the Dask scheduler's address.")
@click.pass_obj
def fleet_run(
    obj: tuple[Any, Path],
    phase: str,
    members: tuple[str, ...],
    max_concurrency: str | None,
    max_errors: str | None,
    per_subscription: int | None,
    dry_run: bool,
    yes: bool,
    commit: bool,
    branch: bool,
    resume: bool,
    as_json: bool,
    engine: str,
    scheduler: str | None,
) -> None:
    """Run PHASE in every member of the fleet (or those --members selects).

    Ctrl-C (or SIGTERM): no new member starts, the running ones finish, exit 130; continue with --resume.
    """
    from ..fleet.coordinator import FleetOptions, plan_fleet, run_fleet
    from ..fleet.model import load_fleet
    from ..fleet.report import event_line

    options = FleetOptions(
        members=members, max_concurrency=max_concurrency, max_errors=max_errors, per_subscription=per_subscription,
        dry_run=dry_run, assume_yes=yes, commit=commit, branch=branch, resume=resume, engine=engine, scheduler=scheduler,
    )
    plan = plan_fleet(load_fleet(obj[1]), phase, options)
    if not yes and not dry_run:
        if not sys.stdin.isatty():
            raise click.UsageError("fleet run changes every member: pass --yes (or --dry-run) when there is no terminal")
        click.echo(f"phase {plan.phase} on {len(plan.members)} members: {', '.join(m.name for m in plan.members[:8])}"
                   f"{' …' if len(plan.members) > 8 else ''} (max concurrency {plan.max_concurrency})")
        if not click.confirm("start?", default=False):
            raise click.exceptions.Abort()

    def show(event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) if as_json else event_line(event)
        if line:
            click.echo(line)

    outcome = run_fleet(plan, [show])
    if outcome.status != "success" and outcome.record_path is not None and not as_json:
        click.echo(f"  hint: see `runbook fleet status {plan.phase}`; continue with `runbook fleet run {plan.phase} --resume`", err=True)
    sys.exit({"success": 0, "interrupted": EXIT_INTERRUPTED}.get(outcome.status, 1))


@fleet_group.command("status", context_settings=CONTEXT)
@click.argument("phase")
@click.option("--run", "run_id", metavar="FLEET_RUN_ID", help="A fleet run (id or unique prefix; default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def fleet_status(obj: tuple[Any, Path], phase: str, run_id: str | None, as_json: bool) -> None:
    """Per-member status of a fleet run of PHASE, read from its fleet record (works while it runs)."""
    from ..fleet.model import load_fleet
    from ..fleet.record import latest_fleet_record
    from ..fleet.report import fleet_view, render_status
    from ..model import normalise_phase

    view = fleet_view(latest_fleet_record(load_fleet(obj[1]).reports_dir, normalise_phase(phase), run_id))
    for warning in view.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(json.dumps(view.to_dict(), indent=2, ensure_ascii=False) if as_json else render_status(view), nl=as_json)


@fleet_group.command("report", context_settings=CONTEXT)
@click.argument("phase")
@click.option("--run", "run_id", metavar="FLEET_RUN_ID", help="A fleet run (id or unique prefix; default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the report's data as JSON instead of writing files.")
@click.pass_obj
def fleet_report(obj: tuple[Any, Path], phase: str, run_id: str | None, as_json: bool) -> None:
    """Write the fleet report of PHASE (markdown + SVG chart next to its fleet record)."""
    from ..fleet.model import load_fleet
    from ..fleet.record import latest_fleet_record
    from ..fleet.report import fleet_view, write_report
    from ..model import normalise_phase

    record = latest_fleet_record(load_fleet(obj[1]).reports_dir, normalise_phase(phase), run_id)
    if as_json:
        click.echo(json.dumps(fleet_view(record).to_dict(), indent=2, ensure_ascii=False))
        return
    for path in write_report(record):
        click.echo(f"wrote {path}")


@fleet_group.command("generate", context_settings=CONTEXT)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--members", "count", type=click.IntRange(min=1), default=12, show_default=True, help="How many members.")
@click.option("--ref", default="HEAD", show_default=True, help="The commit of this project the members copy the sample from.")
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds the fleet's emulator adds to each answer.")
@click.option("--subscriptions", type=click.IntRange(min=1), metavar="N",
              help="Subscriptions the members share, round-robin (default: one each; a throttled member has its own).")
@click.option("--healthy", is_flag=True, help="No member broken by design.")
@click.option("--source", type=click.Path(file_okay=False, path_type=Path), default=Path(), help="A clone of this project (default: here).")
def fleet_generate(directory: Path, count: int, ref: str, latency: float, subscriptions: int | None, healthy: bool, source: Path) -> None:
    """Write a demo fleet: DIRECTORY/fleet.yaml, estate.yaml (one emulator serves every member) and one git
    repository per member, some broken by design."""
    from ..fleet.generate import generate_fleet

    path = generate_fleet(directory, count, source=source, ref=ref, latency=latency, subscriptions=subscriptions,
                          broken={} if healthy else None)
    click.echo(f"wrote {path} and {path.parent / 'estate.yaml'} ({count} members)")
