"""One run per workspace: an advisory lock on `<workspace>/.runbook.lock`, naming its holder.

The lock is `fcntl.flock` on the open file, so the kernel decides who holds it: there is no window in
which a second process can read a half-written holder and call it stale, and a killed holder's lock
is released by the kernel. The holder's pid, phase, start time and host are written *after* the lock
is held. Two cases stay conservative:

- the file names a live process on this host that does not hold the flock (a run of an older
  `runbook` that used O_EXCL lock files): it is respected;
- the file names another host (a workspace on a shared folder): it is never taken over unless the
  user says `--break-lock`, because this host cannot tell whether that process is alive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import InputError, LockHeld
from .record import iso, utc_now

LOCK_NAME = ".runbook.lock"
# A holder file is a few hundred bytes; a bigger one is not ours and is not read whole.
_MAX_HOLDER_BYTES = 4096


def _alive(pid: int) -> bool:
    if pid <= 0 or pid > 2**22:  # beyond Linux's pid_max: not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    return True


def _parse_holder(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    where = f" on host {holder['host']}" if holder.get("host") not in (None, socket.gethostname()) else ""
    return f"pid {holder.get('pid')}{where}, phase {holder.get('phase')}, started {holder.get('started_at')}"


class WorkspaceLock:
    """`with WorkspaceLock(root, phase):` — held for the whole run, released on exit (and by the kernel on death)."""

    def __init__(
        self,
        root: Path,
        phase: str,
        warn: Callable[[str], None] = lambda _m: None,
        *,
        break_lock: bool = False,
    ) -> None:
        self.path = root / LOCK_NAME
        self.phase = phase
        self.warn = warn
        self.break_lock = break_lock
        self._fd: int | None = None

    def holder(self) -> dict[str, Any] | None:
        """What the lock file says about its holder (None when there is no lock file)."""
        try:
            with self.path.open("rb") as handle:
                return _parse_holder(handle.read(_MAX_HOLDER_BYTES))
        except FileNotFoundError:
            return None
        except OSError:
            return {}

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except IsADirectoryError:
            raise InputError(
                f"{self.path} is a folder, not a lock file",
                hint=f"no run is using it as a lock: remove it (`rmdir {self.path}`) and run again",
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(
                    f"{self.path} is a symbolic link; runbook does not follow it for its lock",
                    hint=f"remove the link ({self.path}) and run again",
                ) from None
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise InputError(
                    f"cannot create the workspace lock {self.path}: {exc.strerror}",
                    hint="run in a workspace you can write to (or fix its permissions)",
                ) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(f"{self.path} is not a regular file", hint=f"remove {self.path} and run again")
        return fd

    def _refuse(self, holder: dict[str, Any]) -> LockHeld:
        if not holder:
            return LockHeld(
                "another run holds the workspace (it is starting: its details are not written yet)",
                hint="wait for it to finish, then run again",
            )
        return LockHeld(
            f"another run holds the workspace: {_describe(holder)}",
            hint=f"wait for it to finish; if it is gone, delete {self.path}",
        )

    def acquire(self) -> WorkspaceLock:
        for _ in range(5):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(self.holder() or {}) from None
            # A releaser unlinks the file while holding it: if we locked an unlinked inode, try again.
            try:
                same = self.path.lstat().st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                self._take_over(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self
        raise LockHeld(f"cannot take the workspace lock {self.path}", hint="retry in a moment")

    def _take_over(self, fd: int) -> None:
        """We hold the flock: decide about what the file says, then write ourselves into it."""
        holder = _parse_holder(os.pread(fd, _MAX_HOLDER_BYTES, 0))
        if holder:
            pid = holder.get("pid")
            other_host = holder.get("host") not in (None, socket.gethostname())
            if other_host and not self.break_lock:
                raise LockHeld(
                    f"the workspace lock names a run on another host: {_describe(holder)}",
                    hint="this host cannot tell whether it is still running; if it is not, "
                    "run again with --break-lock",
                )
            if not other_host and isinstance(pid, int) and _alive(pid):
                raise self._refuse(holder)
            reason = "broken by --break-lock" if other_host else "that process is gone"
            self.warn(
                f"taking over a stale lock left by pid {pid} (phase {holder.get('phase')}, "
                f"started {holder.get('started_at')}): {reason}"
            )
        payload = json.dumps(
            {"pid": os.getpid(), "phase": self.phase, "started_at": iso(utc_now()), "host": socket.gethostname()}
        ).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, payload, 0)
        with contextlib.suppress(OSError):
            os.fsync(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # Unlink while still holding it; a waiter that opened this inode sees it is gone and retries.
            with contextlib.suppress(FileNotFoundError):
                if self.path.lstat().st_ino == os.fstat(fd).st_ino:
                    self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()
