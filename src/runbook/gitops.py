"""Git for runs: check that a repository is fit to commit in, and commit exactly the files given.

`check_repository` turns the ways a commit goes wrong (not a repository, a repository owned by
another user, a locked index, a detached HEAD, no author identity) into `GitError`s that say what to
do, before anything runs. `commit_paths` commits only the paths it is given, with the message text
it is given (`runbook.publish` builds it from the run), like `git commit --only`:
the tree is built in a temporary index from HEAD plus those paths, so the user's other staged and
unstaged changes are neither committed nor disturbed, and ignored files (`.env`) are dropped. Git
itself is driven through GitPython's command wrapper (plumbing: read-tree, add, write-tree,
commit-tree, update-ref), so clean filters and git's own identity rules apply; no hooks run. Every
`Repo` is closed, since GitPython leaks `git cat-file` processes otherwise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GitError, relative_display

if TYPE_CHECKING:
    from git import Repo

__all__ = ["RepositoryInfo", "check_repository", "commit_paths"]


@dataclass(frozen=True)
class RepositoryInfo:
    """The repository a workspace lives in, as checked."""

    root: Path
    git_dir: Path
    branch: str
    head: str | None  # None: no commits yet


@contextmanager
def _open(root: Path) -> Iterator[Repo]:
    from git import Repo
    from git.exc import InvalidGitRepositoryError, NoSuchPathError

    try:
        repo = Repo(root, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise GitError(
            f"{relative_display(root)} is not inside a git repository",
            hint="run `git init` there, or run without --commit",
        ) from None
    try:
        yield repo
    finally:
        repo.close()


def _stderr(exc: Any) -> str:
    text = str(getattr(exc, "stderr", "") or exc)
    return " ".join(text.replace("stderr:", "").split()).strip(" '")


def _identity_part(repo: Repo, key: str) -> str | None:
    """user.name / user.email as git sees them: the repo's config reader, then `git config --get`."""
    section, option = key.split(".")
    try:
        value = repo.config_reader().get_value(section, option, default="")
    except Exception:  # a malformed config file: let git itself answer below
        value = ""
    if value:
        return str(value)
    from git.exc import GitCommandError

    try:
        # Also sees GIT_CONFIG_GLOBAL, includeIf and other places GitPython's reader does not.
        answer = str(repo.git.config("--get", key)).strip()
    except GitCommandError:
        return None
    return answer or None


def _check_identity(repo: Repo) -> None:
    missing = []
    for role in ("AUTHOR", "COMMITTER"):
        for part in ("NAME", "EMAIL"):
            if os.environ.get(f"GIT_{role}_{part}"):
                continue
            if part == "EMAIL" and os.environ.get("EMAIL"):
                continue
            key = f"user.{part.lower()}"
            if _identity_part(repo, f"{role.lower()}.{part.lower()}") or _identity_part(repo, key):
                continue
            if key not in missing:
                missing.append(key)
    if missing:
        raise GitError(
            f"no git author identity: {' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} not set",
            hint='run `git config user.name "Your Name"` and `git config user.email you@example.com` '
            "(add --global for every repository)",
        )


def _check(repo: Repo, root: Path) -> RepositoryInfo:
    from git.exc import GitCommandError

    tree = Path(repo.working_tree_dir or root)
    try:
        repo.git.rev_parse("--git-dir")
    except GitCommandError as exc:
        text = _stderr(exc)
        if "dubious ownership" in text or "safe.directory" in text:
            raise GitError(
                f"the repository at {tree} is owned by another user, so git refuses to work in it",
                hint=f"if you trust it: git config --global --add safe.directory {tree}",
            ) from None
        raise GitError(f"git cannot read the repository at {tree}: {text}") from None
    if repo.bare:
        raise GitError(f"{tree} is a bare repository: there is no work tree to commit from")
    git_dir = Path(repo.git_dir)
    lock = git_dir / "index.lock"
    if lock.exists():
        raise GitError(
            f"{relative_display(lock)} exists: another git process may be running (an editor, an IDE, "
            "a `git` command) and holds the index",
            hint="wait for it to finish; if no git process is running, the file is left over from a crash: "
            f"delete {lock}",
        )
    if repo.head.is_detached:
        sha = repo.head.commit.hexsha[:10]
        raise GitError(
            f"HEAD is detached at {sha}: a run's commit would belong to no branch",
            hint="switch to a branch first: `git switch main`, or `git switch -c <new-branch>`",
        )
    _check_identity(repo)
    head = repo.head.commit.hexsha if repo.head.is_valid() else None
    return RepositoryInfo(root=tree, git_dir=git_dir, branch=repo.active_branch.name, head=head)


def check_repository(root: Path) -> RepositoryInfo:
    """Check that `root` is in a repository a run can commit to; raise a GitError saying why not."""
    with _open(root) as repo:
        return _check(repo, root)


# ---------------------------------------------------------------- the commit


def _repo_paths(tree: Path, paths: Iterable[Path | str], workspace_root: Path) -> list[str]:
    """Paths relative to the work tree (posix), de-duplicated; outside it or inside .git: dropped."""
    found: list[str] = []
    base = tree.resolve()
    for item in paths:
        path = Path(item)
        if not path.is_absolute():
            path = workspace_root / path
        try:
            relative = path.resolve().relative_to(base).as_posix()
        except ValueError:
            continue
        if relative in ("", ".") or relative == ".git" or relative.startswith(".git/"):
            continue
        if relative not in found:
            found.append(relative)
    return sorted(found)


def _tree_entries(repo: Repo, rev: str | None, paths: Sequence[str]) -> dict[str, str]:
    if rev is None or not paths:
        return {}
    out = str(repo.git.ls_tree("-r", "-z", rev, "--", *paths))
    entries = {}
    for record in out.split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            entries[path] = meta.split()[2]
    return entries


def _index_entries(repo: Repo, paths: Sequence[str]) -> dict[str, tuple[str, int]]:
    out = str(repo.git.ls_files("-s", "-z", "--", *paths)) if paths else ""
    entries = {}
    for record in out.split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            _mode, sha, stage = meta.split()
            entries[path] = (sha, int(stage))
    return entries


def _refuse_conflicting_stage(repo: Repo, tree: Path, head: str | None, paths: Sequence[str]) -> None:
    """A path staged with other content than its working file would lose that staged version."""
    in_head = _tree_entries(repo, head, paths)
    in_index = _index_entries(repo, paths)
    existing = [p for p in paths if (tree / p).is_file()]
    hashes = dict(zip(existing, str(repo.git.hash_object("--", *existing)).split(), strict=True)) if existing else {}
    problems = []
    for path in paths:
        staged = in_index.get(path)
        if staged is not None and staged[1] != 0:
            problems.append(f"{path} (unresolved merge conflict)")
            continue
        staged_sha = staged[0] if staged else None
        if staged_sha == in_head.get(path):
            continue  # nothing staged for it
        if staged_sha != hashes.get(path):
            problems.append(path)
    if problems:
        raise GitError(
            "staged with other content than the working tree: " + ", ".join(problems),
            hint="commit or unstage it first (`git restore --staged <path>`); the run commits the working "
            "tree's version and would lose the staged one",
        )


def commit_paths(
    root: Path,
    paths: Sequence[Path | str],
    message: str,
    *,
    tag: str | None = None,
    tag_message: str | None = None,
) -> str | None:
    """Commit exactly `paths` (ignored ones dropped) on the current branch; None when nothing changed.

    `root`: the workspace (relative `paths` are taken from it). `message`: the whole commit message,
    subject first. The user's other staged and unstaged changes stay as they were. With `tag`, the
    new commit gets that annotated tag (`tag_message`, default the subject); an existing tag of that
    name is an error before anything is committed.
    """
    subject = message.split("\n", 1)[0]
    with _open(root) as repo:
        info = _check(repo, root)
        tree = info.root
        wanted = _repo_paths(tree, paths, root)
        ignored = set(repo.ignored(*wanted)) if wanted else set()
        wanted = [p for p in wanted if p not in ignored]
        in_head = _tree_entries(repo, info.head, wanted)
        wanted = [p for p in wanted if (tree / p).exists() or p in in_head]
        if not wanted:
            return None
        _refuse_conflicting_stage(repo, tree, info.head, wanted)
        if tag is not None and tag in [t.name for t in repo.tags]:
            raise GitError(
                f"tag {tag} already exists (at {repo.tags[tag].commit.hexsha[:10]})",
                hint=f"delete it first (`git tag -d {tag}`) or commit without --tag",
            )
        with tempfile.TemporaryDirectory(prefix="runbook-commit-", dir=info.git_dir) as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            if info.head is None:
                repo.git.read_tree("--empty", env=env)
            else:
                repo.git.read_tree(info.head, env=env)
            repo.git.add("--", *wanted, env=env)
            new_tree = str(repo.git.write_tree(env=env)).strip()
            if info.head is not None and new_tree == repo.head.commit.tree.hexsha:
                return None
            message_file = Path(scratch) / "message"
            message_file.write_text(message, encoding="utf-8")
            parents = ["-p", info.head] if info.head else []
            sha = str(repo.git.commit_tree(new_tree, *parents, "-F", str(message_file))).strip()
        # Compare-and-swap on the branch: a commit made meanwhile by someone else is not overwritten.
        repo.git.update_ref("-m", f"commit (runbook): {subject}", "HEAD", sha, info.head or "")
        # Like `git commit --only`: our paths' index entries now match the new HEAD; others untouched.
        repo.git.reset("-q", "--", *wanted)
        if tag is not None:
            repo.create_tag(tag, ref=sha, message=tag_message or subject)
        return sha
