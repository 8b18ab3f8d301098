"""The core through the CLI (in-process) and the Python API: options, actions, records, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import invoke
from runbook.api import RunOptions, run_phase
from runbook.errors import InputError, RunFailed, ValidationFailed
from runbook.record import read_log, read_record, record_paths


def write_runbook(root: Path, phase: str, text: str) -> Path:
    path = root / "runbooks" / f"phase-{phase}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def records(root: Path, phase: str) -> list:
    return [read_record(p) for p in record_paths(root / "reports", phase)]


def finished(record) -> dict[str, dict]:
    return {f"{e['stage']}:{e['step']}": e for e in record.step_results()}


SIMPLE = """\
phase: "1.1"
title: First
vars:
  greeting: hello
discovery:
  - id: look
    uses: shell
    with:
      cmd: [echo, "{{ greeting }}"]
      changes: false
    register: found
fix:
  - id: write
    uses: file.replace
    with:
      path: target.txt
      replacements:
        - find: broken
          replace: fixed
verify:
  - id: check
    uses: shell
    with:
      cmd: [grep, -q, fixed, target.txt]
      changes: false
"""


@pytest.fixture
def simple(local_workspace: Path) -> Path:
    write_runbook(local_workspace, "1.1", SIMPLE)
    (local_workspace / "target.txt").write_text("state: broken\n")
    return local_workspace


# ------------------------------------------------------------------ validate


FIVE_MISTAKES = """\
phase: "1.1"
title: Five mistakes
next: "1.9"
summry: typo in a top-level key
discovery:
  - id: one
    uses: shel
    with: {cmd: [echo]}
  - id: one
    uses: set
    with: {x: "{{ broken( }}"}
fix:
  - id: two
    uses: file.replace
    with:
      path: x.txt
      replacments: []
"""


def test_validate_reports_every_mistake_with_file_line_col(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", FIVE_MISTAKES)
    result = invoke(["validate"], cwd=local_workspace)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("runbooks/phase-1.1.yaml:")]
    assert lines == [
        "runbooks/phase-1.1.yaml:3:7: next phase '1.9' is not in the plan: did you mean '1.3'? "
        "add it to the plan in runbook.yaml or run `runbook new 1.9`",
        "runbooks/phase-1.1.yaml:4:1: unknown key 'summry': did you mean 'summary'?",
        "runbooks/phase-1.1.yaml:7:11: unknown action 'shel': did you mean 'shell'? known actions: "
        + lines[2].split("known actions: ")[1],
        "runbooks/phase-1.1.yaml:9:9: duplicate step id 'one' (first used at runbooks/phase-1.1.yaml:6:9)",
        "runbooks/phase-1.1.yaml:11:15: Jinja syntax error: unexpected '}', expected ')'",
        "runbooks/phase-1.1.yaml:16:7: file.replace: missing required key 'replacements'",
        "runbooks/phase-1.1.yaml:17:7: file.replace: unknown key 'replacments': did you mean 'replacements'?",
    ]
    assert "Traceback" not in result.output
    assert "7 problems found" in result.stderr


def test_validate_yaml_syntax_error_points_at_the_line(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: x\ndiscovery:\n  - id: a\n   uses: set\n')
    result = invoke(["validate"], cwd=local_workspace)
    assert result.exit_code == 2
    assert "runbooks/phase-1.1.yaml:5:" in result.stderr
    assert "Traceback" not in result.output


def test_validate_clean_runbook(simple: Path) -> None:
    result = invoke(["validate"], cwd=simple)
    assert result.exit_code == 0, result.output
    assert "1 runbook valid" in result.stdout


def test_run_refuses_an_invalid_runbook_before_any_step(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", FIVE_MISTAKES)
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 2
    assert not (local_workspace / "reports" / "runs").exists()


def test_templated_parameter_type_checked_after_rendering(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        vars: {limit: "not a number"}
        fix:
          - id: s
            uses: shell
            with: {cmd: [echo], timeout: "{{ limit }}"}
        """,
    )
    assert invoke(["validate"], cwd=local_workspace).exit_code == 0
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1  # found mid-run: recorded as the step's failure, with its location
    assert "runbooks/phase-1.1.yaml:7:" in result.stdout and "after rendering" in result.stdout


# ------------------------------------------------------------------ run and its options


def test_run_success_records_every_step_with_timestamps(simple: Path) -> None:
    result = invoke(["run", "phase-1.1"], cwd=simple)
    assert result.exit_code == 0, result.output
    assert (simple / "target.txt").read_text() == "state: fixed\n"
    (record,) = records(simple, "1.1")
    assert record.status == "success"
    steps = finished(record)
    assert set(steps) == {"discovery:look", "reproduce:check", "fix:write", "verify:check"}
    assert steps["reproduce:check"]["status"] == "failed"  # the fault was real
    assert steps["fix:write"]["status"] == "changed"
    assert "-state: broken" in steps["fix:write"]["diff"]
    for event in steps.values():
        assert event["started_at"].endswith("Z") and len(event["started_at"]) == 24
        assert event["duration_s"] >= 0
    lines, warnings = read_log(simple / "reports" / "timestamps" / "execution-log.jsonl")
    assert [(line.phase, line.action) for line in lines] == [("1.1", "start"), ("1.1", "complete")]
    assert lines[1].status == "SUCCESS" and not warnings


def test_second_run_reports_fix_already_applied(simple: Path) -> None:
    assert invoke(["run", "1.1"], cwd=simple).exit_code == 0
    second = invoke(["run", "1.1"], cwd=simple)
    assert second.exit_code == 0
    assert "already applied" in second.stdout
    latest = records(simple, "1.1")[-1]
    assert finished(latest)["fix:write"]["status"] == "ok"
    notes = [e for e in latest.events if e.get("kind") == "fault_not_reproduced"]
    assert notes, "a fault that no longer reproduces is recorded"


def test_failing_step_stops_the_run_and_skips_the_rest(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: boom, uses: shell, with: {cmd: [sh, -c, "echo bad >&2; exit 3"]}}
          - {id: after, uses: set, with: {x: 1}}
        verify:
          - {id: check, uses: set, with: {y: 1}}
        """,
    )
    result = invoke(["run", "1.1", "--no-reproduce"], cwd=local_workspace)
    assert result.exit_code == 1
    assert "exited with 3: bad" in result.stdout
    steps = finished(records(local_workspace, "1.1")[0])
    assert steps["fix:boom"]["status"] == "failed"
    assert steps["fix:boom"]["output"]["rc"] == 3
    assert steps["fix:after"]["status"] == "skipped"
    assert steps["verify:check"]["status"] == "skipped"
    lines, _ = read_log(local_workspace / "reports" / "timestamps" / "execution-log.jsonl")
    assert lines[-1].action == "fail"


def test_continue_on_error_keeps_going(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: boom, uses: shell, continue_on_error: true, with: {cmd: ["false"]}}
          - {id: after, uses: set, with: {x: 1}}
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    steps = finished(records(local_workspace, "1.1")[0])
    assert steps["fix:boom"]["status"] == "failed" and steps["fix:after"]["status"] == "ok"


def test_var_when_expect_and_native_values(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        vars: {mode: slow, items: [1, 2]}
        fix:
          - id: compute
            uses: set
            with: {total: "{{ items | sum }}", doubled: "{{ items | map('int') | list + items }}"}
            register: computed
          - id: only-fast
            uses: set
            when: "mode == 'fast'"
            with: {x: 1}
          - id: check
            uses: set
            with: {total: "{{ computed.total }}"}
            expect:
              - output.total == 3
              - that: "computed.doubled | length == 4"
                message: four items
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    steps = finished(records(local_workspace, "1.1")[0])
    assert steps["fix:compute"]["output"] == {"total": 3, "doubled": [1, 2, 1, 2]}
    assert steps["fix:only-fast"]["status"] == "skipped"
    assert [e["passed"] for e in steps["fix:check"]["expectations"]] == [True, True]
    assert invoke(["run", "1.1", "--var", "mode=fast"], cwd=local_workspace).exit_code == 0
    steps = finished(records(local_workspace, "1.1")[-1])
    assert steps["fix:only-fast"]["status"] == "ok"


def test_expect_failure_fails_the_step(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        verify:
          - {id: check, uses: set, with: {n: 2}, expect: [{that: "output.n == 3", message: n must be three}]}
        """,
    )
    result = invoke(["run", "1.1", "--no-reproduce"], cwd=local_workspace)
    assert result.exit_code == 1
    assert "n must be three" in result.stdout


def test_retries_until_polls(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - id: poll
            uses: shell
            retries: 5
            delay: 0
            until: "output.stdout | int >= 3"
            with: {cmd: [sh, -c, "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo $n"]}
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    step = finished(records(local_workspace, "1.1")[0])["fix:poll"]
    assert step["attempts"] == 3 and step["status"] == "changed"


def test_timeout_stops_a_hung_step(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: hang, uses: shell, timeout: 0.5, with: {cmd: [sleep, "30"]}}
        """,
    )
    started = time.monotonic()
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1
    assert time.monotonic() - started < 25  # stopped, not waited out
    step = finished(records(local_workspace, "1.1")[0])["fix:hang"]
    assert step["status"] == "error" and "timed out" in step["error"]["message"]  # the tool, not the fault


def test_dry_run_changes_nothing(simple: Path) -> None:
    result = invoke(["run", "1.1", "--dry-run"], cwd=simple)
    assert result.exit_code == 0, result.output
    assert (simple / "target.txt").read_text() == "state: broken\n"
    assert "+state: fixed" in result.stdout  # the diff it would apply
    assert not (simple / "reports" / "runs").exists()
    assert not (simple / "reports" / "timestamps").exists()


def test_only_from_and_step(simple: Path) -> None:
    assert invoke(["run", "1.1", "--only", "discovery"], cwd=simple).exit_code == 0
    steps = finished(records(simple, "1.1")[-1])
    assert steps["discovery:look"]["status"] == "ok"
    assert steps["fix:write"]["status"] == "skipped"
    assert (simple / "target.txt").read_text() == "state: broken\n"

    assert invoke(["run", "1.1", "--step", "write"], cwd=simple).exit_code == 0
    steps = finished(records(simple, "1.1")[-1])
    assert steps["fix:write"]["status"] == "changed" and steps["discovery:look"]["status"] == "skipped"

    assert invoke(["run", "1.1", "--from", "check"], cwd=simple).exit_code == 0
    steps = finished(records(simple, "1.1")[-1])
    assert steps["verify:check"]["status"] == "ok" and steps["fix:write"]["status"] == "skipped"

    bad = invoke(["run", "1.1", "--from", "chek"], cwd=simple)
    assert bad.exit_code == 2 and "did you mean 'check'" in bad.stderr


def test_from_restores_registered_outputs_from_the_last_record(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        discovery:
          - {id: find, uses: set, with: {model: FLUX-1.1-pro}, register: found}
        fix:
          - {id: use, uses: set, with: {model: "{{ found.model }}"}}
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    assert invoke(["run", "1.1", "--from", "use"], cwd=local_workspace).exit_code == 0
    steps = finished(records(local_workspace, "1.1")[-1])
    assert steps["fix:use"]["output"] == {"model": "FLUX-1.1-pro"}


def test_json_events_on_stdout(simple: Path) -> None:
    result = invoke(["run", "1.1", "--json"], cwd=simple)
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    assert {e["event"] for e in events} >= {"step_started", "step_finished"}


def test_manual_step_needs_yes_without_a_tty(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: approve, uses: manual, with: {instruction: Restart the gateway}}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1 and "--yes" in result.stdout
    assert invoke(["run", "1.1", "--yes"], cwd=local_workspace).exit_code == 0


def test_unknown_target_and_phase_are_input_errors(simple: Path) -> None:
    result = invoke(["run", "1.1", "--target", "azur"], cwd=simple)
    assert result.exit_code == 2 and "unknown target 'azur'" in result.stderr
    result = invoke(["run", "7.7"], cwd=simple)
    assert result.exit_code == 2 and "no runbook for phase" in result.stderr
    result = invoke(["run", "1.1", "--var", "novalue"], cwd=simple)
    assert result.exit_code == 2


def test_api_raises_typed_errors(simple: Path) -> None:
    outputs = run_phase("1.1", workspace=simple, options=RunOptions(reproduce=False))
    assert outputs.result.ok
    with pytest.raises(InputError):
        run_phase("1.1", workspace=simple, options=RunOptions(target="nope"))
    (simple / "target.txt").write_text("something else\n")
    with pytest.raises(RunFailed):
        run_phase("1.1", workspace=simple, options=RunOptions(reproduce=False))


# ------------------------------------------------------------------ actions


def test_shell_values_are_arguments_not_commands(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: echo, uses: shell, with: {cmd: [printf, "%s|", "{{ hostile }}"]}}
          - {id: line, uses: shell, with: {cmd: "printf '%s|' 'a b' c"}}
          - {id: templated-line, uses: shell, with: {cmd: "printf '%s|' {{ hostile }} {{ 'x y' | upper }}"}}
          - {id: js, uses: shell, with: {cmd: [echo, '{"a": [1, 2]}'], parse: json}}
        """,
    )
    canary = local_workspace / "canary"
    canary.write_text("still here")
    result = invoke(["run", "1.1", "--var", f"hostile=; rm -rf {canary} #"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert canary.exists()
    steps = finished(records(local_workspace, "1.1")[0])
    assert steps["fix:echo"]["output"]["stdout"] == f"; rm -rf {canary} #|"
    assert steps["fix:line"]["output"]["stdout"] == "a b|c|"
    # In a command string too, a rendered value is one argument: split first, render after.
    assert steps["fix:templated-line"]["output"]["argv"] == ["printf", "%s|", f"; rm -rf {canary} #", "X Y"]
    assert steps["fix:js"]["output"]["json"] == {"a": [1, 2]}


def test_env_set_keeps_comments_and_masks_secrets(local_workspace: Path) -> None:
    env_file = local_workspace / ".env"
    env_file.write_text("# lab settings\nAPIM_GATEWAY_URL=http://old\n\n# keep me\nOTHER=1\n")
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - id: env
            uses: env.set
            with:
              values: {APIM_GATEWAY_URL: "http://new", IMAGE_MODEL_NAME: FLUX-1.1-pro, IMAGE_API_KEY: "k3y-canary-123"}
              comment: image settings (phase 1.5)
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    assert env_file.read_text() == (
        "# lab settings\nAPIM_GATEWAY_URL=http://new\n\n# keep me\nOTHER=1\n\n# image settings (phase 1.5)\n"
        "IMAGE_MODEL_NAME=FLUX-1.1-pro\nIMAGE_API_KEY=k3y-canary-123\n"
    )
    record_text = record_paths(local_workspace / "reports", "1.1")[0].read_text()
    assert "k3y-canary-123" not in record_text
    step = finished(records(local_workspace, "1.1")[0])["fix:env"]
    assert step["output"]["values"]["IMAGE_API_KEY"] == "***"
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    assert finished(records(local_workspace, "1.1")[-1])["fix:env"]["status"] == "ok"


def test_file_replace_regex_count_and_missing_text(local_workspace: Path) -> None:
    (local_workspace / "f.txt").write_text("a1 a2 a3\n")
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - id: r
            uses: file.replace
            with: {path: f.txt, replacements: [{find: 'a(\\d)', replace: 'b\\1', regex: true, count: 2}]}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1 and "expected 2 matches" in result.stdout
    assert (local_workspace / "f.txt").read_text() == "a1 a2 a3\n"


def test_paths_outside_the_workspace_are_refused(local_workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("broken")
    write_runbook(
        local_workspace,
        "1.1",
        f"""\
        phase: "1.1"
        title: t
        fix:
          - {{id: r, uses: file.replace, with: {{path: "{outside}", replacements: [{{find: broken, replace: ok}}]}}}}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1 and "leaves the workspace" in result.stdout
    assert outside.read_text() == "broken"


def test_sandbox_refuses_template_escapes(local_workspace: Path) -> None:
    for expression in ("''.__class__.__mro__", "lipsum|attr('__globals__')", "cycler.__init__.__globals__"):
        write_runbook(
            local_workspace,
            "1.1",
            f"""\
            phase: "1.1"
            title: t
            fix:
              - {{id: esc, uses: set, with: {{x: "{{{{ {expression} }}}}"}}}}
            """,
        )
        result = invoke(["run", "1.1"], cwd=local_workspace)
        assert result.exit_code == 1, expression
        assert "Traceback" not in result.output
        step = finished(records(local_workspace, "1.1")[-1])["fix:esc"]
        assert step["status"] == "error"  # the runbook is wrong, not the system
        assert any(word in step["error"]["message"] for word in ("sandbox", "undefined", "unsafe")), step["error"]


def test_secret_inputs_never_reach_the_record_or_console(local_workspace: Path) -> None:
    canary = "canary-7f3a9c1e-secret"
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        inputs:
          TOKEN: {env: LAB_TOKEN, secret: true, required: true}
        fix:
          - {id: leak, uses: shell, with: {cmd: [echo, "token={{ secrets.TOKEN }}"]}}
          - {id: fail, uses: shell, with: {cmd: [sh, -c, "echo {{ secrets.TOKEN }} >&2; exit 1"]}}
        """,
    )
    result = invoke(["run", "1.1", "--json"], cwd=local_workspace, env={"LAB_TOKEN": canary})
    assert result.exit_code == 1
    assert canary not in result.output
    for path in (local_workspace / "reports").rglob("*"):
        if path.is_file():
            assert canary not in path.read_text(), path
    missing = invoke(["run", "1.1"], cwd=local_workspace, env={"LAB_TOKEN": ""})
    assert missing.exit_code == 2 and "missing required inputs: TOKEN" in missing.stderr


# ------------------------------------------------------------------ workspace commands


def test_init_scaffolds_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "new"
    result = invoke(["init", str(target)])
    assert result.exit_code == 0, result.output
    for name in ("runbook.yaml", "runbooks/phase-1.1.yaml", "mkdocs.yml", "reports", "templates"):
        assert (target / name).exists(), name
    assert invoke(["validate"], cwd=target).exit_code == 0
    (target / "runbook.yaml").write_text("project: mine\n")
    again = invoke(["init", str(target)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.stderr
    assert (target / "runbook.yaml").read_text() == "project: mine\n"


def test_new_scaffolds_a_runbook_and_extends_the_plan(local_workspace: Path) -> None:
    config = local_workspace / "runbook.yaml"
    config.write_text("# my workspace\n" + config.read_text())
    result = invoke(["new", "1.6", "--title", "Fix Backend Services: APIs"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert (local_workspace / "runbooks" / "phase-1.6.yaml").exists()
    text = config.read_text()
    assert text.startswith("# my workspace\n") and "Fix Backend Services: APIs" in text
    assert invoke(["validate"], cwd=local_workspace).exit_code == 0
    assert invoke(["new", "1.6"], cwd=local_workspace).exit_code == 2
    assert invoke(["new", "1.2"], cwd=local_workspace).exit_code == 0  # title from the plan


def test_log_appends_hand_written_lines(local_workspace: Path) -> None:
    log = local_workspace / "reports" / "timestamps" / "execution-log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(
        '{"timestamp": "2025-11-14T04:20:00Z", "phase": "1.1", "action": "start", "description": "by hand", "who": "me"}\n'
        "not json\n"
    )
    result = invoke(["log", "1.2", "complete", "-m", "All 8 MCP servers verified", "--cells", "3,5"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    lines, warnings = read_log(log)
    assert lines[0].extra == {"who": "me"} and lines[0].cells_fixed == ()
    assert lines[1].phase == "1.2" and lines[1].cells_fixed == (3, 5) and lines[1].succeeded
    assert len(warnings) == 1 and ":2:" in warnings[0]
    assert invoke(["log", "9.9", "start", "-m", "x"], cwd=local_workspace).exit_code == 2


def test_schema_and_actions_list_every_action() -> None:
    result = invoke(["schema"])
    schema = json.loads(result.stdout)
    uses = schema["$defs"]["Step"]["properties"]["uses"]["enum"]
    assert {"shell", "set", "assert", "manual", "file.replace", "env.set"} <= set(uses)
    assert "replacements" in json.dumps(schema["$defs"]["Params_file_replace"])
    listing = invoke(["actions"]).stdout
    for name in uses:
        assert name in listing


def test_validation_errors_are_exceptions_with_problems(local_workspace: Path) -> None:
    from runbook.workspace import load_workspace

    write_runbook(local_workspace, "1.1", FIVE_MISTAKES)
    with pytest.raises(ValidationFailed) as info:
        load_workspace(local_workspace).load_runbook("1.1")
    assert len(info.value.problems) == 7


def test_workspace_config_errors_have_locations(tmp_path: Path) -> None:
    (tmp_path / "runbook.yaml").write_text("project: x\ndefault_target: emulatr\ntargets:\n  emulator: {kind: emulator}\nplann: []\n")
    result = invoke(["validate"], cwd=tmp_path)
    assert result.exit_code == 2
    assert "runbook.yaml:5:1: unknown key 'plann': did you mean 'plan'?" in result.stderr


# ------------------------------------------------------------------ crash safety


def test_sigkill_mid_step_leaves_a_readable_record(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        discovery:
          - {id: first, uses: set, with: {a: 1}}
          - {id: second, uses: shell, with: {cmd: [echo, two], changes: false}}
        fix:
          - {id: sleepy, uses: shell, with: {cmd: [sleep, "60"]}}
        """,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from runbook.cli import main; main()", "run", "1.1"],
        cwd=local_workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    record_dir = local_workspace / "reports" / "runs" / "1.1"
    try:
        while time.monotonic() < deadline:
            paths = list(record_dir.glob("*.jsonl")) if record_dir.exists() else []
            if paths and '"step":"sleepy"' in paths[0].read_text():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never reached the sleeping step")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    (record,) = records(local_workspace, "1.1")
    assert record.status == "incomplete" and not record.warnings
    steps = finished(record)
    assert steps["discovery:first"]["status"] == "ok"
    assert steps["discovery:second"]["output"]["stdout"] == "two\n"
    assert "fix:sleepy" not in steps
    assert [e["step"] for e in record.events if e["event"] == "step_started"][-1] == "sleepy"


def test_committed_schema_is_current() -> None:
    from runbook.model import json_schema

    committed = json.loads((Path(__file__).parent.parent / "runbook.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run `runbook schema -o runbook.schema.json`"


def test_third_party_actions_load_from_entry_points(tmp_path: Path, local_workspace: Path) -> None:
    """A package that declares a `runbook.actions` entry point adds an action (no code change here)."""
    plugin = tmp_path / "plugin"
    (plugin / "lab_actions").mkdir(parents=True)
    (plugin / "lab_actions" / "__init__.py").write_text(
        textwrap.dedent(
            """\
            from runbook.actions import Params, Result, action

            class GreetParams(Params):
                name: str

            @action("lab.greet", params=GreetParams, changes=False, summary="Say hello.")
            def greet(params, ctx):
                return Result(output={"greeting": f"hello {params.name}"})
            """
        )
    )
    dist = plugin / "lab_actions-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-actions\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[runbook.actions]\nlab = lab_actions\n")
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: hi, uses: lab.greet, with: {name: lab}}
        """,
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from runbook.cli import main; "
        "main(['-w', sys.argv[2], 'run', '1.1', '--json'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(plugin), str(local_workspace)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    step = next(e for e in events if e.get("event") == "step_finished")
    assert step["output"] == {"greeting": "hello lab"}
    unknown = invoke(["validate"], cwd=local_workspace)  # without the plug-in on the path
    assert unknown.exit_code == 2 and "unknown action 'lab.greet'" in unknown.stderr
