"""The timeline chart: runs of phases over time, paired from the timestamp log, as a mermaid gantt."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ..record import LogLine


@dataclass(frozen=True)
class RunSpan:
    """One run of a phase on the timeline: when it started and ended, and how it ended."""

    phase: str
    start: datetime
    end: datetime | None
    outcome: Literal["resolved", "failed", "in progress", "unfinished", "logged"]

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
        outcome: Literal["resolved", "failed"] = "resolved" if line.succeeded else "failed"
        start_line = open_starts.pop(line.phase, None)
        if start_line is not None:
            spans.append(RunSpan(line.phase, start_line.timestamp, line.timestamp, outcome))
            continue
        duration = line.extra.get("duration_s")
        if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 0:
            spans.append(RunSpan(line.phase, line.timestamp - timedelta(seconds=duration), line.timestamp, outcome))
        else:
            spans.append(
                RunSpan(line.phase, line.timestamp, line.timestamp, "logged" if outcome == "resolved" else "failed")
            )
    spans.extend(RunSpan(phase, line.timestamp, None, "in progress") for phase, line in open_starts.items())
    return sorted(spans, key=lambda span: (span.start, span.phase))


def gantt(spans: list[RunSpan], titles: dict[str, str]) -> str:
    """A mermaid gantt (rendered by mkdocs-material through the superfences `mermaid` fence)."""
    out = [
        "```mermaid",
        "gantt",
        "    title Phase runs (UTC)",
        "    dateFormat YYYY-MM-DD HH:mm:ss",
        "    axisFormat %m-%d %H:%M",
        "    todayMarker off",
    ]
    by_group: dict[str, list[RunSpan]] = {}
    for span in spans:
        by_group.setdefault(span.phase.split(".")[0], []).append(span)
    for group, items in by_group.items():
        out.append(f"    section Phase {group}")
        for span in items:
            name = _gantt_text(f"{span.phase} {titles.get(span.phase, '')}".strip())
            start = span.start.strftime("%Y-%m-%d %H:%M:%S")
            end = span.end or span.start + timedelta(minutes=1)
            if span.end is None:
                tags = "active, "
            elif span.outcome == "failed":
                tags = "crit, "
            else:
                tags = "done, "
            if span.end is not None and span.end == span.start:
                out.append(f"    {name} : milestone, {tags}{start}, 0d")
            else:
                out.append(f"    {name} : {tags}{start}, {end.strftime('%Y-%m-%d %H:%M:%S')}")
    out.append("```")
    return "\n".join(out) + "\n"


def _gantt_text(text: str) -> str:
    return re.sub(r"[:;#]", " ", text).strip() or "phase"
