"""`runbook status` prints the remembered overview only while nothing it was computed from changed.

After every change to an input of the overview (a log line, a report, a runbook, the plan, a run
record, the colour setting), what `runbook status` prints (through reports/.index/overview.json)
must equal what the status API computes from scratch, and the remembered file must be used again
once nothing changes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import invoke
from runbook import status as screens
from runbook.workspace import load_workspace

RUNBOOK = """\
phase: "{phase}"
title: Core steps
discovery:
  - id: answer
    uses: set
    with:
      value: 42
    register: answer
verify:
  - id: check
    uses: assert
    with:
      that: "{{{{ answer.value == 42 }}}}"
"""

CONFIG = """\
project: Cache test
plan:
  - group: "1"
    title: First group
    phases:
      - {id: "1.1", title: First, cells: [3, 4]}
      - {id: "1.2", title: Second}
      - {id: "1.3", title: Third}
default_target: local
targets:
  local:
    kind: local
"""


def workspace(root: Path) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "runbook.yaml").write_text(CONFIG, encoding="utf-8")
    for phase in ("1.1", "1.2"):
        (root / "runbooks" / f"phase-{phase}.yaml").write_text(RUNBOOK.format(phase=phase), encoding="utf-8")
    return root


def computed(root: Path, *, colour: bool = False) -> tuple[str, str]:
    """The overview text and JSON from scratch (no remembered file involved)."""
    view = screens.workspace_status(load_workspace(root))
    return screens.render_status(view, colour=colour), json.dumps(view.to_dict(), indent=2, ensure_ascii=False) + "\n"


def shown(root: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    result = invoke(["-w", str(root), "status", *extra], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def remembered_file(root: Path) -> Path:
    return root / "reports" / ".index" / "overview.json"


def assert_current(root: Path) -> None:
    """The command's output equals the computed one, first (rewriting the file) and again (reading it)."""
    text, data = computed(root)
    assert shown(root) == text
    before = remembered_file(root).stat().st_mtime_ns
    assert shown(root) == text  # from the file
    assert shown(root, "--json") == data
    assert remembered_file(root).stat().st_mtime_ns == before, "nothing changed: the file is only read"


def later(path: Path) -> None:
    """Make sure a rewrite of `path` gets another modification time even on a coarse clock."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_the_remembered_overview_follows_every_input(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws")
    assert_current(root)
    assert remembered_file(root).is_file()

    # a hand-written log line (the timestamp log grows)
    assert invoke(["-w", str(root), "log", "1.2", "complete", "-m", "done by hand"]).exit_code == 0
    assert_current(root)
    assert "RESOLVED" in shown(root)

    # a report appears; a runbook appears for a phase outside the plan
    (root / "reports" / "phase-1.2.md").write_text("# report\n", encoding="utf-8")
    assert_current(root)
    assert "reports/phase-1.2.md" in shown(root)
    (root / "runbooks" / "phase-1.4.yaml").write_text(RUNBOOK.format(phase="1.4"), encoding="utf-8")
    assert_current(root)
    assert "1.4" in shown(root)

    # the plan changes (a title), keeping the file's size: only its modification time says so
    config = root / "runbook.yaml"
    config.write_text(CONFIG.replace("title: Third", "title: Thrid"), encoding="utf-8")
    later(config)
    assert_current(root)
    assert "Thrid" in shown(root)

    # what a terminal gets (click strips colour when the output is not one) is the colour rendering
    from runbook.status_index import remembered_overview

    remembered = remembered_overview(root)
    assert remembered is not None
    assert remembered.coloured == computed(root, colour=True)[0] and "\033[" in remembered.coloured


def test_a_run_record_rewritten_in_place_is_seen(tmp_path: Path) -> None:
    """A discovery-only run makes a phase `investigated`; a change inside its record (the folder's
    modification time stays) is an input too."""
    root = workspace(tmp_path / "ws")
    assert_current(root)
    ran = invoke(["-w", str(root), "run", "1.1", "--only", "discovery", "--no-report"])
    assert ran.exit_code == 0, ran.output
    assert_current(root)
    assert "INVESTIGATED" in shown(root)

    record = next((root / "reports" / "runs" / "1.1").glob("*.jsonl"))
    folder_mtime = record.parent.stat().st_mtime_ns
    lines = record.read_bytes().splitlines(keepends=True)
    record.write_bytes(b"".join(line for line in lines if b'"run_finished"' not in line))
    assert record.parent.stat().st_mtime_ns == folder_mtime
    assert_current(root)
    assert "INVESTIGATED" not in shown(root)


def test_an_unreadable_or_foreign_file_is_recomputed(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws")
    text, _ = computed(root)
    assert shown(root) == text
    remembered_file(root).write_text("{not json", encoding="utf-8")
    assert shown(root) == text
    head, screen = (json.loads(part) for part in remembered_file(root).read_text(encoding="utf-8").split("\n"))
    screen["text"] = "stale screen\n"
    for damage in ("root", "drop a part", "add a part", "torn"):
        changed = json.loads(json.dumps(head))
        if damage == "root":
            changed["key"]["root"] = "/elsewhere"  # another workspace's file (a copied folder) is not used
        elif damage == "drop a part":
            del changed["key"]["source"]
        elif damage == "add a part":
            changed["key"]["other"] = 1
        lines = [json.dumps(changed), json.dumps(screen)]
        remembered_file(root).write_text("\n".join(lines)[: -10 if damage == "torn" else None], encoding="utf-8")
        if damage == "torn":  # the key matches but the screen is cut short: computed again
            lines[0] = json.dumps(head)
            remembered_file(root).write_text("\n".join(lines)[:-10], encoding="utf-8")
        assert shown(root) == text, damage


def test_a_workspace_with_another_reports_folder_is_computed_every_time(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws")
    config = root / "runbook.yaml"
    config.write_text(CONFIG + "paths:\n  reports: records\n", encoding="utf-8")
    (root / "records").mkdir()
    text, _ = computed(root)
    assert shown(root) == text
    assert not (root / "records" / ".index" / "overview.json").exists()


def test_status_with_nothing_changed_loads_no_model(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws")
    shown(root)
    code = (
        "import json, sys, io, contextlib\nfrom runbook.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n        main(sys.argv[1:])\n    except SystemExit as exc:\n        assert exc.code in (0, None)\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'out': out.getvalue()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "-w", str(root), "status"], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout)
    assert result["out"] == computed(root)[0]
    heavy = [m for m in result["modules"] if m.split(".")[0] in ("pydantic", "pydantic_core", "ruamel", "jinja2", "yaml")]
    assert heavy == []
    assert not [m for m in result["modules"] if m in ("runbook.model", "runbook.workspace", "runbook.record", "runbook.status")]


# ---------------------------------------------------------------- the remembered config (WorkspaceView)

LIGHT_CODE = (
    "import json, sys, io, contextlib\nfrom runbook.cli import main\n"
    "out, err = io.StringIO(), io.StringIO()\ncode = 0\n"
    "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
    "    try:\n        main(sys.argv[1:])\n    except SystemExit as exc:\n        code = exc.code or 0\n"
    "print(json.dumps({'modules': sorted(sys.modules), 'out': out.getvalue(), 'err': err.getvalue(), 'code': code}))"
)
HEAVY = ("pydantic", "pydantic_core", "ruamel", "jinja2", "yaml")


def run_fresh_process(root: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`runbook -w ROOT ARGS` in a new interpreter: its output, exit code and the modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", LIGHT_CODE, "-w", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def append_log(root: Path, entry: dict[str, Any]) -> None:
    log = root / "reports" / "timestamps" / "execution-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def generated(root: Path, rng: random.Random) -> Path:
    """A workspace with a random plan (quoted and bare ids and groups, group titles or none, cells
    as numbers and ids), runbooks in and outside the plan, reports, a discovery-only record, and a
    timestamp log with runs, hand-written lines, unknown status words, notes and unreadable lines."""
    groups: list[str] = []
    plan_ids: list[str] = []
    for g in range(1, rng.randint(2, 4) + 1):
        lines = [f"  - group: {rng.choice([repr(str(g)), str(g)])}"]
        if rng.random() < 0.7:
            lines.append(f"    title: {rng.choice([f'Group {g}', repr(f'Grüppe {g}: the {g}th'), 'null'])}")
        lines.append("    phases:")
        for p in range(1, rng.randint(1, 5) + 1):
            phase = f"{g}.{p if rng.random() < 0.8 else p * 10}"
            if phase in plan_ids:
                continue
            plan_ids.append(phase)
            cells = rng.choice(["", ", cells: [3, 4]", ', cells: [cell_a, 12, "x-1"]', ", cells: []"])
            title = rng.choice([f"Phase {phase}", f"'{phase}: ümlauts and: colons'", f'"quoted {phase}"'])
            lines.append(f'      - {{id: "{phase}", title: {title}{cells}}}')
        groups.append("\n".join(lines))
    (root / "runbooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "runbook.yaml").write_text(
        f"project: Generated {rng.randint(1, 999)}\n# a comment\nplan:\n"
        + "\n".join(groups)
        + "\ndefault_target: local\ntargets:\n  local:\n    kind: local\n",
        encoding="utf-8",
    )
    outside = ["9.1", "1.99", "phase-x"]
    for phase in [*rng.sample(plan_ids, k=min(3, len(plan_ids))), *rng.sample(outside, k=2)]:
        suffix = rng.choice([".yaml", ".yml"])
        (root / "runbooks" / f"phase-{phase}{suffix}").write_text(RUNBOOK.format(phase=phase), encoding="utf-8")
    for phase in rng.sample(plan_ids, k=min(2, len(plan_ids))):
        (root / "reports" / f"phase-{phase}.md").write_text("# report\n", encoding="utf-8")
    # a discovery-only run of a phase without log lines: `investigated`
    quiet = plan_ids[-1]
    folder = root / "reports" / "runs" / quiet
    folder.mkdir(parents=True)
    (folder / "20250101T000000000Z-abcdef.jsonl").write_text(
        json.dumps({"event": "run_started", "run_id": "20250101T000000000Z-abcdef", "phase": quiet, "options": {"only": "discovery"}})
        + "\n"
        + json.dumps({"event": "run_finished", "status": "success", "duration_s": 1.0})
        + "\n",
        encoding="utf-8",
    )
    for minute in range(rng.randint(5, 30)):
        phase = rng.choice([*plan_ids[:-1], "7.7", "9/../x"])
        action = rng.choice(["start", "complete", "fail", "complete"])
        entry: dict[str, Any] = {
            "timestamp": f"2025-11-14T{4 + minute // 60:02d}:{minute % 60:02d}:00Z",
            "phase": phase,
            "action": action,
            "description": f"{action} {phase}",
        }
        if action == "complete":
            entry["status"] = rng.choice(["SUCCESS", "RESOLVED ✅", "FAILED", "maybe"])
            entry["cells_fixed"] = rng.choice([[], [109], ["c1", 2]])
            entry["api_key"] = "not shown"
            entry["servers_verified"] = rng.randint(1, 9)
        if rng.random() < 0.3:
            entry["duration_s"] = rng.choice([12.5, 75, 4000])
        append_log(root, entry)
    log = root / "reports" / "timestamps" / "execution-log.jsonl"
    with log.open("a", encoding="utf-8") as handle:
        handle.write("not json\n")
    return root


def test_the_overview_from_the_remembered_config_is_the_computed_one(tmp_path: Path) -> None:
    """On generated workspaces: after a log line, a report or a runbook appears (runbook.yaml unchanged),
    `runbook status` computes the overview without pydantic, YAML or the models, and prints
    byte for byte what the full path (the config loaded and validated) prints: text, colour, JSON
    and the warnings."""
    for seed in range(4):
        rng = random.Random(seed)
        root = generated(tmp_path / f"ws-{seed}", rng)
        first = run_fresh_process(root, "status")  # the full path: loads the config, remembers it
        assert first["code"] == 0, first["err"]
        assert any(m == "runbook.workspace" for m in first["modules"])
        assert (root / "reports" / ".index" / "config.json").is_file()
        changes = [
            lambda root=root: append_log(
                root, {"timestamp": "2026-01-01T00:00:00Z", "phase": "1.1", "action": "complete", "status": "odd word"}
            ),
            lambda root=root: (root / "reports" / "phase-1.1.md").write_text("# r\n", encoding="utf-8"),
            lambda root=root: (root / "runbooks" / "phase-8.8.yaml").write_text(RUNBOOK.format(phase="8.8"), encoding="utf-8"),
            lambda root=root: remembered_file(root).unlink(),
        ]
        for change in changes:
            change()
            expected_text, expected_json = computed(root)
            expected_colour = computed(root, colour=True)[0]
            expected_warnings = "".join(f"warning: {w}\n" for w in screens.workspace_status(load_workspace(root)).warnings)
            remembered_file(root).unlink(missing_ok=True)  # every side below computes the overview
            light = run_fresh_process(root, "status")
            assert light["code"] == 0, light["err"]
            assert light["out"] == expected_text
            assert light["err"] == expected_warnings
            assert not [m for m in light["modules"] if m.split(".")[0] in HEAVY]
            assert not [m for m in light["modules"] if m in ("runbook.model", "runbook.workspace", "runbook.record")]
            # what a terminal gets: the colour rendering the light path remembered (click strips
            # colour from output that is not a terminal)
            from runbook.status_index import remembered_overview

            remembered = remembered_overview(root)
            assert remembered is not None and remembered.coloured == expected_colour
            remembered_file(root).unlink()
            as_json = run_fresh_process(root, "status", "--json")
            assert as_json["out"] == expected_json
            assert not [m for m in as_json["modules"] if m.split(".")[0] in HEAVY]


def test_the_remembered_config_follows_runbook_yaml(tmp_path: Path) -> None:
    """An edit of runbook.yaml (even keeping its size) takes the full path; a broken one fails
    exactly as without any remembered file: file:line:col, exit 2."""
    root = workspace(tmp_path / "ws")
    assert_current(root)
    config = root / "runbook.yaml"
    append_log(root, {"timestamp": "2026-01-01T00:00:00Z", "phase": "1.1", "action": "start"})
    config.write_text(CONFIG.replace("title: First", "title: Fisrt"), encoding="utf-8")
    later(config)
    assert_current(root)
    assert "Fisrt" in shown(root)

    broken = CONFIG.replace("title: Second}", "titel: Second}")
    for text in (broken, CONFIG.replace("plan:\n", "plan:\n  - [\n")):
        config.write_text(text, encoding="utf-8")
        later(config)
        append_log(root, {"timestamp": "2026-01-02T00:00:00Z", "phase": "1.2", "action": "start"})
        clean = tmp_path / f"clean-{len(text)}"
        clean.mkdir()
        (clean / "runbook.yaml").write_text(text, encoding="utf-8")
        with_memo = invoke(["status"], cwd=root)
        without = invoke(["status"], cwd=clean)
        assert with_memo.exit_code == without.exit_code == 2
        assert with_memo.stderr == without.stderr
        assert "runbook.yaml:" in with_memo.stderr and "Traceback" not in with_memo.stderr
    config.write_text(CONFIG, encoding="utf-8")
    later(config)
    assert_current(root)


def test_a_remembered_config_of_another_folder_or_version_is_not_used(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws")
    assert_current(root)
    memo = root / "reports" / ".index" / "config.json"
    from runbook.workspace_view import remembered_workspace

    assert remembered_workspace(root) is not None
    data = json.loads(memo.read_text(encoding="utf-8"))
    data["config"]["plan"][0]["phases"][0]["title"] = "Not the plan"
    for key, value in (("root", "/elsewhere"), ("source", [["0.0.0"]])):
        changed = json.loads(json.dumps(data))
        changed["key"][key] = value
        memo.write_text(json.dumps(changed), encoding="utf-8")
        assert remembered_workspace(root) is None
        remembered_file(root).unlink()
        assert "Not the plan" not in shown(root)
    memo.write_text("[1, 2", encoding="utf-8")
    assert remembered_workspace(root) is None
    remembered_file(root).unlink()
    assert shown(root) == computed(root)[0]
    assert remembered_workspace(root) is not None  # remembered again by the full path


def test_the_workspace_view_reads_like_the_workspace(tmp_path: Path) -> None:
    from runbook.workspace_view import remembered_workspace

    for seed in range(3):
        root = generated(tmp_path / f"ws-{seed}", random.Random(seed))
        assert shown(root)
        full = load_workspace(root)
        view = remembered_workspace(root)
        assert view is not None
        assert (view.root, view.reports_dir, view.runbooks_dir, view.timestamp_log) == (
            full.root,
            full.reports_dir,
            full.runbooks_dir,
            full.timestamp_log,
        )
        assert view.runbook_files() == full.runbook_files()
        assert view.config.project == full.config.project
        assert [(g.group, g.title, [(p.id, p.title, list(p.cells)) for p in g.phases]) for g in view.config.plan] == [
            (g.group, g.title, [(p.id, p.title, list(p.cells)) for p in g.phases]) for g in full.config.plan
        ]
        for phase in [*full.phases, "9.9", "x"]:
            assert view.phase_title(phase) == full.phase_title(phase)
