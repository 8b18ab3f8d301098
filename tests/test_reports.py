"""Reports: golden resolution reports, changelog, timeline, JUnit, templates, and the real pipeline.

The golden files under tests/golden/expected/ are rendered from FIXED inputs: the workspace in
tests/golden/workspace/ (plan, runbook, timestamp log) and its two hand-built run records (a resolved
and a failed run of phase 1.5). Regenerate them with `UPDATE_GOLDEN=1 pytest tests/test_reports.py`
and review the diff: the resolved report must read like the seed report in substance.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import invoke
from runbook import reports
from runbook.errors import InputError, RunFailed, TemplateError
from runbook.loader import LoadedRunbook, read_yaml
from runbook.model import Runbook
from runbook.record import RunRecord, read_record, record_paths
from runbook.text import Markdown, code, duration_text, fence, md_cell, md_table
from runbook.workspace import Workspace, load_workspace

GOLDEN = Path(__file__).resolve().parent / "golden"
EXPECTED = GOLDEN / "expected"
RESOLVED = "20251114T041500Z-9c2e7a"
FAILED = "20251114T035000Z-f41ed0"
CANARY = "canary-7f3a9c1e-secret"


def _golden(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8")


def _lenient(ws: Workspace, phase: str) -> LoadedRunbook:
    """The golden runbook uses actions other modules register (azure.*, notebook.*): skip action checks."""
    path = ws.runbooks_dir / f"phase-{phase}.yaml"
    doc = read_yaml(path, root=ws.root)
    return LoadedRunbook(runbook=Runbook.model_validate(doc.data), path=path, doc=doc)


@pytest.fixture
def golden(tmp_path: Path) -> Workspace:
    """A copy of the golden workspace (so tests may write CHANGELOG.md and reports)."""
    root = tmp_path / "golden-ws"
    shutil.copytree(GOLDEN / "workspace", root)
    return load_workspace(root)


def _record(ws: Workspace, run_id: str) -> RunRecord:
    return read_record(ws.reports_dir / "runs" / "1.5" / f"{run_id}.jsonl")


# ---------------------------------------------------------------- golden reports


def test_resolved_report_matches_golden(golden: Workspace) -> None:
    text = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, RESOLVED))
    _golden("phase-1.5-resolved.md", text)


def test_failed_report_matches_golden(golden: Workspace) -> None:
    text = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, FAILED))
    _golden("phase-1.5-failed.md", text)


def test_junit_matches_golden(golden: Workspace) -> None:
    loaded = _lenient(golden, "1.5")
    _golden("phase-1.5-resolved.junit.xml", reports.render_junit(loaded, _record(golden, RESOLVED)))
    _golden("phase-1.5-failed.junit.xml", reports.render_junit(loaded, _record(golden, FAILED)))


def test_changelog_and_timeline_match_golden(golden: Workspace) -> None:
    reports.write_report(golden, _lenient(golden, "1.5"), _record(golden, RESOLVED))
    _golden("CHANGELOG.md", reports.write_changelog(golden).read_text(encoding="utf-8"))
    _golden("TIMELINE.md", reports.write_timeline(golden).read_text(encoding="utf-8"))


def test_resolved_report_follows_the_seed(golden: Workspace) -> None:
    text = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, RESOLVED))
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Summary",
        "## Root Causes",
        "## Discovery Details",
        "## Resolution Steps",
        "## Cells to Fix",
        "## Testing Plan",
        "## Environment Variables",
        "## Files to Modify",
        "## Implementation Complete ✅",
        "## Testing Results",
        "## Next Steps",
        "## Lessons Learned",
        "## Phase 1.5 Complete",
    ]
    assert text.startswith(
        "# Phase 1.5 - Image Generation Deployment Resolution\n\n**Timestamp**: 2025-11-14T04:15:00Z\n"
    )
    assert "**Status**: RESOLVED ✅\n**Resolution Time**: 20 minutes\n" in text
    assert "| `FLUX-1.1-pro` | `FLUX-1.1-pro` | 1 | GlobalStandard (1) | **← IMAGE MODEL** |" in text
    assert "**foundry2-pavavy6pu5hpa**: No image models" in text
    assert "| `ImageGenerations_Create` | Generates a batch of images from a text caption | POST |" in text
    assert "http://127.0.0.1:8081/inference/openai/deployments/FLUX-1.1-pro/images/generations" in text
    assert (
        "**A. Pre-fix State**: All 4 verify checks (on cells 109, 130, 171) failed before the fix with HTTP 404" in text
    )
    assert "| 109 | `cell_108_e274080d` | Updated default model to FLUX-1.1-pro" in text
    assert "| 107 | `cell_106_842f0273` | already applied - no changes needed | ✅ already applied |" in text
    # Before/after of a changed cell: one unified diff, not two code blocks.
    assert '```diff\n--- a/cell 109 (cell_108_e274080d)\n' in text and "# Before:" not in text
    assert '\n-image_model = os.getenv("DALL_E_DEPLOYMENT", "gpt-image-1")' in text
    assert '\n+image_model = os.getenv("DALL_E_DEPLOYMENT", "FLUX-1.1-pro")' in text
    assert "IMAGE_MODEL_NAME=FLUX-1.1-pro\n" in text
    # Progress as of the run: the later 1.6 completion in the log does not count yet.
    assert "**Phase 1 Progress**: 62.5% (5/8 subphases complete)" in text
    assert text.endswith("**Next Phase**: 1.6 - Fix Backend Services (Cells 47, 154, 156, 162, 164)\n")


def test_failed_report_says_what_failed_and_what_did_not_run(golden: Workspace) -> None:
    text = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, FAILED))
    assert "**Status**: FAILED ❌\n**Run Time**: 3 minutes 10 s" in text
    assert "## What Failed ❌" in text
    assert "**Error**: NotebookError: cell 107 (cell_106_842f0273): text not found" in text
    assert "### Not Run" in text and "- `gateway-answers` (verify)" in text
    assert "## Implementation Failed ❌" in text and "Implementation Complete" not in text
    assert "The runbook changed after this run" in text
    assert "**Phase 1 Progress**: 50% (4/8 subphases complete)" in text


def test_report_is_deterministic_and_has_no_absolute_paths(golden: Workspace, tmp_path: Path) -> None:
    other_root = tmp_path / "elsewhere" / "copy"
    shutil.copytree(golden.root, other_root)
    other = load_workspace(other_root)
    first = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, RESOLVED))
    again = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, RESOLVED))
    moved = reports.render_report(other, _lenient(other, "1.5"), _record(other, RESOLVED))
    assert first == again == moved
    assert str(tmp_path) not in first


def test_incomplete_record_renders_in_progress(golden: Workspace) -> None:
    source = golden.reports_dir / "runs" / "1.5" / f"{RESOLVED}.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    # Killed while cell-130 was being fixed: its step_started is the last event, plus a torn line.
    cut = next(i for i, line in enumerate(lines) if '"step_started","stage":"fix","step":"cell-130"' in line)
    source.write_text("".join(lines[: cut + 1]) + '{"event":"step_fin', encoding="utf-8")
    text = reports.render_report(golden, _lenient(golden, "1.5"), read_record(source))
    assert "**Status**: IN PROGRESS ⏳" in text
    assert "## Implementation In Progress ⏳" in text
    assert "unreadable line(s)" in text
    assert "has no end in its record (last step: `cell-130`)" in text
    assert "- `cell-171` (fix) - Update Cell 171 - Image Test (Minimal): the record ends before this step" in text


def test_interrupted_record_renders_interrupted(golden: Workspace) -> None:
    source = golden.reports_dir / "runs" / "1.5" / f"{RESOLVED}.jsonl"
    events = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    kept = []
    for event in events:
        if event.get("stage") == "verify":
            break
        kept.append(event)
    kept.append(
        {
            "event": "step_started",
            "stage": "verify",
            "step": "cell-109-runs",
            "title": "Cell 109 generates an image",
            "uses": "notebook.run",
            "time": "2025-11-14T04:31:01.000Z",
        }
    )
    kept.append(
        {
            "event": "step_finished",
            "stage": "verify",
            "step": "cell-109-runs",
            "title": "Cell 109 generates an image",
            "uses": "notebook.run",
            "status": "interrupted",
            "started_at": "2025-11-14T04:31:01.000Z",
            "finished_at": "2025-11-14T04:31:30.000Z",
            "duration_s": 29.0,
            "attempts": 1,
            "output": None,
            "error": {"type": "RunbookError", "message": "interrupted by the user (Ctrl-C)", "hint": None},
        }
    )
    kept.append(
        {
            "event": "run_finished",
            "run_id": RESOLVED,
            "status": "interrupted",
            "time": "2025-11-14T04:31:30.000Z",
            "duration_s": 990.0,
            "counts": {},
            "failed_step": None,
            "reproduced": True,
            "changed_files": [],
        }
    )
    source.write_text("".join(json.dumps(e) + "\n" for e in kept), encoding="utf-8")
    record = read_record(source)
    text = reports.render_report(golden, _lenient(golden, "1.5"), record)
    assert "**Status**: INTERRUPTED ⏸️" in text
    assert "resume it with `runbook run 1.5 --resume`" in text
    junit = ET.fromstring(reports.render_junit(_lenient(golden, "1.5"), record))
    assert junit.get("errors") == "1"


# ---------------------------------------------------------------- discovery shapes


def _discovery_markdown(output: object, uses: str = "acme.inventory") -> str:
    view = {"status": "ok", "uses": uses, "output": output, "error": None, "output_excerpt": "", "reason": None}
    return str(reports.discovery_item(view)["markdown"])


def test_unknown_discovery_shapes_fall_back_to_tables_and_json() -> None:
    table = _discovery_markdown([{"region": "uksouth", "quota": 10}, {"region": "eastus", "quota": 0, "note": "a|b"}])
    assert table.splitlines()[0] == "| region | quota | note |"
    assert "| eastus | 0 | a\\|b |" in table
    nested = _discovery_markdown({"a": {"b": [1, 2]}, "c": "x", "tags": ["t1", "t`2"], "rows": [{"k": [1, 2]}]})
    assert nested.startswith("| Name | Value |\n|---|---|\n| `c` | `x` |\n\n**a**:\n\n```json\n{")
    assert "**tags**: `t1`, ``t`2``" in nested and "| 1, 2 |" in nested
    assert _discovery_markdown([[1, 2], {"x": 1}]).startswith("```json\n[")
    assert _discovery_markdown(None) == "*No output.*"
    assert _discovery_markdown("plain text") == "```\nplain text\n```"
    flat = _discovery_markdown({"name": "inference-api", "url": "https://x.example/a?b=1"})
    assert "| `name` | `inference-api` |" in flat and "**url**:\n\n```\nhttps://x.example/a?b=1\n```" in flat


def test_built_in_actions_get_their_renderers() -> None:
    ops = [{"id": "op", "display_name": "Op", "method": "GET", "url_template": "/a/{b}"}]
    assert "| `op` | Op | GET | `/a/{b}` |" in _discovery_markdown(ops, "azure.apim.operations")
    http = {"status": 404, "elapsed_ms": 12, "url": "http://h/x", "headers": {}, "body": {"e": 1}}
    shown = _discovery_markdown(http, "http.request")
    assert "**Status**: 404" in shown and "```json" in shown
    deployments = {"deployments": [{"account": "a1", "name": "d", "model": "m", "image": False}]}
    assert "**a1** (1 deployment total):" in _discovery_markdown(deployments, "azure.deployments")
    shell = {"argv": ["cat", "app.py"], "rc": 0, "stdout": "MODEL = 1\n", "stderr": ""}
    assert _discovery_markdown(shell, "shell").startswith("**Command**: `cat app.py` (exit 0)")
    listing = {"notebook": "nb.ipynb", "cells": [{"number": 3, "id": "c3", "tags": [], "matches": []}]}
    assert _discovery_markdown(listing, "notebook.cells").startswith("In `nb.ipynb`:\n\n| Cell | ID | Tags |")


def test_renderer_is_chosen_by_uses_not_by_output_shape() -> None:
    assert reports.renderer_for("azure.deployments").kind == "deployments"
    assert reports.renderer_for("http.request").kind == "http"
    assert reports.renderer_for("acme.inventory").kind == "generic"
    assert reports.renderer_for(None).kind == "generic"
    # A plug-in whose output looks exactly like azure.deployments' is still shown generically.
    lookalike = {"deployments": [{"account": "a1", "name": "d", "model": "m", "image": True}]}
    item = reports.discovery_item(
        {
            "status": "ok",
            "uses": "acme.inventory",
            "output": lookalike,
            "error": None,
            "output_excerpt": "",
            "reason": None,
        }
    )
    assert item["kind"] == "generic" and item["facts"] == {}
    assert "deployment total" not in item["markdown"] and "IMAGE MODEL" not in item["markdown"]
    assert item["markdown"].startswith("**deployments**:\n\n| account | name | model | image |")
    # The same goes for a plug-in answering like http.request or shell.
    assert "**Status**" not in _discovery_markdown({"status": 200, "url": "http://h/x"})
    assert "**Command**" not in _discovery_markdown({"argv": ["x"], "rc": 0, "stdout": "y"})
    # A built-in whose output lacks the fields its renderer reads (a dry run) falls back to generic.
    assert reports.renderer_for("shell", {"argv": ["rm", "x"], "dry_run": True}).kind == "generic"


def test_failure_excerpt_and_observed_line_follow_uses() -> None:
    from runbook.reports import outputs

    streams = {"argv": ["false"], "rc": 1, "stdout": "out", "stderr": "boom"}
    assert outputs.output_excerpt("shell", streams) == "stdout:\nout\nstderr:\nboom"
    assert outputs.output_excerpt("acme.tool", streams).startswith("{\n")
    answer = {"method": "POST", "url": "http://h/x", "status": 404, "error": {"code": "DeploymentNotFound"}}
    assert outputs.output_observed("http.request", answer) == "HTTP 404 (DeploymentNotFound)"
    assert outputs.output_observed("acme.tool", answer) is None
    cells = {"cells": [{"number": 109, "status": "error", "error": {"ename": "KeyError", "evalue": "'data'"}}]}
    assert outputs.output_observed("notebook.run", cells) == "cell 109: KeyError: 'data'"
    assert outputs.cell_results("acme.tool", cells) is None


def test_a_plug_in_may_register_its_own_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook.reports import outputs

    def details(output: object) -> tuple[Markdown, dict[str, object]]:
        return Markdown(f"**Inventory**: {len(output)} items"), {"items": len(output)}  # type: ignore[arg-type]

    monkeypatch.setitem(outputs._RENDERERS, "acme.inventory", outputs.OutputRenderer("inventory", details))
    assert _discovery_markdown([1, 2, 3]) == "**Inventory**: 3 items"


# ---------------------------------------------------------------- markdown building blocks


def test_markdown_helpers_escape_pipes_and_backticks() -> None:
    assert md_cell("a|b `c`") == "a\\|b \\`c\\`"
    assert md_cell(code("x|y")) == "`x\\|y`"
    assert md_cell("line 1\nline 2") == "line 1<br>line 2"
    assert code("uses ``two`` ticks") == "```uses ``two`` ticks```"
    assert code("`edge`") == "`` `edge` ``"
    fenced = fence("text with ``` inside\n", "python")
    assert fenced.startswith("````python\n") and fenced.endswith("\n````")
    assert fence("\x1b[31mred\x1b[0m") == "```\nred\n```"
    table = md_table([["1", Markdown("**b**")]], ["A", "B"])
    assert table == "| A | B |\n|---|---|\n| 1 | **b** |"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.004, "4 ms"),
        (1.234, "1.2 s"),
        (42, "42 s"),
        (185, "3 minutes 5 s"),
        (1200, "20 minutes"),
        (7500, "2 h 5 minutes"),
        (None, "—"),
    ],
)
def test_duration_text(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


# ---------------------------------------------------------------- templates


def test_workspace_template_overrides_the_default(golden: Workspace) -> None:
    golden.templates_dir.mkdir(exist_ok=True)
    (golden.templates_dir / "resolution.md").write_text(
        "{{ heading }} | {{ run.status_label }} | {{ cells_modified | length }} | {{ progress.line }}\n"
        "{{ md_table([[1, 'a|b']], ['n', 'v']) }}\n",
        encoding="utf-8",
    )
    text = reports.render_report(golden, _lenient(golden, "1.5"), _record(golden, RESOLVED))
    assert text.startswith(
        "Phase 1.5 - Image Generation Deployment Resolution | RESOLVED ✅ | 4 | Phase 1 Progress: 62.5%"
    )
    assert "| 1 | a\\|b |" in text


def test_template_errors_are_clear(golden: Workspace) -> None:
    golden.templates_dir.mkdir(exist_ok=True)
    loaded, record = _lenient(golden, "1.5"), _record(golden, RESOLVED)
    (golden.templates_dir / "escape.md").write_text("{{ ''.__class__.__mro__ }}", encoding="utf-8")
    (golden.templates_dir / "typo.md").write_text("{{ no_such_variable }}", encoding="utf-8")
    with pytest.raises(TemplateError):
        reports.render_report(golden, loaded, record, template="escape.md")
    with pytest.raises(TemplateError, match="no_such_variable"):
        reports.render_report(golden, loaded, record, template="typo.md")
    with pytest.raises(InputError, match=r"no report template 'missing\.md'"):
        reports.render_report(golden, loaded, record, template="missing.md")
    with pytest.raises(InputError):
        reports.render_report(golden, loaded, record, template="../runbook.yaml")


# ---------------------------------------------------------------- JUnit


def test_junit_maps_reproduce_and_verify(golden: Workspace) -> None:
    loaded = _lenient(golden, "1.5")
    resolved = ET.fromstring(reports.render_junit(loaded, _record(golden, RESOLVED)))
    assert resolved.get("tests") == "8" and resolved.get("failures") == "0"
    suites = {s.get("name"): s for s in resolved.iter("testsuite")}
    assert set(suites) == {"phase-1.5.reproduce", "phase-1.5.verify"}
    reproduced = suites["phase-1.5.reproduce"].findall("testcase")
    assert reproduced[0].get("name") == "cell-109-runs: fault reproduced"
    assert all(c.find("failure") is None and c.find("skipped") is None for c in reproduced)
    verify = suites["phase-1.5.verify"].findall("testcase")
    assert {c.get("classname") for c in verify} == {"phase-1.5.verify"}
    assert verify[0].get("time") == "69.000"

    failed = ET.fromstring(reports.render_junit(loaded, _record(golden, FAILED)))
    assert failed.get("failures") == "1" and failed.get("skipped") == "4"
    failure = failed.find(".//testcase[@classname='phase-1.5.fix']/failure")
    assert failure is not None and "text not found" in (failure.get("message") or "")
    assert "output:" in (failure.text or "")


# ---------------------------------------------------------------- changelog and timeline


def test_changelog_keeps_what_people_wrote_and_is_idempotent(golden: Workspace) -> None:
    path = golden.root / "CHANGELOG.md"
    path.write_text(
        "# Changelog\n\nOur own words.\n\n## [Unreleased]\n\n### Added\n\n- Planned: phase 1.7\n\n"
        "## [1.4.0] - 1999-01-01\n\n### Fixed\n\n- stale generated text\n\n"
        "## [0.9.0] - 2025-01-01\n\n### Added\n\n- the lab\n\n[0.9.0]: https://example.com/0.9.0\n",
        encoding="utf-8",
    )
    reports.write_changelog(golden)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n\nOur own words.\n\n## [Unreleased]\n\n### Added\n\n- Planned: phase 1.7\n\n## [1.6.0]")
    assert "stale generated text" not in text
    versions = [line for line in text.splitlines() if line.startswith("## [") and "Unreleased" not in line]
    assert versions == [
        "## [1.6.0] - 2025-11-15", "## [1.5.0] - 2025-11-14", "## [1.4.0] - 2025-11-14",
        "## [1.3.0] - 2025-11-14", "## [1.2.0] - 2025-11-13", "## [1.1.0] - 2025-11-13",
        "## [0.9.0] - 2025-01-01",
    ]
    assert text.endswith("[1.1.0]: TIMELINE.md\n[0.9.0]: https://example.com/0.9.0\n")
    before = path.stat().st_mtime_ns
    reports.write_changelog(golden)
    assert path.read_text(encoding="utf-8") == text and path.stat().st_mtime_ns == before


def test_timeline_marks_hand_written_lines(golden: Workspace) -> None:
    text = reports.write_timeline(golden).read_text(encoding="utf-8")
    assert (
        "| 1.2 | MCP Server Connectivity | — | 2025-11-13T22:10:00Z | ✅ complete | — | All 8 MCP servers verified *(logged by hand)* |"
        in text
    )
    assert (
        "| 1.5 | Image Generation Deployment | 2025-11-14T03:50:00Z | 2025-11-14T03:53:10Z | ❌ failed | 3 minutes 10 s | failed at step cell-107 | `20251114T035000Z-f41ed0` |"
        in text
    )
    assert "**Phase 1 Progress**: 75% (6/8 subphases complete)" in text
    assert "Not started: 1.7, 1.8" in text
    assert "Unreadable log lines skipped: 12." in text


# ---------------------------------------------------------------- the real pipeline


RUNBOOK = """\
phase: "1.1"
title: First
inputs:
  api_key: {env: TEST_API_KEY, secret: true, required: true}
discovery:
  - id: look
    title: Read the model
    uses: shell
    with: {cmd: [cat, app.py], changes: false}
fix:
  - id: patch
    title: Use FLUX in app.py
    description: Replace the DALL-E model name.
    uses: file.replace
    with:
      path: app.py
      replacements:
        - {find: dall-e-3, replace: FLUX-1.1-pro}
  - id: env
    title: Store settings
    uses: env.set
    with:
      values: {MODEL: FLUX-1.1-pro, API_KEY: "{{ secrets.api_key }}"}
verify:
  - id: check
    title: The model is FLUX
    uses: shell
    with: {cmd: [grep, -q, "{{ 'FLUX' if true else api_key }}", app.py], changes: false}
    expect:
      - that: "{{ output.rc == 0 }}"
        message: app.py names FLUX
"""


def make_phase(root: Path, *, runbook: str = RUNBOOK) -> Path:
    (root / "runbooks" / "phase-1.1.yaml").write_text(runbook, encoding="utf-8")
    (root / "app.py").write_text('MODEL = "dall-e-3"\n', encoding="utf-8")
    (root / ".gitignore").write_text(".env\n", encoding="utf-8")
    return root


def _run(root: Path, **kwargs: object) -> object:
    from runbook.api import run_phase

    return run_phase("1.1", workspace=load_workspace(root), environ={"TEST_API_KEY": CANARY}, **kwargs)  # type: ignore[arg-type]


def test_publish_run_writes_report_changelog_timeline_and_junit(local_workspace: Path) -> None:
    root = make_phase(local_workspace)
    outputs = _run(root, junit=root / "out" / "junit.xml")
    written = [p.relative_to(root).as_posix() for p in outputs.written]  # type: ignore[attr-defined]
    run_id = outputs.result.run_id  # type: ignore[attr-defined]
    assert written == [f"reports/runs/1.1/{run_id}.md", "reports/phase-1.1.md", "CHANGELOG.md", "TIMELINE.md", "reports/charts/timeline.svg", "out/junit.xml"]
    assert (root / written[0]).read_text(encoding="utf-8") == (root / written[1]).read_text(encoding="utf-8")
    report = (root / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    assert "**Status**: RESOLVED ✅" in report
    assert "**Status**: ALL FIXES APPLIED" in report
    assert "**Phase 1 Progress**: 33.3% (1/3 subphases complete)" in report
    assert "**Next Phase**: 1.2 - Second" in report
    # No cells: the changelog falls back to the fix step titles.
    changelog = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [1.1.0] - " in changelog and "- Use FLUX in app.py\n" in changelog
    assert "- Store settings" in changelog and "[1.1.0]: reports/phase-1.1.md" in changelog
    timeline = (root / "TIMELINE.md").read_text(encoding="utf-8")
    assert "| 1.1 | First |" in timeline and "✅ complete" in timeline
    junit = ET.parse(root / "out" / "junit.xml").getroot()
    assert junit.get("tests") == "2" and junit.get("failures") == "0"
    # Rendering again from the stored record gives the same bytes.
    ws = load_workspace(root)
    record = read_record(record_paths(ws.reports_dir, "1.1")[-1])
    assert reports.render_report(ws, ws.load_runbook("1.1"), record) == report


def test_partial_run_does_not_replace_the_report(local_workspace: Path) -> None:
    from runbook.executor import RunOptions

    root = make_phase(local_workspace)
    _run(root)
    report = (root / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    outputs = _run(root, options=RunOptions(only="discovery"))
    run_id = outputs.result.run_id  # type: ignore[attr-defined]
    # The partial run keeps its own report; the phase report stays the resolving run's, and lists it.
    assert (root / "reports" / "runs" / "1.1" / f"{run_id}.md").is_file()
    after = (root / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    assert after.startswith(report.rstrip("\n")) and "## Later Runs" in after
    assert f"| [{run_id}](runs/1.1/{run_id}.md) | investigated |" in after


def test_failed_run_report_from_the_real_pipeline(local_workspace: Path) -> None:
    root = make_phase(local_workspace, runbook=RUNBOOK.replace("find: dall-e-3", "find: gpt-image-1"))
    with pytest.raises(RunFailed):
        _run(root)
    report = (root / "reports" / "phase-1.1.md").read_text(encoding="utf-8")
    assert "**Status**: FAILED ❌" in report
    assert "**Step**: `patch` (fix) - Use FLUX in app.py" in report
    assert "- `env` (fix) - Store settings: an earlier step failed" in report
    assert "- `check` (verify) - The model is FLUX: an earlier step failed" in report


def test_secret_canary_never_reaches_generated_files(local_workspace: Path) -> None:
    root = make_phase(local_workspace)
    _run(root, junit=root / "junit.xml")
    assert CANARY in (root / ".env").read_text(encoding="utf-8")  # the fix really used it
    for path in root.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert CANARY not in path.read_text(encoding="utf-8", errors="replace"), path
    assert "API_KEY=***" in (root / "reports" / "phase-1.1.md").read_text(encoding="utf-8")


def test_cli_report_changelog_timeline(local_workspace: Path) -> None:
    root = make_phase(local_workspace)
    _run(root)
    shown = invoke(["report", "phase-1.1", "-o", "-"], cwd=root)
    assert shown.exit_code == 0 and shown.stdout.startswith("# Phase 1.1 - First Resolution\n")
    run_id = record_paths(root / "reports", "1.1")[-1].stem
    junit = invoke(["report", "1.1", "--run", run_id[:12], "--format", "junit"], cwd=root)
    assert junit.exit_code == 0 and ET.fromstring(junit.stdout).get("name") == "phase-1.1"
    written = invoke(["report", "1.1", "-o", "copy.md"], cwd=root)
    assert written.exit_code == 0 and (root / "copy.md").read_text(encoding="utf-8") == shown.stdout
    missing = invoke(["report", "1.1", "--run", "nope"], cwd=root)
    assert missing.exit_code == 2 and "no run 'nope'" in missing.stderr
    assert invoke(["changelog"], cwd=root).exit_code == 0
    assert invoke(["timeline"], cwd=root).exit_code == 0
    assert (root / "CHANGELOG.md").exists() and (root / "TIMELINE.md").exists()
    assert invoke(["report", "1.1", "--tag"], cwd=root).exit_code == 2


def test_resumed_run_shows_its_final_state_and_whole_span(golden: Workspace) -> None:
    source = golden.reports_dir / "runs" / "1.5" / f"{RESOLVED}.jsonl"
    events = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    cut = next(i for i, e in enumerate(events) if e.get("step") == "cell-130" and e["event"] == "step_started")
    restored = [
        {**e, "event": "step_restored", "time": "2025-11-14T04:25:00.000Z"}
        for e in events[:cut]
        if e.get("event") == "step_finished" and e.get("stage") in ("discovery", "fix")
    ]
    first_end = {
        "event": "run_finished", "run_id": RESOLVED, "status": "interrupted", "time": "2025-11-14T04:24:00.000Z",
        "duration_s": 540.0, "counts": {}, "failed_step": None, "reproduced": True, "changed_files": [],
    }  # fmt: skip
    resumed = {"event": "run_resumed", "run_id": RESOLVED, "time": "2025-11-14T04:25:00.000Z", "pid": 1}
    rewritten = [*events[:cut], first_end, resumed, *restored, *events[cut:]]
    source.write_text("".join(json.dumps(e) + "\n" for e in rewritten), encoding="utf-8")
    text = reports.render_report(golden, _lenient(golden, "1.5"), read_record(source))
    assert "**Status**: RESOLVED ✅\n**Resolution Time**: 20 minutes\n" in text
    assert "| 109 | `cell_108_e274080d` | Updated default model to FLUX-1.1-pro" in text
