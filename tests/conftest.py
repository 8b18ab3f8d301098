"""Shared fixtures: temporary copies of the sample workspace and an in-process CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def copy_sample(dest: Path, *, with_reports: bool = False) -> Path:
    """Copy the sample workspace (the incident before its fix) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in SAMPLE_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / item)
    (dest / "reports").mkdir(exist_ok=True)
    if with_reports and (REPO / "reports").exists():
        shutil.copytree(REPO / "reports", dest / "reports", dirs_exist_ok=True)
    return dest


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def git_init(path: Path) -> Path:
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "tester@example.com")
    git(path, "config", "user.name", "Tester")
    git(path, "config", "commit.gpgsign", "false")
    return path


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
