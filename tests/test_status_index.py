"""`runbook status` prints the remembered overview only while nothing it was computed from changed.

After every change to an input of the overview (a log line, a report, a runbook, the plan, a run
record, the colour setting), what `runbook status` prints (through reports/.index/overview.json)
must equal what the status API computes from scratch, and the remembered file must be used again
once nothing changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    data = json.loads(remembered_file(root).read_text(encoding="utf-8"))
    data["text"] = "stale screen\n"
    data["key"]["root"] = "/elsewhere"
    remembered_file(root).write_text(json.dumps(data), encoding="utf-8")
    assert shown(root) == text  # another workspace's file (a copied folder) is not used


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
