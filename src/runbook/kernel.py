"""Running chosen notebook cells, in a chosen order, in one real Jupyter kernel.

Owns the kernel's whole life: start (with the caller's environment and working folder), run each
cell under a timeout, interrupt on timeout or on the caller's stop signal, notice a dead kernel,
and always shut it down. A kernel may also be started ahead of the step that needs it
(`KernelPool.prestart`, on a loop of its own) and adopted by that step when it was started with the
same name, environment and folder. Each cell gives a `CellRun`: UTC start/finish, duration, status, its
stdout/stderr, a bounded text rendering of results, and the error. Outputs are never written back
to the notebook file; execution works on a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager

if TYPE_CHECKING:  # imported where used: a kernel started ahead is launched before they are (~0.1-0.2 s)
    from nbclient import NotebookClient
    from nbformat import NotebookNode

from runbook.errors import NotebookError
from runbook.text import ANSI as _ANSI  # one ANSI pattern for kernels, reports and the site

__all__ = ["CellError", "CellRun", "CellStatus", "KernelPool", "StartedKernel", "run_cells", "run_cells_async"]

CellStatus = Literal["ok", "failed", "timeout", "interrupted", "dead", "not_run", "skipped"]

OUTPUT_LIMIT = 4000
INTERRUPT_GRACE_S = 5.0
LAUNCH_WAIT_S = 5.0  # how long `KernelPool.prestart` waits for the kernel's process to be launched  # how long an interrupted cell may take to stop before we give up on it
_TIMEOUT_ENAME = "runbook.CellTimeout"  # marks nbclient's stand-in reply for a timed-out cell


def utc_now() -> str:
    """UTC now as ISO-8601 with milliseconds and `Z`, e.g. 2025-11-14T04:15:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CellError:
    """The exception a cell raised: name, value and a short traceback without ANSI colours."""

    ename: str
    evalue: str
    traceback: str = ""


@dataclass
class CellRun:
    """What happened to one cell. `status`:

    ok, failed (raised), timeout (interrupted after `timeout` s), interrupted (stopped by the
    caller), dead (the kernel died in it), not_run (an earlier cell killed the kernel or the run was
    stopped), skipped (not a code cell, or empty).
    """

    index: int
    id: str | None
    status: CellStatus
    setup: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    stdout: str = ""
    stderr: str = ""
    text: str = ""
    error: CellError | None = None
    message: str = ""
    execution_count: int | None = None

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def label(self) -> str:
        if self.index < 0:
            return "setup code" if self.index == -1 else f"setup code {-self.index}"
        return f"cell {self.number} ({self.id})" if self.id else f"cell {self.number}"

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["number"] = self.number
        return data


@dataclass
class _Plan:
    index: int  # the notebook cell, or -1, -2, ... for setup code (not a cell of the notebook)
    setup: bool
    code: str | None = None
    run: CellRun = field(init=False)


def bounded(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its head and tail (where errors show)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - 2 * half} characters omitted] …\n{text[-half:]}"


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _image_size(value: Any) -> int:
    """Bytes of a base64 image value (decoding is not needed to know)."""
    body = _joined(value).replace("\n", "").strip()
    return len(body) * 3 // 4 - (len(body) - len(body.rstrip("=")))


def _summarise_data(data: Mapping[str, Any]) -> str:
    """text/plain when there is one, and a short note for every image: `<image/png 1234 bytes>`."""
    parts = [_joined(data["text/plain"])] if "text/plain" in data else []
    for mime, value in data.items():
        if mime.startswith("image/") and mime != "image/svg+xml":
            parts.append(f"<{mime} {_image_size(value)} bytes>")
        elif not parts and mime != "text/plain":
            parts.append(f"<{mime} {len(_joined(value))} chars>")
    return "\n".join(parts)


def _collect(run: CellRun, outputs: Sequence[Mapping[str, Any]], limit: int) -> None:
    stdout: list[str] = []
    stderr: list[str] = []
    texts: list[str] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream":
            (stderr if output.get("name") == "stderr" else stdout).append(_joined(output.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            texts.append(_summarise_data(output.get("data", {})))
        elif kind == "error":
            trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
            run.error = CellError(
                str(output.get("ename", "")), str(output.get("evalue", "")), bounded(trace, limit // 2)
            )
    run.stdout = bounded("".join(stdout), limit)
    run.stderr = bounded("".join(stderr), limit)
    run.text = bounded("\n".join(t for t in texts if t), limit)


class _KernelSpecs(KernelSpecManager):
    """Kernel specs as Jupyter finds them; "python3" falls back to this very interpreter."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        try:
            spec: KernelSpec = super().get_kernel_spec(kernel_name)
        except NoSuchKernel:
            if kernel_name != NATIVE_KERNEL_NAME:
                raise
            from ipykernel.kernelspec import RESOURCES, get_kernel_dict

            spec = KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())
        return spec


def _execution_copy(nb: NotebookNode, plan: list[_Plan]) -> NotebookNode:
    """A notebook holding copies of the planned cells, in run order, without old outputs."""
    import nbformat

    cells = []
    for step in plan:
        if step.code is not None:
            cells.append(
                nbformat.from_dict(  # type: ignore[no-untyped-call]
                    {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": step.code}
                )
            )
            continue
        cell = copy.deepcopy(nb.cells[step.index])
        cell["source"] = _joined(cell.get("source", ""))
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
        cell.setdefault("metadata", {})
        cells.append(cell)
    # from_dict, not new_notebook: no schema validation (slow on big outputs, and it warns
    # about the missing ids of 4.4 cells, which are fine).
    node: NotebookNode = nbformat.from_dict(  # type: ignore[no-untyped-call]
        {
            "nbformat": 4,
            "nbformat_minor": nb.get("nbformat_minor", 5),
            "metadata": copy.deepcopy(nb.get("metadata", {})),
            "cells": cells,
        }
    )
    return node


async def run_cells_async(
    nb: NotebookNode,
    cells: Sequence[int],
    *,
    setup: Sequence[int] = (),
    setup_code: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    kernel_name: str = NATIVE_KERNEL_NAME,
    stop: threading.Event | None = None,
    output_limit: int = OUTPUT_LIMIT,
    startup_timeout: float = 60.0,
    on_cell: Callable[[CellRun], None] | None = None,
    started: StartedKernel | None = None,
) -> list[CellRun]:
    """The coroutine behind `run_cells` (for callers that already run an event loop; with
    `started`, the loop must be that kernel's, `started.loop`)."""
    count = len(nb.cells)
    for index in [*setup, *cells]:
        if not 0 <= index < count:
            raise NotebookError(f"there is no cell {index + 1} to run: the notebook has {count} cells")
    plan = [_Plan(-1 - k, True, code) for k, code in enumerate(setup_code)]
    plan += [_Plan(i, True) for i in setup] + [_Plan(i, False) for i in cells]
    for step in plan:
        cell_id = nb.cells[step.index].get("id") if step.code is None else None
        step.run = CellRun(step.index, cell_id, "not_run", setup=step.setup)
    if stop is not None and stop.is_set():
        for step in plan:
            step.run.message = "the run was stopped before this cell"
        return [step.run for step in plan]

    node = _execution_copy(nb, plan)
    adopted = await started.adopt() if started is not None else None
    if adopted is None:
        client, manager = _new_client(node, kernel_name, startup_timeout)
        kernel_log: IO[bytes] = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed by the `with` below
    else:
        client, manager, kernel_log = adopted
        client.nb = node  # the cells are the ones read now (the fixed notebook), whenever it started
    # nbclient's `timeout` trait is an int; its per-cell hook takes any number of seconds.
    client.timeout_func = lambda _cell: timeout  # type: ignore[assignment]
    replies: dict[int, dict[str, Any]] = {}

    def remember_reply(*, cell_index: int, execute_reply: dict[str, Any], **_cell: NotebookNode) -> None:
        replies[cell_index] = execute_reply

    client.on_cell_executed = remember_reply

    with kernel_log:
        try:
            if adopted is None:
                await _start(client, _kernel_environment(env), cwd, kernel_log, kernel_name)
            await _run_plan(client, manager, node, plan, replies, timeout, stop, output_limit, kernel_log, on_cell)
        finally:
            await _shutdown(client, manager)
    return [step.run for step in plan]


def _kernel_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return {"PYDEVD_DISABLE_FILE_VALIDATION": "1", **os.environ, **(env or {})}


def _new_manager(kernel_name: str) -> AsyncKernelManager:
    return AsyncKernelManager(kernel_name=kernel_name, kernel_spec_manager=_KernelSpecs())


def _new_client(
    node: NotebookNode, kernel_name: str, startup_timeout: float, manager: AsyncKernelManager | None = None
) -> tuple[NotebookClient, Any]:
    from nbclient import NotebookClient

    manager = manager or _new_manager(kernel_name)
    client = NotebookClient(
        node,
        km=manager,
        kernel_name=kernel_name,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": _TIMEOUT_ENAME, "evalue": "", "traceback": []},
        allow_errors=True,  # errors are read from the replies; no queue aborts after an error
        record_timing=False,
        startup_timeout=int(startup_timeout),
        iopub_timeout=4,
    )
    return client, manager


# ---------------------------------------------------------------- kernels started ahead of time


class _KernelLoop:
    """One event loop in a daemon thread for kernels started ahead of their step: jupyter_client's
    async manager and its channels belong to the loop that started them, so the step later runs its
    cells on this loop too."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="runbook-kernels", daemon=True).start()
                cls._loop = loop
            return cls._loop


class StartedKernel:
    """A kernel process started (and waited for until ready) before the step that runs cells in it.

    It is a fresh kernel all the same: nothing runs in it until `run_cells(kernel=...)` sends the
    cells, read from the notebook as it is then. It is adopted only if it was started with the
    kernel name, environment and folder the step asks for; otherwise (or if its start failed) the
    step starts a kernel of its own and this one is shut down.
    """

    def __init__(self, kernel_name: str, env: Mapping[str, str] | None, cwd: Path | None, startup_timeout: float):
        self.kernel_name = kernel_name
        self.environment = _kernel_environment(env)
        self.cwd = cwd
        self.loop = _KernelLoop.get()
        self._taken = False
        self.launched = threading.Event()  # set once the kernel's process exists (or its start failed)
        self._future = asyncio.run_coroutine_threadsafe(self._start(startup_timeout), self.loop)

    async def _start(self, startup_timeout: float) -> tuple[NotebookClient, Any, IO[bytes]]:
        # Launched by jupyter_client alone, as nbclient launches it (`async_start_new_kernel`), so
        # the process boots while nbformat and nbclient are imported and the client is made.
        manager = _new_manager(self.kernel_name)
        client: NotebookClient | None = None
        log: IO[bytes] = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - the adopting run closes it
        try:
            await _launch(manager, self.environment, self.cwd, log, self.kernel_name)
            self.launched.set()
            import nbformat

            placeholder = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})  # type: ignore[no-untyped-call]
            client, _manager = _new_client(placeholder, self.kernel_name, startup_timeout, manager)
            await _connect(client, log, self.kernel_name)
        except BaseException:
            await _shutdown(client, manager)
            log.close()
            raise
        finally:
            self.launched.set()
        return client, manager, log

    def matches(self, kernel_name: str, env: Mapping[str, str] | None, cwd: Path | None) -> bool:
        return (kernel_name, _kernel_environment(env), cwd) == (self.kernel_name, self.environment, self.cwd)

    async def adopt(self) -> tuple[NotebookClient, Any, IO[bytes]] | None:
        """The started kernel (on this loop), or None when it did not start."""
        self._taken = True
        try:
            return await asyncio.wrap_future(self._future)
        except Exception:  # the step starts its own and reports that start's error
            return None

    def close(self) -> None:
        """Shut the kernel down unless a step adopted it (waits a few seconds at most)."""
        if self._taken:
            return
        self._taken = True

        async def stop() -> None:
            with contextlib.suppress(Exception):
                client, manager, log = await asyncio.wrap_future(self._future)
                await _shutdown(client, manager)
                log.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)


class KernelPool:
    """The kernels a run started ahead of time (kept in the run's shared state, closed with it)."""

    def __init__(self) -> None:
        self._kernels: list[StartedKernel] = []

    def prestart(
        self,
        kernel_name: str,
        env: Mapping[str, str] | None,
        cwd: Path | None,
        startup_timeout: float = 60.0,
        launch_wait: float = LAUNCH_WAIT_S,
    ) -> None:
        """Start a kernel now for a later `take` with the same name, environment and folder.

        Returns once the kernel's process is launched (at most `launch_wait` seconds), not when it is
        ready: the kernel boots (~1 s, in a process of its own) while the caller goes on, but the
        launch itself (finding the kernel spec, the connection file, the exec) gets this process to
        itself instead of sharing the GIL with the steps that come next (in phase 1.5 the gateway
        probe's imports pushed the launch back by ~0.5 s)."""
        kernel = StartedKernel(kernel_name, env, cwd, startup_timeout)
        self._kernels.append(kernel)
        kernel.launched.wait(launch_wait)

    def take(self, kernel_name: str, env: Mapping[str, str] | None, cwd: Path | None) -> StartedKernel | None:
        """A started kernel that matches, or None; kernels that do not match are shut down."""
        found = next((k for k in self._kernels if k.matches(kernel_name, env, cwd)), None)
        for kernel in self._kernels:
            if kernel is not found:
                kernel.close()
        self._kernels = []
        return found

    def close(self) -> None:
        for kernel in self._kernels:
            kernel.close()
        self._kernels = []


# What nbclient's `async_start_new_kernel` adds to an IPython kernel's command line (its
# `ipython_hist_file` default; tests/test_kernel_prestart.py checks it is still nbclient's).
IPYTHON_HISTORY_ARGUMENTS = ("--HistoryManager.hist_file=:memory:",)


def _process_options(env: dict[str, str], cwd: Path | None, log: IO[bytes]) -> dict[str, Any]:
    """The kernel process's environment, output (the kernel log) and folder, as both start paths pass them."""
    options: dict[str, Any] = {"env": env, "stdout": log, "stderr": log}
    if cwd is not None:
        options["cwd"] = str(cwd)
    return options


async def _launch(
    manager: AsyncKernelManager, env: dict[str, str], cwd: Path | None, log: IO[bytes], kernel_name: str
) -> None:
    """Launch the kernel's process as `NotebookClient.async_start_new_kernel` does (not yet ready)."""
    extra = list(IPYTHON_HISTORY_ARGUMENTS) if getattr(manager, "ipykernel", False) else []
    await _starting(manager.start_kernel(extra_arguments=extra, **_process_options(env, cwd, log)), log, kernel_name)


async def _connect(client: NotebookClient, log: IO[bytes], kernel_name: str) -> None:
    """Connect the client's channels to a launched kernel and wait until it answers."""
    await _starting(client.async_start_new_kernel_client(), log, kernel_name)


async def _start(
    client: NotebookClient, env: dict[str, str], cwd: Path | None, log: IO[bytes], kernel_name: str
) -> None:
    await _starting(client.async_start_new_kernel(**_process_options(env, cwd, log)), log, kernel_name)
    await _connect(client, log, kernel_name)


async def _starting(work: Awaitable[Any], log: IO[bytes], kernel_name: str) -> None:
    """Await one part of a kernel's start; its failures as the NotebookErrors users see."""
    try:
        await work
    except NoSuchKernel:
        raise NotebookError(
            f"no Jupyter kernel named {kernel_name!r}",
            hint="list kernels with `jupyter kernelspec list`, or install one with "
            "`python -m ipykernel install --user`",
        ) from None
    except Exception as exc:
        raise NotebookError(
            f"the {kernel_name} kernel did not start: {exc}" + _log_tail(log),
            hint="check that ipykernel is installed for the kernel's interpreter",
        ) from exc


def _log_tail(log: IO[bytes], lines: int = 8) -> str:
    try:
        log.flush()
        log.seek(0)
        text = log.read().decode("utf-8", errors="replace").strip()
    except (OSError, ValueError):
        return ""
    # ipykernel's start-up chatter (transport warnings) says nothing about why a kernel died.
    tail = [line for line in text.splitlines() if line.strip() and "without encryption" not in line][-lines:]
    return ("\nkernel output:\n  " + "\n  ".join(tail)) if tail else ""


async def _run_plan(
    client: NotebookClient,
    manager: AsyncKernelManager,
    node: NotebookNode,
    plan: list[_Plan],
    replies: dict[int, dict[str, Any]],
    timeout: float,
    stop: threading.Event | None,
    limit: int,
    log: IO[bytes],
    on_cell: Callable[[CellRun], None] | None = None,
) -> None:
    executed = 0
    for position, step in enumerate(plan):
        if await _run_step(client, manager, node, plan, position, replies, timeout, stop, limit, log, executed):
            executed += 1
        if on_cell is not None and step.run.status != "not_run":
            on_cell(step.run)
        if step.run.status in ("interrupted", "dead"):
            return


async def _run_step(
    client: NotebookClient,
    manager: AsyncKernelManager,
    node: NotebookNode,
    plan: list[_Plan],
    position: int,
    replies: dict[int, dict[str, Any]],
    timeout: float,
    stop: threading.Event | None,
    limit: int,
    log: IO[bytes],
    executed: int,
) -> bool:
    """Run plan step `position`; True if it was sent to the kernel."""
    step = plan[position]
    run, cell = step.run, node.cells[position]
    if stop is not None and stop.is_set():
        run.message = "the run was stopped before this cell"
        return False
    if cell.get("cell_type") != "code" or not cell.source.strip():
        run.status = "skipped"
        run.message = "not a code cell" if cell.get("cell_type") != "code" else "empty cell"
        return False
    run.started_at = utc_now()
    began = time.monotonic()
    task = asyncio.ensure_future(client.async_execute_cell(cell, position, execution_count=executed + 1))
    # A cancelled run (Ctrl-C) leaves the task failing when the kernel is shut down: mark its
    # exception as seen so asyncio does not print it.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        stopped = await _watch(task, manager, stop)
    except asyncio.CancelledError:
        task.cancel()
        raise
    dead = False
    try:
        await task
    except _dead_kernel_error():  # also what nbclient raises for a cell we gave up on after a stop
        dead = True
    run.finished_at = utc_now()
    run.duration_s = round(time.monotonic() - began, 3)
    _collect(run, cell.get("outputs", []), limit)
    reply = replies.get(position, {}).get("content", {})
    run.execution_count = reply.get("execution_count")
    if stopped:
        run.status = "interrupted"
        run.message = f"{run.label} was interrupted: the run was stopped" + (
            f" (it did not stop within {INTERRUPT_GRACE_S:g} s; the kernel was shut down)" if dead else ""
        )
        for later in plan[position + 1 :]:
            later.run.message = "the run was stopped before this cell"
        return True
    if dead:
        code = await _exit_code(manager)
        run.status = "dead"
        run.message = (
            f"the kernel died while running {run.label}"
            + (f" (exit code {code})" if code is not None else "")
            + "; the cells after it were not run"
            + _log_tail(log)
        )
        for later in plan[position + 1 :]:
            later.run.message = f"not run: the kernel died in {run.label}"
        return True
    if reply.get("status") == "error" and reply.get("ename") == _TIMEOUT_ENAME:
        run.status = "timeout"
        run.error = CellError("TimeoutError", f"cell did not finish within {timeout:g} s", "")
        run.message = f"{run.label} timed out after {timeout:g} s; the kernel was interrupted"
    elif reply.get("status") in ("error", "aborted") or run.error is not None:
        run.status = "failed"
        if run.error is None:
            run.error = CellError(str(reply.get("ename", "Error")), str(reply.get("evalue", reply.get("status"))))
        run.message = f"{run.label} failed: {run.error.ename}: {run.error.evalue}"
    else:
        run.status = "ok"
    return True


def _dead_kernel_error() -> type[Exception]:
    from nbclient.exceptions import DeadKernelError

    return DeadKernelError


async def _watch(task: asyncio.Future[Any], manager: AsyncKernelManager, stop: threading.Event | None) -> bool:
    """Wait for `task`; when `stop` is set, interrupt the kernel (and give up on the cell if it
    does not stop within the grace period). True if the cell was stopped this way."""
    interrupted_at: float | None = None
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            return interrupted_at is not None
        if stop is None or not stop.is_set():
            continue
        if interrupted_at is None:
            interrupted_at = time.monotonic()
            with contextlib.suppress(RuntimeError):  # no kernel: the execution fails by itself
                await manager.interrupt_kernel()
        elif time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
            task.cancel()
            return True


async def _exit_code(manager: AsyncKernelManager) -> int | None:
    provisioner = manager.provisioner
    if provisioner is None:
        return None
    try:
        code = await provisioner.poll()
    except Exception:
        return None
    return code if isinstance(code, int) else None


async def _shutdown(client: NotebookClient | None, manager: AsyncKernelManager) -> None:
    """Stop the channels and the kernel process, whatever state they are in."""
    kc = client.kc if client is not None else None
    if client is not None and kc is not None:
        kc.stop_channels()
        client.kc = None
    # Kill the kernel's process group and wait for the exit itself: jupyter_client would poll a
    # killed kernel every 100 ms (twice), ~0.1-0.2 s per kernel; after this its shutdown finds the
    # process gone and does not sleep.
    process = getattr(manager.provisioner, "process", None)
    if process is not None:
        with contextlib.suppress(Exception):
            await manager.provisioner.kill()  # type: ignore[union-attr]
            await asyncio.to_thread(process.wait, 5)
    with contextlib.suppress(Exception):  # a dead kernel may refuse; it is killed below anyway
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)
    provisioner = manager.provisioner
    if provisioner is not None and getattr(provisioner, "process", None) is not None:
        with contextlib.suppress(Exception):
            await provisioner.kill()
    with contextlib.suppress(Exception):
        await manager.cleanup_resources()


def run_cells(
    nb: NotebookNode,
    cells: Sequence[int],
    *,
    setup: Sequence[int] = (),
    setup_code: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    kernel_name: str = NATIVE_KERNEL_NAME,
    stop: threading.Event | None = None,
    output_limit: int = OUTPUT_LIMIT,
    startup_timeout: float = 60.0,
    on_cell: Callable[[CellRun], None] | None = None,
    kernel: StartedKernel | None = None,
) -> list[CellRun]:
    """Run `setup_code` (code not in the notebook), then `setup` cells, then `cells` (0-based
    indices, in the order given) in one new kernel: `kernel` when one was started ahead for this
    (`KernelPool.take`), else a kernel started now.

    `env` is added to this process's environment for the kernel; `cwd` is its working folder
    (Jupyter uses the notebook's folder). Each cell may run `timeout` seconds; a cell over time is
    interrupted and the next cells still run. If the kernel dies, that cell is "dead" and the rest
    "not_run". Setting `stop` interrupts the running cell and ends the run. The kernel is always
    shut down, also on KeyboardInterrupt. `on_cell` is called with each CellRun as it finishes
    (progress). Returns one CellRun per planned cell, setup first (setup code has index -1, -2, ...).
    """
    work = run_cells_async(
        nb,
        cells,
        setup=setup,
        setup_code=setup_code,
        on_cell=on_cell,
        env=env,
        cwd=cwd,
        timeout=timeout,
        kernel_name=kernel_name,
        stop=stop,
        output_limit=output_limit,
        startup_timeout=startup_timeout,
        started=kernel,
    )
    if kernel is not None:  # its manager and channels live on the kernel loop: the cells run there too
        return asyncio.run_coroutine_threadsafe(work, kernel.loop).result()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # Called from inside an event loop: run the kernel on a loop of its own in a worker thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="runbook-kernel") as pool:
        return pool.submit(asyncio.run, work).result()


if sys.platform == "win32":  # pragma: no cover - zmq needs the selector loop on Windows
    asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())  # type: ignore[attr-defined]
