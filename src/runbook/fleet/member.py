"""One member run: an ordinary phase run in the member's workspace, in a process of its own.

`run_member(job)` is what an engine runs for a member, always in a fresh interpreter (a spawned
process-pool worker, or `python -m runbook.fleet.member JOB RESULT` on a Dask worker) so members
never share the emulator, kernels, signal handlers or any other global state. It

1. finds the workspace (a folder, or a clone of the member's repository in the fleet's work folder,
   cloned once with GitPython into a temporary folder and renamed into place),
2. layers the member's settings over its target (`subscription_id`, `resource_group`, `gateway_url`,
   secrets read from the environment variables the fleet file names; on a fleet with a shared
   emulator, its URLs and the member gateway's key),
3. decides from the member's **own run records** what to do: runs tagged with this fleet run
   (`vars.fleet_run_id`) that finished (success or failed) are not run again; an interrupted or
   killed one is continued with `resume`, which never repeats a completed step; otherwise it starts,
4. calls `runbook.api.run_phase` and sums the record up for the fleet record.

Because the decision is made from the records, running the same job twice (a Dask task rescheduled
after its worker died, a fleet `--resume`) is safe. A watchdog stops the run cleanly (SIGTERM, as
Ctrl-C would) when the process that started it dies, so a killed coordinator leaves no orphan.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LockHeld, RunbookError

LOCK_WAIT_S = 90.0  # a previous attempt of this member (an orphan winding down) may still hold the lock
FLEET_VAR = "fleet_run_id"
MEMBER_VAR = "fleet_member"


@dataclass
class MemberJob:
    """Everything a member run needs, as plain data (pickled to a pool worker, JSON to a Dask worker)."""

    name: str
    phase: str
    fleet_run_id: str
    workspace: str | None = None
    repo: str | None = None
    ref: str | None = None
    path: str | None = None
    work_dir: str = ".fleet/work"
    target: str | None = None
    subscription: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    # secret settings given as values: the fleet emulator's (fake) gateway keys; listed as secrets, so redacted
    secret_settings: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    assume_yes: bool = False
    commit: bool = False
    branch: str | None = None
    watch_parent: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MemberJob:
        return cls(**json.loads(text))


# ---------------------------------------------------------------- the workspace


def member_root(job: MemberJob) -> Path:
    """The member's workspace folder, cloning its repository first when needed."""
    if job.workspace is not None:
        return Path(job.workspace)
    assert job.repo is not None
    clone = Path(job.work_dir) / job.name
    if not (clone / ".git").exists():
        _clone(job.repo, job.ref, clone)
    return clone / job.path if job.path else clone


def _clone(url: str, ref: str | None, dest: Path) -> None:
    """Clone `url` at `ref` into `dest`, whole or not at all (a partial clone is never left at `dest`)."""
    import shutil

    from git import Repo
    from git.exc import GitCommandError

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        repo = Repo.clone_from(url, partial)
        try:
            if ref:
                repo.git.checkout(ref)
        finally:
            repo.close()
        os.replace(partial, dest)
    except GitCommandError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        detail = " ".join(str(exc.stderr or exc).split()).strip(" '")
        raise RunbookError(f"cannot clone {url}{'@' + ref if ref else ''}: {detail}", hint="check the member's repo and ref") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _checkout_branch(root: Path, branch: str) -> None:
    """Commit on `branch` (created from HEAD the first time) in the member's own repository."""
    from git import Repo
    from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

    try:
        repo = Repo(root, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise RunbookError(f"{root} is not inside a git repository", hint="run without --commit, or `git init` it") from None
    try:
        if repo.head.is_valid() and not repo.head.is_detached and repo.active_branch.name == branch:
            return
        if branch in repo.heads:
            repo.git.checkout(branch)
        else:
            repo.git.checkout("-b", branch)
    except GitCommandError as exc:
        raise RunbookError(f"cannot switch {root} to branch {branch}: {' '.join(str(exc.stderr).split())}") from None
    finally:
        repo.close()


def member_workspace(job: MemberJob, root: Path) -> Any:
    """The member's workspace with its target's settings overlaid by the member's own."""
    from ..targets import target_config
    from ..workspace import Workspace, load_workspace

    ws = load_workspace(root)
    name, config = target_config(ws, job.target)
    given = {**job.settings, **job.secret_settings}
    config = config.model_copy(
        update={
            "settings": {**config.settings, **job.settings, **job.secret_settings},
            # a value the fleet gives wins over the target's environment variable for it
            "from_env": {**{k: v for k, v in config.from_env.items() if k not in given}, **job.secrets},
            "secrets": sorted({*config.secrets, *job.secrets, *job.secret_settings}),
        }
    )
    targets = {**ws.config.targets, name: config}
    return Workspace(root=ws.root, config=ws.config.model_copy(update={"targets": targets, "default_target": name}), config_path=ws.config_path)


# ---------------------------------------------------------------- what the records say


def fleet_runs(ws: Any, phase: str, fleet_run_id: str) -> list[Any]:
    """This member's run records that belong to fleet run `fleet_run_id`, oldest first."""
    from ..record import read_record, record_paths

    found = []
    for path in record_paths(ws.reports_dir, phase):
        record = read_record(path)
        header = record.run_started
        if header is not None and header.vars.get(FLEET_VAR) == fleet_run_id:
            found.append(record)
    return found


def decide(ws: Any, phase: str, fleet_run_id: str) -> tuple[str, Any]:
    """("completed", record) | ("resume", record) | ("start", None), from the member's own records."""
    from ..record import read_log, record_paths

    runs = fleet_runs(ws, phase, fleet_run_id)
    if not runs:
        return "start", None
    latest = runs[-1]
    if latest.status == "failed":
        return "completed", latest
    if latest.status == "success":
        lines, _ = read_log(ws.timestamp_log)
        logged = any(line.run_id == latest.run_id and line.action == "complete" for line in lines)
        # A success whose end never reached the timestamp log is finished by a resume (nothing re-runs).
        return ("completed" if logged else "resume"), latest
    newest = record_paths(ws.reports_dir, phase)[-1]
    # Resume continues the phase's newest record; when someone ran the phase since, start afresh.
    return ("resume", latest) if newest == latest.path else ("start", None)


def summarise(record: Any, ws: Any, phase: str) -> dict[str, Any]:
    """The fleet record's view of a member run: status, duration, cells changed, failing step, links."""
    from ..record import RunResumed, RunStarted

    finished = record.run_finished
    status = record.status if record.status in ("success", "failed", "interrupted") else "interrupted"
    cells: list[Any] = []
    changed = 0
    failed_step = finished.failed_step if finished is not None else None
    error: str | None = None
    for event in record.step_outcomes():
        if event.stage == "fix" and event.status == "changed":
            changed += 1
            cell = event.output.get("cell") if isinstance(event.output, dict) else None
            if isinstance(cell, dict) and cell.get("number") is not None and cell["number"] not in cells:
                cells.append(cell["number"])
        if event.stage != "reproduce" and event.status in ("failed", "error", "interrupted"):
            failed_step = failed_step or event.step
            if event.error is not None:
                error = str(event.error.message or "")[:500]
    report = ws.reports_dir / f"phase-{phase}.md"
    attempts = sum(1 for e in record.events if isinstance(e, RunStarted | RunResumed))
    return {
        "status": status,
        "run_id": record.run_id,
        "record": str(record.path),
        "report": str(report) if report.exists() else None,
        "workspace": str(ws.root),
        "duration_s": finished.duration_s if finished is not None else None,
        "cells_changed": cells,
        "changed_steps": changed,
        "failed_step": failed_step if status != "success" else None,
        "error": error if status != "success" else None,
        "attempts": max(attempts, 1),
    }


# ---------------------------------------------------------------- the run


def run_member(job: MemberJob) -> dict[str, Any]:
    """Run (or resume, or recognise as done) one member; never raises for a member's own failure."""
    if job.watch_parent:
        _watch_parent()
    warnings: list[str] = []
    try:
        result = _run(job, warnings)
    except RunbookError as exc:
        result = {"status": "error", "error": str(exc).splitlines()[0][:500]}
    except Exception as exc:  # a bug, a full disk: say what, keep the fleet going
        result = {"status": "error", "error": f"internal error: {type(exc).__name__}: {exc}"[:500]}
    result["warnings"] = warnings
    return result


def _run(job: MemberJob, warnings: list[str]) -> dict[str, Any]:
    from ..api import run_phase
    from ..executor import RunOptions
    from ..record import read_record

    root = member_root(job)
    ws = member_workspace(job, root)
    phase = ws.load_runbook(job.phase).runbook.phase
    mode = "start"
    if not job.dry_run:
        mode, record = decide(ws, phase, job.fleet_run_id)
        if mode == "completed":
            return {**summarise(record, ws, phase), "mode": "recorded"}
        if job.commit and job.branch:
            _checkout_branch(ws.root, job.branch)
    options = RunOptions(
        vars={**job.vars, FLEET_VAR: job.fleet_run_id, MEMBER_VAR: job.name},
        dry_run=job.dry_run,
        assume_yes=job.assume_yes,
        resume=mode == "resume",
    )
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            outputs = run_phase(phase, workspace=ws, options=options, warn=warnings.append, commit=job.commit, raise_on_failure=False)
            break
        except LockHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    if outputs.record_path is None:  # a dry run writes no record
        result = outputs.result
        failed = next((o for o in result.outcomes if o.status in ("failed", "error") and o.stage != "reproduce"), None)
        return {
            "status": "success" if result.status == "success" else "failed",
            "mode": "dry-run",
            "workspace": str(ws.root),
            "duration_s": round(result.duration_s, 3),
            "failed_step": failed.step.id if failed else None,
            "error": failed.error.message[:500] if failed and failed.error else None,
        }
    summary = summarise(read_record(outputs.record_path), ws, phase)
    summary.update(mode=mode, commit=outputs.commit)
    return summary


def _watch_parent() -> None:
    """Stop this member's run cleanly when the process that started it dies (then, if it hangs, hard)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)  # the executor records the step as interrupted
        time.sleep(20.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="fleet-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """`python -m runbook.fleet.member JOB.json RESULT.json`: the Dask engine's way into a fresh process."""
    job = MemberJob.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    result = run_member(job)
    from ..atomic import atomic_write_text

    atomic_write_text(Path(argv[1]), json.dumps(result, default=str))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised by the Dask tests
    sys.exit(main(sys.argv[1:]))
