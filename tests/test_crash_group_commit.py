"""SIGKILL against the record's shared fsyncs: a killed run loses no line it wrote, and resumes exactly.

The run record fsyncs the lines of in-process steps (`set`, `assert`) in groups (runbook.record). A
SIGKILL does not care: every line went to the kernel with its own write(2) the moment it happened,
and what a process wrote survives the process. This harness proves it with real processes: a
runbook of set/assert steps around three shell steps with a visible side effect (a line appended to
effects.txt) is killed at the N-th record append (through `runbook.atomic.crash_point`, which writes
half of that line first), for N spread over the whole run. After every kill the record and the
timestamp log hold exactly the N - 1 lines written before the kill, whole, plus the torn half; then
`--resume` finishes the run: every step that completed before the kill is restored, not run again;
each side effect happened once, or twice only when the kill fell between that shell step's start
line and its end line (the step ran, its end was never written: it did not complete).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from runbook.record import read_log, read_record, record_paths

pytestmark = [pytest.mark.slow]

RUN = [sys.executable, "-c", "from runbook.cli import main; main()"]
EFFECTS = ("effect-1", "effect-2", "effect-3")


def _runbook() -> str:
    lines = ['phase: "1.1"', "title: Group commit under SIGKILL", "vars: {base: 7}", "fix:"]
    for i in range(12):
        lines += [
            f"  - {{id: set-{i}, uses: set, with: {{v: '{{{{ base + {i} }}}}'}}, register: r{i}}}",
            f"  - {{id: check-{i}, uses: assert, with: {{that: '{{{{ r{i}.v == base + {i} }}}}'}}}}",
        ]
        if i % 4 == 3:
            name = EFFECTS[i // 4]
            lines += [f"  - {{id: {name}, uses: shell, with: {{cmd: [sh, -c, 'echo {name} >> effects.txt']}}}}"]
    return "\n".join(lines) + "\n"


def _workspace(root: Path) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "runbook.yaml").write_text(
        'project: Crash\nplan:\n  - group: "1"\n    phases:\n      - {id: "1.1", title: Group commit}\n'
        "default_target: local\ntargets:\n  local:\n    kind: local\n",
        encoding="utf-8",
    )
    (root / "runbooks" / "phase-1.1.yaml").write_text(_runbook(), encoding="utf-8")
    return root


def _run(ws: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("RUNBOOK_TEST_KILL_AT", None)
    if kill_at:
        env["RUNBOOK_TEST_KILL_AT"] = kill_at
    return subprocess.run([*RUN, *args], cwd=ws, env=env, capture_output=True, text=True, timeout=240, check=False)


def _whole_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_at_any_append_loses_no_written_line_and_resume_repeats_no_completed_step(tmp_path: Path) -> None:
    reference = _workspace(tmp_path / "reference")
    done = _run(reference, "run", "1.1", "--no-report")
    assert done.returncode == 0, done.stderr
    (record_path,) = record_paths(reference / "reports", "1.1")
    log = reference / "reports" / "timestamps" / "execution-log.jsonl"
    appends = _whole_lines(record_path) + _whole_lines(log)  # every append is a record or a log line
    assert appends == 2 + 2 * (2 * 12 + 3) + 2  # log start, run_started, 27 steps, run_finished, log end

    # The append order: run_started, the log's start line, the other record lines, the log's end line.
    # Besides random points, kill at each shell step's end line (the step ran, its end is torn).
    events = read_record(record_path).events
    ends = [k + 1 for k, e in enumerate(events, start=1) if e.get("event") == "step_finished" and e["step"] in EFFECTS]
    assert len(ends) == len(EFFECTS)
    rng = random.Random(20261201)
    points = sorted({1, 2, appends, *ends, *rng.sample(range(3, appends), 7)})
    in_flight_kills: list[str | None] = []
    for n in points:
        ws = _workspace(tmp_path / f"kill-{n}")
        killed = _run(ws, "run", "1.1", "--no-report", kill_at=f"record-append:{n}")
        assert killed.returncode == -9, (n, killed.stderr)
        paths = record_paths(ws / "reports", "1.1")
        log = ws / "reports" / "timestamps" / "execution-log.jsonl"
        # Nothing written before the kill is gone: exactly n - 1 whole lines, and the torn half of the n-th.
        assert sum(_whole_lines(p) for p in paths) + _whole_lines(log) == n - 1, n
        before = read_record(paths[0]) if paths else None
        if before is not None:
            assert all("torn last line" in w for w in before.warnings), before.warnings
        completed = {
            e["step"]
            for e in (before.events if before else [])
            if e.get("event") == "step_finished" and e.get("status") in ("ok", "changed")
        }
        started = [e["step"] for e in (before.events if before else []) if e.get("event") == "step_started"]
        in_flight = started[-1] if started and started[-1] not in completed else None

        if not paths:  # killed before the record's first line was whole: nothing to resume
            resumed = _run(ws, "run", "1.1", "--no-report")
        else:
            resumed = _run(ws, "run", "1.1", "--resume", "--no-report")
        assert resumed.returncode == 0, (n, resumed.stderr)

        (path,) = record_paths(ws / "reports", "1.1")
        record = read_record(path)
        assert record.status == "success"
        ran = Counter(
            e["step"]
            for e in record.events
            if e.get("event") == "step_finished" and e.get("status") in ("ok", "changed")
        )
        restored = {e["step"] for e in record.events if e.get("event") == "step_restored"}
        # every step completed exactly once over both runs; what completed before the kill was restored
        assert all(count == 1 for count in ran.values()) and len(ran) == 2 * 12 + 3, (n, ran)
        assert completed == restored, (
            f"kill {n}: completed before the kill {sorted(completed)}, restored {sorted(restored)}"
        )
        effects = Counter((ws / "effects.txt").read_text().split())
        for name in EFFECTS:
            assert effects[name] == (2 if name == in_flight else 1), (n, name, effects, in_flight)
        in_flight_kills.append(in_flight)
        lines, warnings = read_log(ws / "reports" / "timestamps" / "execution-log.jsonl")
        assert [line.action for line in lines][-1] == "complete" and all("skipped" in w for w in warnings)
    assert sorted(name for name in in_flight_kills if name in EFFECTS) == sorted(EFFECTS), in_flight_kills


REPRODUCED = """\
phase: "1.1"
title: Killed while reproducing
fix:
  - {id: repair, uses: shell, with: {cmd: [sh, -c, 'echo fixed > state.txt']}}
verify:
  - id: read-state
    uses: shell
    changes: false
    with: {cmd: [cat, state.txt]}
    register: state
  - id: state-is-fixed
    uses: assert
    with: {that: "{{ state.stdout | trim == 'fixed' }}"}
"""


def test_a_kill_between_reproduce_steps_resumes_with_their_registered_values(tmp_path: Path) -> None:
    """Reproduce steps register like any step; a resumed run restores them so the next reproduce step
    still sees what they registered (it used to find the name undefined and call the fault unchecked)."""

    def workspace(name: str) -> Path:
        ws = _workspace(tmp_path / name)
        (ws / "runbooks" / "phase-1.1.yaml").write_text(REPRODUCED, encoding="utf-8")
        (ws / "state.txt").write_text("broken\\n", encoding="utf-8")
        return ws

    reference = workspace("reference")
    done = _run(reference, "run", "1.1", "--no-report")
    assert done.returncode == 0, done.stderr
    (record_path,) = record_paths(reference / "reports", "1.1")
    events = read_record(record_path).events
    # +1 for the timestamp log's start line, appended after run_started; the kill point is the line after
    # reproduce's read-state finished, so that step is whole in the record and state-is-fixed is not.
    finished = next(
        k for k, e in enumerate(events, start=1)
        if e.get("event") == "step_finished" and e.get("stage") == "reproduce" and e["step"] == "read-state"
    )
    ws = workspace("killed")
    killed = _run(ws, "run", "1.1", "--no-report", kill_at=f"record-append:{finished + 2}")
    assert killed.returncode == -9, killed.stderr
    resumed = _run(ws, "run", "1.1", "--resume", "--no-report")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    (path,) = record_paths(ws / "reports", "1.1")
    record = read_record(path)
    assert record.status == "success"
    restored = [(e["stage"], e["step"]) for e in record.events if e.get("event") == "step_restored"]
    assert restored == [("reproduce", "read-state")]
    check = next(e for e in record.events if e.get("event") == "step_finished" and e["step"] == "state-is-fixed")
    assert check["stage"] == "reproduce" and check["status"] == "failed"  # the fault, seen through `state`
    assert "could not check the fault" not in resumed.stdout + resumed.stderr
