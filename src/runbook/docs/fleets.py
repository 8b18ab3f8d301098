"""The site's Fleets section: every fleet run of the workspace, one page each, from the fleet records.

A fleet whose file sits in the workspace (its `reports:` is the workspace's reports folder, the
default) writes its records to `reports/fleet/<phase>/<fleet-run-id>.jsonl`; `runbook docs build`
turns them into `docs/fleets/index.md` (one row per fleet run, newest first) and
`docs/fleets/<phase>/<fleet-run-id>.md`: the fleet report's per-member table and SVG chart
(`runbook.fleet.report`, the same view `runbook fleet status` prints), inline. Member run records
live in the members' own workspaces, outside the site, so a page names each member's run id
instead of linking it. The section is in the nav only when there is a fleet run.
"""

from __future__ import annotations

from pathlib import Path

from ..workspace import Workspace
from .chart import chart_block
from .layout import FLEETS_DIR, FLEETS_PAGE, GENERATED_NOTE, WIDE_PAGE, fleet_page_path
from .markdown import md_text, table


def fleet_pages(workspace: Workspace) -> dict[str, str]:
    """The Fleets pages (relative path under docs/ -> markdown); empty when the workspace has no fleet run."""
    from ..fleet.record import FLEET_DIR, read_fleet_record
    from ..fleet.report import fleet_view, render_markdown, render_svg

    records = sorted((workspace.reports_dir / FLEET_DIR).glob("*/*.jsonl"), key=lambda p: (p.name, p.parent.name), reverse=True)
    if not records:
        return {}
    pages: dict[str, str] = {}
    rows = []
    for path in records:
        view = fleet_view(read_fleet_record(path))
        page = fleet_page_path(view.phase, view.fleet_run_id)
        chart = chart_block(render_svg(view).replace("<svg ", '<svg class="rb-fleet-chart" ', 1))
        text = render_markdown(view, Path(page).parent, chart, links=False, cell=_cell)
        pages[page] = WIDE_PAGE + text
        totals = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in view.totals.items() if name != "members" and count)
        rows.append([
            f"[{md_text(view.fleet_run_id, table=True)}]({Path(page).relative_to(FLEETS_DIR).as_posix()})",
            md_text(view.fleet, table=True),
            md_text(view.phase, table=True),
            md_text(view.started_at or "-", table=True),
            f"**{view.status}**",
            str(view.totals["members"]),
            md_text(totals or "-", table=True),
        ])
    pages[FLEETS_PAGE] = (
        GENERATED_NOTE
        + "# Fleets\n\n"
        + "Fleet runs of this workspace, newest first: one phase rolled across many deployments with "
        + "`runbook fleet run` (see the Fleets guide). Each page is the fleet report of one run.\n\n"
        + table(["fleet run", "fleet", "phase", "started", "status", "members", "outcomes"], rows)
    )
    return pages


def _cell(text: str) -> str:
    return md_text(text, table=True)
