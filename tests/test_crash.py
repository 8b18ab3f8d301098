"""Crash consistency: phase 1.5 killed (SIGKILL) at random points, then resumed, many times.

Each episode copies the sample workspace, starts `runbook run phase-1.5` as a real process and kills
it: after a random delay, or at the N-th record append (leaving a torn line) or the N-th atomic file
write (leaving a half-written temporary file) through the `RUNBOOK_TEST_KILL_AT` hook of
`runbook.atomic.crash_point`. Some episodes kill the resumed runs too. After every kill the notebook
must be byte-for-byte one of the states the fix steps produce (never half of one), every run record
and the timestamp log must read (a torn last line reported and ignored), and `--resume` must then
finish the run: exit 0, the fixed notebook, one run id, no completed step executed twice.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import copy_sample, invoke
from runbook.record import read_log, read_record, record_paths

pytestmark = [pytest.mark.slow, pytest.mark.kernel]

NOTEBOOK = Path("notebooks/master-ai-gateway-fix-MCP.ipynb")
FIX_STEPS = ("fix-config-cell", "fix-test-cell", "fix-minimal-cell")
KILLS_WANTED = int(os.environ.get("RUNBOOK_CRASH_KILLS", "54"))
SEED = 1234
RUN = [sys.executable, "-c", "from runbook.cli import main; main()"]


@dataclass
class Reference:
    """A pristine workspace, the notebook states the fix may leave, and how long a run is."""

    base: Path
    states: list[bytes]
    env_after: bytes
    appends: int
    atomic_writes: int
    duration: float
    steps: list[tuple[str, str]]


@dataclass
class Tally:
    kills: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    episodes: int = 0
    resumes: int = 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    from runbook import atomic

    root = tmp_path_factory.mktemp("crash")
    base = copy_sample(root / "base")
    states = [(base / NOTEBOOK).read_bytes()]

    # One full run in-process, counting the crash points it passes (the hook counts, never kills).
    ref = root / "ref"
    shutil.copytree(base, ref)
    atomic._crash_counts.clear()
    os.environ[atomic.KILL_AT_VARIABLE] = "count-only:0"
    try:
        started = time.monotonic()
        result = invoke(["run", "phase-1.5"], cwd=ref)
        elapsed = time.monotonic() - started
    finally:
        del os.environ[atomic.KILL_AT_VARIABLE]
    assert result.exit_code == 0, result.output
    counts = dict(atomic._crash_counts)
    record = read_record(record_paths(ref / "reports", "1.5")[-1])
    steps = [(str(e["stage"]), str(e["step"])) for e in record.step_results()]

    # The notebook after each fix step, one at a time (outputs of discovery come from ref's record).
    steps_ws = root / "steps"
    shutil.copytree(base, steps_ws)
    shutil.copytree(ref / "reports" / "runs", steps_ws / "reports" / "runs")
    for step in FIX_STEPS:
        done = invoke(["run", "phase-1.5", "--step", step, "--no-report"], cwd=steps_ws)
        assert done.exit_code == 0, done.output
        states.append((steps_ws / NOTEBOOK).read_bytes())
    assert states[-1] == (ref / NOTEBOOK).read_bytes()
    assert len(set(states)) == 4, "each fix step changes the notebook"

    startup = time.monotonic()
    subprocess.run([*RUN, "--version"], check=True, capture_output=True)
    return Reference(
        base=base,
        states=states,
        env_after=(ref / ".env").read_bytes(),
        appends=counts["record-append"],
        atomic_writes=counts["atomic-write"],
        duration=elapsed + (time.monotonic() - startup),
        steps=steps,
    )


def _run(ws: Path, args: list[str], log: Path, *, kill_at: str | None = None, delay: float | None = None) -> int:
    """Run `runbook ARGS` in `ws`; -9 when it was killed (by the hook or after `delay` seconds)."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("RUNBOOK_TEST_KILL_AT", None)
    if kill_at:
        env["RUNBOOK_TEST_KILL_AT"] = kill_at
    with log.open("ab") as out:
        out.write(f"\n$ runbook {' '.join(args)}  [{kill_at or delay or 'no kill'}]\n".encode())
        out.flush()
        process = subprocess.Popen([*RUN, *args], cwd=ws, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            return process.wait(timeout=delay if delay is not None else 240)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            # Reaped before anyone looks at the lock: a zombie would still count as alive.
            process.wait(30)
            return -9


def _stage_of_kill(ws: Path) -> str:
    """Where the run was when it died, from what its record says."""
    paths = record_paths(ws / "reports", "1.5")
    if not paths:
        return "before-record"
    events = read_record(paths[-1]).events
    if not events:
        return "before-record"
    last = events[-1]
    if any(e.get("event") == "run_finished" for e in events):
        return "after-run"
    if last.get("event") == "step_started":
        return f"in-{last['stage']}"
    if last.get("event") in ("step_finished", "step_restored"):
        return f"after-{last['stage']}"
    return "run-start"


def _check_after_kill(ws: Path, ref: Reference, log: Path) -> None:
    text = log.read_text(errors="replace")
    notebook = (ws / NOTEBOOK).read_bytes()
    json.loads(notebook)
    assert notebook in ref.states, f"the notebook is none of the states the fix steps leave\n{text}"
    env = ws / ".env"
    assert not env.exists() or env.read_bytes() == ref.env_after, text
    for path in record_paths(ws / "reports", "1.5"):
        record = read_record(path)
        for warning in record.warnings:
            assert "torn last line" in warning and warning.startswith(str(path)), warning
    _lines, warnings = read_log(ws / "reports" / "timestamps" / "execution-log.jsonl")
    for warning in warnings:
        assert "execution-log.jsonl:" in warning and "skipped timestamp-log line" in warning, warning


def _check_finished(ws: Path, ref: Reference, log: Path) -> None:
    text = log.read_text(errors="replace")
    assert (ws / NOTEBOOK).read_bytes() == ref.states[-1], text
    assert (ws / ".env").read_bytes() == ref.env_after, text
    assert not (ws / ".runbook.lock").exists(), text
    (path,) = record_paths(ws / "reports", "1.5")
    record = read_record(path)
    assert not record.warnings, record.warnings
    assert record.status == "success", text
    assert [e["event"] for e in record.events].count("run_started") == 1, text
    assert {e.get("run_id") for e in record.events if "run_id" in e} == {path.stem}
    executed = Counter(
        (e["stage"], e["step"])
        for e in record.events
        if e.get("event") == "step_finished" and e.get("status") in ("ok", "changed", "failed")
    )
    assert all(n == 1 for n in executed.values()), f"a completed step ran again: {executed}\n{text}"
    final = {(e["stage"], e["step"]): e for e in record.events if e.get("event") in ("step_finished", "step_restored")}
    assert sorted(final) == sorted(ref.steps), text
    lines, _warnings = read_log(ws / "reports" / "timestamps" / "execution-log.jsonl")
    mine = [(line.action, line.run_id) for line in lines]
    assert mine == [("start", path.stem), ("complete", path.stem)], f"{mine}\n{text}"
    report = (ws / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    assert path.stem in report


def _episode(ref: Reference, ws: Path, rng: random.Random, tally: Tally, kills_here: int) -> None:
    shutil.copytree(ref.base, ws)
    log = ws.parent / f"{ws.name}.log"
    args = ["run", "phase-1.5"]
    for attempt in range(kills_here + 1):
        killing = attempt < kills_here
        mode = rng.choices(["timer", "record-append", "atomic-write"], weights=[35, 40, 25])[0] if killing else "none"
        if mode == "timer":
            code = _run(ws, args, log, delay=rng.uniform(0.3, ref.duration))
        elif mode == "record-append":
            code = _run(ws, args, log, kill_at=f"record-append:{rng.randint(1, ref.appends)}")
        elif mode == "atomic-write":
            code = _run(ws, args, log, kill_at=f"atomic-write:{rng.randint(1, ref.atomic_writes)}")
        else:
            code = _run(ws, args, log)
        if code != -9:
            break  # it finished before the kill point came
        tally.kills += 1
        leftovers = list((ws / NOTEBOOK).parent.glob(f".{NOTEBOOK.name}.*.tmp"))
        tally.modes["notebook-write" if mode == "atomic-write" and leftovers else mode] += 1
        tally.stages[_stage_of_kill(ws)] += 1
        _check_after_kill(ws, ref, log)
        args = ["run", "phase-1.5", "--resume"]
        if not record_paths(ws / "reports", "1.5"):
            # Killed before the record had a byte: nothing ran, so there is nothing to resume.
            nothing = subprocess.run([*RUN, *args], cwd=ws, capture_output=True, text=True, check=False)
            assert nothing.returncode == 2 and "nothing to resume" in nothing.stderr, nothing.stderr
            assert "runbook run 1.5" in nothing.stderr
            args = ["run", "phase-1.5"]
        else:
            tally.resumes += 1
    else:
        pytest.fail("the last attempt of an episode never kills")
    text = log.read_text(errors="replace")
    if code == 2 and "nothing to resume" in text.rsplit("$ runbook", 1)[-1]:
        # Killed while writing the pages, after the timestamp log says complete: the run is over;
        # its pages are rewritten from the record by the report commands.
        for command in (["report", "phase-1.5"], ["changelog"], ["timeline"]):
            assert _run(ws, command, log) == 0, log.read_text(errors="replace")
        code = 0
    assert code == 0, text
    _check_finished(ws, ref, log)
    tally.episodes += 1


@pytest.mark.timeout(900)
def test_sigkill_anywhere_then_resume_finishes_the_run(reference: Reference, tmp_path: Path) -> None:
    master = random.Random(SEED)
    tally = Tally()
    lock = threading.Lock()

    def one(number: int, seed: int) -> None:
        rng = random.Random(seed)
        local = Tally()
        _episode(reference, tmp_path / f"ep{number:03d}", rng, local, rng.choices([1, 2, 3], weights=[30, 35, 35])[0])
        with lock:
            tally.kills += local.kills
            tally.episodes += local.episodes
            tally.resumes += local.resumes
            tally.modes.update(local.modes)
            tally.stages.update(local.stages)

    # Two episodes at a time (one per core), each with its own seed drawn from the fixed master seed.
    episode = 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        while tally.kills < KILLS_WANTED:
            assert episode < 3 * KILLS_WANTED, "too few attempts were killed"
            batch = [pool.submit(one, episode + i, master.randrange(2**32)) for i in (1, 2)]
            episode += 2
            for future in batch:
                future.result()
    print(f"\ncrash harness: {tally.kills} kills in {tally.episodes} episodes, {tally.resumes} resumes")
    print(f"  modes: {dict(tally.modes)}\n  stages: {dict(tally.stages)}")
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("ep*.log"))
    assert "cut a torn last line left by the interrupted run" in logs
    assert "taking over a stale lock left by pid" in logs
    # The kills landed everywhere that matters.
    assert tally.modes["notebook-write"] >= 2, tally.modes
    assert tally.modes["record-append"] >= 10 and tally.modes["timer"] >= 10, tally.modes
    for stage in ("discovery", "reproduce", "fix", "verify"):
        assert tally.stages[f"in-{stage}"] + tally.stages[f"after-{stage}"] >= 1, (stage, tally.stages)
    assert tally.stages["after-run"] >= 1, tally.stages
