"""Runs the real mkdocs on a workspace: `mkdocs build --strict` and `mkdocs serve` on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..errors import InputError, RunbookError
from ..workspace import Workspace
from .layout import MKDOCS_CONFIG


class DocsBuildFailed(RunbookError):
    """`mkdocs build --strict` reported warnings or errors; its messages are in the error text."""


def _mkdocs(workspace: Workspace, *args: str) -> list[str]:
    import importlib.util

    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        raise InputError(
            "mkdocs and mkdocs-material are not installed for this Python",
            hint=f"install them: {sys.executable} -m pip install mkdocs mkdocs-material",
        )
    config = workspace.root / MKDOCS_CONFIG
    return [sys.executable, "-m", "mkdocs", *args, "-f", str(config)]


def build_site(workspace: Workspace, site_dir: Path | None = None) -> Path:
    """Run `mkdocs build --strict` in the workspace root; DocsBuildFailed carries its warnings."""
    target = (site_dir if site_dir is not None else workspace.root / "site").resolve()
    command = [*_mkdocs(workspace, "build", "--strict"), "-d", str(target)]
    result = subprocess.run(command, cwd=workspace.root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        problems = [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]
        detail = "\n".join(problems) if problems else output[-4000:]
        raise DocsBuildFailed(
            f"mkdocs build --strict failed:\n{detail}",
            hint="fix the pages named above (a generated page: its source in reports/ or the root), "
            "then run `runbook docs build` again",
        )
    return target


def serve_site(workspace: Workspace, *, port: int = 8000) -> None:
    """Preview the site with `mkdocs serve` on 127.0.0.1 until Ctrl-C."""
    command = [*_mkdocs(workspace, "serve"), "-a", f"127.0.0.1:{port}"]
    server = subprocess.Popen(command, cwd=workspace.root)
    try:
        returncode = server.wait()
    finally:
        if server.poll() is None:  # Ctrl-C reached us first: stop the server too, then go on
            server.terminate()
            server.wait(10)
    if returncode not in (0, -2, 130):
        raise DocsBuildFailed(f"mkdocs serve exited with status {returncode}")
