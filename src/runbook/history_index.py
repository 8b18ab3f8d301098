"""A derived summary of the timestamp log, so `runbook status` reads one small file.

The timestamp log stays the source of truth. `folded_states()` returns what
`progress.phase_states()` makes of the whole log (one state per phase) and the warnings of
`record.read_log()`, from `reports/.index/status.json` when that file is fresh. It is fresh when the
log has the size, modification time and inode it had when the index was written and the runs folder
lists the same phases with the same modification times. When the log only grew (its indexed bytes as
they were, checked by a CRC-32: an editor that saves in place may have changed an old line too; new
lines appended after the last indexed one, none of them earlier than the latest time already folded),
only the new lines are parsed and folded onto the indexed states; anything else (a missing, unreadable
or stale index, a log rewritten or cut, lines out of time order) rebuilds it from the whole log. The folder
ignores itself for git (`reports/.index/.gitignore` holds `*`), so the index is never committed;
failing to write it (a read-only workspace) only costs speed.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .derived import INDEX_DIR, runs_listing, write_derived
from .progress import PhaseProgress, phase_states
from .timestamp_log import LogLine, line_warnings, parse_log_line, read_log, skipped_line_warning

if TYPE_CHECKING:
    from .progress import Workspace

INDEX_NAME = "status.json"
VERSION = 3  # 2: durations NaN/negative/huge ignored, secret-named log keys masked; 3: a CRC-32 of the folded bytes
_TAIL = 64  # bytes before the indexed end that must be unchanged for an append-only update
_TIMES = ("started_at", "finished_at", "resolved_at")
_FIELDS = tuple(f.name for f in fields(PhaseProgress))


def index_path(workspace: Workspace) -> Path:
    return workspace.reports_dir / INDEX_DIR / INDEX_NAME


def folded_states(workspace: Workspace) -> tuple[dict[str, PhaseProgress], list[str]]:
    """(phase states, log warnings) as `phase_states(read_log(log))` gives them, through the index."""
    log = workspace.timestamp_log
    try:
        stat = log.stat()
    except OSError:
        return {}, []  # no log: nothing to index
    runs = _runs_listing(workspace)
    index = _read_index(index_path(workspace))
    if index is not None and index.get("runs") == runs:
        try:
            if index["log"] == _log_key(stat):
                return _states(index["states"]), [str(warning) for warning in index["warnings"]]
            grown = _append(log, stat, index)
        except (KeyError, TypeError, ValueError, AttributeError):
            grown = None  # an index that does not read as one: rebuilt
        if grown is not None:
            states, warnings, next_line, latest, touched, read = grown
            # the phases no new line names are stored as they were: only the touched ones are dumped
            stored = {**index["states"], **{phase: _dump_state(states[phase]) for phase in touched}}
            _write(
                workspace, stat, runs, stored, warnings, end=stat.st_size, next_line=next_line, latest=latest, read=read
            )
            return states, warnings
    lines, warnings = read_log(log)
    states = phase_states(lines)
    end = _complete_end(log, stat.st_size)
    if end is not None:
        latest = max((line.timestamp for line in lines), default=None)
        stored = {phase_id: _dump_state(state) for phase_id, state in states.items()}
        _write(workspace, stat, runs, stored, warnings, end=end, next_line=_line_count(log, end) + 1, latest=latest)
    return states, warnings


# ------------------------------------------------------------------ reading and updating


def _append(
    log: Path, stat: os.stat_result, index: dict[str, Any]
) -> tuple[dict[str, PhaseProgress], list[str], int, datetime | None, set[str], tuple[int, str]] | None:
    """The indexed states with the lines appended since, the warnings, the number of the next line,
    the latest time folded, the phases the new lines name and (CRC-32, tail) of the log's first
    `stat.st_size` bytes; or None when the log changed otherwise."""
    end, old = int(index["end"]), index["log"]
    if stat.st_ino != old["inode"] or stat.st_size <= old["size"] or end != old["size"]:
        return None
    latest = datetime.fromisoformat(index["latest"]) if index.get("latest") else None
    with log.open("rb") as handle:
        start = max(end - _TAIL, 0)
        prefix = handle.read(end)  # every indexed byte as it was (an edit anywhere, not only in the tail)
        if prefix[start:].hex() != index["tail"] or zlib.crc32(prefix) != index["crc"]:
            return None
        added = handle.read(stat.st_size - end)  # a line appended since `stat` is folded next time
    if len(added) != stat.st_size - end or not added.endswith(b"\n"):
        return None  # a line is being written: fold it once it is whole
    states = _states(index["states"])
    warnings = list(index["warnings"])
    number = int(index["next_line"])
    new: list[LogLine] = []
    for raw in io.BytesIO(added):  # the lines as read_log reads them (a lone CR is no line break)
        if raw.strip():
            try:
                line = parse_log_line(raw, number)
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                warnings.append(skipped_line_warning(log, number, exc))
            else:
                new.append(line)
                warnings.extend(line_warnings(log, line))  # what read_log says of the same line
        number += 1
    if latest is not None and any(line.timestamp < latest for line in new):
        return None  # folding is in time order: an earlier line means a full rebuild
    # all new lines sort after the folded ones: folding them onto the indexed states is the same
    # as folding the whole log
    latest = max([line.timestamp for line in new] + ([latest] if latest is not None else []), default=None)
    read = (zlib.crc32(added, index["crc"]), (prefix[-_TAIL:] + added)[-_TAIL:].hex())
    return phase_states(new, start=states), warnings, number, latest, {line.phase for line in new}, read


# ------------------------------------------------------------------ the file


def _log_key(stat: os.stat_result) -> dict[str, int]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def _runs_listing(workspace: Workspace) -> list[list[Any]]:
    """The records folder's listing: every phase folder with its modification time."""
    return runs_listing(workspace.reports_dir)


def _complete_end(log: Path, size: int) -> int | None:
    """`size` when the log ends with a whole line (an index can resume from there), else None."""
    if size == 0:
        return 0
    try:
        with log.open("rb") as handle:
            handle.seek(size - 1)
            return size if handle.read(1) == b"\n" else None
    except OSError:
        return None


def _line_count(log: Path, end: int) -> int:
    with log.open("rb") as handle:
        return handle.read(end).count(b"\n")


def _read_index(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    return data


def _states(raw: dict[str, dict[str, Any]]) -> dict[str, PhaseProgress]:
    """The stored states (as `_dump_state` wrote them; anything else raises TypeError/ValueError)."""
    states = {}
    parse = datetime.fromisoformat
    for phase_id, stored in raw.items():
        values = dict(stored)
        for name in _TIMES:
            if values[name]:
                values[name] = parse(values[name])
        states[phase_id] = PhaseProgress(**values)
    return states


def _dump_state(state: PhaseProgress) -> dict[str, Any]:
    values = {name: getattr(state, name) for name in _FIELDS}
    for name in _TIMES:
        if values[name] is not None:
            values[name] = values[name].isoformat()
    values["cells_fixed"] = list(values["cells_fixed"])
    return values


def _write(
    workspace: Workspace,
    stat: os.stat_result,
    runs: list[list[Any]],
    stored: dict[str, dict[str, Any]],
    warnings: list[str],
    *,
    end: int,
    next_line: int,
    latest: datetime | None,
    read: tuple[int, str] | None = None,
) -> None:
    """Write the index; `read` is (CRC-32, tail) of the log's first `end` bytes when known."""
    if read is None:
        with workspace.timestamp_log.open("rb") as handle:
            prefix = handle.read(end)
        read = (zlib.crc32(prefix), prefix[max(end - _TAIL, 0) :].hex())
    crc, tail = read
    data = {
        "version": VERSION,
        "log": _log_key(stat),
        "runs": runs,
        "end": end,
        "tail": tail,
        "crc": crc,
        "next_line": next_line,
        "latest": latest.isoformat() if latest else None,
        "states": stored,
        "warnings": warnings,
    }
    write_derived(workspace.reports_dir, INDEX_NAME, data)
