"""Phase 1.5 end to end against the embedded emulator, in a copy of the sample workspace.

The committed notebook is the incident before its fix: the run must reproduce the 404s, edit exactly
the intended lines, write the image settings to .env, verify in a real kernel, and a second run must
change nothing.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, committed_bytes, git, invoke
from runbook.record import read_log, read_record, record_paths

NOTEBOOK = Path("notebooks/master-ai-gateway-fix-MCP.ipynb")


def _steps(root: Path) -> dict[str, dict]:
    record = read_record(record_paths(root / "reports", "1.5")[-1])
    return {f"{e['stage']}:{e['step']}": e for e in record.step_results()}


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from conftest import copy_sample

    root = copy_sample(tmp_path_factory.mktemp("phase15") / "lab")
    result = invoke(["run", "phase-1.5"], cwd=root)
    return root, result


def test_the_committed_notebook_is_the_incident_before_its_fix() -> None:
    text = committed_bytes(str(NOTEBOOK)).decode("utf-8")
    assert "dall-e-3" in text and 'os.getenv(\\"DALL_E_DEPLOYMENT\\", \\"gpt-image-1\\")' in text
    assert 'os.getenv(\\"IMAGE_MODEL_DEPLOYMENT\\"' not in text
    assert ".env" not in git(REPO, "ls-files").splitlines()  # committed: never; present after a demo: fine


def test_run_exits_zero_and_records_every_step(fixed: tuple[Path, object]) -> None:
    root, result = fixed
    assert result.exit_code == 0, result.output
    steps = _steps(root)
    for key, event in steps.items():
        assert event["started_at"].endswith("Z") and event["finished_at"].endswith("Z"), key
        assert event["status"] in ("ok", "changed", "failed"), key
    # Reproduce: the fault was real (404 through the gateway, the cells fail in a kernel).
    assert steps["reproduce:gateway-probe"]["status"] == "failed"
    assert steps["reproduce:gateway-probe"]["output"]["status"] == 404
    assert steps["reproduce:run-image-cells"]["status"] == "failed"
    assert "404" in steps["reproduce:run-image-cells"]["error"]["message"]
    # Discovery found the image deployment; the fix used it.
    assert steps["discovery:image-models"]["output"]["model"] == "FLUX-1.1-pro"
    assert [steps[f"fix:{s}"]["status"] for s in ("fix-config-cell", "fix-test-cell", "fix-minimal-cell")] == [
        "changed"
    ] * 3
    assert steps["verify:gateway-probe"]["output"]["status"] == 200
    assert steps["verify:run-image-cells"]["status"] == "ok"
    lines, warnings = read_log(root / "reports" / "timestamps" / "execution-log.jsonl")
    assert [(line.phase, line.action) for line in lines] == [("1.5", "start"), ("1.5", "complete")]
    assert lines[-1].cells_fixed == (15, 17, 19) and not warnings


def test_only_the_intended_notebook_lines_changed(fixed: tuple[Path, object]) -> None:
    root, _ = fixed
    before = committed_bytes(str(NOTEBOOK)).decode("utf-8").splitlines()
    after = (root / NOTEBOOK).read_text(encoding="utf-8").splitlines()
    removed = [line[1:] for line in difflib.unified_diff(before, after, lineterm="", n=0) if line[:1] == "-" and not line.startswith("---")]
    added = [line[1:] for line in difflib.unified_diff(before, after, lineterm="", n=0) if line[:1] == "+" and not line.startswith("+++")]
    assert len(removed) == len(added) == 8
    assert all("FLUX-1.1-pro" in line or "model_name" in line or "image_model" in line for line in added)
    json.loads("\n".join(after))  # still a valid notebook


def test_env_file_gets_the_discovered_settings(fixed: tuple[Path, object]) -> None:
    root, _ = fixed
    env = (root / ".env").read_text()
    assert "IMAGE_MODEL_NAME=FLUX-1.1-pro" in env
    assert "IMAGE_MODEL_DEPLOYMENT=FLUX-1.1-pro" in env
    assert "IMAGE_API_VERSION=2024-08-01-preview" in env
    assert "FOUNDRY_IMAGE_ENDPOINT=https://foundry1-pavavy6pu5hpa.cognitiveservices.azure.com/" in env


def test_second_run_changes_nothing(fixed: tuple[Path, object], tmp_path: Path) -> None:
    root, _ = fixed
    copy = tmp_path / "again"
    shutil.copytree(root, copy)
    notebook = (copy / NOTEBOOK).read_bytes()
    env = (copy / ".env").read_bytes()
    result = invoke(["run", "1.5"], cwd=copy)
    assert result.exit_code == 0, result.output
    assert (copy / NOTEBOOK).read_bytes() == notebook
    assert (copy / ".env").read_bytes() == env
    steps = _steps(copy)
    assert all(steps[f"fix:{s}"]["status"] == "ok" for s in ("fix-config-cell", "fix-test-cell", "fix-minimal-cell", "env-image-settings"))
    assert result.stdout.count("already applied") == 3
    assert "fault did not reproduce" in result.stdout


def test_the_runbook_adapts_to_a_different_image_deployment(tmp_path: Path) -> None:
    """Never assume model names: another estate's image model lands in the cells and .env."""
    from conftest import copy_sample
    from runbook.azure.estate import default_estate_path

    root = copy_sample(tmp_path / "lab")
    estate = default_estate_path().read_text(encoding="utf-8")
    estate = estate.replace("FLUX-1.1-pro", "gpt-image-1-lab")
    (root / "estate.yaml").write_text(estate, encoding="utf-8")
    config = (root / "runbook.yaml").read_text(encoding="utf-8")
    config = config.replace("    kind: emulator\n", "    kind: emulator\n    estate: estate.yaml\n", 1)
    (root / "runbook.yaml").write_text(config, encoding="utf-8")
    result = invoke(["run", "1.5", "--no-report"], cwd=root)
    assert result.exit_code == 0, result.output
    assert "gpt-image-1-lab" in (root / NOTEBOOK).read_text(encoding="utf-8")
    assert "IMAGE_MODEL_NAME=gpt-image-1-lab" in (root / ".env").read_text()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    from conftest import copy_sample

    root = copy_sample(tmp_path / "lab")
    before = (root / NOTEBOOK).read_bytes()
    result = invoke(["run", "1.5", "--dry-run"], cwd=root)
    assert result.exit_code == 0, result.output
    assert "+    image_gen_url" in result.stdout or "FLUX-1.1-pro" in result.stdout
    assert (root / NOTEBOOK).read_bytes() == before
    assert not (root / ".env").exists()
    assert not (root / "reports" / "runs").exists()


def test_commit_holds_exactly_the_intended_files(tmp_path: Path) -> None:
    """`runbook run phase-1.5 --commit` on a fresh clone: one commit, the run's files only."""
    from conftest import copy_sample, git_init

    root = copy_sample(tmp_path / "lab")
    git_init(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the incident before its fix")
    (root / "notes.txt").write_text("unrelated, unstaged\n")
    (root / "staged.txt").write_text("unrelated, staged\n")
    git(root, "add", "staged.txt")
    result = invoke(["run", "phase-1.5", "--commit", "--tag"], cwd=root)
    assert result.exit_code == 0, result.output
    assert git(root, "rev-list", "--count", "HEAD").strip() == "2"
    files = set(git(root, "show", "--name-only", "--format=", "HEAD").split())
    record = record_paths(root / "reports", "1.5")[-1].relative_to(root)
    assert files == {
        "CHANGELOG.md",
        "TIMELINE.md",
        "reports/charts/timeline.svg",
        "reports/phase-1.5.md",
        "reports/timestamps/execution-log.jsonl",
        str(record),
        str(record.with_suffix(".md")),  # the run's own report, kept beside its record
        str(NOTEBOOK),
    }
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("phase-1.5: Image Generation Deployment Resolution (resolved)")
    assert record.stem in message and "cell_14_f21837aa" in message
    assert git(root, "tag", "--list").split() == ["phase-1.5-resolved"]
    status = git(root, "status", "--porcelain")
    assert "A  staged.txt" in status and "?? notes.txt" in status
    assert ".env" not in git(root, "ls-files").split() and (root / ".env").exists()


def test_a_failed_verify_renders_a_failed_report(tmp_path: Path) -> None:
    """An http.request whose expectations fail in verify: exit 1, and the report says FAILED and why."""
    from conftest import copy_sample

    root = copy_sample(tmp_path / "lab")
    runbook = root / "runbooks" / "phase-1.5.yaml"
    text = runbook.read_text(encoding="utf-8")
    runbook.write_text(text.replace("        status: 200\n", "        status: 201\n", 1), encoding="utf-8")
    result = invoke(["run", "1.5"], cwd=root)
    assert result.exit_code == 1, result.output
    assert "--resume" in result.stderr
    report = (root / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    assert "**Status**: FAILED" in report
    assert "## What Failed" in report and "gateway-probe" in report
    assert "status" in report and "201" in report
