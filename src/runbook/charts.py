"""Charts as static SVG, drawn in Python: the phase timeline, the progress burn-up, step durations.

No JavaScript and no CDN: the SVG text goes inline into the site's pages (and into files next to
them), so a page opened from disk shows the chart. Inputs are plain data (`Bar`, `Point`,
`Duration`), so this module knows nothing about logs, records or pages. Labels are 12 px; an axis
picks a tick step that fits its span (1 second to 1 year), so no two tick labels read the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif\" font-size=\"12\""
COLOURS = {
    "resolved": "#2e7d32",
    "success": "#2e7d32",
    "ok": "#2e7d32",
    "changed": "#1565c0",
    "logged": "#1565c0",
    "failed": "#c62828",
    "in progress": "#ef6c00",
    "unfinished": "#757575",
    "unknown": "#6a1b9a",
    "skipped": "#9e9e9e",
    "fault reproduced": "#ef6c00",
}
WIDTH = 600  # fits Material's content column at 1280 px: labels keep their 12 px
RIGHT = 40  # room for the last tick label
ROW = 22
CHAR_PX = 6.8  # a 12 px sans-serif character, on average, for sizing the label column

# Tick steps from a second to a year; the smallest that gives at most MAX_TICKS ticks is used.
STEPS = [timedelta(seconds=n) for n in (1, 2, 5, 10, 15, 30)] + [
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)
] + [timedelta(hours=h) for h in (1, 2, 3, 6, 12)] + [timedelta(days=d) for d in (1, 2, 7, 14, 30, 91, 365)]
MAX_TICKS = 8
TICK_PX = 96  # room for the longest tick label (`11-14 04:00:05`, `2025-11-14`) and a gap


@dataclass(frozen=True)
class Bar:
    """One bar of the timeline: a label, when it started and ended (None: still going), its outcome."""

    label: str
    start: datetime
    end: datetime | None
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class Point:
    """A point of the burn-up: at `time`, `done` of `total` phases were resolved."""

    time: datetime
    done: int
    total: int


@dataclass(frozen=True)
class Duration:
    """One step of a run: its label, how long it took, and its status."""

    label: str
    seconds: float | None
    status: str


def colour(outcome: str) -> str:
    return COLOURS.get(outcome, "#757575")


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rb-chart" role="img" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" {FONT}>'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _label_width(labels: list[str], most: float = 200) -> float:
    return min(most, max((len(text) for text in labels), default=4) * CHAR_PX + 12)


def _clip(text: str, width: float) -> str:
    fits = max(int((width - 12) / CHAR_PX), 4)
    return text if len(text) <= fits else text[: fits - 1] + "…"


def _step(span: timedelta, most: int) -> timedelta:
    for step in STEPS:
        if span / step <= most:
            return step
    return STEPS[-1] * (int(span / STEPS[-1] / most) + 1)


def _floor(moment: datetime, step: timedelta) -> datetime:
    if step >= timedelta(days=1):
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    epoch = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = (moment - epoch).total_seconds()
    return epoch + timedelta(seconds=seconds - seconds % step.total_seconds())


def ticks(
    start: datetime, end: datetime, *, width: float = WIDTH
) -> tuple[datetime, datetime, list[tuple[datetime, str]]]:
    """The axis for [start, end]: its bounds (whole ticks around the span) and the labelled ticks.

    Labels are `HH:MM` within a day (the date on the first tick), `MM-DD HH:MM` across days,
    `MM-DD` for steps of a day or more, `YYYY-MM-DD` when the span crosses a year. At most one tick
    per TICK_PX of `width` (and MAX_TICKS), so labels never overlap.
    """
    if end <= start:
        end = start + timedelta(minutes=1)
    step = _step(end - start, max(2, min(MAX_TICKS, int(width // TICK_PX)) - 1))
    low = _floor(start, step)
    high = low
    marks: list[datetime] = []
    while high < end or not marks:
        marks.append(high)
        high += step
    marks.append(high)
    years = marks[0].year != marks[-1].year
    days = marks[0].date() != marks[-1].date()
    out: list[tuple[datetime, str]] = []
    for index, mark in enumerate(marks):
        if step >= timedelta(days=1):
            text = mark.strftime("%Y-%m-%d" if years else "%m-%d")
        elif step < timedelta(minutes=1):
            text = mark.strftime("%m-%d %H:%M:%S" if index == 0 else "%H:%M:%S")
        elif days or index == 0:
            text = mark.strftime("%m-%d %H:%M")
        else:
            text = mark.strftime("%H:%M")
        out.append((mark, text))
    return low, high, out


def _axis(low: datetime, high: datetime, marks: list[tuple[datetime, str]], x0: float, x1: float, top: float, bottom: float) -> list[str]:
    span = (high - low).total_seconds() or 1.0
    body = [f'<line x1="{x0:.1f}" y1="{bottom:.1f}" x2="{x1:.1f}" y2="{bottom:.1f}" stroke="#9e9e9e"/>']
    for mark, text in marks:
        x = x0 + (mark - low).total_seconds() / span * (x1 - x0)
        body.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#e0e0e0"/>')
        body.append(f'<text class="rb-tick" x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" fill="#616161">{escape(text)}</text>')
    return body


def timeline_svg(bars: list[Bar], *, title: str = "Phase runs (UTC)", now: datetime | None = None) -> str:
    """Horizontal bars on a time axis, one row per bar, coloured by outcome, with a legend."""
    if not bars:
        return _svg(WIDTH, 40, title, [f'<text x="8" y="24" fill="#616161">{escape("No runs yet.")}</text>'])
    now = now or datetime.now(UTC)
    ends = [bar.end or max(now, bar.start) for bar in bars]
    label_w = _label_width([bar.label for bar in bars])
    x0, x1 = label_w + 8, WIDTH - RIGHT
    low, high, marks = ticks(min(bar.start for bar in bars), max(ends), width=x1 - x0)
    top = 8
    bottom = top + ROW * len(bars) + 4
    span = (high - low).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return x0 + (moment - low).total_seconds() / span * (x1 - x0)

    body = _axis(low, high, marks, x0, x1, top, bottom)
    for row, (bar, end) in enumerate(zip(bars, ends, strict=True)):
        y = top + row * ROW
        tip = escape(f"{bar.label}: {bar.outcome}" + (f", {bar.detail}" if bar.detail else ""))
        body.append(f'<text class="rb-label" x="{label_w:.1f}" y="{y + 15:.1f}" text-anchor="end" fill="currentColor">{escape(_clip(bar.label, label_w))}<title>{escape(bar.label)}</title></text>')
        left, right = x(bar.start), x(end)
        fill = colour(bar.outcome)
        if right - left < 1.5 and bar.end is not None:
            # A line logged without a start: a diamond at its time.
            cx, cy = left, y + 11
            body.append(
                f'<path class="rb-bar rb-bar--{escape(bar.outcome.replace(" ", "-"))}" d="M{cx:.1f} {cy - 7:.1f} L{cx + 7:.1f} {cy:.1f} L{cx:.1f} {cy + 7:.1f} L{cx - 7:.1f} {cy:.1f} Z" fill="{fill}"><title>{tip}</title></path>'
            )
            continue
        dash = ' stroke-dasharray="4 3" stroke="#424242" fill-opacity="0.6"' if bar.end is None else ""
        body.append(
            f'<rect class="rb-bar rb-bar--{escape(bar.outcome.replace(" ", "-"))}" x="{left:.1f}" y="{y + 4:.1f}" width="{max(right - left, 2):.1f}" height="{ROW - 8}" rx="2" fill="{fill}"{dash}><title>{tip}</title></rect>'
        )
    legend_y = bottom + 36
    body.extend(_legend(sorted({bar.outcome for bar in bars}), legend_y))
    return _svg(WIDTH, legend_y + 10, title, body)


def _legend(outcomes: list[str], y: float) -> list[str]:
    body, x = [], 8.0
    for outcome in outcomes:
        body.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" rx="2" fill="{colour(outcome)}"/>')
        body.append(f'<text x="{x + 16:.1f}" y="{y:.1f}" fill="currentColor">{escape(outcome)}</text>')
        x += 16 + len(outcome) * CHAR_PX + 18
    return body


def burnup_svg(points: list[Point], *, title: str = "Phases resolved over time (UTC)", now: datetime | None = None) -> str:
    """A step line of resolved phases over time, against the line of planned phases."""
    if not points:
        return _svg(WIDTH, 40, title, ['<text x="8" y="24" fill="#616161">No phase resolved yet.</text>'])
    end = max(now or points[-1].time, points[-1].time)
    x0, x1, top, height = 44.0, WIDTH - RIGHT, 12.0, 160.0
    low, high, marks = ticks(points[0].time, end, width=x1 - x0)
    total = max(point.total for point in points) or 1
    bottom = top + height
    span = (high - low).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return x0 + (moment - low).total_seconds() / span * (x1 - x0)

    def y(value: float) -> float:
        return bottom - value / total * height

    body = _axis(low, high, marks, x0, x1, top, bottom)
    for value in sorted({0, total // 2, total}):
        body.append(f'<text x="{x0 - 6:.1f}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#616161">{value}</text>')
    body.append(f'<line class="rb-planned" x1="{x0:.1f}" y1="{y(total):.1f}" x2="{x1:.1f}" y2="{y(total):.1f}" stroke="#9e9e9e" stroke-dasharray="5 4"/>')
    path = [f"M{x(points[0].time):.1f} {y(0):.1f}"]
    for point in points:
        path.append(f"H{x(point.time):.1f} V{y(point.done):.1f}")
    path.append(f"H{x(end):.1f}")
    body.append(f'<path class="rb-burnup" d="{" ".join(path)}" fill="none" stroke="#2e7d32" stroke-width="2.5"/>')
    for point in points:
        body.append(
            f'<circle class="rb-bar" cx="{x(point.time):.1f}" cy="{y(point.done):.1f}" r="3.5" fill="#2e7d32">'
            f"<title>{escape(point.time.strftime('%Y-%m-%d %H:%M'))}: {point.done}/{point.total} resolved</title></circle>"
        )
    body.append(f'<text x="{x1:.1f}" y="{y(total) - 4:.1f}" text-anchor="end" fill="#616161">planned: {total}</text>')
    return _svg(WIDTH, bottom + 28, title, body)


def durations_svg(steps: list[Duration], *, title: str = "Step durations") -> str:
    """One bar per step, its length the step's duration (a linear scale from 0 to the longest)."""
    if not steps:
        return _svg(WIDTH, 40, title, ['<text x="8" y="24" fill="#616161">No steps recorded.</text>'])
    longest = max((step.seconds or 0.0 for step in steps), default=0.0) or 1.0
    label_w = _label_width([step.label for step in steps], 240)
    x0, x1 = label_w + 8, WIDTH - 60
    body = []
    for row, step in enumerate(steps):
        y = 4 + row * ROW
        body.append(f'<text class="rb-label" x="{label_w:.1f}" y="{y + 15:.1f}" text-anchor="end" fill="currentColor">{escape(_clip(step.label, label_w))}<title>{escape(step.label)}</title></text>')
        width = (step.seconds or 0.0) / longest * (x1 - x0)
        body.append(
            f'<rect class="rb-bar rb-bar--{escape(step.status.replace(" ", "-"))}" x="{x0:.1f}" y="{y + 4:.1f}" width="{max(width, 2):.1f}" height="{ROW - 8}" rx="2" fill="{colour(step.status)}"><title>{escape(step.label)}: {escape(step.status)}, {escape(seconds_text(step.seconds))}</title></rect>'
        )
        body.append(f'<text x="{x0 + max(width, 2) + 6:.1f}" y="{y + 15:.1f}" fill="#616161">{escape(seconds_text(step.seconds))}</text>')
    legend_y = 4 + ROW * len(steps) + 22
    body.extend(_legend(sorted({step.status for step in steps}), legend_y))
    return _svg(WIDTH, legend_y + 10, title, body)


def seconds_text(seconds: float | None) -> str:
    """0.42 -> `0.42s`, 75 -> `1m 15s`; unknown -> `—`."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
