"""A run killed mid-way and resumed gets its emulator back where it was.

Phase 1.6's discovery registers service endpoints built from the emulator's gateway URL (the Cosmos
DB and search endpoints); its verify steps call them. Before the `target_address` record line, a
resumed run's emulator listened on new ports and the restored endpoints pointed at nothing: the
verify stage failed with "All connection attempts failed". Real processes, real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import copy_sample
from runbook.targets import _recorded_ports

KILL_AFTER = "cosmos-ip-rule"  # a fix step: discovery's endpoints are restored, verify still to come


def run_and_kill_after(root: Path, step: str) -> None:
    """`runbook run 1.6 --yes`, killed (the whole process group, SIGKILL) once `step` has finished."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runbook", "run", "1.6", "--yes", "--json", "--no-report"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        for line in process.stdout:
            event = json.loads(line)
            if event.get("event") == "step_finished" and event.get("step") == step:
                os.killpg(process.pid, signal.SIGKILL)
                break
        else:
            pytest.fail(f"the run ended before {step} finished")
    finally:
        process.wait(timeout=60)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL


def resume(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runbook", "run", "1.6", "--resume", "--yes", "--no-report"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def hang_up_on_everyone(server: socket.socket) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except OSError:
            return  # closed by the test
        connection.close()


def record_lines(root: Path) -> list[dict[str, object]]:
    (path,) = sorted((root / "reports" / "runs" / "1.6").glob("*.jsonl"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_resumed_run_binds_the_interrupted_runs_emulator_ports_again(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    run_and_kill_after(root, KILL_AFTER)
    (address,) = [e for e in record_lines(root) if e["event"] == "target_address"]
    assert str(address["arm_url"]).startswith("http://127.0.0.1:") and address["target"] == "emulator"
    restored_endpoint = next(
        e["output"] for e in record_lines(root) if e.get("step") == "cosmos-account" and e["event"] == "step_finished"
    )
    assert str(address["gateway_url"]) in json.dumps(restored_endpoint)  # discovery's output holds the URL

    resumed = resume(root)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "is taken" not in resumed.stderr
    events = record_lines(root)
    again = [e for e in events if e["event"] == "target_address"]
    assert [(e["arm_url"], e["gateway_url"]) for e in again] == [(address["arm_url"], address["gateway_url"])] * 2
    finished = {e["step"]: e["status"] for e in events if e["event"] == "step_finished"}
    assert finished["cosmos-query"] == "ok" and finished["run-backend-cells"] == "ok"
    assert [e["status"] for e in events if e["event"] == "run_finished"] == ["success"]


def test_a_taken_port_is_a_warning_that_names_both_addresses(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    run_and_kill_after(root, KILL_AFTER)
    (address,) = [e for e in record_lines(root) if e["event"] == "target_address"]
    gateway_port = int(str(address["gateway_url"]).rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", gateway_port))
        squatter.listen()
        # Something else listens there now: it hangs up on every connection (the restored endpoint fails fast).
        threading.Thread(target=hang_up_on_everyone, args=(squatter,), daemon=True).start()
        resumed = resume(root)
    output = resumed.stdout + resumed.stderr
    assert f"the interrupted run's emulator address ({address['arm_url']}, {address['gateway_url']}) is taken" in output, output
    assert "restored outputs that hold the old URLs will not reach it" in output
    assert "Traceback" not in resumed.stderr
    # the run went on against free ports; the step that used a restored endpoint is what failed
    moved = [e for e in record_lines(root) if e["event"] == "target_address"][-1]
    assert moved["gateway_url"] != address["gateway_url"]
    assert resumed.returncode == 1


@pytest.mark.parametrize(
    ("address", "ports"),
    [
        (None, None),
        ({}, None),
        ({"arm_url": "http://127.0.0.1:4000", "gateway_url": "http://127.0.0.1:4001/"}, {"arm_port": 4000, "gateway_port": 4001}),
        ({"arm_url": "https://[::1]:4000", "gateway_url": "https://[::1]:4001"}, {"arm_port": 4000, "gateway_port": 4001}),
        ({"arm_url": "http://127.0.0.1:4000", "gateway_url": None}, None),
        ({"arm_url": "http://127.0.0.1", "gateway_url": "http://127.0.0.1:4001"}, None),
        ({"arm_url": "http://127.0.0.1:99999", "gateway_url": "http://127.0.0.1:4001"}, None),
        ({"arm_url": "http://127.0.0.1:x", "gateway_url": "http://127.0.0.1:4001"}, None),
    ],
)
def test_the_recorded_ports(address: dict[str, str | None] | None, ports: dict[str, int] | None) -> None:
    assert _recorded_ports(address) == ports


def test_the_fleet_emulator_listens_where_it_is_asked_to_or_says_it_moved() -> None:
    from runbook.fleet.emulator import start_fleet_emulator

    estate = Path(__file__).resolve().parent.parent / "src" / "runbook" / "azure" / "default_estate.yaml"
    first = start_fleet_emulator(estate)
    try:
        ports = (int(first.arm_url.rsplit(":", 1)[1]), int(first.gateway_url.rsplit(":", 1)[1]))
        assert first.moved is False
        taken = start_fleet_emulator(estate, ports=ports)  # both ports are the running one's
        try:
            assert taken.moved is True and taken.arm_url != first.arm_url and taken.gateway_url != first.gateway_url
        finally:
            taken.stop()
    finally:
        first.stop()
    again = start_fleet_emulator(estate, ports=ports)  # free again: the same address
    try:
        assert (again.arm_url, again.gateway_url, again.moved) == (first.arm_url, first.gateway_url, False)
    finally:
        again.stop()


def test_an_emulator_started_line_without_a_move_is_what_older_readers_read() -> None:
    from runbook.fleet.record import EmulatorStarted

    line = EmulatorStarted(estate="e.yaml", arm_url="http://127.0.0.1:1", gateway_url="http://127.0.0.1:2", pid=3).model_dump(mode="json")
    assert "moved_from" not in line  # fleet records reject unknown keys: a reader from before the field must not see it
    moved = EmulatorStarted(estate="e.yaml", arm_url="a", gateway_url="g", moved_from="http://127.0.0.1:1, http://127.0.0.1:2")
    assert moved.model_dump(mode="json")["moved_from"] == "http://127.0.0.1:1, http://127.0.0.1:2"


def test_the_wait_for_the_killed_runs_emulator_is_a_console_line() -> None:
    from runbook.fleet.report import event_line

    line = event_line({"event": "emulator_waiting", "time": "2026-12-01T19:00:00.000Z", "pid": 4242})
    assert line is not None and "waiting for the killed run's emulator (pid 4242)" in line


def test_a_fleet_record_line_from_a_newer_runbook_stays_readable(tmp_path: Path) -> None:
    from runbook.fleet.record import read_fleet_record

    path = tmp_path / "fleet.jsonl"
    started = {"event": "emulator_started", "time": "2026-12-01T19:00:00.000Z", "estate": "e.yaml",
               "arm_url": "http://127.0.0.1:1", "gateway_url": "http://127.0.0.1:2", "pid": 3}  # fmt: skip
    lines = [
        {**started, "added_later": {"any": "value"}},  # a key this version does not know: dropped
        {**started, "added_later": 1, "pid": "not a number"},  # and a real problem: unreadable
        {"event": "no_such_kind", "time": "2026-12-01T19:00:00.000Z"},  # an unknown kind: unreadable
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    record = read_fleet_record(path)
    assert record.events == [started]
    assert [w.split(": ", 2)[0].rsplit(":", 1)[1] for w in record.warnings] == ["2", "3"]
