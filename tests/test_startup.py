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
    import click

    from runbook.cli import cli

    return cli.list_commands(click.Context(cli))


@pytest.mark.parametrize("command", command_names())
def test_command_help_imports_no_heavy_dependency(command: str) -> None:
    # Click builds a command's help from its decorators; the command's body, which imports the core
    # lazily, never runs for --help.
    modules, output = imported_after([command, "--help"])
    assert f"runbook {command}" in output
    assert heavy(modules) == []


def test_help_loads_only_the_cli_package_and_no_command_module() -> None:
    """The commands are imported when invoked: `--help` lists them from the table in runbook.cli."""
    modules, output = imported_after(["--help"])
    ours = sorted(m for m in modules if m == "runbook" or m.startswith("runbook."))
    assert ours == ["runbook", "runbook.cli", "runbook.cli.common"]
    assert "shutil" not in modules  # the help is sized without it (it loads bz2, lzma, zlib)
    for command in command_names():
        assert f"\n  {command} " in output


@pytest.mark.parametrize("command", ["validate", "status", "run"])
def test_a_command_loads_its_own_command_module_only(command: str) -> None:
    from runbook.cli import COMMANDS

    modules, _ = imported_after([command, "--help"])
    loaded = {m.removeprefix("runbook.cli.") for m in modules if m.startswith("runbook.cli.")}
    assert loaded - {"common", "completion"} == {COMMANDS[command][0]}


def test_validate_does_not_import_the_kernel_stack() -> None:
    """Validating runbooks needs the action registry, not nbformat/nbclient (only execution does)."""
    modules, output = imported_after(["-w", str(Path(__file__).resolve().parent.parent), "validate"])
    assert "runbooks valid" in output  # phases 1.5 and 1.6
    assert [m for m in heavy(modules) if m.split(".")[0] in ("nbformat", "nbclient")] == []


# Modules a command must not load unless the runbook uses what they are for.
KERNEL = ("nbformat", "nbclient", "jupyter_client", "zmq", "ipykernel", "runbook.kernel")
NETWORK = ("httpx", "httpcore", "anyio", "asyncio", "azure", "runbook.azure.emulator", "http.server")


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == name or m.startswith(name + ".") for name in names)]


CORE_RUNBOOK = """\
phase: "1.1"
title: Core steps only
discovery:
  - id: answer
    uses: set
    with:
      value: 42
    register: answer
verify:
  - id: check
    uses: assert
    with:
      that: "{{ answer.value == 42 }}"
"""


def core_workspace(root: Path) -> Path:
    """A workspace whose default target is the emulator and whose one runbook uses core actions only."""
    (root / "runbooks").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "runbook.yaml").write_text(
        'project: Test\nplan:\n  - group: "1"\n    phases:\n      - {id: "1.1", title: First}\n'
        "default_target: emulator\ntargets:\n  emulator:\n    kind: emulator\n",
        encoding="utf-8",
    )
    (root / "runbooks" / "phase-1.1.yaml").write_text(CORE_RUNBOOK, encoding="utf-8")
    return root


def test_validate_of_the_sample_loads_no_kernel_http_or_azure_sdk_code() -> None:
    """The sample uses azure.* and notebook.* actions: validating them needs their parameter models,
    not the HTTP stack, the Azure SDK, nbformat or a kernel (only running them does)."""
    modules, output = imported_after(["-w", str(Path(__file__).resolve().parent.parent), "validate"])
    assert "runbooks valid" in output  # phases 1.5 and 1.6
    assert loaded(modules, KERNEL) == []
    assert loaded(modules, NETWORK) == []


def test_validate_of_a_core_runbook_loads_no_kernel_http_or_azure_code(tmp_path: Path) -> None:
    root = core_workspace(tmp_path / "ws")
    modules, output = imported_after(["-w", str(root), "validate"])
    assert "runbook valid" in output
    assert loaded(modules, KERNEL) == []
    assert loaded(modules, NETWORK) == []


def test_a_run_whose_steps_never_talk_to_azure_does_not_start_the_emulator(tmp_path: Path) -> None:
    root = core_workspace(tmp_path / "ws")
    modules, _output = imported_after(["-w", str(root), "run", "1.1"])
    records = list((root / "reports" / "runs" / "1.1").glob("*.jsonl"))
    assert len(records) == 1
    assert '"status": "ok"' in records[0].read_text(encoding="utf-8") or "ok" in records[0].read_text(encoding="utf-8")
    assert loaded(modules, ("runbook.azure.emulator", "runbook.azure.estate", "http.server")) == []
    assert loaded(modules, KERNEL) == []


def test_status_loads_no_kernel_http_or_template_code(tmp_path: Path) -> None:
    root = core_workspace(tmp_path / "ws")
    modules, _output = imported_after(["-w", str(root), "status"])
    assert loaded(modules, KERNEL) == []
    assert loaded(modules, NETWORK) == []


# Modules that only running a phase needs (the executor, the run record's writer, the lock, the API).
RUNNING = ("runbook.api", "runbook.executor", "runbook.lock", "runbook.targets", "runbook.kernel")
FAMILIES = ("runbook.actions.files", "runbook.actions.http", "runbook.actions.azure", "runbook.actions.azure_write",
            "runbook.actions.notebook")


def test_validate_loads_no_executor_and_only_the_action_families_it_names(tmp_path: Path) -> None:
    root = core_workspace(tmp_path / "ws")
    modules, output = imported_after(["-w", str(root), "validate"])
    assert "runbook valid" in output
    assert loaded(modules, RUNNING) == []
    assert "runbook.actions.core" in modules
    assert loaded(modules, FAMILIES) == []  # set and assert are core actions


def test_validate_of_the_sample_loads_no_executor() -> None:
    modules, output = imported_after(["-w", str(Path(__file__).resolve().parent.parent), "validate"])
    assert "runbooks valid" in output
    assert loaded(modules, RUNNING) == []


def test_the_registry_table_names_every_builtin_action_and_its_module() -> None:
    """BUILTIN_ACTIONS is what lets a lookup import one family: it must list exactly what they register."""
    from runbook import actions

    registered = {spec.name: spec.func.__module__ for spec in actions.all_specs() if spec.func.__module__ in actions.BUILTIN_MODULES}
    assert registered == actions.BUILTIN_ACTIONS


def test_a_lookup_imports_only_the_family_of_the_name() -> None:
    code = (
        "import json, sys\nfrom runbook import actions\nactions.get('file.replace')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('runbook.actions.'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == ["runbook.actions.files", "runbook.actions.outputs"]


def test_an_unknown_action_still_lists_every_family(tmp_path: Path) -> None:
    root = core_workspace(tmp_path / "ws")
    path = root / "runbooks" / "phase-1.1.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("uses: set", "uses: notebook.sett"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", "from runbook.cli import main; main()", "-w", str(root), "validate"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert "unknown action 'notebook.sett'" in result.stderr
    assert "notebook.set_source" in result.stderr and "azure.deployments" in result.stderr and "http.request" in result.stderr


# Whether the schema files are current is answered from digests remembered per installation (in
# RUNBOOK_CACHE_DIR) and per workspace (reports/.index/schemas.json): this probe makes generating a
# schema fail, so a validate that needed to generate one says so.
NO_GENERATION = """
import sys
import runbook.schemas
def refuse(kind="runbook"):
    raise SystemExit("generated the schemas")
runbook.schemas.schema = refuse
from runbook.cli import main
main(sys.argv[1:])
"""


def validate_without_generating(root: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-c", NO_GENERATION, "-w", str(root), "validate"],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "RUNBOOK_CACHE_DIR": str(cache)},
    )


def test_validate_remembers_whether_the_schema_files_are_current(tmp_path: Path) -> None:
    import os
    import shutil

    repo = Path(__file__).resolve().parent.parent
    cache = tmp_path / "cache"
    root = core_workspace(tmp_path / "ws")
    shutil.copy(repo / "runbook.schema.json", root / "runbook.schema.json")
    assert "generated the schemas" in validate_without_generating(root, cache).stderr  # nothing remembered yet
    first = subprocess.run(
        [sys.executable, "-m", "runbook", "-w", str(root), "validate"],
        capture_output=True, text=True, timeout=120, check=True, env={**os.environ, "RUNBOOK_CACHE_DIR": str(cache)},
    )
    assert "1 runbook valid" in first.stdout and first.stderr == ""
    assert (root / "reports" / ".index" / "schemas.json").is_file()
    assert [p.name.startswith("schema-digests-") for p in cache.iterdir()] == [True]
    again = validate_without_generating(root, cache)
    assert again.returncode == 0 and "1 runbook valid" in again.stdout and again.stderr == ""

    # another workspace, never validated: checked against the installation's digests, nothing generated
    other = core_workspace(tmp_path / "other")
    shutil.copy(repo / "runbook.schema.json", other / "runbook.schema.json")
    fresh = validate_without_generating(other, cache)
    assert fresh.returncode == 0 and "1 runbook valid" in fresh.stdout and fresh.stderr == ""

    # a changed schema file: compared again (still without generating), and the warning is the real one
    (root / "runbook.schema.json").write_text('{"type": "object"}\n', encoding="utf-8")
    stale = validate_without_generating(root, cache)
    assert stale.returncode == 0 and "runbook.schema.json is out of date" in stale.stderr, stale.stderr
    # an empty cache folder (another installation, or the cache cleared) generates them again
    third = core_workspace(tmp_path / "third")
    shutil.copy(repo / "runbook.schema.json", third / "runbook.schema.json")
    assert "generated the schemas" in validate_without_generating(third, tmp_path / "empty").stderr


def test_the_garbage_collector_is_back_on_after_every_command(tmp_path: Path) -> None:
    """validate runs with the cyclic GC paused (runbook.cli.BOUNDED_COMMANDS); whatever happens, the
    caller of main() gets it back on, and every other command runs with it on."""
    import gc

    from conftest import copy_sample, invoke
    from runbook.cli import BOUNDED_COMMANDS, COMMANDS

    assert set(COMMANDS) >= BOUNDED_COMMANDS
    sample = copy_sample(tmp_path / "lab")
    assert invoke(["validate"], cwd=sample).exit_code == 0
    assert gc.isenabled()
    (sample / "runbooks" / "phase-1.5.yaml").write_text("phase: '1.5'\ntitle: x\nbogus: 1\n", encoding="utf-8")
    assert invoke(["validate"], cwd=sample).exit_code == 2
    assert gc.isenabled()
    assert invoke(["status"], cwd=sample).exit_code == 0
    assert gc.isenabled()


def test_loading_a_runbook_gives_the_collector_back_as_it_found_it(tmp_path: Path) -> None:
    """load_runbook pauses the cyclic GC while it builds the model (what it builds is long-lived);
    afterwards the collector is on, and a freeze made by the caller is still in place."""
    import gc

    from runbook.errors import ValidationFailed
    from runbook.loader import load_runbook

    good = tmp_path / "phase-1.1.yaml"
    good.write_text('phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {v: 1}}\n', encoding="utf-8")
    bad = tmp_path / "phase-1.2.yaml"
    bad.write_text('phase: "1.2"\ntitle: t\nfix:\n  - {id: a, uses: set, whit: {v: 1}}\n', encoding="utf-8")
    assert load_runbook(good).runbook.fix[0].id == "a"
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(ValidationFailed):
        load_runbook(bad)
    assert gc.isenabled()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        load_runbook(good)
        assert gc.isenabled() and gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        load_runbook(good)
        assert not gc.isenabled()  # a caller that paused it keeps it paused
    finally:
        gc.enable()
