"""The site's charts from the log and the records: the timeline, the burn-up, per-run step durations.

Runs of phases are paired from the timestamp log (`run_spans`); `runbook.charts` draws them as
static SVG, which goes inline into the pages inside a `<div>` (raw HTML that Markdown leaves alone),
so the charts show from `file://` with no script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ..charts import Bar, Duration, Point, burnup_svg, durations_svg, timeline_svg
from ..progress import PhaseProgress, logged_duration, phase_states
from ..record import LogLine, RunRecord
from ..text import duration_text, utc_short


@dataclass(frozen=True)
class RunSpan:
    """One run of a phase on the timeline: when it started and ended, and how it ended."""

    phase: str
    start: datetime
    end: datetime | None
    outcome: Literal["resolved", "failed", "unknown", "in progress", "unfinished", "logged"]

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


def run_spans(lines: list[LogLine]) -> list[RunSpan]:
    """Pair each `start` with the terminal line that follows it, phase by phase, in time order."""
    spans: list[RunSpan] = []
    open_starts: dict[str, LogLine] = {}
    for line in sorted(lines, key=lambda item: (item.timestamp, item.line)):
        if line.action == "start":
            previous = open_starts.pop(line.phase, None)
            if previous is not None:
                spans.append(RunSpan(line.phase, previous.timestamp, None, "unfinished"))
            open_starts[line.phase] = line
            continue
        outcome: Literal["resolved", "failed", "unknown"] = (
            "resolved" if line.succeeded else "unknown" if line.outcome == "unknown" else "failed"
        )
        start_line = open_starts.pop(line.phase, None)
        if start_line is not None:
            spans.append(RunSpan(line.phase, start_line.timestamp, line.timestamp, outcome))
            continue
        duration = logged_duration(line)
        if duration:
            spans.append(RunSpan(line.phase, line.timestamp - timedelta(seconds=duration), line.timestamp, outcome))
        else:
            spans.append(
                RunSpan(line.phase, line.timestamp, line.timestamp, "logged" if outcome == "resolved" else outcome)
            )
    spans.extend(RunSpan(phase, line.timestamp, None, "in progress") for phase, line in open_starts.items())
    return sorted(spans, key=lambda span: (span.start, span.phase))


def timeline_chart(spans: list[RunSpan], titles: dict[str, str], *, now: datetime | None = None) -> str:
    """Per-phase bars coloured by outcome on a UTC axis that fits the span."""
    bars = [
        Bar(
            label=f"{span.phase} {titles.get(span.phase, '')}".strip(),
            start=span.start,
            end=span.end,
            outcome=span.outcome,
            detail=f"{utc_short(span.start)} to {utc_short(span.end)} ({duration_text(span.duration_s)})"
            if span.end
            else f"since {utc_short(span.start)}",
        )
        for span in spans
    ]
    return timeline_svg(bars, now=now)


def burnup(lines: list[LogLine], phase_ids: list[str]) -> list[Point]:
    """Resolved phases of `phase_ids` after each terminal line, replaying the log in time order."""
    ordered = sorted(lines, key=lambda item: (item.timestamp, item.line))
    points: list[Point] = []
    wanted = set(phase_ids)
    # One fold over the log, line by line (phase_states continues `states`), instead of folding the
    # whole prefix again at every terminal line: that was quadratic in the log's length (minutes
    # for the home page of a workspace with 10,000 runs).
    states: dict[str, PhaseProgress] = {}
    resolved: set[str] = set()
    for line in ordered:
        phase_states([line], states)
        if line.phase in wanted:
            if states[line.phase].state == "resolved":
                resolved.add(line.phase)
            else:
                resolved.discard(line.phase)
        if line.action == "start" or line.phase not in wanted:
            continue
        done = len(resolved)
        if not points or points[-1].done != done:
            points.append(Point(line.timestamp, done, len(phase_ids)))
    return points


def burnup_chart(lines: list[LogLine], phase_ids: list[str], group: str) -> str:
    return burnup_svg(burnup(lines, phase_ids), title=f"Phase {group}: subphases resolved over time (UTC)")


def step_durations(record: RunRecord) -> list[Duration]:
    """Each step's duration in record order, labelled `stage · step`."""
    return [
        Duration(
            label=f"{step.stage} · {step.step}",
            seconds=float(step.duration_s) if step.duration_s is not None else None,
            # A reproduce step fails on purpose: it shows the fault is there.
            status="fault reproduced" if step.stage == "reproduce" and step.status == "failed" else step.status,
        )
        for step in record.step_outcomes()
    ]


def durations_chart(record: RunRecord) -> str:
    return durations_svg(step_durations(record), title=f"Step durations of run {record.run_id}")


def chart_block(svg: str) -> str:
    """The SVG as a raw-HTML block of a Markdown page."""
    return f'<div class="rb-chart-box">{svg}</div>\n'
