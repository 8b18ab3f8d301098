"""CHANGELOG.md read by the tools people use on it: `python-kacl verify` (its CLI, `kacl-cli`) and the
`keepachangelog` parser, on the sample after a real run and a hand-kept log; and `--check`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import keepachangelog
import pytest

from conftest import invoke
from runbook.reports import phase_version

HAND_LOG = [
    ("1.1", "complete", "Phase 1.1 Complete - Environment loading fixed", "COMPLETE", "2025-11-13T21:00Z"),
    ("1.2", "complete", "All 8 MCP servers verified", "RESOLVED ✅", "2025-11-13T22:10Z"),
    ("1.3", "fail", "Embeddings still 404", None, "2025-11-14T01:00Z"),
]


def kacl(root: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kacl-cli")
    assert exe is not None, "python-kacl is in the test extra (pip install python-kacl)"
    return subprocess.run([exe, "verify"], cwd=root, capture_output=True, text=True, timeout=60)


@pytest.fixture
def logged(sample: Path) -> Path:
    for phase, action, message, status, at in HAND_LOG:
        args = ["log", phase, action, "-m", message, "--at", at] + (["--status", status] if status else [])
        assert invoke(args, cwd=sample).exit_code == 0
    ran = invoke(["run", "phase-1.5"], cwd=sample)
    assert ran.exit_code == 0, ran.output
    return sample


def test_both_tools_read_every_entry(logged: Path) -> None:
    assert invoke(["changelog"], cwd=logged).exit_code == 0
    checked = kacl(logged)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    parsed = keepachangelog.to_dict(str(logged / "CHANGELOG.md"), show_unreleased=True)
    assert list(parsed) == ["unreleased", "1.5.0", "1.2.0", "1.1.0"]  # 1.3 failed: no version
    assert parsed["1.1.0"]["fixed"] == ["Environment loading fixed"]  # not "Phase 1.1: Phase 1.1 Complete - …"
    assert parsed["1.2.0"]["fixed"] == ["All 8 MCP servers verified"]
    assert parsed["1.5.0"]["metadata"]["url"] == "reports/phase-1.5.md"
    assert parsed["1.1.0"]["metadata"]["release_date"] == "2025-11-13"
    assert all(parsed[v].get("fixed") or parsed[v].get("added") or parsed[v].get("changed") for v in parsed if v != "unreleased")
    text = (logged / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "<!--" not in text and "Phase 1.1:" not in text


def test_hand_written_unreleased_entries_survive_and_still_verify(logged: Path) -> None:
    path = logged / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8").replace(
        "## [Unreleased]\n", "## [Unreleased]\n\n### Changed\n\n- Backend pool next\n", 1
    )
    path.write_text(text, encoding="utf-8")
    assert invoke(["changelog", "--check"], cwd=logged).exit_code == 0  # people's words are not staleness
    assert invoke(["changelog"], cwd=logged).exit_code == 0
    assert path.read_text(encoding="utf-8") == text
    assert kacl(logged).returncode == 0
    assert keepachangelog.to_dict(str(path), show_unreleased=True)["unreleased"]["changed"] == ["Backend pool next"]


def test_check_exits_1_when_the_file_is_stale(logged: Path) -> None:
    assert invoke(["changelog", "--check"], cwd=logged).exit_code == 0
    assert invoke(["log", "1.3", "complete", "-m", "Embeddings fixed", "--at", "2025-11-14T02:00Z"], cwd=logged).exit_code == 0
    stale = invoke(["changelog", "--check"], cwd=logged)
    assert stale.exit_code == 1 and "stale" in stale.output
    before = (logged / "CHANGELOG.md").read_bytes()
    assert invoke(["changelog", "--check"], cwd=logged).exit_code == 1 and (logged / "CHANGELOG.md").read_bytes() == before
    assert invoke(["changelog"], cwd=logged).exit_code == 0
    assert invoke(["changelog", "--check"], cwd=logged).exit_code == 0
    assert "## [1.3.0] - 2025-11-14" in (logged / "CHANGELOG.md").read_text(encoding="utf-8")


def test_check_without_a_changelog_is_stale(sample: Path) -> None:
    assert invoke(["changelog", "--check"], cwd=sample).exit_code == 1


@pytest.mark.parametrize(("phase", "version"), [("1.5", "1.5.0"), ("2", "2.0.0"), ("1.5.1", "1.5.1"), ("1.10", "1.10.0")])
def test_phase_versions_are_semver(phase: str, version: str) -> None:
    assert phase_version(phase) == version
