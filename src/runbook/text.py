"""Text shown to people: markdown cells and code spans, durations, UTC times, cell labels, ANSI and colour.

One module so that the report, the status screen, the console and the site say things the same way
(one duration format, one code-span rule, one colour convention). Nothing here imports the rest of
runbook except the time parser in `record`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

# Every CSI sequence (colours, cursor moves) as kernels and terminals write them, and OSC sequences
# (window titles, hyperlinks: ESC ] ... BEL or ESC \\; an unterminated one ends at the line), which
# would act on the terminal of whoever `cat`s a report.
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?")
# Control characters left after that (NUL, BEL, backspace, a lone ESC, C1 controls) and the bidi
# overrides that reorder what a reader sees ("Trojan source"): shown as visible escapes, never
# written raw (a NUL makes git and grep treat a report as binary).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Markdown(str):
    """Text that already is markdown (code spans, emphasis, links): tables keep its formatting."""

    __slots__ = ()


def strip_ansi(text: str) -> str:
    """`text` without ANSI escape sequences (notebook tracebacks are coloured)."""
    return ANSI.sub("", text)


def clean_text(value: Any) -> str:
    """Text for a document: ANSI codes removed, line ends normalised to `\\n`, other control
    characters (and bidi overrides) as visible escapes (`\\x00`, `\\u202e`)."""
    text = strip_ansi(str(value)).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(_visible, text)


def longest_run(text: str, char: str = "`") -> int:
    """Length of the longest run of `char` in `text` (0 when there is none)."""
    return max((len(run) for run in re.findall(re.escape(char) + "+", text)), default=0)


def code(value: Any) -> Markdown:
    """An inline code span that survives any backtick run inside `value` (one line)."""
    text = " ".join(clean_text(value).split("\n"))
    if not text:
        return Markdown("*(empty)*")
    ticks = "`" * (longest_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ")) else ""
    return Markdown(f"{ticks}{pad}{text}{pad}{ticks}")


def md_cell(value: Any) -> str:
    """One table cell: `|` escaped, line breaks as <br>; plain text also has backticks and `<` escaped.

    A `Markdown` value keeps its formatting (only its pipes are escaped, as GFM tables require even
    inside code spans).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Markdown):
        text = re.sub(r"(?<!\\)\|", r"\\|", clean_text(value).strip())
    else:
        text = clean_text(value).strip()
        # `<` as an entity: Python-Markdown (the site) does not read `\\<` as an escape, so `\\<img …>`
        # would stay a live HTML tag there; GitHub shows `&lt;` as `<` too.
        text = text.replace("\\", "\\\\").replace("`", "\\`").replace("<", "&lt;").replace("|", "\\|")
    return "<br>".join(line.strip() for line in text.split("\n"))


def md_table(rows: Iterable[Sequence[Any]], headers: Sequence[Any]) -> Markdown:
    """A GFM table; every cell goes through `md_cell`. Short rows are padded, long ones cut."""
    width = len(headers)
    lines = [
        "| " + " | ".join(md_cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        cells = [md_cell(c) for c in list(row)[:width]]
        cells.extend("" for _ in range(width - len(cells)))
        lines.append("| " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))


def fence(text: Any, lang: str = "") -> Markdown:
    """A fenced code block whose fence is longer than any backtick run inside `text`."""
    body = clean_text(text).rstrip("\n")
    ticks = "`" * max(3, longest_run(body) + 1)
    return Markdown(f"{ticks}{lang}\n{body}\n{ticks}")


def duration_text(seconds: Any) -> str:
    """Human durations: "4 ms", "1.2 s", "42 s", "3 minutes 5 s", "20 minutes", "2 h 5 minutes"; unknown "—"."""
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "—"
    value = max(float(seconds), 0.0)
    if value < 0.1:
        return f"{round(value * 1000)} ms"
    if value < 10:
        return f"{value:.1f} s"
    if value < 59.5:
        return f"{round(value)} s"
    if value < 3570:
        minutes, rest = divmod(round(value), 60)
        text = f"{minutes} minute{'s' if minutes != 1 else ''}"
        if rest and minutes < 10:
            text += f" {rest} s"
        return text
    hours, minutes = divmod(round(value / 60), 60)
    return f"{hours} h" + (f" {minutes} minute{'s' if minutes != 1 else ''}" if minutes else "")


def _as_moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    from .record import parse_time

    try:
        return parse_time(str(value))
    except ValueError:
        return None


def utc_text(value: Any) -> str:
    """A recorded time as UTC ISO-8601 to the second (`2025-11-14T04:15:00Z`); unknown "—"."""
    if value is None or value == "":
        return "—"
    moment = _as_moment(value)
    if moment is None:
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_short(value: Any) -> str:
    """A UTC time for tables and the terminal: `2025-11-14 04:35:00Z`; unknown "-"."""
    if value is None or value == "":
        return "-"
    moment = _as_moment(value)
    if moment is None:
        return str(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def cell_label(ref: Mapping[str, Any] | None = None, *, number: Any = None, cell_id: Any = None) -> str:
    """A notebook cell as people name it: `15 (cell_14_f21837aa)`, `15`, or the id alone."""
    if ref is not None:
        number = ref.get("number", number)
        cell_id = ref.get("id", cell_id)
    if number is not None and cell_id:
        return f"{number} ({cell_id})"
    if number is not None:
        return str(number)
    return str(cell_id) if cell_id else "?"


def use_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output written to `stream`.

    The conventions people set: a non-empty `NO_COLOR` turns colour off; a non-empty `FORCE_COLOR`
    (other than `0`) or `CLICOLOR_FORCE` turns it on even when not on a terminal; otherwise colour
    only on a terminal.
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "0") not in ("", "0") or env.get("CLICOLOR_FORCE", "0") not in ("", "0"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, sgr: str | None, colour: bool) -> str:
    """`text` wrapped in the SGR code `sgr` when colouring, else unchanged."""
    return f"\033[{sgr}m{text}\033[0m" if colour and sgr else text


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str | None) -> bool:
    """True for loopback hosts: `localhost`, 127.0.0.0/8, `::1` (brackets allowed)."""
    import ipaddress

    if not host:
        return False
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
