"""`runbook run` and `runbook log`: execute runbooks, or log a phase done by hand (the core is runbook.api)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from .common import CONTEXT, RUNNING, State, parse_cells, parse_vars
from .completion import _complete_phase, _complete_step, _complete_target, _complete_var


@click.command(context_settings=CONTEXT)
@click.argument("phases", nargs=-1, required=True, metavar="PHASE...", shell_complete=_complete_phase)
@click.option(
    "-t",
    "--target",
    shell_complete=_complete_target,
    help="Target from runbook.yaml (default: default_target; the sample uses `emulator`).",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="KEY=VALUE",
    shell_complete=_complete_var,
    help="Set a variable or input the runbook declares (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Discovery runs; fix steps show what they would change; verify is skipped. Writes nothing.")
@click.option("--only", type=click.Choice(["discovery", "fix", "verify"]), help="Run one stage only.")
@click.option(
    "--from",
    "from_step",
    metavar="STEP_ID",
    shell_complete=_complete_step,
    help="Start at this step; earlier outputs come from the last record.",
)
@click.option("--step", metavar="STEP_ID", shell_complete=_complete_step, help="Run exactly this step.")
@click.option("-y", "--yes", is_flag=True, help="Approve `manual` steps without asking.")
@click.option("--no-reproduce", is_flag=True, help="Do not run the verify steps before the fix.")
@click.option("--resume", is_flag=True, help="Continue the latest failed or interrupted run of this phase.")
@click.option("--break-lock", is_flag=True, help="Take over a workspace lock that names a run on another host.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines on stdout (for CI).")
@click.option("--no-report", is_flag=True, help="Do not write the report, changelog and timeline.")
@click.option("--commit", is_flag=True, help="Commit the report, run record, timestamp log and changed files.")
@click.option("--tag", is_flag=True, help="With --commit: tag the commit phase-<id>-resolved.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write reproduce/verify results as JUnit XML.")
@click.option("-v", "--verbose", is_flag=True, help="Show diffs of changed files.")
@click.pass_obj
def run(
    state: State,
    phases: tuple[str, ...],
    target: str | None,
    variables: tuple[str, ...],
    dry_run: bool,
    only: str | None,
    from_step: str | None,
    step: str | None,
    yes: bool,
    no_reproduce: bool,
    resume: bool,
    break_lock: bool,
    as_json: bool,
    no_report: bool,
    commit: bool,
    tag: bool,
    junit: Path | None,
    verbose: bool,
) -> None:
    """Run the runbook of PHASE (`1.5` or `phase-1.5`), or of several (`1.5 1.6`, `group 1`).

    Stages run in order: discovery -> reproduce (the verify steps, expected to fail before the fix)
    -> fix -> verify. Every step is recorded in reports/runs/<phase>/<run-id>.jsonl. Several phases
    run in plan order, each with its report and progress, and the first that fails stops the rest.
    """
    from ..api import phases_to_run
    from ..cli_output import QuietPrinter
    from ..console import ConsolePrinter, JsonPrinter
    from ..executor import RunOptions

    if tag and not commit:
        raise click.UsageError("--tag needs --commit")
    from ..text import use_colour

    RUNNING["phase"] = phases[0]
    printer: Any = JsonPrinter() if as_json else ConsolePrinter(verbose=verbose, colour=use_colour(sys.stdout))
    if state.quiet and not as_json:
        printer = QuietPrinter(printer)
    options = RunOptions(
        target=target,
        vars=parse_vars(variables),
        dry_run=dry_run,
        only=only,  # type: ignore[arg-type]
        from_step=from_step,
        step=step,
        assume_yes=yes,
        reproduce=False if no_reproduce else None,
        resume=resume,
        break_lock=break_lock,
    )
    workspace = state.workspace()
    chosen = phases_to_run(workspace, phases)
    common: dict[str, Any] = {
        "workspace": workspace,
        "options": options,
        "listeners": [printer],
        "warn": printer.warning,
        "confirm": lambda text: click.confirm(text, default=False),
        "report": not no_report,
        "commit": commit,
        "tag": tag,
        "junit": junit,
        "raise_on_failure": False,
    }
    if options.vars and len(chosen) == 1:
        # A misspelt --var would be silently ignored: refuse names the runbook does not declare.
        from ..checks import check_vars

        loaded = workspace.load_runbook(chosen[0])
        check_vars(loaded.runbook, options.vars, loaded.doc.display)
    if len(chosen) > 1:
        if resume or from_step or step:
            raise click.UsageError("--resume, --from and --step apply to one phase: name only one")
        _run_several(chosen, common, quiet=as_json or state.quiet)
    _run_one(chosen[0] if chosen else phases[0], common, quiet=as_json or state.quiet)


def _run_several(chosen: list[str], common: dict[str, Any], *, quiet: bool) -> NoReturn:
    """`runbook run 1.5 1.6` / `group 1`: in plan order, progress after each, stop at the first failure."""
    from ..api import run_phases
    from ..errors import EXIT_INTERRUPTED

    def progress_and_track(done: Any) -> None:
        click.echo(f"phase {done.result.phase}: {done.result.status}")
        following = chosen.index(done.result.phase) + 1 if done.result.phase in chosen else len(chosen)
        if following < len(chosen):
            RUNNING["phase"] = chosen[following]

    runs = run_phases(chosen, on_finished=progress_and_track, **common)
    for ran in runs:
        if not quiet:
            for path in ran.written:
                click.echo(f"wrote {path}")
    last = runs[-1]
    if last.result.status != "success" or len(runs) < len(chosen):
        skipped = [p for p in chosen if p not in {r.result.phase for r in runs}]
        if skipped:
            click.echo(f"  stopped after phase {last.result.phase}: not run: {', '.join(skipped)}", err=True)
        sys.exit(EXIT_INTERRUPTED if last.result.status == "interrupted" else 1)
    sys.exit(0)


def _run_one(phase: str, common: dict[str, Any], *, quiet: bool) -> NoReturn:
    from ..api import run_phase
    from ..errors import EXIT_INTERRUPTED

    RUNNING["phase"] = phase
    outputs = run_phase(phase, **common)
    if not quiet:
        for path in outputs.written:
            click.echo(f"wrote {path}")
        if outputs.commit:
            click.echo(f"committed {outputs.commit[:10]}")
    status = outputs.result.status
    if status != "success" and outputs.record_path is not None:
        again = f"`runbook run {outputs.result.phase} --resume`"
        click.echo(
            f"  hint: continue with {again} (completed steps are not run again)"
            if status == "interrupted"
            else f"  hint: fix what failed, then continue with {again} (completed steps are not run again)",
            err=True,
        )
    if status == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(0 if status == "success" else 1)


@click.command(context_settings=CONTEXT)
@click.argument("phase", shell_complete=_complete_phase)
@click.argument("action", type=click.Choice(["start", "complete", "fail"]))
@click.option("-m", "--message", required=True, help="What was done (the log line's description).")
@click.option("--cells", help="Cells fixed, comma separated (e.g. 109,130,171).")
@click.option(
    "--status",
    help="A success word for complete (SUCCESS, RESOLVED, COMPLETE, DONE, OK, PASS; the default SUCCESS) or a "
    "failure word for fail (FAIL, FAILED, ERROR); case, emoji and punctuation are ignored.",
)
@click.option("--at", "at", metavar="TIME", help="When it happened (ISO 8601, UTC unless it has an offset; default now).")
@click.option("--started", metavar="TIME", help="Also log the start of a complete/fail line at TIME (gives its duration).")
@click.pass_obj
def log(
    state: State,
    phase: str,
    action: str,
    message: str,
    cells: str | None,
    status: str | None,
    at: str | None,
    started: str | None,
) -> None:
    """Append a hand-written line to the timestamp log, for phases done without a runbook.

    Example: runbook log 1.3 complete -m "Embeddings fixed" --started 2025-11-14T03:00Z --at 2025-11-14T03:25Z
    """
    from ..api import log_phase

    cell_list = parse_cells(cells) if cells is not None else None
    entry = log_phase(
        state.workspace(), phase, action, message, cells=cell_list, status=status, at=at, started=started
    )
    click.echo(json.dumps(entry, ensure_ascii=False))
