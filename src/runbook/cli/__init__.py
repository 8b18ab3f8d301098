"""The `runbook` command line: click lives here and nowhere else.

Each command parses its options and calls the plain API (`runbook.api` and friends). `main()` is the
one place that turns a `RunbookError` into a message and an exit code: 0 success, 1 a step or
verification failed, 2 invalid input or usage, 130 interrupted. Heavy modules are imported inside the
commands so `runbook --help` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import __version__
from ..cli_output import QuietPrinter, annotation, annotation_text, error_event, wants_json
from ..errors import EXIT_INPUT, EXIT_INTERRUPTED, RunbookError

if TYPE_CHECKING:
    from ..docs import CommandDoc, ParamDoc

from .common import CONTEXT
from .completion import _complete_action, _complete_phase, _complete_step, _complete_target, _complete_var
from .emulator import emulator
from .fleet import fleet_group


class State:
    def __init__(self, workspace: Path | None, *, quiet: bool = False) -> None:
        self.workspace_path = workspace
        self.quiet = quiet

    def workspace(self) -> Any:
        from ..workspace import load_workspace

        return load_workspace(self.workspace_path)

    def say(self, text: str) -> None:
        """Informational output ("wrote ...", "1 runbook valid"): silent under -q."""
        if not self.quiet:
            click.echo(text)


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--var")
        key, value = item.split("=", 1)
        if not _NAME.fullmatch(key.strip()):
            raise click.BadParameter(
                f"{item!r}: {key.strip()!r} is not a variable name (letters, digits and _, not starting with a digit)",
                param_hint="--var",
            )
        parsed[key.strip()] = value
    return parsed


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A cell is named by its number (as people write them: 109) or its nbformat id.
_CELL = re.compile(r"[0-9]+|(?=[^,]*[A-Za-z_])[A-Za-z0-9_-]{1,64}")


def _parse_cells(text: str) -> list[Any]:
    cells: list[Any] = []
    for piece in text.split(","):
        item = piece.strip()
        if not _CELL.fullmatch(item):
            raise click.BadParameter(
                f"{item!r} in {text!r} is not a cell number or id; write numbers and ids separated by commas, "
                "e.g. --cells 109,130,cell_14_f21837aa",
                param_hint="--cells",
            )
        cells.append(int(item) if item.isdigit() else item)
    return cells


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="runbook")
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RUNBOOK_WORKSPACE",
    show_envvar=True,
    help="Workspace folder (default: the nearest folder above the current one with runbook.yaml).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only problems, failures and the final result.")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, quiet: bool) -> None:
    """Declarative, recorded incident runbooks for notebooks and Azure AI gateways.

    A runbook (runbooks/phase-1.5.yaml) lists discovery, fix and verify steps. `runbook run`
    executes them (reproducing the fault first), timestamps every step in a crash-safe run record,
    appends to the timestamp log and writes the resolution report.

    \b
    Typical loop:
      runbook validate              check every runbook (file:line:col errors)
      runbook run phase-1.5         discovery -> reproduce -> fix -> verify -> report
      runbook status                progress of every phase group
      runbook checkpoint            a status update with what changed since the last one
      runbook docs build            reports, changelog, timeline and progress as a site

    Exit codes: 0 success, 1 a step or verification failed, 2 invalid input, 130 interrupted.
    Colour follows NO_COLOR / FORCE_COLOR / CLICOLOR_FORCE; shell completion: docs/guide/cli.md.
    """
    ctx.obj = State(workspace, quiet=quiet)


@cli.command(context_settings=CONTEXT)
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
    from ..console import ConsolePrinter, JsonPrinter
    from ..executor import RunOptions

    if tag and not commit:
        raise click.UsageError("--tag needs --commit")
    from ..text import use_colour

    _RUNNING["phase"] = phases[0]
    printer: Any = JsonPrinter() if as_json else ConsolePrinter(verbose=verbose, colour=use_colour(sys.stdout))
    if state.quiet and not as_json:
        printer = QuietPrinter(printer)
    options = RunOptions(
        target=target,
        vars=_parse_vars(variables),
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

    def progress_and_track(done: Any) -> None:
        click.echo(f"phase {done.result.phase}: {done.result.status}")
        following = chosen.index(done.result.phase) + 1 if done.result.phase in chosen else len(chosen)
        if following < len(chosen):
            _RUNNING["phase"] = chosen[following]

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

    _RUNNING["phase"] = phase
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


@cli.command(context_settings=CONTEXT)
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
    """
    from ..api import validate as validate_runbooks
    from ..errors import ValidationFailed
    from ..schemas import stale_schemas

    try:
        workspace = state.workspace()
    except RunbookError:
        if not paths:
            raise
        workspace = None
    count, problems = validate_runbooks(paths, workspace=workspace)
    warnings = stale_schemas(workspace.root) if workspace is not None else []
    if fmt == "github":
        for warning in warnings:
            click.echo(f"::warning::{annotation_text(warning)}")
        for problem in problems:
            click.echo(annotation(problem))
    elif not as_json:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
    if problems:
        raise ValidationFailed(problems)
    if as_json:
        click.echo(json.dumps({"event": "validated", "files": count, "problems": [], "warnings": warnings}, indent=2))
    else:
        state.say(f"{count} runbook{'s' if count != 1 else ''} valid")


@cli.command(context_settings=CONTEXT)
@click.option(
    "--kind",
    default="runbook",
    show_default=True,
    shell_complete=lambda _c, _p, incomplete: [k for k in ("runbook", "config", "estate", "fleet") if k.startswith(incomplete)],
    help="runbook (runbooks/*.yaml), config (runbook.yaml), estate (emulator estate files), fleet (when installed).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
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


@cli.command(context_settings=CONTEXT)
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


@cli.command(context_settings=CONTEXT)
@click.argument("phase", shell_complete=_complete_phase)
@click.argument("action", type=click.Choice(["start", "complete", "fail"]))
@click.option("-m", "--message", required=True, help="What was done (the log line's description).")
@click.option("--cells", help="Cells fixed, comma separated (e.g. 109,130,171).")
@click.option("--status", help="Status for complete/fail lines (default SUCCESS for complete).")
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

    cell_list = _parse_cells(cells) if cells is not None else None
    entry = log_phase(
        state.workspace(), phase, action, message, cells=cell_list, status=status, at=at, started=started
    )
    click.echo(json.dumps(entry, ensure_ascii=False))


@cli.command(context_settings=CONTEXT)
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", help="Project name (default: the folder name).")
def init(directory: Path, project: str | None) -> None:
    """Create a workspace in DIRECTORY: runbook.yaml, runbooks/, templates/, reports/, mkdocs.yml.

    Refuses to overwrite any existing file.
    """
    from ..scaffold import init_workspace

    for path in init_workspace(directory, project=project):
        click.echo(f"created {path}")


@cli.command(context_settings=CONTEXT)
@click.argument("phase", shell_complete=_complete_phase)
@click.option("--title", help='Phase title, e.g. "Fix Backend Services" (default: its title in the plan).')
@click.option(
    "--from-scan",
    "from_scan",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A scan's JSON (reports/scan/X.json): verify steps run exactly the cells it found failing.",
)
@click.pass_obj
def new(state: State, phase: str, title: str | None, from_scan: Path | None) -> None:
    """Scaffold runbooks/phase-PHASE.yaml and add PHASE to the plan if it is missing."""
    from ..scaffold import new_phase

    path, added = new_phase(state.workspace(), phase, title, from_scan=from_scan)
    state.say(f"created {path}")
    if added:
        state.say(f"added phase {phase} to the plan in runbook.yaml")


@cli.command(context_settings=CONTEXT)
@click.argument("notebook", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-t", "--target", help="Target from runbook.yaml (default: emulator when the workspace has it).")
@click.option("--cells", metavar="RANGES", help="Only these cells, e.g. 3-20,25 (1-based numbers).")
@click.option("--section", metavar="HEADING", help='Only the cells under this heading, e.g. "1.5".')
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per cell.")
@click.option("--kernel", default="python3", show_default=True, help="Kernel name.")
@click.option("--json", "as_json", is_flag=True, help="Print the scan as JSON on stdout (progress goes to stderr).")
@click.pass_obj
def scan(
    state: State,
    notebook: Path,
    target: str | None,
    cells: str | None,
    section: str | None,
    timeout: float,
    kernel: str,
    as_json: bool,
) -> None:
    """Run NOTEBOOK's code cells in one kernel and triage the failures by cause.

    Writes reports/scan/<notebook>.md (the triage report with proposed phases) and .json (for
    `runbook new PHASE --from-scan`). Cells run in order, each under --timeout; the scan carries on
    after a failing cell.
    """
    from ..scan import progress_line, scan_notebook, write_scan

    workspace = state.workspace()
    chosen = target or ("emulator" if "emulator" in workspace.config.targets or not workspace.config.targets else None)
    result = scan_notebook(
        workspace,
        notebook if notebook.is_absolute() else Path.cwd() / notebook,
        target=chosen,
        cells=cells,
        section=section,
        timeout=timeout,
        kernel=kernel,
        progress=lambda cell, done, total: click.echo(progress_line(cell, done, total), err=as_json),
    )
    markdown, data = write_scan(result, workspace.reports_dir / "scan")
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    summary = result.summary()
    click.echo(f"{summary['scanned']} cells scanned, {summary['failing']} failing")
    for phase in result.phases:
        click.echo(f"  proposed: {phase['title']} - cells {', '.join(str(n) for n in phase['cells'])}")
    click.echo(f"wrote {markdown}\nwrote {data}")


cli.add_command(emulator)


# -- commands: reports, changelog, timeline (anchor: keep this line)


@cli.command(context_settings=CONTEXT)
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


@cli.command(context_settings=CONTEXT)
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


@cli.command(context_settings=CONTEXT)
@click.pass_obj
def timeline(state: State) -> None:
    """(Re)write TIMELINE.md: every phase's start, end and duration (UTC), from the timestamp log."""
    from ..reports import write_timeline

    state.say(f"wrote {write_timeline(state.workspace())}")


# -- commands: status and docs (anchor: keep this line)


@cli.command(context_settings=CONTEXT)
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


@cli.command(context_settings=CONTEXT)
@click.argument("phase", required=False, shell_complete=_complete_phase)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the same numbers as the text).")
@click.pass_obj
def status(state: State, phase: str | None, as_json: bool) -> None:
    """Show the progress of every phase group, or one PHASE with its runs.

    Progress comes from the timestamp log: "Phase 1 Progress: 62.5% (5/8 subphases complete)".
    Unreadable timestamp-log lines are skipped with a warning naming file:line (on stderr).
    """
    from .. import status as screens
    from ..text import use_colour

    workspace = state.workspace()
    view = screens.phase_status(workspace, phase) if phase else screens.workspace_status(workspace)
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


@cli.group(context_settings=CONTEXT)
def docs() -> None:
    """Generate the documentation site: progress, reports, runs, changelog, timeline, reference."""


@docs.command("build", context_settings=CONTEXT)
@click.option("--site-dir", type=click.Path(file_okay=False, path_type=Path), help="Where to build the site (default: site/).")
@click.pass_obj
def docs_build(state: State, site_dir: Path | None) -> None:
    """Write the generated pages into docs/, then run `mkdocs build --strict`.

    Fails (exit 1) with mkdocs's warnings when the strict build has any.
    """
    from ..docs import build_site, generate_docs

    workspace = state.workspace()
    pages = generate_docs(workspace, commands=command_reference())
    state.say(f"generated {len(pages)} pages in {workspace.config.paths.docs}/")
    built = build_site(workspace, site_dir)
    state.say(f"built the site in {built}")


@docs.command("serve", context_settings=CONTEXT)
@click.option("--port", type=int, default=8000, show_default=True, help="Port on 127.0.0.1.")
@click.pass_obj
def docs_serve(state: State, port: int) -> None:
    """Write the generated pages, then preview the site with `mkdocs serve` on 127.0.0.1."""
    from ..docs import generate_docs, serve_site

    workspace = state.workspace()
    generate_docs(workspace, commands=command_reference())
    serve_site(workspace, port=port)


# -- commands: fleet (in runbook/cli/fleet.py; the core is runbook.fleet)

cli.add_command(fleet_group)


def command_reference() -> list[CommandDoc]:
    """Every command with its usage, help and parameters, as plain data for the generated CLI reference.

    `runbook docs` hands this to the docs API, so the docs never import the CLI.
    """
    import inspect

    commands: list[CommandDoc] = []

    def walk(command: click.Command, parent: click.Context | None, path: list[str]) -> None:
        ctx = click.Context(command, info_name=path[-1], parent=parent)
        params: list[ParamDoc] = []
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and "--help" in param.opts:
                continue
            option = param if isinstance(param, click.Option) else None
            default = param.to_info_dict().get("default")
            if option is not None and option.is_flag and not default:
                default = None
            params.append(
                {
                    "kind": "option" if option else "argument",
                    "name": param.name,
                    "opts": [*param.opts, *param.secondary_opts],
                    "metavar": None if option and option.is_flag else param.make_metavar(ctx),
                    "type": param.type.name,
                    "choices": list(getattr(param.type, "choices", []) or []),
                    "required": param.required,
                    "multiple": param.multiple,
                    "is_flag": bool(option and option.is_flag),
                    "default": None if callable(default) else default,
                    "help": (option.help if option else None) or "",
                }
            )
        commands.append(
            {
                "name": " ".join(path),
                "usage": " ".join([*path, *command.collect_usage_pieces(ctx)]),
                "help": inspect.cleandoc(command.help or ""),
                "short_help": command.get_short_help_str(limit=200),
                "params": params,
                "subcommands": sorted(command.list_commands(ctx)) if isinstance(command, click.Group) else [],
            }
        )
        if isinstance(command, click.Group):
            for name in sorted(command.list_commands(ctx)):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, ctx, [*path, name])

    walk(cli, None, ["runbook"])
    return commands


def _fail(error: RunbookError, *, as_json: bool = False) -> NoReturn:
    from ..errors import ValidationFailed

    if as_json:
        # The JSON stream stays parseable: the error is one more JSON line on stdout.
        click.echo(error_event(error.message, error.exit_code, hint=error.hint, error=error))
    else:
        click.echo(str(error) if isinstance(error, ValidationFailed) else f"error: {error}", err=True)
    sys.exit(error.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the one place that maps errors to exit codes (and, under --json,
    to JSON `error` events on stdout)."""
    import signal

    from .. import _interrupted_while_starting

    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, Ctrl-C is KeyboardInterrupt
    as_json = wants_json(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="runbook", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(error_event("aborted", EXIT_INTERRUPTED) if as_json else "aborted", err=not as_json)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        code = EXIT_INPUT if exc.exit_code == 2 else exc.exit_code
        if as_json:
            click.echo(error_event(exc.format_message(), code))
        else:
            exc.show()
        sys.exit(code)
    except KeyboardInterrupt:
        click.echo(error_event("interrupted", EXIT_INTERRUPTED) if as_json else "interrupted", err=not as_json)
        sys.exit(EXIT_INTERRUPTED)
    except RunbookError as exc:
        _fail(exc, as_json=as_json)
    except OSError as exc:
        from ..errors import STORAGE_ERRNOS, storage_error

        if exc.errno not in STORAGE_ERRNOS:
            _internal_error(exc, as_json=as_json)
        _fail(storage_error(exc, resume=_resume_command()), as_json=as_json)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug of ours: say so in one line; RUNBOOK_DEBUG=1 shows the traceback
        _internal_error(exc, as_json=as_json)
    sys.exit(0)


def _internal_error(exc: Exception, *, as_json: bool = False) -> NoReturn:
    import os

    if os.environ.get("RUNBOOK_DEBUG"):
        raise exc
    hint = "this is a bug in runbook; rerun with RUNBOOK_DEBUG=1 and report the traceback"
    if as_json:
        click.echo(error_event(f"internal error: {type(exc).__name__}: {exc}", 1, hint=hint))
    else:
        click.echo(f"internal error: {type(exc).__name__}: {exc}\n  hint: {hint}", err=True)
    sys.exit(1)


_RUNNING: dict[str, str] = {}  # the phase of the `run` command in progress, for the resume hint


def _resume_command() -> str | None:
    """`runbook run PHASE --resume` when the failed command was a run of PHASE."""
    phase = _RUNNING.get("phase")
    return f"runbook run {phase} --resume" if phase else None


if __name__ == "__main__":  # pragma: no cover
    main()
