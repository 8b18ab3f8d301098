"""A demo run in the checkout cannot break the tests, and the README's undo command undoes it.

Both tests follow the README on a scratch `git clone` of this repository: run the main job
(`runbook run phase-1.5`, the clone's own code, as a subprocess), then check (1) that the suite's
sample fixture, pointed at that dirty clone, still lays out the pre-fix notebook exactly as committed,
and (2) that the undo command written in README.md leaves the clone clean.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_SOURCE_ENV, copy_sample, git

NOTEBOOK = "notebooks/master-ai-gateway-fix-MCP.ipynb"
UNDO = re.compile(r"to get the\s+incident back, run\s+`(?P<command>[^`]+)`")


def _demo_clone(tmp_path: Path) -> Path:
    """A fresh clone of this repository's HEAD after the README's main job ran in it."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(clone / "src"), "NO_COLOR": "1"}
    env.pop(SAMPLE_SOURCE_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from runbook.cli import main; main(sys.argv[1:])", "run", "phase-1.5"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f" M {NOTEBOOK}" in git(clone, "status", "--porcelain").splitlines(), "the run did not fix the notebook"
    return clone


def test_the_sample_fixture_ignores_a_demo_run_in_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = _demo_clone(tmp_path)
    committed = subprocess.run(["git", "show", f"HEAD:{NOTEBOOK}"], cwd=clone, check=True, capture_output=True).stdout
    fixed = (clone / NOTEBOOK).read_bytes()
    assert fixed != committed

    monkeypatch.delenv(SAMPLE_SOURCE_ENV, raising=False)
    lab = copy_sample(tmp_path / "lab", repo=clone)
    assert (lab / NOTEBOOK).read_bytes() == committed
    assert not (lab / ".env").exists()
    assert sorted(p.name for p in (lab / "reports").iterdir()) == []
    # The opt-in copies the working tree: the fixed notebook and all.
    monkeypatch.setenv(SAMPLE_SOURCE_ENV, "worktree")
    mine = copy_sample(tmp_path / "mine", repo=clone)
    assert (mine / NOTEBOOK).read_bytes() == fixed


def test_the_readme_undo_command_restores_a_fresh_clone(tmp_path: Path) -> None:
    match = UNDO.search((REPO / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md lost its `to get the incident back, run `...`` sentence"
    clone = _demo_clone(tmp_path)
    assert (clone / ".env").exists() and (clone / "CHANGELOG.md").exists()
    done = subprocess.run(["bash", "-c", match["command"]], cwd=clone, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(clone, "status", "--porcelain") == ""
    assert not (clone / ".env").exists()
