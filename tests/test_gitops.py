"""gitops and publish: repository checks and run commits, in real temporary git repositories (no mocks)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import git, git_init
from runbook import gitops, publish
from runbook.api import RunOutputs, run_phase
from runbook.errors import GitError
from runbook.record import read_record
from runbook.workspace import Workspace, load_workspace

CANARY = "canary-7f3a9c1e-secret"
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
    with: {cmd: [grep, -q, FLUX, app.py], changes: false}
"""


def _repo(root: Path, *, commit: bool = True) -> Path:
    (root / "runbooks" / "phase-1.1.yaml").write_text(RUNBOOK, encoding="utf-8")
    (root / "app.py").write_text('MODEL = "dall-e-3"\n', encoding="utf-8")
    (root / "notes.txt").write_text("notes\n", encoding="utf-8")
    (root / "other.txt").write_text("other\n", encoding="utf-8")
    (root / ".gitignore").write_text(".env\n", encoding="utf-8")
    git_init(root)
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-qm", "initial")
    return root


def _run(root: Path, **kwargs: object) -> RunOutputs:
    return run_phase(  # type: ignore[arg-type]
        "1.1", workspace=load_workspace(root), environ={"TEST_API_KEY": CANARY}, **kwargs
    )


def _committed(root: Path, rev: str = "HEAD") -> list[str]:
    parent = git(root, "rev-list", "--parents", "-n", "1", rev).split()
    if len(parent) == 1:
        return sorted(git(root, "ls-tree", "-r", "--name-only", rev).split())
    return sorted(git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", rev).split())


def _status(root: Path) -> list[str]:
    return git(root, "status", "--porcelain=v1", "--untracked-files=no").splitlines()


# ---------------------------------------------------------------- checks


def test_not_a_repository(local_workspace: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"):
        gitops.check_repository(local_workspace)


def test_detached_head(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    git(root, "checkout", "-q", "--detach", "HEAD")
    with pytest.raises(GitError, match=r"HEAD is detached at [0-9a-f]{10}") as caught:
        gitops.check_repository(root)
    assert "git switch" in str(caught.value)


def test_no_author_identity(local_workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-home"
    empty.mkdir()
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(empty / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    root = local_workspace
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    with pytest.raises(GitError, match=r"no git author identity: user\.name and user\.email are not set"):
        gitops.check_repository(root)
    # The identity from GIT_CONFIG_GLOBAL (which GitPython's reader does not see) is enough.
    (empty / "gitconfig").write_text("[user]\n\tname = Global\n\temail = global@example.com\n", encoding="utf-8")
    assert gitops.check_repository(root).head is None


def test_locked_index(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    (root / ".git" / "index.lock").write_text("", encoding="utf-8")
    with pytest.raises(GitError, match=r"index\.lock exists: another git process may be running"):
        gitops.check_repository(root)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown to another user")
def test_repository_owned_by_another_user(
    local_workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = _repo(local_workspace)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.delenv("SUDO_UID", raising=False)
    subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
    with pytest.raises(GitError, match="owned by another user") as caught:
        gitops.check_repository(root)
    assert "safe.directory" in str(caught.value)


# ---------------------------------------------------------------- commits


def test_run_commit_contains_exactly_the_run_files(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    # Unrelated work in progress: one staged change, one unstaged change, one untracked file.
    (root / "notes.txt").write_text("staged notes\n", encoding="utf-8")
    git(root, "add", "notes.txt")
    (root / "other.txt").write_text("unstaged edit\n", encoding="utf-8")
    (root / "scratch.txt").write_text("untracked\n", encoding="utf-8")
    before_head = git(root, "rev-parse", "HEAD").strip()

    outputs = _run(root, commit=True, tag=True)

    assert outputs.commit is not None
    assert git(root, "rev-parse", "HEAD").strip() == outputs.commit
    assert git(root, "rev-parse", "HEAD^").strip() == before_head
    record = outputs.record_path
    assert record is not None
    assert _committed(root) == sorted(
        [
            "CHANGELOG.md",
            "TIMELINE.md",
            "reports/charts/timeline.svg",
            "app.py",
            "reports/phase-1.1.md",
            f"reports/runs/1.1/{record.name}",
            f"reports/runs/1.1/{record.stem}.md",  # the run's own report, kept beside its record
            "reports/timestamps/execution-log.jsonl",
        ]
    )
    # The user's changes are exactly as they were: staged still staged, unstaged still unstaged.
    assert _status(root) == ["M  notes.txt", " M other.txt"]
    assert git(root, "diff", "--cached", "--name-only").split() == ["notes.txt"]
    assert (root / "other.txt").read_text(encoding="utf-8") == "unstaged edit\n"
    assert "?? scratch.txt" in git(root, "status", "--porcelain=v1")
    # .env is ignored: written by the run, never committed; the canary is nowhere in git.
    assert (root / ".env").exists()
    assert ".env" not in git(root, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert CANARY not in git(root, "log", "-p", "--all")
    message = git(root, "log", "-1", "--format=%B")
    assert message.startswith("phase-1.1: First Resolution (resolved)\n\n")
    assert "- fix patch: changed" in message and "- reproduce check: failed (fault reproduced)" in message
    assert f"Runbook-Run: {record.stem}" in message
    assert git(root, "rev-parse", "phase-1.1-resolved^{commit}").strip() == outputs.commit


def test_commit_in_a_repository_without_commits(local_workspace: Path) -> None:
    root = _repo(local_workspace, commit=False)
    git(root, "add", "notes.txt")  # staged, unrelated: must stay staged and uncommitted
    outputs = _run(root, commit=True)
    assert outputs.commit is not None
    committed = _committed(root)
    assert "app.py" in committed and "reports/phase-1.1.md" in committed
    assert "notes.txt" not in committed and "runbook.yaml" not in committed
    assert git(root, "diff", "--cached", "--name-only").split() == ["notes.txt"]


def test_nothing_changed_means_no_commit(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    first = _run(root, commit=True)
    assert first.commit is not None
    ws = load_workspace(root)
    loaded = ws.load_runbook("1.1")
    record = read_record(first.record_path)  # type: ignore[arg-type]
    paths = [first.record_path, *first.written, root / "app.py", root / ".env"]
    assert publish.commit_run(ws, loaded, record, paths) is None  # type: ignore[arg-type]
    assert publish.commit_run(ws, loaded, record, [root / ".env", root / "missing.txt"]) is None
    assert git(root, "rev-parse", "HEAD").strip() == first.commit


def test_path_staged_with_other_content_is_refused(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    outputs = _run(root)
    ws = load_workspace(root)
    (root / "app.py").write_text('MODEL = "staged version"\n', encoding="utf-8")
    git(root, "add", "app.py")
    (root / "app.py").write_text('MODEL = "FLUX-1.1-pro"\n', encoding="utf-8")
    record = read_record(outputs.record_path)  # type: ignore[arg-type]
    with pytest.raises(GitError, match=r"staged with other content than the working tree: app\.py"):
        publish.commit_run(ws, ws.load_runbook("1.1"), record, [root / "app.py"])
    # A path staged with exactly its working-tree content is fine, and ends up clean.
    git(root, "add", "app.py")
    assert publish.commit_run(ws, ws.load_runbook("1.1"), record, [root / "app.py"]) is not None
    assert _status(root) == []


def test_failed_run_is_committed_but_never_tagged(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    (root / "runbooks" / "phase-1.1.yaml").write_text(RUNBOOK.replace("find: dall-e-3", "find: nope"), encoding="utf-8")
    git(root, "commit", "-qam", "broken runbook")
    outputs = _run(root, commit=True, tag=True, raise_on_failure=False)
    assert outputs.result.status == "failed" and outputs.commit is not None
    assert git(root, "log", "-1", "--format=%s").strip() == "phase-1.1: First Resolution (failed)"
    assert git(root, "tag").strip() == ""


def test_existing_tag_is_an_error_before_committing(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    git(root, "tag", "phase-1.1-resolved")
    head = git(root, "rev-parse", "HEAD").strip()
    outputs = _run(root)
    ws: Workspace = load_workspace(root)
    record = read_record(outputs.record_path)  # type: ignore[arg-type]
    with pytest.raises(GitError, match=r"tag phase-1\.1-resolved already exists"):
        publish.commit_run(ws, ws.load_runbook("1.1"), record, outputs.written, tag=True)
    assert git(root, "rev-parse", "HEAD").strip() == head


def test_report_command_commits_report_and_record(local_workspace: Path) -> None:
    from conftest import invoke

    root = _repo(local_workspace)
    outputs = _run(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "run")
    head = git(root, "rev-parse", "HEAD").strip()
    # Re-rendering the same record gives the same bytes: nothing to commit.
    unchanged = invoke(["report", "1.1", "--commit"], cwd=root)
    assert unchanged.exit_code == 0 and "committed" not in unchanged.stdout
    assert git(root, "rev-parse", "HEAD").strip() == head
    # A workspace template (left uncommitted) changes the report: only the report is committed.
    (root / "templates").mkdir()
    (root / "templates" / "short.md").write_text("# {{ heading }}\n\n{{ summary.generated }}\n", encoding="utf-8")
    result = invoke(["report", "1.1", "--template", "short.md", "--commit"], cwd=root)
    assert result.exit_code == 0, result.output
    assert "committed" in result.stdout
    # The run's own report (beside its record) and the phase report it resolves, nothing else.
    assert outputs.record_path is not None
    assert sorted(_committed(root)) == ["reports/phase-1.1.md", f"reports/runs/1.1/{outputs.record_path.stem}.md"]
    assert "?? templates/" in git(root, "status", "--porcelain=v1")


def test_commit_paths_takes_the_message_and_tag_it_is_given(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    (root / "notes.txt").write_text("new notes\n", encoding="utf-8")
    (root / "other.txt").write_text("left alone\n", encoding="utf-8")
    sha = gitops.commit_paths(root, ["notes.txt"], "Subject line\n\nBody text.\n", tag="v-test")
    assert sha is not None and git(root, "rev-parse", "HEAD").strip() == sha
    assert git(root, "log", "-1", "--format=%B").strip() == "Subject line\n\nBody text."
    assert _committed(root) == ["notes.txt"] and _status(root) == [" M other.txt"]
    assert git(root, "tag", "-n1").split() == ["v-test", "Subject", "line"]
    # Nothing left to commit: no commit, no error, and the tag is not asked for again.
    assert gitops.commit_paths(root, ["notes.txt"], "Again\n") is None


def test_commit_message_lists_steps_and_cells(local_workspace: Path) -> None:
    root = _repo(local_workspace)
    outputs = _run(root)
    ws = load_workspace(root)
    record = read_record(outputs.record_path)  # type: ignore[arg-type]
    message = publish.commit_message(ws.load_runbook("1.1"), record)
    assert message.splitlines()[:2] == ["phase-1.1: First Resolution (resolved)", ""]
    assert "- discovery look: ok" in message and "- verify check: ok" in message
    assert message.endswith(f"\nRunbook-Run: {record.run_id}\n")
