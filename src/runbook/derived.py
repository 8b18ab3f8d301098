"""The folder of derived files, `reports/.index/`: summaries runbook can always rebuild.

What lives there (the status index, the remembered status screen, the schema check's answer) is
computed from the workspace's own files and never the source of truth; the folder ignores itself
for git (its `.gitignore` holds `*`), so none of it is committed. Writing is best effort: a
read-only workspace only costs speed. This module imports nothing heavy, so a command that finds
its answer here starts without pydantic, the YAML loader or the models.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

INDEX_DIR = ".index"
DERIVED_LIMIT = 256 << 20  # bytes: far above any index runbook writes; a bigger file is not read


def write_derived(reports_dir: Path, name: str, data: Any) -> None:
    """Write `reports/.index/NAME` as JSON, whole or not at all (a temporary file renamed over it);
    failing (a read-only workspace, a value JSON cannot hold) only costs speed next time.

    Not fsynced, unlike `atomic.atomic_write_bytes`: a derived file lost or emptied by a machine
    crash reads as missing (`read_derived` gives None) and is computed again, and skipping the
    fsync and `tempfile` keeps a status run cheap."""
    write_derived_lines(reports_dir, name, [data])


def write_derived_lines(reports_dir: Path, name: str, parts: list[Any]) -> None:
    """Like `write_derived`, one JSON document a line (a reader can stop after the first)."""
    folder = reports_dir / INDEX_DIR
    with contextlib.suppress(OSError, TypeError, ValueError):
        text = "\n".join(json.dumps(part, default=str) for part in parts).encode("utf-8")
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# derived by runbook (status, validate): never committed\n*\n", encoding="utf-8")
        temporary = folder / f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(text)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temporary, folder / name)
        finally:
            temporary.unlink(missing_ok=True)


def read_derived(reports_dir: Path, name: str) -> dict[str, Any] | None:
    """The JSON object in `reports/.index/NAME`, or None (missing, unreadable, not an object)."""
    raw = read_regular_file(reports_dir / INDEX_DIR / name, DERIVED_LIMIT)
    try:
        data = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def read_regular_file(path: Path, limit: int | None = None) -> bytes | None:
    """The bytes of `path` when it is a regular file (of at most `limit` bytes), else None.

    What a derived or cache file's name points at is not trusted: a FIFO would block the reader and
    a symlink to /dev/zero would fill its memory; neither is a file runbook wrote."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if limit is None or len(data) <= limit else None


def stamp(path: Path) -> list[int] | None:
    """A file's size, modification time and inode (None when it does not exist)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def content_stamp(path: Path) -> list[int] | None:
    """`stamp` and a CRC-32 of the file's bytes (None when it cannot be read): a file rewritten in
    place with the same length within one clock tick (or with its time set back) keeps its stamp."""
    import zlib

    try:
        with path.open("rb") as handle:
            found = os.fstat(handle.fileno())
            data = handle.read()
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns, found.st_ino, zlib.crc32(data)]


def names_in(folder: Path, prefix: str = "", suffix: str = "") -> list[str]:
    """The sorted names in `folder` with that prefix and suffix (none when it is not a folder)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(suffix))
    except OSError:
        return []


def runs_listing(reports_dir: Path) -> list[list[Any]]:
    """Every phase folder of `reports/runs/` with its modification time (a record added or removed)."""
    try:
        with os.scandir(reports_dir / "runs") as entries:
            return sorted([entry.name, entry.stat().st_mtime_ns] for entry in entries if entry.is_dir())
    except OSError:
        return []


_LISTED: list[list[Any]] = []


def source_listing() -> list[list[Any]]:
    """Every module of the `runbook` package (relative path, size, modification time), sorted: what
    produced a derived answer, so another version (or an edited checkout) computes it afresh. Taken
    once per process (the code running is the code that was there when it started); do not modify
    the list returned."""
    if not _LISTED:
        _LISTED.extend(_list_source())
    return _LISTED


def _list_source() -> list[list[Any]]:
    from . import __version__

    package = Path(__file__).resolve().parent
    found: list[list[Any]] = [[__version__]]
    pending = [package]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                        pending.append(Path(entry.path))
                    elif entry.name.endswith(".py"):
                        info = entry.stat()
                        found.append([os.path.relpath(entry.path, package), info.st_size, info.st_mtime_ns])
        except OSError:
            continue
    return sorted(found, key=str)
