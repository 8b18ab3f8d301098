"""Atomic file writes: a temporary file in the same folder, fsynced, then renamed over the target.

A crash at any point leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path

KILL_AT_VARIABLE = "RUNBOOK_TEST_KILL_AT"
_crash_counts: dict[str, int] = {}
_crash_lock = threading.Lock()


def crash_point(name: str, fd: int | None = None, data: bytes = b"") -> None:
    """Test hook for the crash harness (tests/test_crash.py); does nothing unless the variable is set.

    With RUNBOOK_TEST_KILL_AT=NAME:N the process SIGKILLs itself at the N-th point called NAME
    (`record-append`: a run-record or timestamp-log line; `atomic-write`: a file written atomically),
    after writing the first half of `data` to `fd`: the worst a crash can leave, a torn line or a
    half-written temporary file.
    """
    wanted = os.environ.get(KILL_AT_VARIABLE)
    if not wanted:
        return
    with _crash_lock:
        _crash_counts[name] = count = _crash_counts.get(name, 0) + 1
    if wanted == f"{name}:{count}":
        if fd is not None and data:
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        # mkstemp creates 0600; a new file gets what open() would give it (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            crash_point("atomic-write", handle.fileno(), data)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` atomically unless the file already holds exactly it; True when written."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data)
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
