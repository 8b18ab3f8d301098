"""`runbook --help` stays light: a fresh interpreter imports none of the heavy dependencies.

No wall clock here (bench/bench_startup.py times it): the test runs the real entry point in a fresh
subprocess and checks which modules ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("httpx", "azure", "nbclient", "nbformat", "git", "jinja2", "ruamel", "pydantic")

# Runs `main(ARGS)` for each argument list, then prints the sorted module names as JSON.
PROBE = """
import contextlib, io, json, sys
from runbook.cli import main
output = io.StringIO()
for args in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(output):
        try:
            main(args)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
print(json.dumps({"modules": sorted(sys.modules), "output": output.getvalue()}))
"""


def imported_after(*argument_lists: list[str]) -> tuple[list[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argument_lists))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return data["modules"], data["output"]


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == name or m.startswith(name + ".") for name in HEAVY)]


def test_help_imports_no_heavy_dependency() -> None:
    modules, output = imported_after(["--help"])
    assert "Usage: runbook" in output
    assert "runbook.cli" in modules
    assert heavy(modules) == []


def test_version_imports_no_heavy_dependency() -> None:
    modules, output = imported_after(["--version"])
    assert "runbook" in output
    assert heavy(modules) == []


def command_names() -> list[str]:
    from runbook.cli import cli

    return sorted(cli.commands)


@pytest.mark.parametrize("command", command_names())
def test_command_help_imports_no_heavy_dependency(command: str) -> None:
    # Click builds a command's help from its decorators; the command's body, which imports the core
    # lazily, never runs for --help.
    modules, output = imported_after([command, "--help"])
    assert f"runbook {command}" in output
    assert heavy(modules) == []


def test_help_loads_only_the_cli_and_its_errors() -> None:
    modules, _ = imported_after(["--help"])
    ours = sorted(m for m in modules if m == "runbook" or m.startswith("runbook."))
    assert ours == ["runbook", "runbook.cli", "runbook.errors"]


def test_validate_does_not_import_the_kernel_stack() -> None:
    """Validating runbooks needs the action registry, not nbformat/nbclient (only execution does)."""
    modules, output = imported_after(["-w", str(Path(__file__).resolve().parent.parent), "validate"])
    assert "runbooks valid" in output  # phases 1.5 and 1.6
    assert [m for m in heavy(modules) if m.split(".")[0] in ("nbformat", "nbclient")] == []
