"""Phase states through the real timestamp log, and `runbook status` (text and JSON) on top of them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import invoke
from runbook import record, status
from runbook.progress import GroupProgress, PhaseProgress, compute_progress
from runbook.record import read_log
from runbook.workspace import load_workspace

LOG = Path("reports") / "timestamps" / "execution-log.jsonl"
SEED_LINE = {
    "timestamp": "2025-11-14T04:20:00Z",
    "phase": "1.5",
    "action": "complete",
    "description": "Image generation fixed: FLUX-1.1-pro with deployment-style URLs",
    "cells_fixed": [109, 130, 171],
    "status": "SUCCESS",
}


def groups(root: Path) -> list[GroupProgress]:
    return compute_progress(load_workspace(root))


def phase(root: Path, phase_id: str) -> PhaseProgress:
    for group in groups(root):
        for item in group.phases:
            if item.id == phase_id:
                return item
    raise AssertionError(f"no phase {phase_id}")


def log(root: Path, *args: str) -> None:
    result = invoke(["log", *args], cwd=root)
    assert result.exit_code == 0, result.output


def append_raw(root: Path, *lines: str | dict[str, object]) -> Path:
    path = root / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write((json.dumps(line) if isinstance(line, dict) else line) + "\n")
    return path


# ---------------------------------------------------------------- each state transition


def test_a_phase_without_lines_is_not_started(sample: Path) -> None:
    item = phase(sample, "1.5")
    assert item.state == "not_started" and item.label == "NOT STARTED"
    assert item.runs == 0 and item.finished_at is None and not item.regressed


def test_start_puts_a_phase_in_progress(sample: Path) -> None:
    log(sample, "1.5", "start", "-m", "discovery begins")
    item = phase(sample, "1.5")
    assert item.state == "in_progress" and item.started_at is not None and item.runs == 1


def test_complete_resolves_it_with_its_cells(sample: Path) -> None:
    log(sample, "1.5", "start", "-m", "discovery begins")
    log(sample, "1.5", "complete", "-m", "FLUX models", "--cells", "109,130,171")
    item = phase(sample, "1.5")
    assert item.state == "resolved" and item.cells_fixed == [109, 130, 171]
    assert item.duration_s is not None and item.duration_s >= 0
    assert item.resolved_at == item.finished_at


def test_fail_marks_it_failed(sample: Path) -> None:
    log(sample, "1.6", "start", "-m", "backend services")
    log(sample, "1.6", "fail", "-m", "cell 154 still 500s")
    item = phase(sample, "1.6")
    assert item.state == "failed" and item.label == "FAILED" and not item.regressed


def test_a_failure_after_success_is_failed_and_regressed_until_resolved_again(sample: Path) -> None:
    log(sample, "1.5", "complete", "-m", "resolved")
    log(sample, "1.5", "start", "-m", "re-run after a redeploy")
    log(sample, "1.5", "fail", "-m", "FLUX deployment gone")
    item = phase(sample, "1.5")
    assert item.state == "failed" and item.regressed
    result = invoke(["status"], cwd=sample)
    assert "FAILED (regressed)" in result.stdout

    log(sample, "1.5", "complete", "-m", "redeployed")
    item = phase(sample, "1.5")
    assert item.state == "resolved" and not item.regressed and item.runs == 3


def test_a_hand_written_line_in_the_seed_shape_resolves_the_phase_and_keeps_extra_keys(sample: Path) -> None:
    append_raw(sample, {**SEED_LINE, "operator": "on-call", "duration_s": 1200})
    lines, warnings = read_log(sample / LOG)
    assert not warnings
    assert lines[0].extra == {"operator": "on-call", "duration_s": 1200}
    item = phase(sample, "1.5")
    assert item.state == "resolved"
    assert item.cells_fixed == [109, 130, 171]
    assert item.description == SEED_LINE["description"]
    assert item.duration_s == 1200.0
    assert record.iso(item.finished_at) == "2025-11-14T04:20:00.000Z"  # type: ignore[arg-type]
    data = json.loads(invoke(["status", "1.5", "--json"], cwd=sample).stdout)
    assert data["log"][0]["operator"] == "on-call"  # unknown keys survive into the JSON


def test_a_hand_written_complete_without_start_does_not_inherit_the_previous_run(sample: Path) -> None:
    log(sample, "1.5", "start", "-m", "first attempt")
    log(sample, "1.5", "fail", "-m", "broken")
    append_raw(
        sample, {"timestamp": "2099-01-01T00:00:00Z", "phase": "1.5", "action": "complete", "description": "by hand"}
    )
    item = phase(sample, "1.5")
    assert item.state == "resolved"
    assert item.duration_s is None and item.run_id is None and item.started_at is None
    assert item.cells_fixed == []  # a complete line without cells fixes none


def test_malformed_lines_are_skipped_with_a_warning_naming_the_line(sample: Path) -> None:
    path = append_raw(
        sample,
        SEED_LINE,
        '{"timestamp": "2025-11-14T05:00:00Z", "phase": "1.6"',  # torn
        {"timestamp": "2025-11-14T05:01:00Z", "action": "start"},  # no phase
        {"timestamp": "2025-11-14T05:02:00Z", "phase": "1.6", "action": "celebrate"},
        "",
        {"timestamp": "2025-11-14T05:03:00Z", "phase": "1.4", "action": "complete", "description": "ok"},
    )
    lines, warnings = read_log(path)
    assert [line.line for line in lines] == [1, 6]
    assert [w.split(": ")[0] for w in warnings] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "missing phase" in warnings[1] and "celebrate" in warnings[2]

    result = invoke(["status"], cwd=sample)
    assert result.exit_code == 0
    assert f"warning: {path}:2: skipped timestamp-log line" in result.stderr
    assert "warning" not in result.stdout
    assert "25% (2/8 subphases complete)" in result.stdout
    data = json.loads(invoke(["status", "--json"], cwd=sample).stdout)
    assert len(data["warnings"]) == 3


# ---------------------------------------------------------------- the status screen


def test_five_of_eight_resolved_through_the_cli_is_62_5_percent(sample: Path) -> None:
    for phase_id in ("1.1", "1.2", "1.3", "1.4", "1.5"):
        log(sample, phase_id, "complete", "-m", f"phase {phase_id} verified")
    (group,) = groups(sample)
    assert group.line == "Phase 1 Progress: 62.5% (5/8 subphases complete)"
    result = invoke(["status"], cwd=sample)
    assert result.exit_code == 0, result.output
    assert "[#####---] 62.5% (5/8 subphases complete)" in result.stdout
    assert "\033[" not in result.stdout  # no colour off a terminal


def test_status_json_agrees_with_the_text_and_with_compute_progress(sample: Path) -> None:
    log(sample, "1.1", "complete", "-m", "env loads", "--cells", "3,4")
    log(sample, "1.2", "start", "-m", "mcp")
    log(sample, "1.3", "fail", "-m", "routing")
    append_raw(sample, SEED_LINE)
    text = invoke(["status"], cwd=sample).stdout
    data = json.loads(invoke(["status", "--json"], cwd=sample).stdout)

    assert data["groups"] == [group.to_dict() for group in groups(sample)]
    (group,) = data["groups"]
    assert (group["resolved"], group["total"], group["percent_text"]) == (2, 8, "25")
    assert f"{group['percent_text']}% ({group['resolved']}/{group['total']} subphases complete)" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  1.")}
    for item in group["phases"]:
        row = rows[item["id"]]
        assert item["title"] in row and item["label"] in row
    assert "109, 130, 171" in rows["1.5"] and "2025-11-14 04:20:00Z" in rows["1.5"]
    assert "3, 4" in rows["1.1"]


def test_colour_only_when_asked(sample: Path) -> None:
    log(sample, "1.1", "complete", "-m", "done")
    view = status.workspace_status(load_workspace(sample))
    assert "\033[32m" in status.render_status(view, colour=True)
    assert "\033[" not in status.render_status(view, colour=False)


def test_progress_bar_has_one_mark_per_phase_scaled_for_big_groups() -> None:
    assert status.progress_bar(5, 8) == "[#####---]"
    assert status.progress_bar(0, 8) == "[--------]"
    assert status.progress_bar(8, 8) == "[########]"
    assert status.progress_bar(1, 200) == "[#" + "-" * 39 + "]"
    assert status.progress_bar(199, 200) == "[" + "#" * 39 + "-]"
    assert status.format_duration(1200) == "20 minutes"  # the reports' and the site's duration text
    assert status.format_duration(0.5) == "0.5 s"
    assert status.format_duration(None) == "—"


SIMPLE = """\
phase: "1.2"
title: Second
discovery:
  - id: look
    uses: set
    with: {found: 1}
fix:
  - id: change
    uses: set
    with: {fixed: true}
verify:
  - id: check
    uses: assert
    with:
      that: ["{{ steps.change is defined and steps.change.output.fixed }}"]
"""


def test_status_of_one_phase_lists_its_runs_from_their_records(local_workspace: Path) -> None:
    (local_workspace / "runbooks" / "phase-1.2.yaml").write_text(textwrap.dedent(SIMPLE), encoding="utf-8")
    for _ in range(2):
        result = invoke(["run", "1.2", "--no-report"], cwd=local_workspace)
        assert result.exit_code == 0, result.output

    text = invoke(["status", "1.2"], cwd=local_workspace)
    assert text.exit_code == 0, text.output
    data = json.loads(invoke(["status", "phase-1.2", "--json"], cwd=local_workspace).stdout)
    assert data["phase"]["state"] == "resolved" and data["runbook"] == "runbooks/phase-1.2.yaml"
    assert data["group"]["line"] == "Phase 1 Progress: 33.3% (1/3 subphases complete)"
    assert len(data["runs"]) == 2 and [line["action"] for line in data["log"]] == ["start", "complete"] * 2
    for run in data["runs"]:
        assert run["status"] == "success" and run["steps"]["ok"] == 3 and run["steps"]["failed"] == 0
        assert run["run_id"] in text.stdout
    assert "Runs (2):" in text.stdout and "Phase 1 Progress: 33.3% (1/3 subphases complete)" in text.stdout


def test_a_run_record_cut_short_counts_the_steps_it_has(local_workspace: Path) -> None:
    path = local_workspace / "reports" / "runs" / "1.1" / "20251114T041500000Z-abc123.jsonl"
    path.parent.mkdir(parents=True)
    events = [
        {
            "event": "run_started",
            "run_id": "20251114T041500000Z-abc123",
            "phase": "1.1",
            "time": "2025-11-14T04:15:00.000Z",
        },
        {"event": "step_finished", "stage": "discovery", "step": "a", "status": "ok"},
        {"event": "step_finished", "stage": "reproduce", "step": "b", "status": "failed"},
        {"event": "step_finished", "stage": "fix", "step": "c", "status": "changed"},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "step_fin', encoding="utf-8")
    runs, warnings = status.phase_runs(load_workspace(local_workspace), "1.1")
    assert runs[0].status == "incomplete" and runs[0].finished_at is None
    assert (runs[0].steps["ok"], runs[0].steps["changed"], runs[0].steps["failed"]) == (1, 1, 0)
    assert "torn last line" in warnings[0]


def test_status_of_an_unknown_phase_suggests_one(sample: Path) -> None:
    result = invoke(["status", "1.55"], cwd=sample)
    assert result.exit_code == 2
    assert "did you mean 1.5" in result.stderr


def test_the_overview_reads_no_run_record(local_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (local_workspace / "runbooks" / "phase-1.2.yaml").write_text(textwrap.dedent(SIMPLE), encoding="utf-8")
    assert invoke(["run", "1.2", "--no-report"], cwd=local_workspace).exit_code == 0

    def refuse(path: Path) -> object:
        raise AssertionError(f"the overview read {path}")

    monkeypatch.setattr(record, "read_record", refuse)  # status and progress import it when they read one
    result = invoke(["status"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert "33.3% (1/3 subphases complete)" in result.stdout
