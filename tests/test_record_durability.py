"""The run record's durability policy: which lines share an fsync, and which never wait for one.

Every record line is one write(2) at once (a SIGKILL never loses it: tests/test_crash_group_commit.py);
fsync only matters when the machine goes down. These tests trace the run's own write(2) and fsync(2)
calls on its record file (the real calls, observed, not replaced) and check the promise of
runbook.record against the trace: after a step that can act outside the process its end line is on
disk before anything else is written; everything before such a step is on disk before it starts; a
stage's lines are on disk before the next stage's first line; `run_started` and `run_finished` at
once; and lines of in-process steps (`set`, `assert`), skipped and restored steps share fsyncs.
"""

from __future__ import annotations

import itertools
import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import invoke
from runbook.record import RecordWriter, StepFinished, StepStarted, read_record, record_paths

RUNBOOK = """\
phase: "1.1"
title: Durability
vars: {base: 7}
discovery:
  - {id: d-set, uses: set, with: {a: "{{ base }}"}, register: found}
  - {id: d-check, uses: assert, with: {that: "{{ found.a == 7 }}"}}
fix:
  - {id: s1, uses: set, with: {b: 1}}
  - {id: s2, uses: set, with: {b: 2}}
  - {id: s3, uses: assert, with: {that: "{{ base == 7 }}"}}
  - id: effect-1
    uses: shell
    with: {cmd: [sh, -c, "echo effect-1 >> effects.txt"]}
  - {id: s4, uses: set, with: {b: 4}}
  - {id: not-now, uses: shell, when: "false", with: {cmd: [sh, -c, "echo never >> effects.txt"]}}
  - {id: s5, uses: set, with: {b: 5}}
  - {id: s6, uses: set, with: {b: 6}}
  - id: effect-2
    uses: shell
    with: {cmd: [sh, -c, "echo effect-2 >> effects.txt"]}
  - {id: s7, uses: set, with: {b: 7}}
verify:
  - {id: v1, uses: assert, with: {that: "{{ base + 1 == 8 }}"}}
  - {id: v2, uses: assert, with: {that: "{{ found.a == base }}"}}
"""
SIDE_EFFECTS = {"effect-1", "effect-2", "not-now"}


@dataclass
class Line:
    event: dict
    start: int
    end: int
    durable_before_next: int  # bytes of the file fsynced when the next line was written (or at the end)


def _trace(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[tuple[str, int]]:
    """Watch write(2)/fsync(2) on files under `folder`: ("write", size after) and ("fsync", size)."""
    trace: list[tuple[str, int]] = []
    real_write, real_fsync = os.write, os.fsync

    def ours(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
        except OSError:
            return False

    def write(fd: int, data: bytes) -> int:
        written = real_write(fd, data)
        if ours(fd):
            trace.append(("write", os.fstat(fd).st_size))
        return written

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if ours(fd):
            trace.append(("fsync", os.fstat(fd).st_size))

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    return trace


def _lines(path: Path, trace: list[tuple[str, int]]) -> list[Line]:
    data = path.read_bytes()
    events = [json.loads(line) for line in data.splitlines()]
    ends = [size for kind, size in trace if kind == "write"]
    assert len(ends) == len(events), "one write(2) per line"
    lines: list[Line] = []
    durable = 0
    index = -1
    for kind, size in [*trace, ("end", len(data))]:
        if kind == "fsync":
            durable = size
            continue
        if index >= 0:
            lines[index].durable_before_next = durable
        if kind == "write":
            index += 1
            start = ends[index - 1] if index else 0
            lines.append(Line(events[index], start, size, 0))
    return lines


def test_lines_of_in_process_steps_share_fsyncs_and_side_effects_never_wait(
    local_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(RUNBOOK, encoding="utf-8")
    trace = _trace(monkeypatch, local_workspace / "reports" / "runs")
    result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    (path,) = record_paths(local_workspace / "reports", "1.1")
    lines = _lines(path, trace)
    kinds = [line.event["event"] for line in lines]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert (local_workspace / "effects.txt").read_text() == "effect-1\neffect-2\n"

    size = path.stat().st_size
    assert lines[-1].durable_before_next == size, "run_finished is on disk when the run returns"
    assert lines[0].durable_before_next >= lines[0].end, "run_started is on disk before the first step"
    for before, line in itertools.pairwise(lines):
        event, stage = line.event, line.event.get("stage")
        if before.event.get("stage") and stage and stage != before.event["stage"]:
            assert before.durable_before_next >= before.end, f"stage {before.event['stage']} on disk before {stage}"
        if event.get("step") in SIDE_EFFECTS and event["event"] == "step_started":
            # everything before a step that may act outside the process is on disk before it starts
            assert line.durable_before_next >= line.start, f"lines before {event['step']} not fsynced first"
        if event.get("step") in SIDE_EFFECTS and event["event"] == "step_finished" and event["status"] != "skipped":
            assert line.durable_before_next >= line.end, f"{event['step']}'s result not fsynced before the next step"

    # In-process steps (set/assert) and the skipped one did not get an fsync each.
    fsyncs = sum(1 for kind, _ in trace if kind == "fsync")
    finished = kinds.count("step_finished")
    assert finished == 2 + 10 + 2 + 2  # discovery, fix, verify and reproduce (the verify steps, before the fix)
    # run_started + run_finished, 3 stage changes, effect-1 and effect-2 before and after, not-now before,
    # the note (the verify steps passed before the fix); one more if a group ran past GROUP_SECONDS
    assert 2 + 3 + 5 + 1 <= fsyncs <= 2 + 3 + 5 + 1 + 1, f"{fsyncs} fsyncs for {len(lines)} lines"
    unsynced_after = [line for line in lines if line.durable_before_next < line.end]
    assert any(line.event.get("step") == "s1" for line in unsynced_after), "set steps share an fsync"


def test_without_a_classifier_every_step_result_is_fsynced_before_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runs" / "r.jsonl"
    trace = _trace(monkeypatch, tmp_path)
    writer = RecordWriter(path)
    for i in range(3):
        writer.write(StepStarted(stage="fix", step=f"s{i}", uses="set"))
        writer.write(StepFinished(stage="fix", step=f"s{i}", uses="set", status="ok"))
    writer.close()
    monkeypatch.undo()
    assert [kind for kind, _ in trace] == ["write", "write", "fsync"] * 3


def test_grouped_lines_are_fsynced_after_at_most_group_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs" / "r.jsonl"
    trace = _trace(monkeypatch, tmp_path)
    writer = RecordWriter(path, in_process=lambda uses: uses == "set")
    monkeypatch.setattr(writer, "GROUP_LINES", 5)
    monkeypatch.setattr(writer, "GROUP_SECONDS", 3600.0)
    for i in range(10):
        writer.write(StepStarted(stage="fix", step=f"s{i}", uses="set"))
        writer.write(StepFinished(stage="fix", step=f"s{i}", uses="set", status="ok"))
    unsynced = path.stat().st_size - max((size for kind, size in trace if kind == "fsync"), default=0)
    writer.close()
    monkeypatch.undo()
    runs, pending = [], 0
    for kind, _ in trace:
        if kind == "fsync":
            runs.append(pending)
            pending = 0
        else:
            pending += 1
    # the check is made at a step's end line: at most GROUP_LINES + 1 lines wait (a start line rides along)
    assert runs == [6, 6, 6, 2], runs
    assert unsynced > 0  # the last lines waited for the next fsync...
    assert read_record(path).warnings == []  # ...and the file is whole JSONL all the time


def test_a_record_with_a_torn_tail_gets_its_next_line_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(textwrap.dedent('{"event":"step_started","stage":"fix","step":"a"}\n{"event":"step_fin'))
    writer = RecordWriter(path, in_process=lambda _uses: True)
    writer.write(StepFinished(stage="fix", step="a", uses="set", status="ok"))
    writer.write(StepFinished(stage="fix", step="b", uses="set", status="ok"))
    writer.close()
    record = read_record(path)
    assert [e.get("step") for e in record.events] == ["a", "a", "b"]
    assert len(record.warnings) == 1 and ":2: unreadable line" in record.warnings[0]


def test_a_run_keeps_the_collector_off_older_objects_and_leaves_it_as_it_found_it(
    local_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor freezes what existed before the run while it runs (a full collection would walk
    every node of a big runbook again) and gives it back after; a freeze made by someone else stays."""
    import gc

    from runbook.executor import Executor

    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(RUNBOOK, encoding="utf-8")
    seen: list[int] = []
    plan = Executor._plan

    def spy(self: Executor) -> object:
        seen.append(gc.get_freeze_count())
        return plan(self)

    monkeypatch.setattr(Executor, "_plan", spy)
    gc.unfreeze()
    before = [object() for _ in range(10)]
    assert invoke(["run", "1.1", "--no-report"], cwd=local_workspace).exit_code == 0
    assert seen[0] >= len(before), "objects from before the run were frozen while it ran"
    assert gc.get_freeze_count() == 0, "and given back to the collector when it ended"

    gc.freeze()  # someone else's (a fork server's) freeze
    try:
        frozen = gc.get_freeze_count()
        assert invoke(["run", "1.1", "--no-report"], cwd=local_workspace).exit_code == 0
        # Frozen objects the run frees (a replaced cache entry) leave the count; an unfreeze would empty it.
        assert gc.get_freeze_count() > frozen // 2, "another freeze is left as it was"
    finally:
        gc.unfreeze()
