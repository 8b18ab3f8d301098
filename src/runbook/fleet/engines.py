"""Engines: where member runs execute. `local` is a process pool on this machine; `dask` is a cluster.

Both run `member.run_member` in a fresh interpreter per member and hand its result dict back; the
coordinator decides *when* a member starts (rate control), an engine only *where*.

- **local**: `concurrent.futures.ProcessPoolExecutor` with `max_tasks_per_child=1`: every member gets
  a process of its own (none carried from one member to the next), its result comes back as a Python
  object (no output to parse), and a crashing member cannot take the coordinator down. The start
  method is `forkserver` with runbook's modules preloaded: each member is forked from a clean server
  process that has imported the code and done nothing else (so nothing of the coordinator's state,
  threads or open emulators is inherited, as with `spawn`), which saves every member ~0.7 s of CPU
  spent on imports. `spawn` is the fallback where forkserver does not exist.
- **dask**: `distributed.Client(address).submit(task, retries=N)`. The task takes leases of
  `distributed.Semaphore`s (one per fleet run, one per subscription) so the limits hold across every
  worker — and across a resumed coordinator whose predecessor's tasks still run on the cluster — then
  starts `python -m runbook.fleet.member` (Dask workers are daemonic processes, which multiprocessing
  forbids to have children). A lost worker's task is rescheduled by Dask; because a member decides
  from its own run records, the rerun resumes and never repeats a completed step. Workers need the
  project installed and the member's workspace (or repository) reachable at the same path.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any, Protocol

from ..errors import InputError
from .member import MemberJob, run_member

ENGINES = ("local", "dask")
START_METHOD = "forkserver"
#: Imported once by the fork server, so member processes start with the code already loaded.
PRELOAD = ["runbook.fleet.member", "runbook.api", "runbook.targets", "runbook.executor", "runbook.actions",
           "runbook.azure.emulator", "runbook.reports", "httpx", "jinja2", "pydantic", "git"]


class Engine(Protocol):
    name: str

    def submit(self, job: MemberJob) -> Any: ...

    def wait(self, handles: Iterable[Any], timeout: float | None = None) -> list[Any]: ...

    def result(self, handle: Any) -> dict[str, Any]: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


class LocalEngine:
    """A spawn-based process pool: one fresh process per member, at most `workers` at a time."""

    name = "local"

    def __init__(self, workers: int, start_method: str | None = None) -> None:
        import multiprocessing

        method = start_method or START_METHOD
        if method not in multiprocessing.get_all_start_methods():
            method = "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(PRELOAD)
        self.pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context, max_tasks_per_child=1)

    def submit(self, job: MemberJob) -> Future[dict[str, Any]]:
        return self.pool.submit(run_member, job)

    def wait(self, handles: Iterable[Any], timeout: float | None = None) -> list[Any]:
        done, _ = wait_futures(list(handles), timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return dict(handle.result())
        except Exception as exc:  # BrokenProcessPool: the member's process died (killed, out of memory)
            return {"status": "error", "error": f"the member's process died: {type(exc).__name__}: {exc}"[:500]}

    def interrupt(self) -> None:
        """SIGTERM every member process: each stops its step cleanly and records it as interrupted."""
        for process in list(getattr(self.pool, "_processes", {}).values()):  # the pool has no public handle on them
            with contextlib.suppress(ProcessLookupError, ValueError, AttributeError):
                os.kill(process.pid, signal.SIGTERM)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine:
    """Member runs as tasks on a Dask cluster; limits as distributed semaphores."""

    name = "dask"

    def __init__(self, scheduler: str, *, fleet_run_id: str, max_concurrency: int, per_subscription: int | None, retries: int = 2) -> None:
        try:
            import distributed
        except ImportError:
            raise InputError(
                "--engine dask needs the `distributed` package",
                hint='install it with `pip install "incident-runbook[fleet]"` (or `pip install distributed`)',
            ) from None
        try:
            self.client: Any = _dask(distributed).Client(scheduler, timeout=15)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                hint="start one with `dask scheduler` and workers with `dask worker tcp://HOST:8786`; pass --scheduler tcp://HOST:PORT",
            ) from None
        self.fleet_run_id = fleet_run_id
        self.max_concurrency = max_concurrency
        self.per_subscription = per_subscription
        self.retries = retries
        self.count = 0
        self.submitted: list[Any] = []

    def limits(self, job: MemberJob) -> list[tuple[str, int]]:
        """Semaphores a member's task holds while it runs: its subscription's first, then the fleet's."""
        names = []
        if self.per_subscription and job.subscription:
            names.append((f"runbook-fleet-{self.fleet_run_id}-subscription-{job.subscription}", self.per_subscription))
        names.append((f"runbook-fleet-{self.fleet_run_id}", self.max_concurrency))
        return names

    def submit(self, job: MemberJob) -> Any:
        self.count += 1
        key = f"runbook-fleet-{self.fleet_run_id}-{job.name}-{self.count}"
        future = self.client.submit(dask_member_task, job.to_json(), self.limits(job), key=key, retries=self.retries, pure=False)
        self.submitted.append(future)
        return future

    def wait(self, handles: Iterable[Any], timeout: float | None = None) -> list[Any]:
        import distributed

        try:
            return list(_dask(distributed).wait(list(handles), timeout=timeout, return_when="FIRST_COMPLETED").done)
        except TimeoutError:
            return []

    def interrupt(self) -> None:
        """Cancel the members' tasks (a member process already started on a worker runs to its end)."""
        self.client.cancel([future for future in self.submitted if not future.done()])

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return dict(handle.result())
        except Exception as exc:  # KilledWorker after too many lost workers, or the task kept failing
            return {"status": "error", "error": f"Dask gave up on the member's task: {type(exc).__name__}: {exc}"[:500]}

    def close(self) -> None:
        self.client.close()


def dask_member_task(job_json: str, limits: list[tuple[str, int]]) -> dict[str, Any]:
    """Runs on a Dask worker: take the leases, run the member in a fresh interpreter, give them back."""
    import distributed

    held: list[Any] = []
    try:
        for name, leases in limits:
            semaphore = _dask(distributed).Semaphore(max_leases=leases, name=name)
            semaphore.acquire()
            held.append(semaphore)
        return run_member_process(job_json)
    finally:
        for semaphore in reversed(held):
            semaphore.release()


def run_member_process(job_json: str) -> dict[str, Any]:
    """`python -m runbook.fleet.member` with this interpreter; its result file is the answer."""
    with tempfile.TemporaryDirectory(prefix="runbook-member-") as folder:
        job_file, result_file = Path(folder) / "job.json", Path(folder) / "result.json"
        job_file.write_text(job_json, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "runbook.fleet.member", str(job_file), str(result_file)],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
            check=False,
        )
        if not result_file.exists():
            # Raising lets Dask retry the task (`retries=`); the member resumes from its records.
            tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise RuntimeError(f"member process ended without a result: {tail[0][:300]}")
        return dict(json.loads(result_file.read_text(encoding="utf-8")))


def _dask(module: Any) -> Any:
    """`distributed` as an untyped module (it ships no complete type hints)."""
    return module


def open_engine(
    name: str, *, scheduler: str | None, fleet_run_id: str, max_concurrency: int, per_subscription: int | None
) -> Engine:
    if name == "local":
        if scheduler:
            raise InputError("--scheduler goes with --engine dask", hint="add --engine dask, or drop --scheduler")
        return LocalEngine(max_concurrency)
    if name == "dask":
        if not scheduler:
            raise InputError("--engine dask needs --scheduler tcp://HOST:PORT", hint="e.g. --scheduler tcp://127.0.0.1:8786")
        return DaskEngine(scheduler, fleet_run_id=fleet_run_id, max_concurrency=max_concurrency, per_subscription=per_subscription)
    raise InputError(f"unknown engine {name!r}", hint=f"use one of {', '.join(ENGINES)}")
