"""Fleets: the fleet file, rate control, the fleet record and report, member runs on real workspaces.

Members are generated from the committed sample (`git archive HEAD`), each its own git repository;
ONE emulator (started by the coordinator) serves the fleet's estate, a subscription, accounts and
gateway per member; three of twelve are broken by design (no image model, a throttling
subscription, a gateway without the image route). The unmarked tests are the
bounded CI share (the file format, the record and report, a two-member fleet with a git member);
Ctrl-C of a coordinator then --resume; the `slow` ones run the 12-member fleet: --max-errors, a
SIGKILLed coordinator then --resume, and a loopback Dask cluster that loses a worker mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import REPO, git, invoke
from runbook.fleet.generate import DEFAULT_BROKEN, generate_fleet
from runbook.fleet.model import fleet_schema, load_fleet
from runbook.fleet.record import FleetRecordWriter, MemberFinished, MemberStarted, read_fleet_record
from runbook.record import read_record, record_paths

SRC = REPO / "src"

BROKEN_NAMES = {f"member-{i:02d}" for i in DEFAULT_BROKEN}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def _fleet_record(root: Path) -> Path:
    paths = sorted((root / "reports" / "fleet" / "1.5").glob("*.jsonl"))
    assert len(paths) == 1, paths
    return paths[0]


def _events(root: Path) -> list[dict]:
    return read_fleet_record(_fleet_record(root)).events


def _member_records(member: Path) -> list:
    return [read_record(p) for p in record_paths(member / "reports", "1.5")]


def _assert_no_step_repeated(member: Path) -> None:
    """Across every record of the member, each step completed at most once (restored steps do not count)."""
    done = Counter()
    for record in _member_records(member):
        for event in record.events:
            if event.get("event") == "step_finished" and (
                event.get("status") in ("ok", "changed") or (event.get("stage") == "reproduce" and event.get("status") == "failed")
            ):
                done[(event["stage"], event["step"])] += 1
    repeated = {step: n for step, n in done.items() if n > 1}
    assert not repeated, f"{member.name}: steps completed more than once: {repeated}"


def _assert_members_done_once(root: Path, count: int = 12) -> None:
    for index in range(1, count + 1):
        member = root / "members" / f"member-{index:02d}"
        statuses = [r.status for r in _member_records(member)]
        if member.name in BROKEN_NAMES:
            assert statuses == ["failed"], (member.name, statuses)
        else:
            assert statuses == ["success"], (member.name, statuses)  # exactly one successful run record
        _assert_no_step_repeated(member)


# ---------------------------------------------------------------- the fleet file


def test_committed_fleet_schema_is_current() -> None:
    committed = json.loads((REPO / "fleet.schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(fleet_schema())), (
        'regenerate it: python -c "from pathlib import Path; from runbook.fleet import write_schema; '
        "write_schema(Path('fleet.schema.json'))\""
    )
    assert committed["additionalProperties"] is False
    assert "members" in committed["properties"]


def test_fleet_file_problems_are_located_with_did_you_mean(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        "fleet: broken\n"
        "memebers: []\n"
        "members:\n"
        "  - name: a\n"
        "    workspce: ws-a\n"
        "  - name: b\n"
        "    workspace: ws-b\n"
        "    repo: https://example.invalid/b.git\n"
        "rate:\n"
        "  max_concurency: 3\n",
        encoding="utf-8",
    )
    result = invoke(["fleet", "-f", str(tmp_path / "fleet.yaml"), "run", "1.5", "--yes"], cwd=tmp_path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "fleet.yaml:2:1: unknown key 'memebers': did you mean 'members'?" in result.stderr
    assert "fleet.yaml:5:5: unknown key 'workspce': did you mean 'workspace'?" in result.stderr
    assert "fleet.yaml:10:3: unknown key 'max_concurency': did you mean 'max_concurrency'?" in result.stderr
    assert "fleet.yaml:6:5:" in result.stderr and "exactly one of 'workspace'" in result.stderr
    assert not (tmp_path / "reports").exists()  # nothing half-written


def test_generators_defaults_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "fleet: gen\n"
        "defaults:\n"
        "  target: member\n"
        "  secrets: {api_key: APIM_KEY}\n"
        "members:\n"
        "  - {name: hand-made, workspace: teams/x, gateway: 'https://gw.example'}\n"
        "generate:\n"
        "  - name: team-{n:02d}\n"
        "    range: [1, 3]\n"
        "    workspace: teams/team-{n:02d}\n"
        "    subscription: 00000000-0000-0000-0000-00000000000{n}\n"
        "    secrets: {api_key: 'TEAM_{n}_KEY'}\n",
        encoding="utf-8",
    )
    fleet = load_fleet(path)
    assert [m.name for m in fleet.members] == ["hand-made", "team-01", "team-02", "team-03"]
    team2 = fleet.members[2]
    assert team2.workspace == (tmp_path / "teams" / "team-02").resolve()
    assert team2.settings["subscription_id"] == "00000000-0000-0000-0000-000000000002"
    assert team2.secrets == {"api_key": "TEAM_2_KEY"} and team2.target == "member"
    assert fleet.members[0].settings["gateway_url"] == "https://gw.example"
    assert fleet.members[0].secrets == {"api_key": "APIM_KEY"}
    assert [m.name for m in fleet.select(["team-0[13]"])] == ["team-01", "team-03"]
    result = invoke(["fleet", "-f", str(path), "run", "1.5", "--members", "tema-*", "--yes"], cwd=tmp_path)
    assert result.exit_code == 2 and "matches no member" in result.stderr

    path.write_text(path.read_text() + "  - {name: hand-made, range: [1, 1], workspace: w}\n", encoding="utf-8")
    result = invoke(["fleet", "-f", str(path), "status", "1.5"], cwd=tmp_path)
    assert result.exit_code == 2
    assert "has no {n} placeholder" in result.stderr and "fleet.yaml:13:" in result.stderr


def test_generated_fleet_has_one_estate_with_a_subscription_and_gateway_per_member(tmp_path: Path) -> None:
    from runbook.azure.estate import load_estate

    result = invoke(["fleet", "generate", str(tmp_path / "f"), "--members", "9", "--subscriptions", "2", "--latency", "0.05",
                     "--source", str(REPO)], cwd=tmp_path)
    assert result.exit_code == 0, result.output
    fleet = load_fleet(tmp_path / "f" / "fleet.yaml")
    assert fleet.config.emulator is not None and fleet.config.emulator.latency == 0.05
    estate = load_estate(fleet.estate_path)
    by_member = {group.name: (sub, group) for sub, group in estate.groups()}
    assert sorted(by_member) == [f"rg-member-{i:02d}" for i in range(1, 10)]
    for spec in fleet.members:
        sub, group = by_member[spec.settings["resource_group"]]
        assert sub.id == spec.subscription and [svc.name for svc in group.apim] == [spec.settings["apim_service"]]
    # two shared subscriptions, and the throttled member (5) alone in a tiny-bucket one
    throttled = fleet.members[4]
    assert len({m.subscription for m in fleet.members}) == 3
    assert [m.name for m in fleet.members if m.subscription == throttled.subscription] == ["member-05"]
    tiny = estate.find_subscription(throttled.subscription or "")
    assert tiny is not None and tiny.rate_limits is not None and tiny.rate_limits.reads.burst == 3
    assert all(s.rate_limits is not None and s.rate_limits.reads.burst == 250 for s in estate.subscriptions if s is not tiny)
    assert throttled.settings["http_attempts"] == 3
    image = {group.name: any("imageGenerations" in d.effective_capabilities() for a in group.accounts for d in a.deployments)
             for _, group in estate.groups()}
    assert image["rg-member-02"] is False and image["rg-member-01"] is True
    routes = {group.name: [o.url_template for api in group.apim[0].apis for o in api.operations] for _, group in estate.groups()}
    assert not any("images" in t for t in routes["rg-member-08"]) and any("images" in t for t in routes["rg-member-07"])
    target = YAML(typ="rt").load((tmp_path / "f" / "members" / "member-01" / "runbook.yaml").read_text())["targets"]["member"]
    assert target["kind"] == "azure" and target["settings"]["credential"] == "emulator"


def test_members_must_be_in_the_fleets_estate(tmp_path: Path) -> None:
    generate_fleet(tmp_path, 2, source=REPO, broken={}, git=False)
    text = (tmp_path / "fleet.yaml").read_text().replace("apim_service: apim-member-02", "apim_service: apim-membr-02")
    (tmp_path / "fleet.yaml").write_text(text)
    result = invoke(["fleet", "run", "1.5", "--yes"], cwd=tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "fleet.yaml:" in result.stderr and "'apim-membr-02' is not in the fleet's estate estate.yaml" in result.stderr
    assert "did you mean 'apim-member-02'" in result.stderr
    assert not (tmp_path / "reports" / "fleet").exists()  # nothing started, nothing written


@pytest.mark.parametrize(
    ("value", "total", "expected"),
    [(2, 12, 2), ("2", 12, 2), ("25%", 12, 3), ("10%", 12, 1), ("0%", 12, 0), (None, 12, None)],
)
def test_limits_are_counts_or_percentages(value: object, total: int, expected: int | None) -> None:
    from runbook.fleet.coordinator import parse_limit

    assert parse_limit(value, total, "--max-errors") == expected  # type: ignore[arg-type]


def test_bad_limits_are_input_errors(tmp_path: Path) -> None:
    generate_fleet(tmp_path / "f", 1, source=REPO, broken={}, git=False)
    for option, value in (("--max-errors", "lots"), ("--max-concurrency", "0"), ("--max-errors", "150%")):
        result = invoke(["fleet", "run", "1.5", option, value, "--yes"], cwd=tmp_path / "f")
        assert result.exit_code == 2, result.output
        assert "is not a count or a percentage" in result.stderr
    result = invoke(["fleet", "run", "1.5", "--engine", "dask", "--yes"], cwd=tmp_path / "f")
    assert result.exit_code == 2 and "--scheduler" in result.stderr
    result = invoke(["fleet", "run", "1.5", "--resume", "--yes"], cwd=tmp_path / "f")
    assert result.exit_code == 2 and "no fleet run of phase 1.5" in result.stderr


def test_per_subscription_waits_while_other_subscriptions_go_ahead() -> None:
    from runbook.fleet.coordinator import _next_startable
    from runbook.fleet.model import MemberSpec

    def spec(name: str, sub: str | None) -> MemberSpec:
        return MemberSpec(name=name, workspace=None, repo=None, ref=None, path=None, target=None, subscription=sub)

    running = {object(): (spec("a", "s1"), 0.0)}
    pending = [(spec("b", "s1"), None), (spec("c", "s2"), None), (spec("d", None), None)]
    assert _next_startable(pending, running, 1) == 1  # b waits for s1, c (s2) goes first
    assert _next_startable(pending, running, 2) == 0
    assert _next_startable(pending[:1], running, 1) is None
    assert _next_startable(pending, running, None) == 0


# ---------------------------------------------------------------- record and report


def test_fleet_record_report_and_chart(tmp_path: Path) -> None:
    from runbook.fleet.record import FleetFinished, FleetStarted
    from runbook.fleet.report import fleet_view, render_svg, write_report

    path = tmp_path / "reports" / "fleet" / "1.5" / "20261201T000000000Z-abcdef.jsonl"
    writer = FleetRecordWriter(path)
    writer.write(FleetStarted(fleet_run_id=path.stem, fleet="demo", phase="1.5", fleet_file="fleet.yaml", engine="local",
                              members=["m1", "m2", "m3"], options={}, time="2026-12-01T00:00:00.000Z"))
    for name in ("m1", "m2"):
        writer.write(MemberStarted(member=name, mode="start", time="2026-12-01T00:00:01.000Z"))
    writer.write(MemberFinished(member="m1", status="success", duration_s=4.5, cells_changed=[15, 17], run_id="r1",
                                record=str(tmp_path / "m1" / "r1.jsonl"), time="2026-12-01T00:00:05.000Z"))
    writer.write(MemberFinished(member="m2", status="failed", duration_s=1.25, failed_step="image-models",
                                error="no image | model", time="2026-12-01T00:00:03.000Z"))
    with path.open("ab") as handle:
        handle.write(b'{"event":"member_fin')  # a torn last line: the coordinator was killed mid-append
    record = read_fleet_record(path)
    assert len(record.events) == 5 and "torn last line" in record.warnings[0]
    view = fleet_view(record)
    assert [m["status"] for m in view.members] == ["success", "failed", "pending"]
    assert view.totals["success"] == 1 and view.totals["failed"] == 1

    with path.open("ab") as handle:
        handle.write(b"\n")
    FleetRecordWriter(path).write(FleetFinished(status="failed", totals={}, duration_s=6.0, time="2026-12-01T00:00:06.000Z"))
    md, svg = write_report(read_fleet_record(path))
    first = (md.read_bytes(), svg.read_bytes())
    write_report(read_fleet_record(path))
    assert (md.read_bytes(), svg.read_bytes()) == first  # deterministic
    text = md.read_text()
    assert "| m2 | failed | 1.2s | - | image-models | no image \\| model |" in text
    assert "[record](../../../m1/r1.jsonl)" in text and f"]({svg.name})" in text
    chart = ET.fromstring(render_svg(fleet_view(read_fleet_record(path))))
    bars = [r for r in chart.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
    assert len(bars) == 3 and float(bars[0].get("width")) > float(bars[1].get("width"))
    assert bars[0].get("fill") != bars[1].get("fill")
    assert "<script" not in svg.read_text()


def test_the_chart_names_statuses_in_the_legend_words() -> None:
    from runbook.fleet.report import FleetView, render_svg

    members = [
        {"member": "m1", "status": "success", "duration_s": 2.0},
        {"member": "m2", "status": "not_started", "duration_s": None},
    ]
    view = FleetView("f", "demo", "1.5", "failed", None, 2.0, "local", "r.jsonl", members, [])
    chart = ET.fromstring(render_svg(view))
    texts = [t.text for t in chart.iter("{http://www.w3.org/2000/svg}text")]
    titles = [t.text for t in chart.iter("{http://www.w3.org/2000/svg}title")]
    assert "not started" in texts and "not started 1" in texts  # the bar's label and the legend agree
    assert not any("not_started" in (t or "") for t in texts + titles), (texts, titles)
    assert any(t.startswith("m2: not started") for t in titles), titles


# ---------------------------------------------------------------- real member runs


def test_two_member_fleet_with_a_git_member_commits_on_a_branch(tmp_path: Path) -> None:
    """A repository member (cloned from a bare repo) and a workspace member broken by design."""
    made = tmp_path / "made"
    generate_fleet(made, 2, source=REPO, broken={2: "no-image-model"})
    bare = tmp_path / "repos" / "member-01.git"
    git(tmp_path, "clone", "-q", "--bare", str(made / "members" / "member-01"), str(bare))
    canary = "fleet-canary-" + "7c1e" * 4
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(
        "fleet: two\n"
        "emulator: {estate: made/estate.yaml}\n"
        "defaults: {target: member}\n"
        "members:\n"
        "  - {name: from-git, repo: repos/member-01.git, ref: main, apim_service: apim-member-01,\n"
        "     secrets: {extra_token: FLEET_TEST_TOKEN}}\n"
        f"  - {{name: broken, workspace: {made / 'members' / 'member-02'}, apim_service: apim-member-02}}\n",
        encoding="utf-8",
    )
    env = {"FLEET_TEST_TOKEN": canary}
    result = invoke(["fleet", "run", "1.5", "--yes", "--json", "--commit", "--branch", "--max-concurrency", "2"], cwd=tmp_path, env=env)
    assert result.exit_code == 1, result.output  # one member failed
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = {e["member"]: e for e in events if e["event"] == "member_finished"}
    assert finished["from-git"]["status"] == "success", finished["from-git"]
    assert finished["from-git"]["cells_changed"] == [15, 17, 19]
    assert finished["broken"]["status"] == "failed" and finished["broken"]["failed_step"] == "image-models"
    fleet_run_id = events[0]["fleet_run_id"]
    clone = tmp_path / ".fleet" / "work" / "from-git"
    assert git(clone, "rev-parse", "--abbrev-ref", "HEAD").strip() == f"fleet/1.5/{fleet_run_id}"
    assert git(clone, "log", "-1", "--format=%s").startswith("phase-1.5: ")
    assert finished["from-git"]["commit"] == git(clone, "rev-parse", "HEAD").strip()
    for path in [*tmp_path.rglob("*.jsonl"), *tmp_path.rglob("*.md")]:
        assert canary not in path.read_text(encoding="utf-8"), path

    status = invoke(["fleet", "status", "1.5", "--json"], cwd=tmp_path)
    assert status.exit_code == 0
    view = json.loads(status.stdout)
    assert view["totals"]["success"] == 1 and view["totals"]["failed"] == 1
    report = invoke(["fleet", "report", "1.5"], cwd=tmp_path)
    assert report.exit_code == 0 and report.stdout.count("wrote ") == 2

    again = invoke(["fleet", "run", "1.5", "--resume", "--yes", "--json"], cwd=tmp_path)
    assert again.exit_code == 1
    skipped = [json.loads(line) for line in again.stdout.splitlines() if '"member_skipped"' in line]
    assert {e["member"] for e in skipped} == {"from-git", "broken"}
    assert len(_member_records(clone)) == 1 and len(_member_records(made / "members" / "member-02")) == 1


# ---------------------------------------------------------------- Ctrl-C


def _mid_run(root: Path, name: str) -> bool:
    """The member's run record has begun and got past its first step."""
    member = root / "members" / name
    return any(r.status == "incomplete" and len(r.events) > 2 for r in _member_records(member))


@pytest.mark.parametrize("who", ["coordinator", pytest.param("process-group", marks=pytest.mark.slow)])
def test_ctrl_c_stops_new_starts_and_resume_completes(tmp_path: Path, who: str) -> None:
    """SIGINT to a running coordinator (or, as a terminal's Ctrl-C does, to its whole process group)."""
    generate_fleet(tmp_path, 3, source=REPO, broken={})
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "runbook.cli", "fleet", "run", "1.5", "--yes", "--max-concurrency", "1"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        _wait_for(lambda: _mid_run(tmp_path, "member-01"), 180, "member-01 half-way through its run")
        if who == "coordinator":
            coordinator.send_signal(signal.SIGINT)
        else:
            os.killpg(coordinator.pid, signal.SIGINT)
        out, err = coordinator.communicate(timeout=180)
    finally:
        if coordinator.poll() is None:
            os.killpg(coordinator.pid, signal.SIGKILL)
            coordinator.wait()
    assert coordinator.returncode == 130, (out.decode()[-2000:], err.decode()[-2000:])  # as `runbook run` on Ctrl-C
    assert "--resume" in err.decode() and "Traceback" not in err.decode()
    events = _events(tmp_path)
    kinds = [e["event"] for e in events]
    stop = kinds.index("fleet_interrupted")
    assert events[stop]["signal"] == "SIGINT" and events[stop]["running"] == ["member-01"]
    assert "member_started" not in kinds[stop:]  # no new member starts
    (finished,) = [e for e in events[stop:] if e["event"] == "member_finished"]
    # alone, the running member finishes; with the terminal's Ctrl-C it stops its step and says so
    assert finished["member"] == "member-01"
    assert finished["status"] == ("success" if who == "coordinator" else "interrupted"), finished
    assert {e["member"] for e in events if e["event"] == "member_skipped"} == {"member-02", "member-03"}
    assert events[-1]["event"] == "fleet_finished" and events[-1]["status"] == "interrupted"
    assert "emulator_stopped" in kinds
    assert not _member_records(tmp_path / "members" / "member-02")

    resumed = invoke(["fleet", "run", "1.5", "--resume", "--yes", "--json"], cwd=tmp_path)
    assert resumed.exit_code == 0, resumed.output
    again = [json.loads(line) for line in resumed.stdout.splitlines()]
    modes = {e["member"]: e["mode"] for e in again if e["event"] == "member_finished"}
    if who == "coordinator":  # member-01 finished before: skipped, not run again
        assert modes == {"member-02": "start", "member-03": "start"}
        assert any(e["event"] == "member_skipped" and e["member"] == "member-01" for e in again)
    else:  # its interrupted run is continued: completed steps are not repeated
        assert modes == {"member-01": "resume", "member-02": "start", "member-03": "start"}
    for index in (1, 2, 3):
        member = tmp_path / "members" / f"member-{index:02d}"
        assert [r.status for r in _member_records(member)] == ["success"]
        _assert_no_step_repeated(member)


# ---------------------------------------------------------------- the 12-member fleet (slow)


@pytest.mark.slow
def test_max_errors_stops_new_starts_then_resume_completes(tmp_path: Path) -> None:
    generate_fleet(tmp_path, 12, source=REPO)
    result = invoke(["fleet", "run", "1.5", "--yes", "--json", "--max-errors", "2", "--max-concurrency", "2"], cwd=tmp_path)
    assert result.exit_code == 1, result.output
    events = _events(tmp_path)
    kinds = [e["event"] for e in events]
    halted = kinds.index("fleet_halted")
    failures = [i for i, e in enumerate(events) if e["event"] == "member_finished" and e["status"] != "success"]
    assert len(failures) == 3 and failures[2] == halted - 1  # halted right after the third failure
    assert "member_started" not in kinds[halted:]  # no new start once exceeded
    started = {e["member"] for e in events if e["event"] == "member_started"}
    finished = {e["member"] for e in events if e["event"] == "member_finished"}
    assert started == finished  # the running ones finished
    not_started = {e["member"] for e in events if e["event"] == "member_skipped"}
    assert not_started and not not_started & started
    assert all(not _member_records(tmp_path / "members" / m) for m in not_started)
    # ONE emulator served every member, each through its own subscription and gateway
    (served,) = [e for e in events if e["event"] == "emulator_started"]
    for name in started:
        (header,) = [r.run_started for r in _member_records(tmp_path / "members" / name)]
        assert header.target_settings["arm_url"] == served["arm_url"]
        assert header.target_settings["gateway_url"] == f"{served['gateway_url']}/apim-{name}.azure-api.net"
    throttled_sub = load_fleet(tmp_path / "fleet.yaml").members[4].subscription  # member-05
    (stopped,) = [e for e in events if e["event"] == "emulator_stopped"]
    assert stopped["subscriptions"][throttled_sub]["throttled"] > 0
    assert all(c["throttled"] == 0 for sub, c in stopped["subscriptions"].items() if sub != throttled_sub)
    throttled = next(e for e in events if e["event"] == "member_finished" and e["member"] == "member-05")
    assert "throttled by ARM (429) after 2 retries" in throttled["error"]

    resumed = invoke(["fleet", "run", "1.5", "--resume", "--yes", "--max-concurrency", "2"], cwd=tmp_path)
    assert resumed.exit_code == 1, resumed.output  # three members stay failed
    view = json.loads(invoke(["fleet", "status", "1.5", "--json"], cwd=tmp_path).stdout)
    assert view["totals"]["success"] == 9 and view["totals"]["failed"] == 3, view["totals"]
    _assert_members_done_once(tmp_path)


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"  # gone while reading


def _finished_count(root: Path) -> int:
    paths = list((root / "reports" / "fleet" / "1.5").glob("*.jsonl"))
    if not paths:
        return 0
    return sum(1 for e in read_fleet_record(paths[0]).events if e["event"] == "member_finished")


@pytest.mark.slow
def test_resume_after_sigkill_of_the_coordinator(tmp_path: Path) -> None:
    generate_fleet(tmp_path, 12, source=REPO)
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "runbook.cli", "fleet", "run", "1.5", "--yes", "--max-concurrency", "2"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    def mid_run() -> bool:  # some members done, and a healthy one half-way through its run
        return _finished_count(tmp_path) >= 3 and any(
            r.status == "incomplete" and r.events and r.events[-1].get("event") != "run_started"
            for member in (tmp_path / "members").iterdir() if member.name not in BROKEN_NAMES
            for r in _member_records(member)
        )

    try:
        _wait_for(mid_run, 240, "a member half-way through its run")
    finally:
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait()
    # The members it was running notice their parent is gone and stop cleanly; wait for their locks.
    _wait_for(lambda: not list((tmp_path / "members").glob("*/.runbook.lock")), 60, "orphaned member runs to stop")
    record = read_fleet_record(_fleet_record(tmp_path))
    assert record.finished is None  # the coordinator died mid-run
    # the shared emulator served the orphans until they went quiet, then ended: nothing left behind
    (served,) = [e for e in record.events if e["event"] == "emulator_started"]
    _wait_for(lambda: not Path(f"/proc/{served['pid']}").exists() or "zombie" in _proc_state(served["pid"]), 60,
              "the orphaned emulator to exit")
    interrupted = {m.name for m in record.members().values() if m.status == "running"}
    # Those killed after their run record began are continued; one killed while its process started has no record.
    begun = {name for name in interrupted if _member_records(tmp_path / "members" / name)}

    resumed = invoke(["fleet", "run", "1.5", "--resume", "--yes", "--max-concurrency", "2", "--json"], cwd=tmp_path)
    assert resumed.exit_code == 1, resumed.output
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    modes = {e["member"]: e["mode"] for e in events if e["event"] == "member_finished"}
    assert begun - BROKEN_NAMES, "the kill was meant to catch a healthy member mid-run"
    for name in begun - BROKEN_NAMES:
        assert modes[name] in ("resume", "recorded"), (name, modes[name])
    view = json.loads(invoke(["fleet", "status", "1.5", "--json"], cwd=tmp_path).stdout)
    assert view["totals"]["success"] == 9 and view["totals"]["failed"] == 3, view["totals"]
    _assert_members_done_once(tmp_path)
    # the resumed run's emulator listened where the killed one did (restored outputs may hold its URLs)
    served_again = [e for e in read_fleet_record(_fleet_record(tmp_path)).events if e["event"] == "emulator_started"]
    assert [(e["arm_url"], e["gateway_url"], e.get("moved_from")) for e in served_again] == [
        (served["arm_url"], served["gateway_url"], None)
    ] * 2


def test_an_immediate_resume_waits_for_the_killed_coordinators_emulator(tmp_path: Path) -> None:
    """`--resume` right after the SIGKILL, while the orphaned emulator still serves the members that
    were running: it used to find its recorded ports taken and move to free ones."""
    generate_fleet(tmp_path, 12, source=REPO)
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "runbook.cli", "fleet", "run", "1.5", "--yes", "--max-concurrency", "2"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: _finished_count(tmp_path) >= 3, 240, "some members done")
    finally:
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait()
    (served,) = [e for e in read_fleet_record(_fleet_record(tmp_path)).events if e["event"] == "emulator_started"]
    assert Path(f"/proc/{served['pid']}").exists(), "the orphaned emulator was meant to be still serving"
    resumed = invoke(["fleet", "run", "1.5", "--resume", "--yes", "--max-concurrency", "2", "--json"], cwd=tmp_path)
    assert resumed.exit_code == 1, resumed.output
    # the wait is said (unless the orphan exited in the moment between the check above and the resume)
    waits = [json.loads(line) for line in resumed.stdout.splitlines() if '"emulator_waiting"' in line]
    assert [w["pid"] for w in waits] in ([], [served["pid"]])
    assert not [e for e in _events(tmp_path) if e["event"] == "emulator_waiting"]  # a console line, not a record line
    served_again = [e for e in read_fleet_record(_fleet_record(tmp_path)).events if e["event"] == "emulator_started"]
    assert [(e["arm_url"], e["gateway_url"], e.get("moved_from")) for e in served_again] == [
        (served["arm_url"], served["gateway_url"], None)
    ] * 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_dask_cluster_survives_a_killed_worker(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    generate_fleet(tmp_path / "fleet", 12, source=REPO)
    root = tmp_path / "fleet"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [str(Path(sys.executable).parent / "dask")]
    # Leases of a dead worker expire fast, so a rescheduled member does not wait the default 30 s.
    env = _env(DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT="3s",
               DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL="500ms")
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([*dask, *args], cwd=tmp_path, env=env, start_new_session=True,
                                   stdout=(logs / f"{name}.out").open("wb"), stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        workers = [
            start(f"worker{i}", "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                  "--name", f"w{i}", "--host", "127.0.0.1")
            for i in (1, 2)
        ]
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "runbook.cli", "fleet", "run", "1.5", "--yes", "--engine", "dask",
             "--scheduler", address, "--max-concurrency", "2"],
            cwd=root, env=env, stdout=(logs / "coordinator.out").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        processes.append(coordinator)
        def both_mid_run() -> bool:  # two members running on the two workers, each with a run record begun
            if _finished_count(root) < 2:
                return False
            running = [m.name for m in read_fleet_record(_fleet_record(root)).members().values() if m.status == "running"]
            return len(running) == 2 and all(
                any(r.status == "incomplete" and len(r.events) > 1 for r in _member_records(root / "members" / name))
                for name in running
            )

        _wait_for(both_mid_run, 300, "two members half-way through their runs on the cluster")
        os.killpg(workers[0].pid, signal.SIGKILL)  # the worker, its nanny and the member run it holds
        rc = coordinator.wait(timeout=420)
        assert rc == 1, (logs / "coordinator.out").read_text()[-3000:]
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    view = json.loads(invoke(["fleet", "status", "1.5", "--json"], cwd=root).stdout)
    assert view["totals"]["success"] == 9 and view["totals"]["failed"] == 3, view
    assert [e["event"] for e in _events(root)].count("emulator_started") == 1  # the workers' members shared one emulator
    # The member the lost worker held was rescheduled by Dask and continued from its record.
    assert any(m["mode"] == "resume" and m["attempts"] >= 2 for m in view["members"]), view["members"]
    _assert_members_done_once(root)
