"""Hostile and broken input through the command line: never a traceback, always what and where.

Malformed notebooks reached by a run, malformed estate files (`runbook emulator --estate`, a target's
`estate:`), malformed timestamp-log lines and run records, a broken workspace config or `.env`, and
hostile command-line values. The property-based fuzzing of runbooks is in test_fuzz.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from conftest import copy_sample, invoke
from runbook.record import read_log, read_record, record_paths

LOCATED = re.compile(r"^[^:\s]+:\d+(:\d+)?: ")


def no_traceback(result) -> None:
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output


def write_runbook(root: Path, phase: str, text: str) -> None:
    (root / "runbooks" / f"phase-{phase}.yaml").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------ notebooks


def _good_notebook() -> str:
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Lab"), nbformat.v4.new_code_cell('MODEL = "dall-e-3"\nprint(MODEL)')]
    )
    return nbformat.writes(nb)


def _duplicate_ids(text: str) -> str:
    data = json.loads(text)
    data["cells"][1]["id"] = data["cells"][0]["id"]
    return json.dumps(data, indent=1)


BROKEN_NOTEBOOKS = {
    "truncated": (lambda text: text[: len(text) // 2], r"lab\.ipynb:\d+:\d+: not valid JSON"),
    "nbformat 3": (lambda text: text.replace('"nbformat": 4', '"nbformat": 3'), "nbformat 3 notebooks are not supported"),
    "nbformat 5": (lambda text: text.replace('"nbformat": 4', '"nbformat": 5'), "nbformat 5 is newer than runbook"),
    "duplicate ids": (_duplicate_ids, r"duplicate cell id '[^']+': cells 1 and 2"),
    "empty": (lambda _text: "", "the notebook file is empty"),
    "a list": (lambda _text: "[]", "a notebook is a JSON object"),
    "conflict markers": (lambda text: text.replace(' "cells": [', '<<<<<<< HEAD\n "cells": [', 1), "not valid JSON"),
}


@pytest.mark.parametrize("kind", list(BROKEN_NOTEBOOKS))
def test_a_run_on_a_malformed_notebook_fails_clearly(local_workspace: Path, kind: str) -> None:
    corrupt, expected = BROKEN_NOTEBOOKS[kind]
    notebook = local_workspace / "lab.ipynb"
    notebook.write_text(corrupt(_good_notebook()), encoding="utf-8")
    before = notebook.read_bytes()
    write_runbook(
        local_workspace,
        "1.1",
        'phase: "1.1"\ntitle: t\ndiscovery:\n  - {id: cells, uses: notebook.cells, with: {path: lab.ipynb}}\n'
        "fix:\n  - id: edit\n    uses: notebook.edit\n"
        "    with: {path: lab.ipynb, cell: 2, replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]}\n",
    )
    result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert result.exit_code in (1, 2), result.output
    no_traceback(result)
    assert re.search(expected, result.stdout), result.stdout
    (record,) = [read_record(p) for p in record_paths(local_workspace / "reports", "1.1")]
    first = record.step_results()[0]
    assert first["status"] == "error" and re.search(expected, first["error"]["message"])
    assert notebook.read_bytes() == before  # nothing was written to it


def test_a_notebook_repaired_by_hand_is_picked_up_on_resume(local_workspace: Path) -> None:
    """A malformed notebook that becomes valid later is picked up on resume, not cached."""
    notebook = local_workspace / "lab.ipynb"
    good = _good_notebook()
    notebook.write_text(good[:40], encoding="utf-8")
    write_runbook(
        local_workspace,
        "1.1",
        'phase: "1.1"\ntitle: t\nfix:\n  - id: edit\n    uses: notebook.edit\n'
        "    with: {path: lab.ipynb, cell: 2, replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]}\n",
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 1
    notebook.write_text(good, encoding="utf-8")
    resumed = invoke(["run", "1.1", "--resume"], cwd=local_workspace)
    assert resumed.exit_code == 0, resumed.output
    assert "FLUX-1.1-pro" in notebook.read_text(encoding="utf-8")


# ------------------------------------------------------------------ estates


BROKEN_ESTATES = {
    "syntax": ("subscriptions:\n  - id: [unclosed\n", r"bad\.yaml:\d+:\d+: invalid YAML"),
    "unknown key": ("subscriptions: []\nsubscritions: []\n", r"bad\.yaml:2:1: unknown key 'subscritions'"),
    "wrong type": ("subscriptions: 5\n", r"bad\.yaml:1:\d+: "),
    "a list": ("- 1\n- 2\n", r"bad\.yaml:1:1: an estate file must be a mapping"),
    "control character": ("subscriptions: []\n\x00\n", r"bad\.yaml:\d+:\d+: "),
}


ESTATE_KINDS = list(BROKEN_ESTATES)


@pytest.mark.parametrize("kind", ESTATE_KINDS)
def test_runbook_emulator_with_a_malformed_estate(tmp_path: Path, kind: str) -> None:
    content, expected = BROKEN_ESTATES[kind]
    (tmp_path / "bad.yaml").write_text(content, encoding="utf-8")
    result = invoke(["emulator", "--estate", "bad.yaml"], cwd=tmp_path)
    assert result.exit_code == 2, result.output
    no_traceback(result)
    assert re.search(expected, result.stderr), result.stderr
    assert "ARM" not in result.stdout  # it never started serving


@pytest.mark.parametrize("kind", [k for k in ESTATE_KINDS if k in ("syntax", "unknown key") or not isinstance(k, str)])
def test_a_target_estate_that_is_malformed_stops_the_run_before_any_step(tmp_path: Path, kind: str) -> None:
    content, expected = BROKEN_ESTATES[kind]
    root = copy_sample(tmp_path / "lab")
    (root / "bad.yaml").write_text(content, encoding="utf-8")
    config = root / "runbook.yaml"
    config.write_text(config.read_text().replace("    kind: emulator\n", "    kind: emulator\n    estate: bad.yaml\n", 1))
    result = invoke(["run", "1.5"], cwd=root)
    assert result.exit_code == 2, result.output
    no_traceback(result)
    assert re.search(expected, result.stderr), result.stderr
    assert not (root / "reports" / "runs").exists()
    assert not (root / ".runbook.lock").exists()


def test_a_missing_estate_file_says_which(tmp_path: Path) -> None:
    result = invoke(["emulator", "--estate", "nowhere.yaml"], cwd=tmp_path)
    assert result.exit_code == 2 and "estate file not found" in result.stderr
    no_traceback(result)


# ------------------------------------------------------------------ timestamp log and run records


def test_status_skips_malformed_timestamp_log_lines_naming_each(local_workspace: Path) -> None:
    log = local_workspace / "reports" / "timestamps" / "execution-log.jsonl"
    log.parent.mkdir(parents=True)
    good = [
        {"timestamp": "2025-11-14T04:00:00Z", "phase": "1.1", "action": "start", "description": "go"},
        {"timestamp": "2025-11-14T04:15:00Z", "phase": "1.1", "action": "complete", "description": "done"},
    ]
    lines = [
        json.dumps(good[0]),
        "not json at all",
        json.dumps(["a", "list"]),
        json.dumps({"phase": "1.2", "action": "start"}),
        json.dumps({"timestamp": "yesterday", "phase": "1.2", "action": "start"}),
        json.dumps({"timestamp": "2025-11-14T04:10:00Z", "phase": "1.2", "action": "explode"}),
        "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
        json.dumps(good[1]),
        '{"timestamp": "2025-11-14T05:00:00Z", "phase": "1.3", "act',  # torn last line
    ]
    log.write_text("\n".join(lines), encoding="utf-8")
    result = invoke(["status"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    no_traceback(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    named = sorted(int(m.group(1)) for w in warnings if (m := re.search(r"execution-log\.jsonl:(\d+): ", w)))
    assert named == [2, 3, 4, 5, 6, 7, 9], result.stderr
    assert "1/3" in result.stdout or "33.3%" in result.stdout, result.stdout  # 1.1 still counts as complete

    # New lines still land on lines of their own after the torn one.
    write_runbook(local_workspace, "1.2", 'phase: "1.2"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    assert invoke(["run", "1.2"], cwd=local_workspace).exit_code == 0
    entries, skipped = read_log(log)
    assert [(e.phase, e.action) for e in entries][-2:] == [("1.2", "start"), ("1.2", "complete")]
    assert len(skipped) == 7  # the torn line is still skipped, and swallowed nothing
    assert "2/3" in invoke(["status"], cwd=local_workspace).stdout


def test_a_record_with_garbage_lines_still_reads_and_reports(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    (path,) = record_paths(local_workspace / "reports", "1.1")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(1, "garbage in the middle\n")
    path.write_text("".join(lines) + '{"event": "step_sta', encoding="utf-8")
    record = read_record(path)
    assert record.status == "success" and len(record.warnings) == 2
    assert record.warnings[0].startswith(f"{path}:2: unreadable line")
    assert "torn last line" in record.warnings[1]
    for args in (["report", "1.1", "-o", "-"], ["status", "1.1"], ["timeline"], ["changelog"]):
        result = invoke(args, cwd=local_workspace)
        assert result.exit_code == 0, (args, result.output)
        no_traceback(result)


# ------------------------------------------------------------------ workspace config, .env, options


@pytest.mark.parametrize(
    "content",
    ["", "- a list\n", "project: [unclosed\n", "project: x\nplan: 5\n", "project: x\ntargets: {t: {kind: mars}}\n", "\x00"],
)
def test_a_broken_workspace_config_is_located(tmp_path: Path, content: str) -> None:
    (tmp_path / "runbook.yaml").write_text(content, encoding="utf-8")
    result = invoke(["status"], cwd=tmp_path)
    assert result.exit_code == 2, result.output
    no_traceback(result)
    problems = [line for line in result.stderr.splitlines() if line and not line.startswith(" ") and "found" not in line]
    assert problems and all(LOCATED.match(line) or line.startswith("error: runbook.yaml:") for line in problems), result.stderr


@pytest.mark.parametrize(
    "settings",
    ["{fault_rate: lots}", "{fault_rate: 2}", "{fault_kinds: [teapot], fault_rate: 0.1}", "{fault_servers: [dns], fault_rate: 0.1}", "{page_size: many}", "{latency: -1}"],
)
def test_bad_emulator_target_settings_are_input_errors(tmp_path: Path, settings: str) -> None:
    root = copy_sample(tmp_path / "lab")
    config = root / "runbook.yaml"
    config.write_text(config.read_text().replace("    kind: emulator\n", f"    kind: emulator\n    settings: {settings}\n", 1))
    result = invoke(["run", "1.5"], cwd=root)
    assert result.exit_code == 2, result.output
    no_traceback(result)
    assert result.stderr.startswith("error: ") and ("hint:" in result.stderr or "must" in result.stderr), result.stderr


def test_a_binary_dotenv_does_not_break_a_run(local_workspace: Path) -> None:
    (local_workspace / ".env").write_bytes(b'\xff\xfe\x00KEY="unterminated\nexport =\n=value\nGOOD=1\n')
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code in (0, 2), result.output
    no_traceback(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "1.1", "--var", "novalue"], "is not KEY=VALUE"),
        (["run", "1.1", "--from", "nowhere"], "no step 'nowhere'"),
        (["run", "1.1", "--step", "writ"], "did you mean 'write'"),
        (["run", "../../etc/passwd"], "no runbook for phase"),
        (["run", "9.9"], "no runbook for phase"),
        (["run", "1.1", "--only", "everything"], "Invalid value for '--only'"),
        (["run", "1.1", "-t", "mars"], "unknown target 'mars'"),
        (["report", "1.1", "--run", "nope"], "no run"),
        (["log", "7.7", "complete", "-m", "x"], "phase 7.7 is not in the plan"),
    ],
)
def test_hostile_options_are_input_errors(local_workspace: Path, args: list[str], expected: str) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        'phase: "1.1"\ntitle: t\nfix:\n  - {id: write, uses: shell, with: {cmd: [touch, written.txt]}}\n',
    )
    result = invoke(args, cwd=local_workspace)
    assert result.exit_code == 2, result.output
    no_traceback(result)
    assert expected in result.stderr, result.stderr
    assert not (local_workspace / "written.txt").exists()
    assert not record_paths(local_workspace / "reports", "1.1")  # refused before a record existed


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('"{{ 1 | uper }}"', "no filter named 'uper': did you mean 'upper'?"),
        ('"{{ 1 | nosuchfilter }}"', "no filter named 'nosuchfilter'"),
        ('"{% if 1 is nosuchtest %}y{% endif %}"', "no test named 'nosuchtest'"),
        ('"{% for i in [1] %}{{ i | nosuchfilter }}{% endfor %}"', "no filter named 'nosuchfilter'"),
    ],
)
def test_an_unknown_filter_or_test_is_a_located_problem_not_an_internal_error(
    local_workspace: Path, value: str, words: str
) -> None:
    write_runbook(local_workspace, "1.1", f'phase: "1.1"\ntitle: t\nfix:\n  - {{id: a, uses: set, with: {{x: {value}}}}}\n')
    for command in (["validate"], ["run", "1.1"]):
        result = invoke(command, cwd=local_workspace)
        no_traceback(result)
        assert result.exit_code == 2, (command, result.output)
        assert "phase-1.1.yaml:4:" in result.output and words in result.output, (command, result.output)
    assert not record_paths(local_workspace / "reports", "1.1")  # refused before anything ran
