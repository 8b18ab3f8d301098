"""CHANGELOG.md in Keep a Changelog 1.1's shape, so `python-kacl verify` and the `keepachangelog`
parser read every entry: one version per resolved phase.

Why per phase, not per day: Keep a Changelog's headings are versions (`## [1.5.0] - 2025-11-14`)
with a link reference each; a resolved phase is the unit people release and tag
(`phase-1.5-resolved`), while a day is not a version at all (the validators rejected the day
headings). Phase `1.5` is version `1.5.0`, so versions sort like the plan; the date is the day the
phase was resolved; the link reference goes to the phase's report (else TIMELINE.md, where a
phase done by hand has its log lines). Entries are each runbook's `report.changelog` lines, or its changed fix steps, or the
logged message (without a `Phase 1.1 Complete - ` prefix), written once, not prefixed by the phase.

Kept as written: everything above `## [Unreleased]`, that section's hand-written entries, any
version that is not a phase of the workspace (a hand-kept history), and every link reference that is
not a phase version's (`[#42]: https://…`, listed after the versions' own). No
HTML markers: the validators read them as entries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_if_changed
from ..loader import LoadedRunbook
from ..progress import phase_states
from ..record import LogLine, RunRecord, read_log, read_record
from ..workspace import Workspace
from .authored import AuthoredText, authored_context
from .environment import CHANGELOG_TEMPLATE, render_template
from .paths import CHANGELOG_NAME, TIMELINE_NAME, relative_path, report_path
from .runbooks import PhaseRunbooks
from .timeline import own_words
from .views import changed_fix_titles, step_results

__all__ = [
    "CHANGELOG_HEAD",
    "build_changelog_context",
    "changelog_is_current",
    "phase_version",
    "render_changelog",
    "write_changelog",
]

# kacl's default check wants these two sentences word for word.
CHANGELOG_HEAD = """\
# Changelog

All notable changes to this project will be documented in this file.

The format is based on [Keep a Changelog](https://keepachangelog.com/en/1.0.0/), and this project adheres to [Semantic Versioning](https://semver.org/spec/v2.0.0.html).

Each version is a resolved phase (phase 1.5 is version 1.5.0), dated the day it was resolved and
linked to its report. `runbook changelog` regenerates the versions of phases; write by hand above
`## [Unreleased]` and in it, and keep older history in versions that are not phases.

"""
UNRELEASED = "## [Unreleased]"
_VERSION_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\]")
_LINK_REF = re.compile(r"^\[(?P<version>[^\]]+)\]:\s*\S")
_BOILERPLATE = re.compile(r"^phase\s+[\w.]+\s*(?:complete[d]?|resolved|done|fixed)?\s*[-:–—]\s*", re.IGNORECASE)


def phase_version(phase: str) -> str:
    """`1.5` -> `1.5.0`, `2` -> `2.0.0`, `1.5.1` -> `1.5.1` (non-numeric parts become a pre-release)."""
    parts = phase.split(".")
    numbers = [str(int(part)) for part in parts if part.isdigit()][:3]
    rest = [part for part in parts if not part.isdigit()] + [part for part in parts if part.isdigit()][3:]
    version = ".".join([*numbers, "0", "0", "0"][:3])
    return version + ("-" + ".".join(re.sub(r"[^0-9A-Za-z-]", "-", part) for part in rest) if rest else "")


@dataclass(frozen=True)
class _Resolution:
    phase: str
    line: LogLine


def _phase_sort_key(phase: str) -> list[int]:
    return [int(x) if x.isdigit() else 0 for x in phase.split(".")]


def _resolutions(lines: Sequence[LogLine]) -> list[_Resolution]:
    """Phases resolved now, each with the line that resolved it (the first success after its last failure)."""
    current: dict[str, LogLine | None] = {}
    for line in sorted(lines, key=lambda item: (item.timestamp, item.line)):
        if line.action == "start":
            current.setdefault(line.phase, None)
        elif line.succeeded:
            if current.get(line.phase) is None:
                current[line.phase] = line
        else:
            current[line.phase] = None
    states = phase_states(list(lines))
    return [
        _Resolution(phase, line)
        for phase, line in current.items()
        if line is not None and states.get(phase) is not None and states[phase].state == "resolved"
    ]


def _resolving_record(ws: Workspace, resolution: _Resolution) -> RunRecord | None:
    run_id = resolution.line.run_id
    if run_id and Path(run_id).name != run_id:  # a hand-edited run id is a file name, never a path
        return None
    path = ws.reports_dir / "runs" / resolution.phase / f"{run_id}.jsonl" if run_id else None
    return read_record(path) if path is not None and path.exists() else None


def _authored_lines(loaded: LoadedRunbook, record: RunRecord | None) -> dict[str, list[str]]:
    """The runbook's `report.changelog` lines, rendered with the resolving run's values (see `authored`)."""
    authored = loaded.runbook.report.changelog
    text = AuthoredText(loaded, authored_context(loaded, record, step_results(loaded, record) if record else []))
    sections: dict[str, list[str]] = {}
    for name, items in (("Added", authored.added), ("Changed", authored.changed), ("Fixed", authored.fixed)):
        if items:
            rendered = text.texts(items, ["report", "changelog", name.lower()])
            sections[name] = [" ".join(item.split()) for item in rendered]
    return sections


def _fix_titles(record: RunRecord | None, loaded: LoadedRunbook | None) -> list[str]:
    if record is None:
        return []
    if loaded is not None:
        return [v["title"] for v in step_results(loaded, record) if v["stage"] == "fix" and v["status"] == "changed"]
    return changed_fix_titles(record)


def _logged_words(line: LogLine, title: str) -> str:
    """The logged message without `Phase 1.5 - Title: ` or `Phase 1.1 Complete - `; `` when it says nothing."""
    text = _BOILERPLATE.sub("", own_words(line, title)).strip()
    return "" if text.lower() in ("", "resolved", "complete", "completed", "done", title.lower()) else text


def build_changelog_context(ws: Workspace, runbooks: PhaseRunbooks | None = None) -> dict[str, Any]:
    """versions[version, phase, title, date, link, sections[name, entries[text, markdown]]], newest first.

    `runbooks`: the runbooks already loaded (a run's own); any other resolved phase's is read once.
    """
    runbooks = runbooks or PhaseRunbooks(ws)
    lines, _warnings = read_log(ws.timestamp_log)
    versions: list[dict[str, Any]] = []
    for resolution in _resolutions(lines):
        phase = resolution.phase
        loaded = runbooks.get(phase)
        title = ws.phase_title(phase) if phase in ws.phases else (loaded.runbook.title if loaded else f"Phase {phase}")
        report = report_path(ws, phase)
        # A phase done by hand has no report: its version links to the timeline, where its log lines are.
        link = relative_path(ws, report) if report.exists() else TIMELINE_NAME
        lines_of = loaded.runbook.report.changelog if loaded is not None else None
        written = [*lines_of.added, *lines_of.changed, *lines_of.fixed] if lines_of is not None else []
        # The record is read only when it is needed: templated lines, or none written (the fix titles).
        needed = not written or any("{" in line for line in written)
        record = _resolving_record(ws, resolution) if needed else None
        sections = _authored_lines(loaded, record) if loaded is not None else {}
        if not sections:
            titles = _fix_titles(record, loaded)
            sections["Fixed"] = titles or [_logged_words(resolution.line, title) or f"{title} resolved"]
        versions.append(
            {
                "version": phase_version(phase),
                "phase": phase,
                "title": title,
                "date": resolution.line.timestamp.strftime("%Y-%m-%d"),
                "link": link,
                "sections": [
                    {"name": name, "entries": [{"text": item, "markdown": item} for item in sections[name]]}
                    for name in ("Added", "Changed", "Fixed")
                    if name in sections
                ],
            }
        )
    versions.sort(key=lambda v: _phase_sort_key(v["phase"]), reverse=True)
    return {"versions": versions}


@dataclass
class _Existing:
    head: str
    unreleased: str
    kept: list[tuple[str, str]]  # (version, its section text) of versions that are not phases
    links: dict[str, str]  # version -> its whole link-reference line


def _split_changelog(text: str, phase_versions: set[str]) -> _Existing:
    """An existing file's hand-written parts: head, [Unreleased] body, non-phase versions, their links."""
    lines = text.splitlines(keepends=True)
    head: list[str] = []
    unreleased: list[str] = []
    kept: list[tuple[str, list[str]]] = []
    links: dict[str, str] = {}
    current: list[str] = head
    for line in lines:
        link = _LINK_REF.match(line)
        if link:
            links[link.group("version")] = line.rstrip("\n")
            continue
        heading = _VERSION_HEADING.match(line)
        if heading:
            version = heading.group("version")
            if version.lower() == "unreleased":
                current = unreleased
                continue
            if version in phase_versions:
                current = []  # regenerated (or a phase no longer resolved): dropped
                continue
            kept.append((version, [line]))
            current = kept[-1][1]
            continue
        current.append(line)
    return _Existing(
        head="".join(head).rstrip("\n") + "\n\n" if "".join(head).strip() else CHANGELOG_HEAD,
        unreleased="".join(unreleased).strip("\n"),
        kept=[(version, "".join(body).strip("\n")) for version, body in kept],
        links=links,
    )


def render_changelog(ws: Workspace, existing: str | None = None, *, runbooks: PhaseRunbooks | None = None) -> str:
    """CHANGELOG.md: the kept head and [Unreleased], one version per resolved phase, kept history, links."""
    context = build_changelog_context(ws, runbooks)
    ours = {v["version"] for v in context["versions"]} | {phase_version(p) for p in ws.phase_ids()}
    parts = _split_changelog(existing, ours) if existing else _Existing(CHANGELOG_HEAD, "", [], {})
    generated = render_template(ws, CHANGELOG_TEMPLATE, context).strip("\n")
    out = parts.head.rstrip("\n") + "\n\n" + UNRELEASED + "\n"
    if parts.unreleased:
        out += "\n" + parts.unreleased + "\n"
    if generated:
        out += "\n" + generated + "\n"
    for _version, body in parts.kept:
        out += "\n" + body + "\n"
    refs = [parts.links.get("Unreleased") or "[Unreleased]: #unreleased"]
    refs += [f"[{v['version']}]: {v['link']}" for v in context["versions"]]
    refs += [parts.links[version] for version, _body in parts.kept if version in parts.links]
    # Every other link reference people wrote (`[#42]: https://…` used in an entry) is theirs: kept.
    ours_or_kept = {"unreleased", *(v.lower() for v in ours), *(version.lower() for version, _body in parts.kept)}
    refs += [line for label, line in parts.links.items() if label.lower() not in ours_or_kept]
    out += "\n" + "\n".join(refs) + "\n"
    return out


def changelog_is_current(ws: Workspace) -> bool:
    """Whether CHANGELOG.md is what `runbook changelog` would write now (False when it is missing)."""
    path = ws.root / CHANGELOG_NAME
    if not path.exists():
        return False
    existing = path.read_text(encoding="utf-8")
    return existing == render_changelog(ws, existing)


def write_changelog(ws: Workspace, *, runbooks: PhaseRunbooks | None = None) -> Path:
    """(Re)write CHANGELOG.md at the workspace root, keeping what people wrote (see the module doc)."""
    path = ws.root / CHANGELOG_NAME
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    write_if_changed(path, render_changelog(ws, existing, runbooks=runbooks))
    return path
