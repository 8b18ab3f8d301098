"""publish: a run's documents are written from the runbook as loaded, never from a second parse.

Real runs in temporary workspaces (the `local` target, no emulator): the runbook file is made
unparseable after it was loaded, and publishing must still render the report and the changelog
from the loaded runbook's authored material.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runbook import publish
from runbook.api import run_phase
from runbook.record import read_record
from runbook.workspace import load_workspace

SRC = Path(__file__).resolve().parent.parent / "src" / "runbook"
CONFIG = """\
project: Test
plan:
  - group: "1"
    phases:
      - {id: "1.1", title: First}
      - {id: "1.2", title: Second, cells: [4, 5]}
default_target: local
targets:
  local:
    kind: local
"""
FIRST = """\
phase: "1.1"
title: First
fix:
  - id: patch
    title: Use FLUX in app.py
    uses: file.replace
    with:
      path: app.py
      replacements:
        - {find: dall-e-3, replace: FLUX-1.1-pro}
verify:
  - id: check
    title: The model is FLUX
    uses: shell
    with: {cmd: [grep, -q, FLUX, app.py], changes: false}
report:
  lessons: [Read the deployment list before editing.]
  changelog:
    fixed: [app.py names FLUX-1.1-pro]
"""
# The next phase's runbook names other cells than the plan: the report's next-phase line must take
# the plan's (it never parses the next runbook, which may be thousands of steps long).
SECOND = """\
phase: "1.2"
title: Second, as the runbook calls it
fix:
  - id: edit
    title: Edit cell 99
    uses: shell
    cells: [99]
    with: {cmd: ["true"]}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "runbooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "runbook.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "runbooks" / "phase-1.1.yaml").write_text(FIRST, encoding="utf-8")
    (root / "runbooks" / "phase-1.2.yaml").write_text(SECOND, encoding="utf-8")
    (root / "app.py").write_text('MODEL = "dall-e-3"\n', encoding="utf-8")
    return root


def test_publishing_a_run_never_rereads_the_runbook(workspace: Path) -> None:
    ws = load_workspace(workspace)
    loaded = ws.load_runbook("1.1")
    outputs = run_phase("1.1", workspace=ws, report=False)
    assert outputs.record_path is not None and outputs.written == []
    # From here on, any parse of the runbook would fail (or, leniently, lose its authored lines).
    (workspace / "runbooks" / "phase-1.1.yaml").write_text("phase: [unclosed\n", encoding="utf-8")

    written = publish.publish_run(ws, loaded, outputs.record_path, junit=workspace / "junit.xml")

    assert [p.relative_to(workspace).as_posix() for p in written] == [
        f"reports/runs/1.1/{outputs.record_path.stem}.md",
        "reports/phase-1.1.md",
        "CHANGELOG.md",
        "TIMELINE.md",
        "reports/charts/timeline.svg",
        "junit.xml",
    ]
    report = (workspace / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    assert report.startswith("# Phase 1.1 - First Resolution\n")
    assert "Read the deployment list before editing." in report
    assert report.endswith("**Next Phase**: 1.2 - Second (Cells 4, 5)\n")
    changelog = (workspace / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [1.1.0] - " in changelog and "- app.py names FLUX-1.1-pro\n" in changelog
    assert "[1.1.0]: reports/phase-1.1.md" in changelog
    assert "Use FLUX in app.py" not in changelog  # the authored line, not the fix-title fallback


def test_publish_and_report_give_the_same_bytes(workspace: Path) -> None:
    ws = load_workspace(workspace)
    outputs = run_phase("1.1", workspace=ws)
    published = (workspace / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    again = publish.report_phase(ws, "1.1", output=Path("-"))
    assert again.path is None and again.text == published
    assert again.record.path == outputs.record_path
    assert read_record(publish.find_record(ws, "1.1", again.record.run_id[:10])).run_id == again.record.run_id


def _imports(path: Path) -> set[str]:
    """Modules of the runbook package that `path` imports, as dotted names relative to `runbook`."""
    package = path.relative_to(SRC).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            if node.module:
                base.extend(node.module.split("."))
            found.add(".".join(base))
            found.update(".".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runbook."):
            found.add(str(node.module).removeprefix("runbook."))
    return found


def test_reports_and_gitops_do_not_import_each_other() -> None:
    for module in sorted((SRC / "reports").glob("*.py")):
        assert not {name for name in _imports(module) if name.startswith(("gitops", "publish"))}, module.name
    assert not {name for name in _imports(SRC / "gitops.py") if name.startswith(("reports", "publish"))}
