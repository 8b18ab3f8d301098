"""Writes the generated site into docs/: every page, the stylesheet, copied report images, the nav.

`generate_docs(workspace, commands=...)` writes, as real files that go into git, the home page, one
page per phase and one run-history page per phase, the fleet runs (`fleets`), the changelog and timeline pages, the reference
pages and the stylesheet, then rewrites `nav:` in mkdocs.yml. Output is byte-identical when nothing
changed, and pages of phases no longer in the workspace are removed.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..atomic import write_if_changed
from ..errors import InputError
from ..progress import compute_progress
from ..record import LogLine, read_log
from ..workspace import Workspace
from .config_reference import config_reference
from .emoji import icon_emoji
from .fleets import fleet_pages
from .layout import (
    ACTIONS_PAGE,
    CHANGELOG_PAGE,
    CLI_PAGE,
    CONFIG_PAGE,
    FLEETS_DIR,
    GENERATED_NOTE,
    HOME_PAGE,
    PHASES_DIR,
    REFERENCE_DIR,
    REPORT_ASSETS_DIR,
    RUNS_DIR,
    SEARCH_SHIM,
    STATUS_DIR,
    STYLESHEET,
    TIMELINE_PAGE,
    phase_page_path,
    run_page_path,
    runs_page_path,
)
from .links import LinkMap
from .nav import site_nav, write_nav
from .pages import changelog_page, home_page, phase_page, run_page, runs_page, timeline_page
from .reference import CommandDoc, actions_reference, cli_reference

if typing.TYPE_CHECKING:
    from ..actions import ActionSpec


def stylesheet_text() -> str:
    """The site's stylesheet, shipped as the package resource `runbook/docs/assets/runbook.css`."""
    return resources.files("runbook.docs").joinpath(STYLESHEET).read_text(encoding="utf-8")


def search_shim_text() -> str:
    """The iframe-worker shim (vendored from its npm package) that lets search run from file://."""
    return resources.files("runbook.docs").joinpath(SEARCH_SHIM).read_text(encoding="utf-8")


def generate_docs(workspace: Workspace, *, commands: Sequence[CommandDoc]) -> list[Path]:
    """Write every generated page into the docs dir and the nav into mkdocs.yml; return the pages.

    `commands` is the command tree as plain data; the CLI passes `runbook.cli.command_reference()`
    (the docs never import the CLI). Pages that did not change are not rewritten.
    """
    docs_dir = workspace.docs_dir
    refresh_root_reports(workspace)
    lines, warnings = read_log(workspace.timestamp_log)
    groups = compute_progress(workspace, log=(lines, warnings))
    phases = [phase for group in groups for phase in group.phases]
    links = LinkMap(workspace)

    by_phase: dict[str, list[LogLine]] = {}
    for line in lines:
        by_phase.setdefault(line.phase, []).append(line)
    pages: dict[str, str] = {HOME_PAGE: home_page(workspace, groups, warnings, lines)}
    for phase in phases:
        pages[phase_page_path(phase.id)] = phase_page(workspace, phase, links)
        pages[runs_page_path(phase.id)] = runs_page(workspace, phase, by_phase.get(phase.id, []))
        for report in sorted((workspace.reports_dir / "runs" / phase.id).glob("*.md")):
            pages[run_page_path(phase.id, report.stem)] = run_page(phase, report, links)
            record = report.with_suffix(".jsonl")
            if record.is_file():
                links.assets[f"{RUNS_DIR}/{phase.id}/{record.name}"] = record
    for checkpoint in sorted((workspace.reports_dir / STATUS_DIR).glob("*.md")):
        relative = f"{STATUS_DIR}/{checkpoint.name}"
        pages[relative] = GENERATED_NOTE + links.rewrite(checkpoint.read_text(encoding="utf-8"), checkpoint, relative)
    pages.update(fleet_pages(workspace))
    pages[CHANGELOG_PAGE] = changelog_page(workspace, links)
    pages[TIMELINE_PAGE] = timeline_page(workspace, phases, lines, links)
    pages[ACTIONS_PAGE] = actions_reference(_action_specs())
    pages[CLI_PAGE] = cli_reference(commands)
    pages[CONFIG_PAGE] = config_reference()
    for relative, text in list(pages.items()):
        if not relative.startswith(REFERENCE_DIR + "/"):
            pages[relative] = icon_emoji(text)
    pages[STYLESHEET] = stylesheet_text()
    pages[SEARCH_SHIM] = search_shim_text()

    inside = docs_dir.resolve()
    for relative, text in pages.items():
        target = docs_dir / relative
        if not target.resolve().is_relative_to(inside):  # a page name made of logged text never leaves docs/
            raise InputError(f"page {relative!r} would be written outside {docs_dir}", hint="check the phase ids in the timestamp log")
        write_if_changed(target, text)
    for relative, source in links.assets.items():
        _copy_if_changed(source, docs_dir / relative)
    _remove_stale(docs_dir, PHASES_DIR, set(pages))
    _remove_stale(docs_dir, RUNS_DIR, set(pages))
    _remove_stale(docs_dir, STATUS_DIR, set(pages))
    _remove_stale(docs_dir, FLEETS_DIR, set(pages))
    _remove_stale(docs_dir, FLEETS_DIR, set(pages), pattern="*/*.md")
    _remove_stale(docs_dir, RUNS_DIR, set(pages) | set(links.assets), pattern="*/*")
    _remove_stale(docs_dir, REPORT_ASSETS_DIR, set(links.assets), pattern="**/*")
    write_nav(workspace, site_nav(docs_dir, phases))
    return [docs_dir / relative for relative in sorted(pages)]


def refresh_root_reports(workspace: Workspace) -> None:
    """Bring an existing CHANGELOG.md / TIMELINE.md up to date with the timestamp log first.

    Lines logged by hand since the last run would otherwise leave them behind the home page. A
    missing file is not created here: its page says how to create it.
    """
    from .. import reports

    if (workspace.root / "CHANGELOG.md").is_file():
        reports.write_changelog(workspace)
    if (workspace.root / "TIMELINE.md").is_file():
        reports.write_timeline(workspace)


def _action_specs() -> list[ActionSpec]:
    from .. import actions

    return list(actions.all_specs())


def _remove_stale(docs_dir: Path, folder: str, keep: set[str], *, pattern: str = "*.md") -> None:
    """Generated folders belong to the generator: drop pages of phases no longer in the workspace."""
    base = docs_dir / folder
    if not base.is_dir():
        return
    for path in sorted(base.glob(pattern)):
        if path.is_file() and path.relative_to(docs_dir).as_posix() not in keep:
            path.unlink()


def _copy_if_changed(source: Path, dest: Path) -> None:
    data = source.read_bytes()
    if dest.exists() and dest.read_bytes() == data:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
