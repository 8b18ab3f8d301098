"""One run per workspace: an exclusive lock file naming its holder.

The lock is `<workspace>/.runbook.lock`, created with O_EXCL and holding the holder's pid, phase and
start time. A second run fails at once naming the holder; a lock whose process is gone is taken over
with a warning.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import LockHeld
from .record import iso, utc_now

LOCK_NAME = ".runbook.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkspaceLock:
    def __init__(self, root: Path, phase: str, warn: Callable[[str], None] = lambda _m: None) -> None:
        self.path = root / LOCK_NAME
        self.phase = phase
        self.warn = warn
        self._held = False

    def holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}

    def acquire(self) -> WorkspaceLock:
        payload = json.dumps(
            {"pid": os.getpid(), "phase": self.phase, "started_at": iso(utc_now()), "host": socket.gethostname()}
        ).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released between our two looks
                pid = holder.get("pid")
                same_host = holder.get("host", socket.gethostname()) == socket.gethostname()
                if isinstance(pid, int) and same_host and _alive(pid):
                    raise LockHeld(
                        f"another run holds the workspace: pid {pid}, phase {holder.get('phase')}, "
                        f"started {holder.get('started_at')}",
                        hint=f"wait for it to finish; if it is gone, delete {self.path}",
                    ) from None
                self.warn(
                    f"taking over a stale lock left by pid {pid} (phase {holder.get('phase')}, "
                    f"started {holder.get('started_at')}): that process is gone"
                )
                # Rename first so two takers cannot both delete and recreate it.
                stale = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
                try:
                    os.replace(self.path, stale)
                    stale.unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            self._held = True
            return self
        raise LockHeld(f"cannot take the workspace lock {self.path}", hint="retry in a moment")

    def release(self) -> None:
        if self._held:
            holder = self.holder()
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()
