"""`runbook checkpoint`: a status update computed from the log, the records and the plan, compared with
the previous checkpoint; and `runbook status` naming the planned cells of pending phases."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import invoke


def ok(root: Path, *args: str) -> str:
    result = invoke(list(args), cwd=root)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_checkpoints_compare_with_the_previous_one(sample: Path) -> None:
    ok(sample, "log", "1.1", "complete", "-m", "Env loads", "--cells", "3,5", "--started", "2025-11-14T01:00Z", "--at", "2025-11-14T01:20Z")
    ok(sample, "log", "1.2", "fail", "-m", "MCP server 3 refuses", "--started", "2025-11-14T02:00Z", "--at", "2025-11-14T02:10Z")
    first = json.loads(ok(sample, "checkpoint", "--json"))
    assert first["previous"] is None and first["progress"] == {"resolved": 1, "total": 8}
    assert first["errors_remaining"] == [{"phase": "1.2", "error": "MCP server 3 refuses", "at": "2025-11-14T02:10:00.000Z"}]
    assert first["estimate_remaining"]["seconds"] == 20 * 60 * 7
    assert first["estimate_remaining"]["method"] == "mean duration of the 1 resolved phase with a known duration (20 minutes) x 7 pending phases"

    ok(sample, "log", "1.2", "complete", "-m", "All 8 MCP servers verified", "--status", "RESOLVED ✅",
       "--started", "2025-11-14T02:20Z", "--at", "2025-11-14T03:00Z")
    ok(sample, "run", "phase-1.5")
    path = Path(ok(sample, "checkpoint").split("wrote ", 1)[1].strip())
    assert path.parent == sample / "reports" / "status" and path.suffix == ".md"
    data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    prev = data["previous"]
    assert prev["progress"]["was"] == 12.5 and prev["progress"]["now"] == 37.5 and prev["progress"]["delta"] == 25.0
    assert prev["cells_fixed"] == {"was": 2, "now": 5, "delta": 3}
    assert sorted(prev["newly_resolved"]) == ["1.2", "1.5"]
    assert data["errors_resolved"][0]["phase"] == "1.2" and data["errors_remaining"] == []
    pending = {p["id"]: p for p in data["pending"]}
    assert pending["1.6"]["planned_cells"] == ["21", "22", "24", "25", "26", "27", "28"] and "1.5" not in pending
    assert "notebooks/master-ai-gateway-fix-MCP.ipynb" in data["files_modified"]
    assert any(lesson["phase"] == "1.5" for lesson in data["lessons"])
    assert data["next_actions"][0].startswith("Phase 1.3")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Status Update - 37.5% (")
    assert "| Progress | 12.5% | 37.5% | +25 points |" in text and "| Cells fixed | 2 | 5 | +3 |" in text
    assert "- **1.6** Backend Services (not started) - cells 21, 22" in text
    assert "**Estimated remaining**:" in text and "x 5 pending phases)" in text
    assert "1.2: MCP server 3 refuses (at 2025-11-14T02:10:00.000Z, resolved 2025-11-14T03:00:00.000Z)" in text
    # In the site: a page per checkpoint, linked from the home page.
    ok(sample, "docs", "build", "--site-dir", str(sample / "site"))
    assert (sample / "docs" / "status" / path.name).is_file()
    assert f"(status/{path.name})" in (sample / "docs" / "index.md").read_text(encoding="utf-8")
    assert "status/" not in (sample / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1].split("not_in_nav")[0]


def test_status_names_planned_cells_of_pending_phases(sample: Path) -> None:
    ok(sample, "log", "1.1", "complete", "-m", "Env loads")
    text = ok(sample, "status")
    assert "Planned cells of pending phases: 1.2: 7; 1.3: 9; 1.4: 11; 1.6: 21, 22, 24, 25, 26, 27, 28; 1.7: 30; 1.8: 32" in text
    assert "1.1: 3, 5" not in text  # resolved: not pending
    data = json.loads(ok(sample, "status", "--json"))
    (phase,) = [p for g in data["groups"] for p in g["phases"] if p["id"] == "1.6"]
    assert phase["planned_cells"] == [21, 22, 24, 25, 26, 27, 28]
