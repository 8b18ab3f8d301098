"""The status index is a cache of the timestamp log's fold: whatever happens to the log (appends in
and out of time order, malformed lines, a line being written, a rewrite, a cut, a deleted index),
`folded_states` gives exactly what folding the whole log gives, and the index is never committed."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from runbook.history_index import folded_states, index_path
from runbook.progress import phase_states
from runbook.record import read_log
from runbook.workspace import Workspace, load_workspace


def truth(ws: Workspace) -> tuple[list[dict[str, Any]], list[str]]:
    lines, warnings = read_log(ws.timestamp_log)
    states = phase_states(lines)
    return [states[k].to_dict() for k in sorted(states)], warnings


def via_index(ws: Workspace) -> tuple[list[dict[str, Any]], list[str]]:
    states, warnings = folded_states(ws)
    return [states[k].to_dict() for k in sorted(states)], warnings


def line(rng: random.Random, minute: int) -> str:
    phase = rng.choice(["1.1", "1.2", "1.3", "2.1"])
    action = rng.choice(["start", "start", "complete", "fail"])
    entry: dict[str, Any] = {
        "timestamp": f"2025-11-14T{4 + minute // 60:02d}:{minute % 60:02d}:00Z",
        "phase": phase,
        "action": action,
        "description": f"{action} {phase}",
        "run_id": f"run-{minute}",
    }
    if action == "complete":
        entry["status"] = rng.choice(["SUCCESS", "FAILED"])
        entry["cells_fixed"] = rng.choice([[], ["c1"], ["c2", 3]])
        if rng.random() < 0.5:
            entry["duration_s"] = rng.choice([1, 2.5])
    return json.dumps(entry) + "\n"


@pytest.fixture
def ws(local_workspace: Path) -> Workspace:
    (local_workspace / "reports" / "timestamps").mkdir(parents=True, exist_ok=True)
    return load_workspace(local_workspace)


def append(ws: Workspace, text: str) -> None:
    with ws.timestamp_log.open("a", encoding="utf-8") as handle:
        handle.write(text)


@pytest.mark.parametrize("seed", range(6))
def test_every_change_to_the_log_gives_the_whole_fold(ws: Workspace, seed: int) -> None:
    rng = random.Random(seed)
    minute = 0
    append(ws, "".join(line(rng, minute := minute + 1) for _ in range(20)))
    assert via_index(ws) == truth(ws)
    assert index_path(ws).exists()
    for _ in range(25):
        change = rng.choice(["append", "append", "append", "earlier", "garbage", "partial", "rewrite", "cut", "drop", "none"])
        if change == "append":
            append(ws, "".join(line(rng, minute := minute + 1) for _ in range(rng.randint(1, 3))))
        elif change == "earlier":
            append(ws, line(rng, rng.randint(0, max(minute - 1, 0))))
        elif change == "garbage":
            append(ws, rng.choice(["not json\n", "\n", '{"phase": "1.1"}\n', "[1]\n"]))
        elif change == "partial":
            append(ws, line(rng, minute := minute + 1)[:20])
            assert via_index(ws) == truth(ws)
            append(ws, "\n")
        elif change == "rewrite":
            text = ws.timestamp_log.read_text(encoding="utf-8").replace("start", "fail", 1)
            ws.timestamp_log.write_text(text, encoding="utf-8")
        elif change == "cut":
            lines = ws.timestamp_log.read_text(encoding="utf-8").splitlines(keepends=True)
            ws.timestamp_log.write_text("".join(lines[: rng.randint(0, len(lines))]), encoding="utf-8")
        elif change == "drop":
            index_path(ws).unlink(missing_ok=True)
        assert via_index(ws) == truth(ws), change
        assert via_index(ws) == truth(ws), f"{change}, read again"


def test_a_fresh_index_is_read_instead_of_the_log(ws: Workspace) -> None:
    rng = random.Random(1)
    append(ws, "".join(line(rng, m) for m in range(1, 30)))
    expected = via_index(ws)
    # same size, mtime and inode: the index answers (a corrupted log would show if it were read)
    stat = ws.timestamp_log.stat()
    data = ws.timestamp_log.read_bytes()
    ws.timestamp_log.write_bytes(data.replace(b"start", b"xxxxx"))
    os.utime(ws.timestamp_log, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert via_index(ws) == expected
    # a changed mtime makes it stale
    os.utime(ws.timestamp_log, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert via_index(ws) == truth(ws) != expected


def test_a_new_runs_folder_makes_the_index_stale(ws: Workspace) -> None:
    append(ws, line(random.Random(2), 1))
    via_index(ws)
    before = index_path(ws).read_text(encoding="utf-8")
    (ws.reports_dir / "runs" / "1.1").mkdir(parents=True)
    assert via_index(ws) == truth(ws)
    assert index_path(ws).read_text(encoding="utf-8") != before


def test_the_index_folder_ignores_itself_for_git(ws: Workspace) -> None:
    append(ws, line(random.Random(3), 1))
    via_index(ws)
    ignore = index_path(ws).parent / ".gitignore"
    assert ignore.read_text(encoding="utf-8").splitlines()[-1] == "*"


def test_an_unwritable_index_only_costs_speed(ws: Workspace) -> None:
    append(ws, line(random.Random(4), 1))
    (ws.reports_dir / ".index").write_text("a file where the folder should be", encoding="utf-8")
    assert via_index(ws) == truth(ws)


def test_no_log_no_index(ws: Workspace) -> None:
    assert via_index(ws) == ([], [])
    assert not index_path(ws).exists()


def indexed(ws: Workspace) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(index_path(ws).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("seed", range(4))
def test_an_updated_index_is_the_rebuilt_one(ws: Workspace, seed: int) -> None:
    """Lines appended (odd status words, notes, unreadable lines, a lone CR inside a line, CRLF)
    are folded onto the index so that the file equals the one a rebuild from the whole log writes:
    the same states (untouched phases kept as stored), warnings, line numbers and latest time."""
    rng = random.Random(seed)
    minute = 0
    append(ws, "".join(line(rng, minute := minute + 1) for _ in range(10)))
    assert via_index(ws) == truth(ws)
    extras = [
        '{"timestamp": "2026-01-01T00:00:00Z", "phase": "1.2", "action": "complete", "status": "sort of"}\n',
        '{"timestamp": "2026-01-01T00:01:00Z",\r "phase": "1.3", "action": "start"}\n',
        '{"timestamp": "2026-01-01T00:02:00Z", "phase": "1.3", "action": "fail", "note": "x"}\r\n',
        "not json\n",
        "\n",
        '{"timestamp": "2026-01-01T00:03:00Z", "phase": "1.1", "action": "complete", "status": "RESOLVED ✅"}\n',
    ]
    for _ in range(12):
        if rng.random() < 0.5:
            append(ws, rng.choice(extras))
        else:
            append(ws, line(rng, minute := minute + 100))
        updated = via_index(ws)
        assert updated == truth(ws)
        kept = indexed(ws)
        index_path(ws).unlink()
        assert via_index(ws) == updated
        rebuilt = indexed(ws)
        assert kept == rebuilt


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data.pop("log"),
        lambda data: data.update(states={"1.1": {"id": "1.1", "bogus": 1}}),
        lambda data: data.update(states={"1.1": {"started_at": 5}}),
        lambda data: data.update(end="x", log={"size": 0, "mtime_ns": 0, "inode": 0}),
        lambda data: data.update(states=[1, 2]),
        lambda data: data.update(tail=None, log={"size": 0, "mtime_ns": 0, "inode": 0}),
    ],
)
def test_a_damaged_index_is_rebuilt(ws: Workspace, damage: Any) -> None:
    rng = random.Random(5)
    append(ws, "".join(line(rng, m) for m in range(1, 10)))
    expected = via_index(ws)
    data = indexed(ws)
    damage(data)
    index_path(ws).write_text(json.dumps(data), encoding="utf-8")
    assert via_index(ws) == expected == truth(ws)
    append(ws, line(rng, 50))
    data = indexed(ws)
    damage(data)
    index_path(ws).write_text(json.dumps(data), encoding="utf-8")
    assert via_index(ws) == truth(ws)
