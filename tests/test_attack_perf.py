"""Attacks on the #14 fast paths: each one must give exactly what the slow path gives.

Every test here drives a fast path (the remembered validation, the pre-rendered help screen, ...)
with an input its authors did not try, and compares the outcome with the slow path's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import copy_sample, invoke

NOTEBOOK = "notebooks/master-ai-gateway-fix-MCP.ipynb"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cold(ws: Path, args: list[str]) -> tuple[int, str]:
    shutil.rmtree(ws / "reports" / ".index", ignore_errors=True)
    result = invoke(args, cwd=ws)
    return result.exit_code, result.stdout + result.stderr


# ------------------------------------------------------------------ 1. the remembered validation


def test_validate_cache_sees_a_symlink_retargeted_outside_the_workspace(tmp_path: Path) -> None:
    """A notebook named in runbook.yaml is a symlink to a file inside the workspace; pointing the
    link outside (at a hard link of the same file: same size, time, inode and bytes) leaves every
    folder's name list as it was. The cold path rejects the config (confinement); the remembered
    answer must not say "valid"."""
    ws = copy_sample(tmp_path / "ws")
    store = ws / "store"
    store.mkdir()
    (ws / NOTEBOOK).rename(store / "nb.ipynb")
    (ws / NOTEBOOK).symlink_to(Path("..") / "store" / "nb.ipynb")
    first = invoke(["validate"], cwd=ws)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert (ws / "reports" / ".index" / "validate.json").is_file()

    outside = tmp_path / "outside"
    outside.mkdir()
    os.link(store / "nb.ipynb", outside / "nb.ipynb")
    (ws / NOTEBOOK).unlink()
    (ws / NOTEBOOK).symlink_to(outside / "nb.ipynb")

    warm = invoke(["validate"], cwd=ws)
    code, text = _cold(ws, ["validate"])
    assert code == 2 and "outside the workspace" in text
    assert warm.exit_code == code, warm.stdout + warm.stderr


def test_validate_cache_sees_a_dangling_symlink_in_a_linked_folder(tmp_path: Path) -> None:
    """The notebooks folder is a symlink to a folder the walk skips (`node_modules`): deleting the
    notebook there changes no listed folder's names (held: the notebook's bytes are in the key)."""
    ws = copy_sample(tmp_path / "ws")
    hidden = ws / "node_modules"
    hidden.mkdir()
    (ws / "notebooks").rename(hidden / "notebooks")
    (ws / "notebooks").symlink_to(Path("node_modules") / "notebooks")
    first = invoke(["validate"], cwd=ws)
    assert first.exit_code == 0, first.stdout + first.stderr

    (hidden / "notebooks" / Path(NOTEBOOK).name).unlink()
    warm = invoke(["validate"], cwd=ws)
    code, text = _cold(ws, ["validate"])
    assert code == 2 and "does not exist" in text
    assert warm.exit_code == code, warm.stdout + warm.stderr


# ------------------------------------------------------------------ 2. the pre-rendered help screen


def _run_with_closed_stdout_reader(code: list[str]) -> subprocess.CompletedProcess[bytes]:
    read, write = os.pipe()
    os.close(read)  # whoever reads our output went away (`runbook --help | head -0`)
    try:
        env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "80"}
        return subprocess.run([sys.executable, *code], stdout=write, stderr=subprocess.PIPE, env=env, check=False)
    finally:
        os.close(write)


def test_help_into_a_closed_pipe_ends_like_clicks_rendering() -> None:
    """`runbook --help | head -0`: the pre-rendered screen must end as click's own does (exit 1,
    nothing on stderr), not with a BrokenPipeError traceback."""
    fast = _run_with_closed_stdout_reader(["-m", "runbook", "--help"])
    slow = _run_with_closed_stdout_reader(["-c", "from runbook.cli import main; main(['--help'])"])
    assert slow.stderr == b"" and slow.returncode == 1
    assert (fast.returncode, fast.stderr.decode()) == (slow.returncode, slow.stderr.decode())
