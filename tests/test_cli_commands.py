"""The lazily loaded command table of `runbook` (runbook.cli.COMMANDS) says what the commands say.

`runbook --help` lists the commands without importing their modules, from the table's first
paragraph of each command's help. These tests import every command and compare: the names, the
short help click makes from the real help at several widths, and the whole `--help` screen against
a plain click group holding the same commands.
"""

from __future__ import annotations

import importlib

import click
import pytest
from click.testing import CliRunner

from runbook.cli import COMMANDS, cli


def loaded_commands() -> dict[str, click.Command]:
    return {name: getattr(importlib.import_module(f"runbook.cli.{module}"), attribute) for name, (module, attribute, _) in COMMANDS.items()}


def test_every_command_module_is_in_the_table() -> None:
    from pathlib import Path

    import runbook.cli

    folder = Path(runbook.cli.__file__).parent
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__", "__main__", "common", "completion"}
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
