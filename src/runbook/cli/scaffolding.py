"""`runbook init`, `runbook new` and `runbook scan`: create a workspace, scaffold a phase, triage a notebook."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import CONTEXT, State
from .completion import _complete_phase


@click.command(context_settings=CONTEXT)
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--project", help="Project name (default: the folder name).")
def init(directory: Path, project: str | None) -> None:
    """Create a workspace in DIRECTORY: runbook.yaml, runbooks/, templates/, reports/, mkdocs.yml.

    Refuses to overwrite any existing file.
    """
    from ..scaffold import init_workspace

    for path in init_workspace(directory, project=project):
        click.echo(f"created {path}")


@click.command(context_settings=CONTEXT)
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


@click.command(context_settings=CONTEXT)
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
