"""Reliability guarantees, each proven end to end: resume, interrupt, one run per workspace, faults,
a dying kernel, the sandbox, and secrets that never leave the process.

Crash consistency (SIGKILL anywhere) lives in test_crash.py and hostile input in test_hostile_input.py;
docs/reliability.md maps every guarantee to its test.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from conftest import copy_sample, git, git_init, invoke
from runbook.record import read_log, read_record, record_paths

RUN = [sys.executable, "-c", "from runbook.cli import main; main()"]
NOTEBOOK = Path("notebooks/master-ai-gateway-fix-MCP.ipynb")


def write_runbook(root: Path, phase: str, text: str) -> Path:
    path = root / "runbooks" / f"phase-{phase}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def the_record(root: Path, phase: str):  # one run, one record
    (path,) = record_paths(root / "reports", phase)
    return read_record(path)


def executed(record) -> Counter[tuple[str, str]]:
    """How often each step actually ran (restored steps did not)."""
    return Counter(
        (e["stage"], e["step"])
        for e in record.events
        if e.get("event") == "step_finished" and e.get("status") != "skipped"
    )


def add_target(root: Path, name: str, body: str) -> None:
    """Add a target to the workspace's runbook.yaml (appended under `targets:`, the last key)."""
    config = root / "runbook.yaml"
    text = config.read_text(encoding="utf-8").rstrip("\n") + "\n"
    assert text.splitlines()[-1].startswith(" "), "targets: must be the last block of runbook.yaml"
    config.write_text(text + f"  {name}:\n" + textwrap.indent(textwrap.dedent(body), "    "), encoding="utf-8")


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


# ------------------------------------------------------------------ resume


COUNTED = """\
phase: "1.1"
title: Resume
discovery:
  - id: count
    title: Counts its executions and registers a value
    uses: shell
    with: {cmd: [sh, -c, "echo ran >> counter.txt; echo model-42"], changes: false}
    register: found
fix:
  - id: flaky
    title: Fails while broken.flag exists
    uses: shell
    with: {cmd: [sh, -c, "echo ran >> flaky.txt; test ! -e broken.flag"]}
  - id: use
    title: Uses the value registered by discovery
    uses: shell
    with: {cmd: [sh, -c, "echo {{ found.stdout | trim }} >> used.txt"]}
"""


def test_resume_names_the_record_lines_it_could_not_read(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", COUNTED)
    (local_workspace / "broken.flag").write_text("")
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 1
    path = the_record(local_workspace, "1.1").path
    lines = path.read_text(encoding="utf-8").splitlines()
    # a hand edit broke the completed discovery step's line: it is not restored, and the user is told
    (number,) = [i for i, line in enumerate(lines) if '"step_finished"' in line and '"count"' in line]
    lines[number] = lines[number].replace('"status":"ok"', '"status":123')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (local_workspace / "broken.flag").unlink()
    resumed = invoke(["run", "1.1", "--resume"], cwd=local_workspace)
    assert resumed.exit_code == 0, resumed.output
    assert f"{path}:{number + 1}: not a valid step_finished event: status" in resumed.output
    assert "(the resumed run goes on without that line)" in resumed.output
    assert (local_workspace / "counter.txt").read_text() == "ran\nran\n"  # not restored: it ran again


def test_resume_runs_only_what_did_not_complete(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", COUNTED)
    (local_workspace / "broken.flag").write_text("")
    failed = invoke(["run", "1.1"], cwd=local_workspace)
    assert failed.exit_code == 1, failed.output
    assert "hint: fix what failed, then continue with `runbook run 1.1 --resume`" in failed.stderr

    (local_workspace / "broken.flag").unlink()
    resumed = invoke(["run", "1.1", "--resume"], cwd=local_workspace)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming run" in resumed.stdout and "(restored)" in resumed.stdout

    # Completed steps did not run again; the failed one did; the registered output was restored.
    assert (local_workspace / "counter.txt").read_text() == "ran\n"
    assert (local_workspace / "flaky.txt").read_text() == "ran\nran\n"
    assert (local_workspace / "used.txt").read_text() == "model-42\n"
    record = the_record(local_workspace, "1.1")
    assert record.status == "success" and not record.warnings
    kinds = [e["event"] for e in record.events]
    assert kinds.count("run_started") == 1 and kinds.count("run_resumed") == 1
    assert {e["run_id"] for e in record.events if "run_id" in e} == {record.run_id}
    assert executed(record) == Counter({("discovery", "count"): 1, ("fix", "flaky"): 2, ("fix", "use"): 1})
    restored = [e for e in record.events if e["event"] == "step_restored"]
    assert [(e["step"], e["output"]["stdout"]) for e in restored] == [("count", "model-42\n")]

    # The timestamp log and the report read as one run.
    lines, warnings = read_log(local_workspace / "reports" / "timestamps" / "execution-log.jsonl")
    assert [(line.action, line.run_id) for line in lines] == [
        ("start", record.run_id),
        ("fail", record.run_id),
        ("complete", record.run_id),
    ]
    assert not warnings
    report = (local_workspace / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    assert record.run_id in report and "RESOLVED" in report
    assert "**Resumed**: 1 time with `--resume`; 1 completed step restored from the record" in report
    assert report.count("| count |") <= 1  # one row per step, not one per attempt

    again = invoke(["run", "1.1", "--resume"], cwd=local_workspace)
    assert again.exit_code == 2
    assert "nothing to resume for phase 1.1" in again.stderr and "hint: run it again with `runbook run 1.1`" in again.stderr


def test_resume_of_phase_1_5_after_the_gateway_failed(tmp_path: Path) -> None:
    """The flagship: the gateway answers 503 to everything, the run fails in verify with a message
    naming the endpoint and the last status; once the gateway is healthy `--resume` finishes it
    without repeating discovery, reproduce or the fix, using the outputs they registered."""
    root = copy_sample(tmp_path / "lab")
    add_target(
        root,
        "broken-gateway",
        """\
        kind: emulator
        settings: {fault_rate: 1.0, fault_kinds: ["503"], fault_retry_after: 0.05, fault_servers: [gateway]}
        """,
    )
    # --no-report: the report template cannot render a failed http.request yet (see the issue note).
    failed = invoke(["run", "phase-1.5", "-t", "broken-gateway", "--no-report"], cwd=root)
    assert failed.exit_code == 1, failed.output
    record = the_record(root, "1.5")
    probe = next(e for e in record.step_results() if e["stage"] == "verify" and e["step"] == "gateway-probe")
    assert probe["status"] == "failed"
    assert re.search(r"POST http://127\.0\.0\.1:\d+/inference/openai/deployments/FLUX-1\.1-pro/images/generations", probe["error"]["message"])
    assert "503" in probe["error"]["message"] and probe["attempts"] == 1
    assert probe["output"]["attempts"] == 3  # the request itself was retried, then gave up
    fixed_notebook = (root / NOTEBOOK).read_bytes()
    assert b"FLUX-1.1-pro" in fixed_notebook

    resumed = invoke(["run", "phase-1.5", "--resume"], cwd=root)
    assert resumed.exit_code == 0, resumed.output
    record = the_record(root, "1.5")
    assert record.status == "success"
    runs = executed(record)
    for stage, step in [("discovery", "accounts"), ("reproduce", "run-image-cells"), ("fix", "fix-config-cell"), ("verify", "notebook-image-route")]:
        assert runs[(stage, step)] == 1, (stage, step)  # restored, not run again
    assert runs[("verify", "gateway-probe")] == 2 and runs[("verify", "run-image-cells")] == 1
    # The probe's URL is built from `configured`, registered by a step restored from the record.
    last_probe = [e for e in record.step_results() if e["step"] == "gateway-probe"][-1]
    assert last_probe["status"] == "ok" and "/deployments/FLUX-1.1-pro/" in last_probe["output"]["url"]
    assert (root / NOTEBOOK).read_bytes() == fixed_notebook  # the fix was not applied twice
    report = (root / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    assert record.run_id in report and "RESOLVED" in report
    lines, _ = read_log(root / "reports" / "timestamps" / "execution-log.jsonl")
    assert [line.action for line in lines] == ["start", "fail", "complete"]
    assert lines[-1].cells_fixed == (15, 17, 19)  # fixed before the failure, credited to the run


# ------------------------------------------------------------------ faults


def test_phase_1_5_completes_with_30_percent_faults(tmp_path: Path) -> None:
    """30% of ARM requests throttled, failing or dropped: discovery retries and the phase completes.

    The notebook's own cells call the gateway with urllib and no retries (as the real lab does), so
    faults on the gateway are exercised through the `http.request` probe alone, below."""
    root = copy_sample(tmp_path / "lab")
    add_target(
        root,
        "flaky",
        """\
        kind: emulator
        settings: {fault_rate: 0.3, fault_retry_after: 0.05, fault_servers: [arm], page_size: 3,
                   http_attempts: 12, http_backoff: 0.05}
        """,
    )
    add_target(
        root,
        "flaky-gateway",
        """\
        kind: emulator
        settings: {fault_rate: 0.3, fault_retry_after: 0.05, fault_servers: [arm, gateway], seed: 1}
        """,
    )
    result = invoke(["run", "phase-1.5", "-t", "flaky"], cwd=root)
    assert result.exit_code == 0, result.output
    assert "retrying" in result.stdout  # faults were injected, and survived
    assert b"FLUX-1.1-pro" in (root / NOTEBOOK).read_bytes()

    probe = invoke(["run", "phase-1.5", "--step", "gateway-probe", "-t", "flaky-gateway"], cwd=root)
    assert probe.exit_code == 0, probe.output
    last = read_record(record_paths(root / "reports", "1.5")[-1])
    (event,) = [e for e in last.step_results() if e["step"] == "gateway-probe" and e["status"] == "ok"]
    attempts = [event["output"]["attempts"]]
    assert max(attempts) > 1, attempts  # the gateway faulted and the probe retried through it


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["429", "503"])
def test_persistent_faults_fail_with_the_endpoint_and_last_status(tmp_path: Path, kind: str) -> None:
    root = copy_sample(tmp_path / "lab")
    add_target(
        root,
        "down",
        f"""\
        kind: emulator
        settings: {{fault_rate: 1.0, fault_kinds: ["{kind}"], fault_retry_after: 0.05}}
        """,
    )
    result = invoke(["run", "phase-1.5", "-t", "down"], cwd=root)
    assert result.exit_code == 1, result.output
    message = next(e for e in the_record(root, "1.5").step_results() if e["status"] == "error")["error"]["message"]
    assert re.search(r"GET http://127\.0\.0\.1:\d+/subscriptions/[^ ]+/accounts", message), message
    assert re.search(rf"failed after \d+ attempts: last status {kind}", message), message
    assert "Traceback" not in result.output
    assert "hint: fix what failed, then continue with `runbook run 1.5 --resume`" in result.stderr
    assert the_record(root, "1.5").status == "failed"


KERNEL_RUNBOOK = """\
phase: "1.2"
title: Kernel
discovery:
  - id: cells
    uses: notebook.run
    with: {{path: lab.ipynb, cells: [1], timeout: 120{extra}}}
"""


def small_notebook(root: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, root / "lab.ipynb")


def test_a_kernel_that_dies_mid_cell_is_reported_not_a_hang(local_workspace: Path) -> None:
    small_notebook(local_workspace, "import os\nprint('about to die', flush=True)\nos._exit(1)")
    write_runbook(local_workspace, "1.2", KERNEL_RUNBOOK.format(extra=""))
    result = invoke(["run", "1.2"], cwd=local_workspace)
    assert result.exit_code == 1, result.output
    (event,) = the_record(local_workspace, "1.2").step_results()
    assert event["status"] == "error"  # the machine, not a check
    assert "the kernel died while running cell 1" in event["error"]["message"]
    assert "exit code 1" in event["error"]["message"]
    assert "os._exit" in event["error"]["hint"]
    assert "hint: the cell crashed the Python process" in result.stdout
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ interrupt and the workspace lock


SLEEPER = """\
phase: "1.1"
title: Sleeper
discovery:
  - {id: first, uses: set, with: {a: 1}}
fix:
  - id: sleepy
    uses: shell
    with: {cmd: [sh, -c, "echo $$ > sleeper.pid; exec sleep 60"]}
  - {id: after, uses: shell, with: {cmd: [touch, after.txt]}}
"""


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RUN, *args],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigint_stops_the_shell_child_records_interrupted_and_holds_the_lock_meanwhile(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", SLEEPER)
    process = _start(local_workspace, "run", "1.1")
    try:
        pid_file = local_workspace / "sleeper.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), "the shell child")
        child = int(pid_file.read_text())

        # One run per workspace: a second run fails at once, naming the holder.
        started = time.monotonic()
        second = invoke(["run", "1.1"], cwd=local_workspace)
        assert time.monotonic() - started < 10
        assert second.exit_code == 2, second.output
        assert f"another run holds the workspace: pid {process.pid}, phase 1.1, started 20" in second.stderr
        assert "hint: wait for it to finish; if it is gone, delete" in second.stderr
        assert len(record_paths(local_workspace / "reports", "1.1")) == 1  # the refused run left no record

        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stdout + stderr
    wait_for(lambda: gone(child), f"the shell child {child} to be gone", seconds=10)
    assert not (local_workspace / "after.txt").exists()
    record = the_record(local_workspace, "1.1")
    assert record.status == "interrupted"
    sleepy = next(e for e in record.step_results() if e["step"] == "sleepy")
    assert sleepy["status"] == "interrupted"
    assert "interrupted by the user" in sleepy["error"]["message"]
    assert (local_workspace / "reports" / "phase-1.1.md").exists()  # the report was written
    assert "hint: continue with `runbook run 1.1 --resume`" in stderr
    assert not (local_workspace / ".runbook.lock").exists()
    lines, _ = read_log(local_workspace / "reports" / "timestamps" / "execution-log.jsonl")
    assert [(line.action, line.status) for line in lines] == [("start", None), ("fail", "INTERRUPTED")]


@pytest.mark.kernel
def test_sigint_interrupts_a_running_kernel_cell(local_workspace: Path) -> None:
    small_notebook(
        local_workspace,
        "import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\nprint('slept')",
    )
    write_runbook(local_workspace, "1.2", KERNEL_RUNBOOK.format(extra=""))
    process = _start(local_workspace, "run", "1.2")
    try:
        pid_file = local_workspace / "kernel.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), "the kernel cell", seconds=120)
        kernel = int(pid_file.read_text())
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stdout + stderr
    wait_for(lambda: gone(kernel), f"the kernel {kernel} to be gone", seconds=15)
    (event,) = the_record(local_workspace, "1.2").step_results()
    assert event["status"] == "interrupted"
    assert "slept" not in stdout
    assert (local_workspace / "reports" / "phase-1.2.md").exists()
    assert "Traceback" not in stdout + stderr


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = local_workspace / ".runbook.lock"
    lock.write_text(json.dumps({"pid": dead.pid, "phase": "1.3", "started_at": "2025-11-14T04:15:00.000Z"}))
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: taking over a stale lock left by pid {dead.pid} (phase 1.3, started 2025-11-14T04:15:00.000Z): "
        "that process is gone"
    ) in result.stdout
    assert not lock.exists()

    # A live holder (this very test process) is respected, whatever its phase.
    lock.write_text(json.dumps({"pid": os.getpid(), "phase": "1.3", "started_at": "2025-11-14T04:15:00.000Z"}))
    held = invoke(["run", "1.1"], cwd=local_workspace)
    assert held.exit_code == 2
    assert f"pid {os.getpid()}, phase 1.3, started 2025-11-14T04:15:00.000Z" in held.stderr
    assert lock.exists()

    # Even a run with nothing to do (`--resume` after a success) clears a dead holder's lock first.
    lock.write_text(json.dumps({"pid": dead.pid, "phase": "1.1", "started_at": "2025-11-14T04:15:00.000Z"}))
    nothing = invoke(["run", "1.1", "--resume"], cwd=local_workspace)
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.stderr
    assert "taking over a stale lock" in nothing.stdout
    assert not lock.exists()


# ------------------------------------------------------------------ sandbox


ESCAPES = [
    "''.__class__.__mro__",
    "''.__class__.__mro__[1].__subclasses__()",
    "lipsum|attr('__globals__')",
    "cycler.__init__.__globals__",
    "joiner.__init__.__globals__",
    "namespace.__init__.__globals__",
    "range.__self__",
    "self.__init__.__globals__",
    "(1).__class__.__base__",
    "vars.__class__",
    "'{0.__class__}'.format(1)",
    "'{0.__init__.__globals__}'.format(lipsum)",
    "dict.__base__",
]


@pytest.mark.parametrize("place", ["with", "when", "expect", "shell"])
def test_template_escapes_are_refused_with_a_clear_error(local_workspace: Path, place: str) -> None:
    for expression in ESCAPES:
        step = {
            "with": f'{{id: esc, uses: set, with: {{x: "{{{{ {expression} }}}}"}}}}',
            "when": f'{{id: esc, uses: set, when: "{expression}", with: {{x: 1}}}}',
            "expect": f'{{id: esc, uses: set, with: {{x: 1}}, expect: ["{expression}"]}}',
            "shell": f'{{id: esc, uses: shell, with: {{cmd: [echo, "{{{{ {expression} }}}}"]}}}}',
        }[place]
        write_runbook(local_workspace, "1.1", f'phase: "1.1"\ntitle: t\nfix:\n  - {step}\n')
        result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
        assert result.exit_code in (1, 2), (expression, result.output)
        assert "Traceback" not in result.output and "internal error" not in result.output, result.output
        event = read_record(record_paths(local_workspace / "reports", "1.1")[-1]).step_results()[-1]
        assert event["status"] == "error", (expression, event)
        error = event["error"]
        # Refused by the sandbox (or undefined: the sandbox hides the attribute), with the way out.
        assert "refused by the sandbox" in error["message"] or "undefined" in error["message"], (expression, error)
        assert error["hint"] and ("remove the attribute access" in error["hint"] or "define it under `vars:`" in error["hint"])


def test_statement_blocks_cannot_escape_either(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - id: esc
            uses: set
            with:
              x: "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}"
        """,
    )
    result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (event,) = the_record(local_workspace, "1.1").step_results()
    assert "refused by the sandbox" in event["error"]["message"] or "undefined" in event["error"]["message"]
    assert "subprocess" not in json.dumps(event.as_record())


def test_hostile_values_stay_one_argument_in_every_position(local_workspace: Path) -> None:
    """Complements test_core's `; rm -rf` check: a string `cmd` is split before rendering, `env`,
    `stdin` and `cwd`-free argv all keep a hostile value whole, and no shell ever sees it."""
    canary = local_workspace / "canary"
    canary.write_text("still here")
    hostile = f"$(rm -rf {canary}) `rm -rf {canary}` ; rm -rf {canary} && echo pwned | tee x"
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        vars: {hostile: ""}
        fix:
          - {id: argv, uses: shell, with: {cmd: [python3, -c, "import sys, json; print(json.dumps(sys.argv[1:]))", "{{ hostile }}", x]}}
          - {id: line, uses: shell, with: {cmd: "python3 -c 'import sys, json; print(json.dumps(sys.argv[1:]))' {{ hostile }}"}}
          - {id: env, uses: shell, with: {cmd: [printenv, HOSTILE], env: {HOSTILE: "{{ hostile }}"}}}
          - {id: stdin, uses: shell, with: {cmd: [cat], stdin: "{{ hostile }}"}}
        """,
    )
    result = invoke(["run", "1.1", "--var", f"hostile={hostile}"], cwd=local_workspace)
    assert canary.exists() and not (local_workspace / "x").exists()
    steps = {e["step"]: e for e in the_record(local_workspace, "1.1").step_results()}
    assert json.loads(steps["argv"]["output"]["stdout"]) == [hostile, "x"]
    # A string command is split into words first and each word rendered after, never given to a
    # shell: the hostile value stays one inert argument, as in an argv list.
    assert json.loads(steps["line"]["output"]["stdout"])[0] == hostile
    assert steps["env"]["output"]["stdout"] == hostile + "\n"
    assert steps["stdin"]["output"]["stdout"] == hostile
    assert result.exit_code == 0, result.output


def _outside_runbook(outside: Path) -> str:
    return f"""\
phase: "1.1"
title: t
fix:
  - {{id: edit, uses: file.replace, with: {{path: "{outside / 'notes.txt'}", replacements: [{{find: broken, replace: fixed}}]}}}}
  - {{id: cells, uses: notebook.cells, with: {{path: "{outside / 'other.ipynb'}"}}}}
"""


def test_paths_outside_the_workspace_need_allowed_paths(local_workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("broken\n")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), outside / "other.ipynb")
    write_runbook(local_workspace, "1.1", _outside_runbook(outside))

    refused = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert refused.exit_code == 1
    (edit, skipped) = the_record(local_workspace, "1.1").step_results()
    assert "leaves the workspace" in edit["error"]["message"] and skipped["status"] == "skipped"
    assert "list the folder under `allowed_paths:` in runbook.yaml" in edit["error"]["hint"]
    assert (outside / "notes.txt").read_text() == "broken\n"

    # A symlink inside the workspace that points outside is the same path, and refused the same way.
    (local_workspace / "link").symlink_to(outside)
    write_runbook(local_workspace, "1.1", _outside_runbook(local_workspace / "link"))
    via_link = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert via_link.exit_code == 1 and "leaves the workspace" in via_link.stdout
    assert (outside / "notes.txt").read_text() == "broken\n"

    config = local_workspace / "runbook.yaml"
    config.write_text(config.read_text() + f"allowed_paths: [{os.path.relpath(outside, local_workspace)}]\n")
    write_runbook(local_workspace, "1.1", _outside_runbook(outside))
    allowed = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert allowed.exit_code == 0, allowed.output
    assert (outside / "notes.txt").read_text() == "fixed\n"


def test_notebook_steps_refuse_notebooks_outside_the_workspace(local_workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), outside)
    before = outside.read_bytes()
    write_runbook(
        local_workspace,
        "1.1",
        f"""\
        phase: "1.1"
        title: t
        fix:
          - id: edit
            uses: notebook.edit
            with: {{path: "../{outside.name}", cell: 1, replacements: [{{find: "x = 1", replace: "x = 2"}}]}}
        """,
    )
    result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert result.exit_code == 1 and "leaves the workspace" in result.stdout
    assert outside.read_bytes() == before


def test_azure_target_refuses_clear_text_to_remote_hosts(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    env = {
        "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
        "RESOURCE_GROUP": "lab",
        "APIM_SERVICE_NAME": "apim",
        "APIM_GATEWAY_URL": "http://apim-example.azure-api.net",
        "APIM_API_KEY": "k3y-never-sent-in-clear",
    }
    result = invoke(["run", "1.5", "-t", "azure"], cwd=root, env=env)
    assert result.exit_code == 2, result.output
    assert "gateway_url http://apim-example.azure-api.net uses plain http to a non-loopback host" in result.stderr
    assert "hint: use https:// (plain http is allowed only for 127.0.0.1/localhost)" in result.stderr
    assert "k3y-never-sent-in-clear" not in result.output
    assert not (root / "reports" / "runs").exists()  # refused before any step


def test_the_emulator_binds_loopback_only() -> None:
    """`Emulator(host="0.0.0.0")` is refused (test_emulator covers the class); so is the command line."""
    for host in ("0.0.0.0", "::", "10.0.0.1"):
        assert invoke(["emulator", "--host", host]).exit_code == 2


# ------------------------------------------------------------------ secrets


CANARIES = {
    "env": "cnry-env-5b1f0e2d9a",
    "var": "cnry-var-7c4e81aa03",
    "dotenv": "cnry-dotenv-2f9d6b11c8",
    "token": "cnry-token-90ab3e4d51",
    "apim": "cnry-apim-key-e6a0c7f2b4",
    # a password whose URL-encoded and JSON-escaped forms differ from it
    "special": 'cnry-sp:/@\\"+ &=x9',
}


def encoded_forms(name: str, value: str) -> dict[str, str]:
    """The value and the encodings a program commonly prints it in (each must be masked too)."""
    return {
        name: value,
        f"{name} (base64)": base64.b64encode(value.encode()).decode(),
        f"{name} (Basic user:value)": base64.b64encode(f"user:{value}".encode()).decode(),
        f"{name} (URL-encoded)": urllib.parse.quote(value, safe=""),
        f"{name} (JSON-escaped)": json.dumps(value)[1:-1],
    }


# A loopback server whose answer puts the token across the record's 2,000-character HTTP bound.
class _Straddle(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = ("x" * 1990 + CANARIES["token"] + "y" * 100).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


LEAKY = """\
phase: "1.6"
title: Backend Services
vars: {lab_password: ""}
inputs:
  token: {env: LAB_TOKEN, secret: true, required: true}
  special: {env: LAB_SPECIAL_PASSWORD, secret: true, required: true}
discovery:
  - id: echo
    title: Every secret, echoed on purpose
    uses: shell
    with:
      cmd: [sh, -c, 'echo "env=$LAB_API_KEY var={{ lab_password }} token={{ secrets.token }} key=$APIM_API_KEY"']
      changes: false
  - id: dotenv
    uses: shell
    with: {cmd: [cat, .env], changes: false}
  - id: keyed-url
    uses: http.request
    with:
      method: POST
      url: "{{ target.gateway_url }}/inference/openai/deployments/FLUX-1.1-pro/images/generations?api-version=2024-08-01-preview&subscription-key={{ target.api_key }}"
      json: {prompt: a lighthouse, n: 1, size: 256x256}
      expect: {status: 200}
  - id: shell-bound
    title: The token straddles the shell output bound (64,000 characters)
    uses: shell
    with:
      cmd: [python3, -c, "print('x' * 63995 + '{{ secrets.token }}' + 'y' * 100)"]
      changes: false
  - id: http-bound
    title: The token straddles the HTTP body bound (2,000 characters)
    uses: http.request
    with: {url: "http://127.0.0.1:PORT/straddle", auth: none}
  - id: encodings
    title: The secrets printed base64, as Basic auth, URL-encoded and JSON-escaped
    uses: shell
    with:
      cmd: [python3, -c, "ENCODER"]
      changes: false
fix:
  - id: leak-in-error
    uses: shell
    with: {cmd: [sh, -c, 'echo "failing with {{ secrets.token }} $APIM_API_KEY" >&2; exit 3']}
    continue_on_error: true
  - id: leak-in-assert
    uses: assert
    with: {that: [{that: false, message: "token {{ secrets.token }} rejected"}]}
    continue_on_error: true
  - id: retried
    title: A retried request whose templated URL holds the token (retry warnings)
    uses: http.request
    with: {url: "http://127.0.0.1:CLOSED/{{ secrets.token }}/x?t={{ secrets.token }}", auth: none, retries: 1, timeout: 2}
    continue_on_error: true
  - id: manual-prompt
    uses: manual
    with: {instruction: "rotate the key {{ secrets.token }} in the portal"}
    continue_on_error: true
  - id: kernel
    title: A kernel cell prints the secrets in their encodings
    uses: notebook.run
    changes: false
    with: {path: leak.ipynb, cells: [1]}
  - id: bearer
    uses: shell
    with: {cmd: [sh, -c, 'echo "Bearer {{ secrets.token }}"']}
    changes: false
    register: bearer
  - id: needs-bearer
    title: Fails once, then uses the restored value (which held a secret) in the resumed run
    uses: shell
    with:
      cmd: [sh, -c, 'test -e .second-try || { touch .second-try; exit 1; }; echo "{{ bearer.stdout | trim }}" > /dev/null']
"""

# Printed by a shell step and by a kernel cell: each secret in the forms `encoded_forms` lists.
ENCODER = (
    "import base64, json, os, urllib.parse\n"
    "for name in ('LAB_TOKEN', 'LAB_SPECIAL_PASSWORD'):\n"
    "    v = os.environ[name]\n"
    "    print(base64.b64encode(v.encode()).decode(), base64.b64encode(('user:' + v).encode()).decode())\n"
    "    print(urllib.parse.quote(v, safe=''), json.dumps({'p': v}))\n"
)


def test_canary_secrets_never_leave_the_process(tmp_path: Path) -> None:
    from runbook.azure.estate import default_estate_path

    root = copy_sample(tmp_path / "lab")
    git_init(root)
    estate = default_estate_path().read_text(encoding="utf-8")
    assert "[emulator-apim-key-0000-not-a-secret]" in estate
    (tmp_path / "estate.yaml").write_text(estate.replace("emulator-apim-key-0000-not-a-secret", CANARIES["apim"]))
    config = root / "runbook.yaml"
    config.write_text(
        # The estate holds the canary key, so it lives outside the repository (named in allowed_paths).
        f"allowed_paths: [{tmp_path}]\n"
        + config.read_text().replace("    kind: emulator\n", f"    kind: emulator\n    estate: {tmp_path / 'estate.yaml'}\n", 1)
    )
    (root / ".env").write_text(f"# lab secrets\nLAB_SERVICE_PASSWORD={CANARIES['dotenv']}\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Straddle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    leaky = (
        LEAKY.replace("PORT", str(server.server_address[1]))
        .replace("CLOSED", str(closed.getsockname()[1]))
        .replace("ENCODER", ENCODER.replace("\n", "\\n"))
    )
    write_runbook(root, "1.6", leaky)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(ENCODER)])
    nbformat.write(notebook, str(root / "leak.ipynb"))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    env = {"LAB_API_KEY": CANARIES["env"], "LAB_TOKEN": CANARIES["token"], "LAB_SPECIAL_PASSWORD": CANARIES["special"]}
    var = ["--var", f"lab_password={CANARIES['var']}"]

    outputs = []
    try:
        for args, code in (
            (["run", "phase-1.5", "--commit", "-v"], 0),  # 1.5 declares no lab_password: --var would be refused
            (["run", "phase-1.6", "--commit", "--json", *var], 1),  # needs-bearer fails once
            (["run", "phase-1.6", "--resume", "--commit", *var], 0),  # restored `bearer` is not its mask
            (["run", "phase-1.6", "--json", "--no-report", *var], 0),
            (["status"], 0),
            (["status", "1.5", "--json"], 0),
            (["report", "phase-1.6", "-o", "-"], 0),
            (["docs", "build"], 0),
        ):
            result = invoke(args, cwd=root, env=env)
            assert result.exit_code == code, (args, result.output)
            outputs.append(result.output)
    finally:
        server.shutdown()
        closed.close()

    # The secrets did travel: the leaky steps saw them (masked), the gateway accepted the canary key.
    records = [read_record(path) for path in record_paths(root / "reports", "1.6")]
    steps = {e["step"]: e for record in records for e in record.step_results()}
    assert steps["echo"]["output"]["stdout"] == "env=*** var=*** token=*** key=***\n"
    assert "LAB_SERVICE_PASSWORD=***" in steps["dotenv"]["output"]["stdout"]
    assert steps["keyed-url"]["status"] == "ok"
    assert steps["leak-in-error"]["status"] == "failed"  # its message holds no secret: the scan below checks every form
    # At the bound a shell output is cut before the straddling secret (none of it kept); http masks it whole.
    assert CANARIES["token"][:6] not in steps["shell-bound"]["output"]["stdout"]
    assert "***" in steps["http-bound"]["output"]["text"]
    assert steps["needs-bearer"]["status"] in ("ok", "changed")
    assert any("retrying" in text for text in outputs[1:3])  # the retry warnings were printed (masked)
    assert "bearer: its recorded output was masked" in outputs[2]  # re-run on resume, not handed on masked

    found: list[str] = []
    forms = {k: v for name, canary in CANARIES.items() for k, v in encoded_forms(name, canary).items()}
    # a fragment long enough to be the token and no other text: half a straddling secret shows here
    forms["token (a half)"] = CANARIES["token"][:12]
    history = git(root, "log", "-p", "--all")
    for name, canary in forms.items():
        for number, text in enumerate(outputs):
            if canary in text:
                found.append(f"console output #{number}: {name}")
        for path in root.rglob("*"):
            scanned = path.is_file() and ".git" not in path.relative_to(root).parts and path != root / ".env"
            if scanned and canary.encode() in path.read_bytes():
                found.append(f"{path.relative_to(root)}: {name}")
        if canary in history:
            found.append(f"git history: {name}")
    assert found == []
    committed = git(root, "log", "--name-only", "--format=%s")
    assert "reports/runs/1.5/" in committed and ".env" not in committed.split()
    assert CANARIES["dotenv"] in (root / ".env").read_text()  # .env holds it, and is never committed
