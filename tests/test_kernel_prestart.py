"""Kernels started ahead of their step (runbook.kernel.KernelPool): adopted only when they fit, fresh,
never left behind; and the executor starts the next notebook.run kernel while read-only steps run."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from conftest import copy_sample, invoke
from runbook.kernel import KernelPool, StartedKernel, run_cells
from runbook.record import read_record, record_paths

pytestmark = pytest.mark.kernel


def _notebook(*sources: str) -> nbformat.NotebookNode:
    node: nbformat.NotebookNode = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    return node


def _alive(kernel: StartedKernel) -> bool:
    _client, manager, _log = kernel._future.result(60)
    process = getattr(manager.provisioner, "process", None)
    return process is not None and process.poll() is None


def test_a_started_kernel_is_adopted_when_it_fits_and_runs_the_cells_read_now(tmp_path: Path) -> None:
    pool = KernelPool()
    pool.prestart("python3", {"RUNBOOK_AHEAD": "yes"}, tmp_path)
    kernel = pool.take("python3", {"RUNBOOK_AHEAD": "yes"}, tmp_path)
    assert kernel is not None and _alive(kernel)
    # The cells are whatever the notebook holds when the step runs; nothing ran in the kernel before.
    nb = _notebook("import os\nprint(os.environ['RUNBOOK_AHEAD'], os.getcwd(), 'seen' in dir())", "seen = 1")
    runs = run_cells(nb, [0, 1], env={"RUNBOOK_AHEAD": "yes"}, cwd=tmp_path, timeout=30, kernel=kernel)
    assert [r.status for r in runs] == ["ok", "ok"]
    assert runs[0].stdout == f"yes {tmp_path} False\n"
    _client, manager, _log = kernel._future.result()
    assert manager.provisioner is None or getattr(manager.provisioner, "process", None) is None  # shut down
    pool.close()


def test_prestart_returns_once_the_kernel_process_is_launched_not_when_it_is_ready(tmp_path: Path) -> None:
    """The launch gets the process to itself (the steps after it wait for it); the boot does not."""
    pool = KernelPool()
    pool.prestart("python3", {}, tmp_path)
    (kernel,) = pool._kernels
    assert kernel.launched.is_set()
    assert _alive(kernel)
    pool.close()


def test_a_kernel_whose_launch_fails_releases_the_waiting_prestart(tmp_path: Path) -> None:
    pool = KernelPool()
    pool.prestart("no-such-kernel-here", {}, tmp_path, launch_wait=30)  # returns: the failure sets it
    (kernel,) = pool._kernels
    assert kernel.launched.is_set() and kernel._future.exception(30) is not None
    assert pool.take("no-such-kernel-here", {}, tmp_path) is kernel  # the step adopts nothing: starts its own
    pool.close()


def test_a_kernel_started_ahead_is_launched_as_nbclient_launches_one(tmp_path: Path) -> None:
    """Started ahead, the kernel is launched by jupyter_client before nbclient is imported: with the
    command-line arguments nbclient's `async_start_new_kernel` adds (its IPython history file)."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    import runbook.kernel as kernel

    client = NotebookClient(_notebook(), km=AsyncKernelManager(kernel_name="python3"))
    assert (f"--HistoryManager.hist_file={client.ipython_hist_file}",) == kernel.IPYTHON_HISTORY_ARGUMENTS
    pool = KernelPool()
    pool.prestart("python3", {}, tmp_path)
    (started,) = pool._kernels
    _client, manager, _log = started._future.result(60)
    assert list(kernel.IPYTHON_HISTORY_ARGUMENTS) == manager._launch_args["extra_arguments"]
    pool.close()


def test_a_kernel_that_does_not_fit_is_shut_down_and_the_step_starts_its_own(tmp_path: Path) -> None:
    pool = KernelPool()
    pool.prestart("python3", {"RUNBOOK_AHEAD": "old"}, tmp_path)
    (started,) = pool._kernels
    assert _alive(started)
    assert pool.take("python3", {"RUNBOOK_AHEAD": "new"}, tmp_path) is None
    assert not _alive(started)
    pool.prestart("python3", {}, tmp_path)
    (unused,) = pool._kernels
    assert pool.take("python3", {}, tmp_path / "elsewhere") is None and not _alive(unused)
    pool.prestart("python3", {}, tmp_path)
    (left,) = pool._kernels
    pool.close()  # the run's end shuts down a kernel no step took
    assert not _alive(left)
    assert os.environ.get("RUNBOOK_AHEAD") is None


def test_the_verify_kernel_starts_while_the_read_only_steps_before_it_run(tmp_path: Path) -> None:
    import runbook.kernel as kernel

    ws = copy_sample(tmp_path / "lab")
    done = invoke(["run", "phase-1.5", "--no-report"], cwd=ws)  # the fix, so verify passes
    assert done.exit_code == 0, done.output
    adopted: list[bool] = []
    original = kernel.StartedKernel.adopt

    async def adopt(self: StartedKernel) -> object:
        result = await original(self)
        adopted.append(result is not None)
        return result

    kernel.StartedKernel.adopt = adopt  # type: ignore[method-assign]
    try:
        verify = invoke(["run", "phase-1.5", "--only", "verify", "--no-report"], cwd=ws)
    finally:
        kernel.StartedKernel.adopt = original  # type: ignore[method-assign]
    assert verify.exit_code == 0, verify.output
    assert adopted == [True]  # notebook-image-route and gateway-probe (reads and an HTTP call) ran meanwhile
    record = read_record(record_paths(ws / "reports", "1.5")[-1])
    cells = next(e for e in record.step_results() if e.step == "run-image-cells")
    assert cells.status == "ok" and cells.output["ok"] is True
