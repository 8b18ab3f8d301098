"""Phase 1.6 (backend services) end to end against the emulator, in copies of the sample workspace:
the run exits 0 on its own and after 1.5 (`run group 1`), a second run changes nothing, the dry-run
shows ARM and cell diffs without changing anything, approval is required, and the report has one
section per cell with its CLI equivalent. Also phase 1.5's correction for split image accounts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import copy_sample, invoke
from runbook.record import read_record, record_paths

NOTEBOOK = Path("notebooks/master-ai-gateway-fix-MCP.ipynb")
STATE = Path(".runbook/emulator-state.json")
AZURE_FIXES = ("cosmos-ip-rule", "region-policy", "apim-diagnostics-to-workspace")


def _fix_statuses(root: Path, phase: str = "1.6") -> dict[str, str]:
    record = read_record(record_paths(root / "reports", phase)[-1])
    return {e["step"]: e["status"] for e in record.step_results() if e["stage"] == "fix"}


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("phase16") / "lab")
    result = invoke(["run", "phase-1.6", "--yes"], cwd=root)
    assert result.exit_code == 0, result.output
    return root


def test_the_committed_cells_fail_before_the_fix() -> None:
    from conftest import REPO

    cells = json.loads((REPO / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    tagged = {tag: "".join(c["source"]) for c in cells for tag in c.get("metadata", {}).get("tags", [])}
    assert 'raise RuntimeError(f"Cosmos DB query failed' in tagged["backend-cosmos"]
    assert 'raise RuntimeError(f"Azure AI Search failed' in tagged["backend-search"]
    assert 'print("[FALLBACK] No available model succeeded")' in tagged["backend-fallback"]
    assert "_headers" in tagged["backend-region"]
    assert "LOG_ANALYTICS_WORKSPACE_ID" in tagged["backend-logs"]


def test_run_fixes_the_cells_and_azure(fixed: Path) -> None:
    statuses = _fix_statuses(fixed)
    assert all(statuses[step] == "changed" for step in AZURE_FIXES), statuses
    state = json.loads((fixed / STATE).read_text(encoding="utf-8"))
    cosmos = next(r for r in state["resources"] if r["type"] == "Microsoft.DocumentDB/databaseAccounts")
    assert {"ipAddressOrRange": "79.97.178.198"} in cosmos["properties"]["ipRules"]
    assert "LOG_ANALYTICS_WORKSPACE_ID=7c1d3f2a-5b6e-4a8f-9d0c-1e2f3a4b5c6d" in (fixed / ".env").read_text()
    notebook = (fixed / NOTEBOOK).read_text(encoding="utf-8")
    assert "cosmos_enabled" in notebook and "region_detection_enabled" in notebook


def test_report_has_one_section_per_cell_with_cli_equivalents(fixed: Path) -> None:
    report = (fixed / "reports" / "phase-1.6.md").read_text(encoding="utf-8")
    section = report.split("## Cell Details", 1)[1].split("## Testing Plan", 1)[0]
    assert section.count("\n### ") == 5
    assert (
        "az cosmosdb update --name cosmos-pavavy6pu5hpa --resource-group lab-master-lab --ip-range-filter 203.0.113.0/24,79.97.178.198"
        in section
    )
    assert "az monitor diagnostic-settings create --name apim-to-log-analytics" in section
    assert "Networking" in section and "Outbound processing" in section


def test_second_run_changes_nothing(fixed: Path) -> None:
    notebook = (fixed / NOTEBOOK).read_bytes()
    state = (fixed / STATE).read_bytes()
    result = invoke(["run", "1.6", "--yes", "--no-report"], cwd=fixed)
    assert result.exit_code == 0, result.output
    statuses = _fix_statuses(fixed)
    assert "changed" not in statuses.values(), statuses
    assert (fixed / NOTEBOOK).read_bytes() == notebook
    assert (fixed / STATE).read_bytes() == state


def test_dry_run_shows_arm_and_cell_diffs_and_changes_nothing(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    before = (root / NOTEBOOK).read_bytes()
    result = invoke(["run", "1.6", "--dry-run"], cwd=root)
    assert result.exit_code == 0, result.output
    assert '+        "ipAddressOrRange": "79.97.178.198"' in result.stdout
    assert "would PUT" in result.stdout and "cosmos_enabled" in result.stdout
    assert (root / NOTEBOOK).read_bytes() == before
    assert not (root / ".env").exists() and not (root / STATE).exists()


def test_azure_fixes_need_approval(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    result = invoke(["run", "1.6"], cwd=root)
    assert result.exit_code == 1
    assert "needs approval" in result.output
    assert _fix_statuses(root)["cosmos-ip-rule"] == "failed"
    assert not (root / STATE).exists()  # nothing was written to Azure


def test_group_runs_1_5_then_1_6(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    result = invoke(["run", "group", "1", "--yes"], cwd=root)
    assert result.exit_code == 0, result.output
    assert result.stdout.index("phase 1.5: success") < result.stdout.index("phase 1.6: success")
    status = invoke(["status"], cwd=root)
    lines = [line for line in status.stdout.splitlines() if line.strip().startswith(("1.5", "1.6"))]
    assert len(lines) == 2 and all("RESOLVED" in line for line in lines), status.stdout


def test_phase_1_5_writes_the_chosen_models_account_and_name(tmp_path: Path) -> None:
    """Image models split across accounts: the endpoint is the chosen model's account, the name its model."""
    from runbook.azure.estate import default_estate_path

    root = copy_sample(tmp_path / "lab")
    estate = default_estate_path().read_text(encoding="utf-8")
    flux = next(line for line in estate.splitlines() if "{name: FLUX-1.1-pro," in line)
    estate = estate.replace(flux + "\n", "")
    moved = flux.replace("{name: FLUX-1.1-pro,", "{name: img-prod,")
    lines = estate.splitlines()
    foundry2 = lines.index("          - name: foundry2-pavavy6pu5hpa")
    lines.insert(foundry2 + 4, moved)  # the first deployment of foundry2 (name, kind, location, deployments:)
    (root / "estate.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = (root / "runbook.yaml").read_text(encoding="utf-8")
    config = config.replace("    kind: emulator\n", "    kind: emulator\n    estate: estate.yaml\n", 1)
    (root / "runbook.yaml").write_text(config, encoding="utf-8")
    result = invoke(["run", "1.5", "--no-report"], cwd=root)
    assert result.exit_code == 0, result.output
    env = (root / ".env").read_text(encoding="utf-8")
    assert "IMAGE_MODEL_NAME=FLUX-1.1-pro" in env
    assert "IMAGE_MODEL_DEPLOYMENT=img-prod" in env
    assert "FOUNDRY_IMAGE_ENDPOINT=https://foundry2-pavavy6pu5hpa.cognitiveservices.azure.com/" in env
