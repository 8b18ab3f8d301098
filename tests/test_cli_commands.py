"""The lazily loaded command table of `runbook` (runbook.cli.COMMANDS) says what the commands say.

`runbook --help` lists the commands without importing their modules, from the table's first
paragraph of each command's help. These tests import every command and compare: the names, the
short help click makes from the real help at several widths, and the whole `--help` screen against
a plain click group holding the same commands; and the pre-rendered `runbook --help` screen
(runbook/cli/help-WIDTH.txt) against what click prints, byte for byte.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runbook.__main__ import HELP_WIDTHS, help_path
from runbook.cli import COMMANDS, cli
from runbook.cli.help_screen import expected_file, render


def loaded_commands() -> dict[str, click.Command]:
    return {name: getattr(importlib.import_module(f"runbook.cli.{module}"), attribute) for name, (module, attribute, _) in COMMANDS.items()}


def test_every_command_module_is_in_the_table() -> None:
    from pathlib import Path

    import runbook.cli

    folder = Path(runbook.cli.__file__).parent
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__", "__main__", "common", "completion", "help_screen"}
    assert modules == {module for module, _, _ in COMMANDS.values()}
    for name, command in loaded_commands().items():
        assert isinstance(command, click.Command)
        assert command.name in (name, None) or command.name.replace("_", "-") == name or name == "fleet"


@pytest.mark.parametrize("limit", [20, 45, 60, 80, 94, 200])
def test_the_table_gives_the_short_help_the_command_gives(limit: int) -> None:
    for name, command in loaded_commands().items():
        first_paragraph = COMMANDS[name][2]
        made = click.Command(name, help=first_paragraph).get_short_help_str(limit)
        assert made == command.get_short_help_str(limit), (
            f"update COMMANDS[{name!r}] in runbook/cli/__init__.py to the first paragraph of its help"
        )
        assert not command.hidden and not command.short_help


@pytest.mark.parametrize("width", [60, 100, 140])
def test_help_lists_what_a_group_of_the_imported_commands_lists(width: int) -> None:
    eager = click.Group(
        name=cli.name,
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
        commands=loaded_commands(),
    )
    lazy_help = CliRunner().invoke(cli, ["--help"], terminal_width=width, prog_name="runbook")
    eager_help = CliRunner().invoke(eager, ["--help"], terminal_width=width, prog_name="runbook")
    assert lazy_help.exit_code == 0
    assert lazy_help.output == eager_help.output
    assert "Commands:\n  actions" in lazy_help.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["statsu"], prog_name="runbook")
    assert result.exit_code == 2
    assert "No such command 'statsu'" in result.output


# ------------------------------------------------------------------ the pre-rendered help screen

# Prints the top-level help through click (an explicit argument list never takes the pre-rendered path).
CLICK_HELP = "from runbook.cli import main\nmain(['--help'])"
# The console script's path: `runbook ARGS` as the entry point sees it, then which CLI modules got imported.
ENTRY = """
import json, sys
sys.argv = ['runbook', *json.loads(sys.argv[1])]
from runbook.__main__ import main
try:
    main()
except SystemExit as exc:
    sys.stderr.write(json.dumps({"code": exc.code, "click": 'click' in sys.modules, "cli": 'runbook.cli' in sys.modules}))
"""


def run_python(code: str, *args: str, columns: int) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("width", HELP_WIDTHS)
def test_the_pre_rendered_help_files_are_what_click_renders_now(width: int) -> None:
    text = Path(help_path(width)).read_text(encoding="utf-8")
    assert text == expected_file(width), "run `python -m runbook.cli.help_screen` to render the help files again"
    assert text.isascii()


@pytest.mark.parametrize(("columns", "width"), [(80, 78), (100, 98), (150, 98)])
def test_the_rendering_is_the_screen_click_prints_at_that_terminal_width(columns: int, width: int) -> None:
    printed = run_python(CLICK_HELP, columns=columns)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.decode() == render(width)


@pytest.mark.parametrize("columns", [80, 120, 70])
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_runbook_help_prints_clicks_screen_byte_for_byte(columns: int, option: str) -> None:
    by_click = run_python(CLICK_HELP, columns=columns)
    by_entry = run_python(ENTRY, json.dumps([option]), columns=columns)
    assert by_entry.stdout == by_click.stdout
    outcome = json.loads(by_entry.stderr)
    assert outcome["code"] == 0
    # 80 and 120 columns are pre-rendered (no click imported); 70 is not, and click renders it
    assert outcome["click"] is (columns == 70)


def test_anything_but_a_bare_help_goes_to_click() -> None:
    for args in (["validate", "--help"], ["-q", "--help"], ["--version"]):
        result = run_python(ENTRY, json.dumps(args), columns=80)
        outcome = json.loads(result.stderr.decode().splitlines()[-1])
        assert outcome["code"] in (0, None) and outcome["cli"], args
    sub = run_python(ENTRY, json.dumps(["validate", "--help"]), columns=80)
    assert sub.stdout.decode().startswith("Usage: runbook validate [OPTIONS] [PATHS]...")


def test_a_stale_help_file_is_not_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runbook.__main__ as entry

    stale = tmp_path / "help.txt"
    stale.write_text("fingerprint 00000000\nUsage: runbook (old)\n", encoding="utf-8")
    monkeypatch.delitem(sys.modules, "click")  # as at start-up, before anything imported click
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(entry, "help_path", lambda _width: str(stale))
    assert entry.prerendered_help() is None
    stale.write_text(f"fingerprint {entry.help_fingerprint()}\nUsage: runbook (current)\n", encoding="utf-8")
    assert entry.prerendered_help() == "Usage: runbook (current)\n"
