"""The workspace lock: held by the kernel (flock), never taken twice, never taken from another host."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from runbook.errors import InputError, LockHeld
from runbook.lock import LOCK_NAME, WorkspaceLock


def _contend(root: str, barrier: multiprocessing.synchronize.Barrier, held: multiprocessing.synchronize.Event, results: multiprocessing.Queue) -> None:  # type: ignore[name-defined]
    barrier.wait()
    try:
        lock = WorkspaceLock(Path(root), "1.5").acquire()
    except LockHeld:
        results.put("refused")
        return
    results.put("held")
    held.wait(5)  # keep holding while the others try
    lock.release()


def test_racing_processes_never_hold_the_lock_twice(tmp_path: Path) -> None:
    # Round one's O_EXCL lock was taken twice in 2 of 40 rounds with 6 racers (an empty file read as stale).
    ctx = multiprocessing.get_context("fork")
    for _ in range(15):
        barrier = ctx.Barrier(6)
        held = ctx.Event()
        results = ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(str(tmp_path), barrier, held, results)) for _ in range(6)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=30) for _ in procs]
        held.set()
        for proc in procs:
            proc.join(30)
        assert outcomes.count("held") == 1, outcomes
        assert not (tmp_path / LOCK_NAME).exists()


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def hold() -> None:
        WorkspaceLock(tmp_path, "1.5").acquire()
        ready.set()
        os.kill(os.getpid(), 9)

    proc = ctx.Process(target=hold)
    proc.start()
    assert ready.wait(30)
    proc.join(30)
    warnings: list[str] = []
    lock = WorkspaceLock(tmp_path, "1.6", warnings.append).acquire()
    assert warnings and "that process is gone" in warnings[0]
    assert json.loads((tmp_path / LOCK_NAME).read_text())["phase"] == "1.6"
    lock.release()


def test_a_holder_on_another_host_needs_break_lock(tmp_path: Path) -> None:
    holder = {"pid": 4242, "phase": "1.3", "started_at": "2025-11-14T04:15:00.000Z", "host": "build-agent-7"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(holder))
    with pytest.raises(LockHeld) as refused:
        WorkspaceLock(tmp_path, "1.5").acquire()
    assert "on host build-agent-7" in str(refused.value) and "--break-lock" in (refused.value.hint or "")
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == holder  # untouched
    warnings: list[str] = []
    lock = WorkspaceLock(tmp_path, "1.5", warnings.append, break_lock=True).acquire()
    assert "broken by --break-lock" in warnings[0]
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == socket.gethostname()
    lock.release()


@pytest.mark.parametrize(
    "content",
    [b"", b"{}", b"[1, 2]", b"\x00\xff garbage", json.dumps({"pid": 10**30}).encode(), json.dumps({"pid": -5}).encode()],
)
def test_odd_lock_files_are_taken_over_not_crashed_on(tmp_path: Path, content: bytes) -> None:
    (tmp_path / LOCK_NAME).write_bytes(content)
    lock = WorkspaceLock(tmp_path, "1.5").acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lock_folder_is_a_clear_input_error(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).mkdir()
    with pytest.raises(InputError) as error:
        WorkspaceLock(tmp_path, "1.5").acquire()
    assert "is a folder" in str(error.value) and "rmdir" in (error.value.hint or "")


def test_a_lock_folder_through_the_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    from conftest import invoke

    (tmp_path / "runbook.yaml").write_text(
        "project: t\nplan:\n  - group: '1'\n    phases: [{id: '1.1', title: t}]\n"
        "targets:\n  local: {kind: local}\ndefault_target: local\n"
    )
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "phase-1.1.yaml").write_text('phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    (tmp_path / LOCK_NAME).mkdir()
    result = invoke(["run", "1.1"], cwd=tmp_path)
    assert result.exit_code == 2, result.output
    assert "is a folder" in result.stderr and "Traceback" not in result.output
