"""Shared fixtures: temporary copies of the sample workspace and an in-process CLI runner.

The sample workspace is laid out from the COMMITTED tree (`git archive HEAD` of this repository), never
from the working tree: after someone follows the README and runs `runbook run phase-1.5` in the
checkout (which fixes the notebook and writes `.env`, `reports/`, CHANGELOG.md and TIMELINE.md), the
tests still start from the incident's pre-fix state. To test sample edits you have not committed yet,
opt in to the working tree:

    RUNBOOK_TEST_SAMPLE=worktree python -m pytest ...

(A checkout without git history, e.g. an unpacked sdist, also falls back to the working tree.)
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ITEMS = ("runbook.yaml", "runbooks", "templates", "notebooks", "mkdocs.yml", "docs", ".env.example", ".gitignore")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run `runbook ARGS` in-process through the real entry point (`main`, exit-code mapping included)."""
    from click.testing import CliRunner

    from runbook.cli import main

    @click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
    @click.argument("argv", nargs=-1, type=click.UNPROCESSED)
    def entry(argv: tuple[str, ...]) -> None:
        main(list(argv))

    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(entry, args, env=env, catch_exceptions=False)
    finally:
        os.chdir(old)
    return CliResult(result.exit_code, result.stdout, result.stderr)


SAMPLE_SOURCE_ENV = "RUNBOOK_TEST_SAMPLE"


def copy_sample(dest: Path, *, with_reports: bool = False, repo: Path = REPO) -> Path:
    """Lay out the sample workspace (the incident before its fix) in `dest`, from `repo`'s HEAD.

    `RUNBOOK_TEST_SAMPLE=worktree` copies `repo`'s working tree instead (see the module docstring).
    """
    dest.mkdir(parents=True, exist_ok=True)
    items = [*SAMPLE_ITEMS, "reports"] if with_reports else list(SAMPLE_ITEMS)
    if os.environ.get(SAMPLE_SOURCE_ENV, "").lower() == "worktree" or _head(repo) is None:
        _copy_worktree(repo, dest, items)
    else:
        _extract_committed(repo, dest, items)
    (dest / "reports").mkdir(exist_ok=True)
    return dest


def committed_bytes(path: str, *, repo: Path = REPO) -> bytes:
    """A sample file as committed (`git show HEAD:path`); the working tree's under the same opt-in."""
    if os.environ.get(SAMPLE_SOURCE_ENV, "").lower() == "worktree" or _head(repo) is None:
        return (repo / path).read_bytes()
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo, check=True, capture_output=True).stdout


def _head(repo: Path) -> str | None:
    """The commit `repo` has checked out, or None when it is not a git checkout."""
    done = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def _committed_archive(repo: Path, commit: str, items: tuple[str, ...]) -> bytes:
    """`git archive` of the sample items that exist in `commit` (read once per commit per session)."""
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", commit, "--", *items], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.split()
    if not listed:
        return b""
    return subprocess.run(["git", "archive", "--format=tar", commit, "--", *listed], cwd=repo, check=True, capture_output=True).stdout


def _extract_committed(repo: Path, dest: Path, items: list[str]) -> None:
    commit = _head(repo)
    assert commit is not None
    data = _committed_archive(repo.resolve(), commit, tuple(items))
    if data:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(dest, filter="data")


def _copy_worktree(repo: Path, dest: Path, items: list[str]) -> None:
    for item in items:
        src = repo / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / item)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def git_init(path: Path) -> Path:
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "tester@example.com")
    git(path, "config", "user.name", "Tester")
    git(path, "config", "commit.gpgsign", "false")
    return path


# What runbook remembers per installation (schema_freshness.user_cache_dir) goes to the suite's own
# folder, not the user's cache; subprocesses inherit it.
_CACHE_DIR = os.environ.setdefault("RUNBOOK_CACHE_DIR", tempfile.mkdtemp(prefix="runbook-test-cache-"))

@pytest.fixture(autouse=True, scope="session")
def _check_action_outputs() -> Iterator[None]:
    """Every action the suite runs must return only the output fields it declares."""
    os.environ["RUNBOOK_CHECK_OUTPUTS"] = "1"
    yield
    from runbook.actions.outputs import contract_violations

    assert not contract_violations(), "\n".join(contract_violations())


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A fresh copy of the sample workspace (no .env, no reports)."""
    return copy_sample(tmp_path / "lab")


@pytest.fixture
def sample_repo(sample: Path) -> Path:
    """The sample workspace as a git repository with one commit."""
    git_init(sample)
    git(sample, "add", "-A")
    git(sample, "commit", "-qm", "initial")
    return sample


@pytest.fixture
def run_cli() -> Iterator[object]:
    yield invoke


@pytest.fixture
def local_workspace(tmp_path: Path) -> Path:
    """A minimal workspace with a `local` target (no emulator), for core tests."""
    root = tmp_path / "ws"
    (root / "runbooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "runbook.yaml").write_text(
        """\
project: Test
plan:
  - group: "1"
    phases:
      - {id: "1.1", title: First}
      - {id: "1.2", title: Second}
      - {id: "1.3", title: Third}
default_target: local
targets:
  local:
    kind: local
""",
        encoding="utf-8",
    )
    return root
