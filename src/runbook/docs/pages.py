"""The generated pages about the work: home (progress), phases, run histories, changelog and timeline.

Progress numbers come from `progress.compute_progress` and run summaries from `status.phase_runs`,
so a page says what `runbook status` says; times and durations are written by `runbook.text`, the
same text as the reports and the status screen.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from ..progress import GroupProgress, PhaseProgress, shown_notes
from ..record import LogLine, read_record, record_paths
from ..status import format_cells, last_run, phase_runs, state_text
from ..text import code, duration_text, utc_short
from ..workspace import Workspace
from .chart import burnup_chart, chart_block, durations_chart, run_spans, timeline_chart
from .layout import (
    CHANGELOG_PAGE,
    GENERATED_NOTE,
    HOME_PAGE,
    STATUS_DIR,
    TIMELINE_PAGE,
    WIDE_PAGE,
    phase_page_path,
    run_page_path,
    runs_page_path,
)
from .links import LinkMap
from .markdown import md_text, table


def state_badge(phase: PhaseProgress) -> str:
    return f'<span class="rb-state rb-state--{phase.state}">{state_text(phase)}</span>'


def progress_html(group: GroupProgress) -> str:
    """A visual bar labelled with the same text as `runbook status`: `62.5% (5/8 subphases complete)`."""
    label = f"{group.percent_text}% ({group.resolved}/{group.total} subphases complete)"
    return (
        f'<div class="rb-progress" role="progressbar" aria-label="Phase {group.group} progress" '
        f'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{group.percent_text}">\n'
        f'<div class="rb-progress__fill" style="width: {group.percent_text}%"></div>\n'
        f'<span class="rb-progress__label">{label}</span>\n'
        "</div>\n"
    )


def _relative_to_root(text: str, workspace: Workspace) -> str:
    """Warnings name files by absolute path; pages name them from the workspace root."""
    return text.replace(str(workspace.root) + os.sep, "")


def home_page(
    workspace: Workspace, groups: list[GroupProgress], warnings: list[str], lines: list[LogLine] | None = None
) -> str:
    """Each phase group's progress bar and its table of phases, linking to reports and runs."""
    config = workspace.config
    lines = lines or []
    out = [WIDE_PAGE, f"# {md_text(config.project)}\n"]
    if config.description:
        out.append(f"{md_text(config.description.strip())}\n")
    out.append(
        "Progress of every phase group, from the timestamp log "
        f"({code(_log_display(workspace))}). `runbook status` shows the same numbers.\n"
    )
    if warnings:
        out.append('!!! warning "Timestamp-log lines skipped"\n')
        out.extend(f"    - {md_text(_relative_to_root(warning, workspace))}\n" for warning in warnings)
        out.append("")
    records = {phase.id: len(record_paths(workspace.reports_dir, phase.id)) for group in groups for phase in group.phases}
    for group in groups:
        title = f" - {md_text(group.title)}" if group.title else ""
        out.append(f"## Phase {group.group}{title}\n")
        out.append(progress_html(group))
        out.append(f"**{group.line}**\n")
        if any(line.action != "start" for line in lines if line.phase in {p.id for p in group.phases}):
            out.append(chart_block(burnup_chart(lines, [p.id for p in group.phases], group.group)))
        rows = []
        for phase in group.phases:
            report = f"[report]({phase_page_path(phase.id)})" if phase.report else "-"
            runs = f"[{runs_text(phase, records.get(phase.id, 0))}]({runs_page_path(phase.id)})"
            rows.append(
                [
                    phase.id,
                    f"[{md_text(phase.title, table=True)}]({phase_page_path(phase.id)})",
                    state_badge(phase),
                    utc_short(last_run(phase)),
                    duration_text(phase.duration_s),
                    md_text(format_cells(phase.cells_fixed), table=True),
                    report,
                    runs,
                ]
            )
        out.append(
            table(["Phase", "Title", "State", "Last run (UTC)", "Duration", "Cells fixed", "Report", "Runs"], rows)
        )
    if not groups:
        out.append("No phases yet: add a plan to `runbook.yaml`, or a runbook under `runbooks/`.\n")
    checkpoints = sorted((workspace.reports_dir / STATUS_DIR).glob("*.md"), reverse=True)
    if checkpoints:
        out.append("## Status checkpoints\n")
        out.append("Written by `runbook checkpoint`, newest first:\n")
        out.extend(f"- [{path.stem}]({STATUS_DIR}/{path.name})" for path in checkpoints[:10])
        out.append("")
    return "\n".join(out)


def _log_display(workspace: Workspace) -> str:
    return _relative_to_root(str(workspace.timestamp_log), workspace)


def phase_page(workspace: Workspace, phase: PhaseProgress, links: LinkMap) -> str:
    """The phase's resolution report with links fixed, or a stub saying how to produce one."""
    page = phase_page_path(phase.id)
    footer = (
        f"\n---\n\n[Run history of phase {phase.id}](../{runs_page_path(phase.id)}) · "
        f"[Progress of all phases](../{HOME_PAGE})\n"
    )
    footer = logged_block(phase) + footer
    report = workspace.reports_dir / f"phase-{phase.id}.md"
    if phase.report and report.is_file():
        text = links.rewrite(report.read_text(encoding="utf-8"), report, page)
        return GENERATED_NOTE + text.rstrip("\n") + "\n" + footer
    if phase.has_runbook:
        how = f"`runbook run phase-{phase.id}` runs its runbook and writes the report to `reports/phase-{phase.id}.md`."
    else:
        how = (
            f"Create its runbook with `runbook new {phase.id}` and run it with `runbook run phase-{phase.id}`, "
            f"or write `reports/phase-{phase.id}.md` by hand and log it with "
            f'`runbook log {phase.id} complete -m "..."`.'
        )
    facts = [
        ["State", state_badge(phase)],
        ["Last run (UTC)", utc_short(last_run(phase))],
        ["Duration", duration_text(phase.duration_s)],
        ["Cells fixed", md_text(format_cells(phase.cells_fixed), table=True)],
    ]
    return (
        f"{GENERATED_NOTE}\n# Phase {phase.id} - {md_text(phase.title)}\n\n"
        f'!!! note "No resolution report yet"\n    {how}\n\n' + table(["", ""], facts) + footer
    )


def logged_block(phase: PhaseProgress) -> str:
    """The phase's latest timestamp-log line as people wrote it: message, status word and their own keys."""
    if phase.finished_at is None and not phase.notes:
        return ""
    rows = [["Logged (UTC)", utc_short(phase.finished_at)]]
    if phase.description:
        rows.append(["Message", md_text(phase.description, table=True)])
    if phase.status_word:
        rows.append(["Status as written", md_text(phase.status_word, table=True) + f" (read as {state_text(phase)})"])
    rows.extend([md_text(_key_text(key), table=True), md_text(_value_text(value), table=True)] for key, value in phase.notes.items())
    return "\n## From the timestamp log\n\n" + table(["", ""], rows)


def _key_text(key: str) -> str:
    """`servers_verified` -> `Servers verified`."""
    text = key.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def _value_text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def runs_text(phase: PhaseProgress, records: int) -> str:
    """`2 runs` — with how many of them were logged by hand (no run record), so every page agrees."""
    text = f"{phase.runs} run{'s' if phase.runs != 1 else ''}"
    by_hand = max(phase.runs - records, 0)
    if by_hand and by_hand == phase.runs:
        return f"{text} (logged by hand)"
    if by_hand:
        return f"{text} ({by_hand} logged by hand)"
    return text


def runs_page(workspace: Workspace, phase: PhaseProgress, log: list[LogLine]) -> str:
    """A phase's run history (its run records) and its timestamp-log lines."""
    runs, _warnings = phase_runs(workspace, phase.id)
    out = [WIDE_PAGE, f"# Runs of phase {phase.id} - {md_text(phase.title)}\n"]
    out.append(
        f"State: {state_badge(phase)} · [Report](../{phase_page_path(phase.id)}) · "
        f"[Progress of all phases](../{HOME_PAGE})\n"
    )
    out.append("## Runs\n")
    if runs:
        header = ["Run", "Target", "Status", "Started (UTC)", "Duration", "Steps"]
        rows = [
            [
                f"[{code(run.run_id)}]({phase.id}/{run.run_id}.md)"
                if (workspace.reports_dir / "runs" / phase.id / f"{run.run_id}.md").is_file()
                else code(run.run_id),
                md_text(run.target or "-", table=True),
                f'<span class="rb-run rb-run--{run.status}">{run.status}</span>'
                + (f" at {code(run.failed_step)}" if run.failed_step else ""),
                utc_short(run.started_at),
                duration_text(run.duration_s),
                step_counts(run.steps),
            ]
            for run in reversed(runs)
        ]
        out.append(
            f"{runs_text(phase, len(runs))}; {len(runs)} run record{'s' if len(runs) != 1 else ''} "
            f"under `reports/runs/{phase.id}/`, newest first.\n"
        )
        out.append(table(header, rows))
        out.append(step_charts(workspace, phase.id))
    elif phase.runs:
        out.append(
            f"{runs_text(phase, 0).capitalize()}: done without `runbook run`, so there is no run record; "
            "the timestamp-log lines below are the whole history.\n"
        )
    else:
        out.append(
            f"No runs yet. `runbook run phase-{phase.id}` records every step in "
            f"`reports/runs/{phase.id}/<run-id>.jsonl`.\n"
        )
    out.append("## Timestamp log\n")
    if log:
        rows = [
            [
                utc_short(line.timestamp),
                line.action,
                md_text(line.status or "-", table=True),
                md_text(line.description or "-", table=True),
                md_text(format_cells(line.cells_fixed), table=True),
                md_text("; ".join(f"{_key_text(k)}: {_value_text(v)}" for k, v in shown_notes(line).items()) or "-", table=True),
            ]
            for line in sorted(log, key=lambda item: (item.timestamp, item.line))
        ]
        out.append(table(["Time (UTC)", "Action", "Status", "Description", "Cells fixed", "Notes"], rows))
    else:
        out.append("No lines for this phase in the timestamp log.\n")
    return "\n".join(out)


def run_page(phase: PhaseProgress, report: Path, links: LinkMap) -> str:
    """One run's own report (kept beside its record), linking the record copied next to the page."""
    run_id = report.stem
    page = run_page_path(phase.id, run_id)
    head = (
        f"[Run history of phase {phase.id}](../../{runs_page_path(phase.id)}) · "
        f"[Run record]({run_id}.jsonl) (`reports/runs/{phase.id}/{run_id}.jsonl`) · "
        f"[Phase report](../../{phase_page_path(phase.id)})\n\n"
    )
    text = links.rewrite(report.read_text(encoding="utf-8"), report, page)
    title, _, rest = _with_title(text, f"Run {run_id}").partition("\n")
    return f"{GENERATED_NOTE}{title}\n\n{head}{rest.lstrip(chr(10))}"


def step_charts(workspace: Workspace, phase_id: str) -> str:
    """Step-duration bars of each run, newest first and open, older ones folded, each linking its record."""
    out = ["### Step durations\n"]
    paths = list(reversed(record_paths(workspace.reports_dir, phase_id)))
    for index, path in enumerate(paths):
        record = read_record(path)
        if path.with_suffix(".md").is_file():
            out.append(f"[Report of run {code(record.run_id)}]({phase_id}/{record.run_id}.md) · [record]({phase_id}/{record.run_id}.jsonl)\n")
        out.append(
            f'<details class="rb-run-chart"{" open" if index == 0 else ""}><summary>Run {record.run_id} '
            f"({record.status}) · record <code>{html.escape(path.relative_to(workspace.root).as_posix())}</code></summary>"
        )
        out.append(chart_block(durations_chart(record)).rstrip("\n") + "</details>\n")
    return "\n".join(out)


def step_counts(steps: dict[str, int]) -> str:
    """`10 ok · 4 changed · 0 failed` (skipped and others only when there are some)."""
    shown = [f"{steps.get(name, 0)} {name}" for name in ("ok", "changed", "failed", "error")]
    shown += [
        f"{count} {name}" for name, count in sorted(steps.items()) if name not in ("ok", "changed", "failed", "error") and count
    ]
    return " · ".join(shown)


def changelog_page(workspace: Workspace, links: LinkMap) -> str:
    source = workspace.root / "CHANGELOG.md"
    if source.is_file():
        return GENERATED_NOTE + _with_title(
            links.rewrite(source.read_text(encoding="utf-8"), source, CHANGELOG_PAGE), "Changelog"
        )
    return (
        f"{GENERATED_NOTE}\n# Changelog\n\n"
        '!!! info "No CHANGELOG.md yet"\n'
        "    `runbook run` writes `CHANGELOG.md` at the workspace root (Keep a Changelog format) when a "
        "phase is resolved, from the `report.changelog` lines of its runbook. Resolve a phase, then run "
        "`runbook docs build` again.\n"
    )


def timeline_page(workspace: Workspace, phases: list[PhaseProgress], lines: list[LogLine], links: LinkMap) -> str:
    """TIMELINE.md (or a placeholder) with an SVG timeline chart and a table of phase runs over time."""
    spans = run_spans(lines)
    titles = {phase.id: phase.title for phase in phases}
    source = workspace.root / "TIMELINE.md"
    chart = ["## Phase runs over time\n"]
    if spans:
        chart.append(chart_block(timeline_chart(spans, titles)))
    if spans and not source.is_file():  # TIMELINE.md has its own table of the same runs
        rows = [
            [
                span.phase,
                md_text(titles.get(span.phase, ""), table=True),
                utc_short(span.start),
                utc_short(span.end),
                duration_text(span.duration_s),
                span.outcome,
            ]
            for span in spans
        ]
        chart.append(table(["Phase", "Title", "Started (UTC)", "Ended (UTC)", "Duration", "Outcome"], rows))
    if not spans:
        chart.append("No phase has been started or completed yet; the chart fills in as the timestamp log grows.\n")
    chart_text = "\n".join(chart)
    if source.is_file():
        # The page draws the chart inline; TIMELINE.md's link to the same chart as a file is dropped.
        own = "".join(
            line for line in source.read_text(encoding="utf-8").splitlines(keepends=True)
            if not line.startswith("![Phase runs over time (UTC)](")
        )
        body = _with_title(links.rewrite(own, source, TIMELINE_PAGE), "Timeline")
        title, _, rest = body.partition("\n")
        return f"{WIDE_PAGE}{title}\n\n{chart_text}\n{rest.lstrip(chr(10))}"
    return (
        f"{WIDE_PAGE}\n# Timeline\n\n"
        '!!! info "No TIMELINE.md yet"\n'
        "    `runbook run` writes `TIMELINE.md` at the workspace root, the UTC timeline of every phase's "
        "steps, when a run finishes. The chart below comes from the timestamp log.\n\n" + chart_text
    )


def _with_title(text: str, title: str) -> str:
    """The text starting with its H1, adding `# title` when it has none."""
    stripped = text.lstrip("\n")
    return stripped if stripped.startswith("# ") else f"# {title}\n\n{stripped}"
