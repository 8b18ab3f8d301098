"""The `runbook` command line: click lives here and nowhere else.

Each command parses its options and calls the plain API (`runbook.api` and friends). `main()` is the
one place that turns a `RunbookError` into a message and an exit code: 0 success, 1 a step or
verification failed, 2 invalid input or usage, 130 interrupted.

The commands live in the modules of this package (`running`, `checking`, `scaffolding`, `history`,
`site`, `emulator`, `fleet`) and are imported only when invoked: `COMMANDS` names each command's
module and holds the first paragraph of its help, so `runbook --help` lists every command with its
short help while importing click and this module only (tests/test_cli_commands.py checks the
table against the commands themselves). Heavy modules are imported inside the commands' bodies.
The console script prints a bare `runbook --help` from click's own rendering of this group, kept in
`help-WIDTH.txt` (runbook.__main__, cli/help_screen.py: render them again after changing this module
or common.py). `main()` pauses the cyclic garbage collector while start-up allocates long-lived
objects, and for the BOUNDED_COMMANDS (`validate`) until the command is done.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import __version__
from .common import CONTEXT, State, resume_command

if TYPE_CHECKING:
    from ..docs import CommandDoc, ParamDoc
    from ..errors import RunbookError

#: command name -> (module of this package, attribute, the first paragraph of its help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "actions": ("checking", "actions", "List the actions steps can use, with their parameters and output fields (or one action's details)."),
    "changelog": ("history", "changelog", "(Re)write CHANGELOG.md (Keep a Changelog): one version per resolved phase; hand-written parts are kept."),
    "checkpoint": ("history", "checkpoint", "Write a status update into reports/status/<time>.md: progress and what changed since the last one."),
    "docs": ("site", "docs", "Generate the documentation site: progress, reports, runs, changelog, timeline, reference."),
    "emulator": ("emulator", "emulator", "Serve the embedded Azure emulator on loopback until Ctrl-C."),
    "fleet": ("fleet", "fleet_group", "Roll one phase across many deployments: rate-controlled, recorded, resumable."),
    "init": ("scaffolding", "init", "Create a workspace in DIRECTORY: runbook.yaml, runbooks/, templates/, reports/, mkdocs.yml."),
    "log": ("running", "log", "Append a hand-written line to the timestamp log, for phases done without a runbook."),
    "new": ("scaffolding", "new", "Scaffold runbooks/phase-PHASE.yaml and add PHASE to the plan if it is missing."),
    "report": ("history", "report", "Render the resolution report of PHASE from a stored run record (default: its latest run)."),
    "run": ("running", "run", "Run the runbook of PHASE (`1.5` or `phase-1.5`), or of several (`1.5 1.6`, `group 1`)."),
    "scan": ("scaffolding", "scan", "Run NOTEBOOK's code cells in one kernel and triage the failures by cause."),
    "schema": ("checking", "schema", "Print the JSON Schema of a file format (for yaml-language-server and editors)."),
    "status": ("history", "status", "Show the progress of every phase group, or one PHASE with its runs."),
    "timeline": ("history", "timeline", "(Re)write TIMELINE.md: every phase's start, end and duration (UTC), from the timestamp log."),
    "validate": ("checking", "validate", "Check runbooks and the workspace without running anything (default: every runbook)."),
}


class _HelpFormatter(click.HelpFormatter):
    """click's formatter, sized without importing shutil (which loads bz2, lzma and zlib: ~5 ms of
    `runbook --help`): the same width rule as click's, from os.get_terminal_size."""

    def __init__(self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None) -> None:
        if width is None:
            from click import formatting

            width = formatting.FORCED_WIDTH
            if width is None:
                width = max(min(_terminal_columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)


def _terminal_columns() -> int:
    """What `shutil.get_terminal_size().columns` says: $COLUMNS, else the terminal's, else 80."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Context(click.Context):
    formatter_class = _HelpFormatter


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (click's documented lazy-loading pattern).

    `--help` lists the commands from `COMMANDS` without importing them: the short help is made from
    the table's first paragraph by click itself (a bare `click.Command` holding that paragraph).
    """

    context_class = _Context

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 (click's signature)
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, attribute, _help = self.lazy[cmd_name]
            self.add_command(getattr(importlib.import_module(f"{__name__}.{module}"), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, with the short help of a command not imported yet taken from the table."""
        names = [name for name in self.list_commands(ctx) if name in self.lazy or not self.commands[name].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            command = loaded if loaded is not None else click.Command(name, help=self.lazy[name][2])
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="runbook")
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False),
    envvar="RUNBOOK_WORKSPACE",
    show_envvar=True,
    help="Workspace folder (default: the nearest folder above the current one with runbook.yaml).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only problems, failures and the final result.")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, quiet: bool) -> None:
    """Declarative, recorded incident runbooks for notebooks and Azure AI gateways.

    A runbook (runbooks/phase-1.5.yaml) lists discovery, fix and verify steps. `runbook run`
    executes them (reproducing the fault first), timestamps every step in a crash-safe run record,
    appends to the timestamp log and writes the resolution report.

    \b
    Typical loop:
      runbook validate              check every runbook (file:line:col errors)
      runbook run phase-1.5         discovery -> reproduce -> fix -> verify -> report
      runbook status                progress of every phase group
      runbook checkpoint            a status update with what changed since the last one
      runbook docs build            reports, changelog, timeline and progress as a site

    Exit codes: 0 success, 1 a step or verification failed, 2 invalid input, 130 interrupted.
    Colour follows NO_COLOR / FORCE_COLOR / CLICOLOR_FORCE; shell completion: docs/guide/cli.md.
    """
    from pathlib import Path

    if ctx.invoked_subcommand not in BOUNDED_COMMANDS:
        _resume_collection()
    ctx.obj = State(Path(workspace) if workspace is not None else None, quiet=quiet)


#: Commands that read a bounded input and exit: they run with Python's cyclic garbage collector
#: paused (see `main`). Everything else (runs, the emulator, docs) collects as usual once the
#: command line is parsed.
BOUNDED_COMMANDS = frozenset({"validate"})
_PAUSED: list[bool] = []


def _pause_collection() -> None:
    """Pause the cyclic GC: start-up and validation allocate ~10^5 long-lived objects (modules,
    models, schemas) and little cyclic garbage, and each collection walked them again (~110
    collections, ~50 ms of `runbook validate`'s CPU). Reference counting still frees everything
    that is not in a cycle."""
    import gc

    if gc.isenabled():
        gc.disable()
        _PAUSED.append(True)


def _resume_collection(*, process_ends: bool = False) -> None:
    """Collect again. What was allocated meanwhile moves to the oldest generation without being
    walked (gc.freeze + unfreeze): re-enabling alone made the next young collection walk all of it
    (~60 ms). When the process ends right after (the console script, `main()` without arguments),
    it stays frozen: the collection Python runs at exit would only walk it once more (~70 ms)."""
    import gc

    if process_ends:
        # The console script: what is alive when the command returns is never walked again (the
        # exit collection of a phase-1.5 run took ~0.2 s); see runbook.collector for why no write
        # is lost.
        gc.freeze()
    elif _PAUSED and not gc.get_freeze_count():
        # runbook.collector.settle's rule, written here so that `--help` imports nothing beyond the
        # CLI package (tests/test_startup.py): someone else's freeze stays as it is.
        gc.freeze()
        gc.unfreeze()
    if _PAUSED:
        _PAUSED.clear()
        gc.enable()


def command_reference() -> list[CommandDoc]:
    """Every command with its usage, help and parameters, as plain data for the generated CLI reference.

    `runbook docs` hands this to the docs API, so the docs never import the CLI.
    """
    import inspect

    commands: list[CommandDoc] = []

    def walk(command: click.Command, parent: click.Context | None, path: list[str]) -> None:
        ctx = click.Context(command, info_name=path[-1], parent=parent)
        params: list[ParamDoc] = []
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and "--help" in param.opts:
                continue
            option = param if isinstance(param, click.Option) else None
            default = param.to_info_dict().get("default")
            if option is not None and option.is_flag and not default:
                default = None
            params.append(
                {
                    "kind": "option" if option else "argument",
                    "name": param.name,
                    "opts": [*param.opts, *param.secondary_opts],
                    "metavar": None if option and option.is_flag else param.make_metavar(ctx),
                    "type": param.type.name,
                    "choices": list(getattr(param.type, "choices", []) or []),
                    "required": param.required,
                    "multiple": param.multiple,
                    "is_flag": bool(option and option.is_flag),
                    "default": None if callable(default) else default,
                    "help": (option.help if option else None) or "",
                }
            )
        commands.append(
            {
                "name": " ".join(path),
                "usage": " ".join([*path, *command.collect_usage_pieces(ctx)]),
                "help": inspect.cleandoc(command.help or ""),
                "short_help": command.get_short_help_str(limit=200),
                "params": params,
                "subcommands": sorted(command.list_commands(ctx)) if isinstance(command, click.Group) else [],
            }
        )
        if isinstance(command, click.Group):
            for name in sorted(command.list_commands(ctx)):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, ctx, [*path, name])

    walk(cli, None, ["runbook"])
    return commands


def _fail(error: RunbookError, *, as_json: bool = False) -> NoReturn:
    from ..cli_output import error_event
    from ..errors import ValidationFailed

    if as_json:
        # The JSON stream stays parseable: the error is one more JSON line on stdout.
        click.echo(error_event(error.message, error.exit_code, hint=error.hint, error=error))
    else:
        click.echo(str(error) if isinstance(error, ValidationFailed) else f"error: {error}", err=True)
    sys.exit(error.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: the one place that maps errors to exit codes (and, under --json,
    to JSON `error` events on stdout)."""
    import _signal  # type: ignore[import-not-found]  # the C module: `signal` wraps it in enums (~1 ms)

    from .. import _interrupted_while_starting

    if _signal.getsignal(_signal.SIGINT) is _interrupted_while_starting:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)  # from here on, Ctrl-C is KeyboardInterrupt
    _pause_collection()  # until the command is known (BOUNDED_COMMANDS: until it is done)
    try:
        cli.main(args=argv, prog_name="runbook", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (Exception, KeyboardInterrupt) as exc:
        _exit_for(exc, sys.argv[1:] if argv is None else argv)
    finally:
        _resume_collection(process_ends=argv is None)
    sys.exit(0)


def _exit_for(exc: BaseException, argv: list[str]) -> NoReturn:
    """Print what went wrong (one JSON `error` line under --json) and exit with its code. Imported
    here, not at the top, so a command that succeeds never loads the error machinery."""
    from ..cli_output import error_event, wants_json
    from ..errors import EXIT_INPUT, EXIT_INTERRUPTED, STORAGE_ERRNOS, RunbookError, storage_error

    as_json = wants_json(argv)
    if isinstance(exc, click.exceptions.Abort):
        click.echo(error_event("aborted", EXIT_INTERRUPTED) if as_json else "aborted", err=not as_json)
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(exc, click.ClickException):
        code = EXIT_INPUT if exc.exit_code == 2 else exc.exit_code
        if as_json:
            click.echo(error_event(exc.format_message(), code))
        else:
            exc.show()
        sys.exit(code)
    if isinstance(exc, KeyboardInterrupt):
        click.echo(error_event("interrupted", EXIT_INTERRUPTED) if as_json else "interrupted", err=not as_json)
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(exc, RunbookError):
        _fail(exc, as_json=as_json)
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        _fail(storage_error(exc, resume=resume_command()), as_json=as_json)
    # a bug of ours: say so in one line; RUNBOOK_DEBUG=1 shows the traceback
    _internal_error(exc, as_json=as_json)


def _internal_error(exc: BaseException, *, as_json: bool = False) -> NoReturn:
    import os

    from ..cli_output import error_event

    if os.environ.get("RUNBOOK_DEBUG"):
        raise exc
    hint = "this is a bug in runbook; rerun with RUNBOOK_DEBUG=1 and report the traceback"
    if as_json:
        click.echo(error_event(f"internal error: {type(exc).__name__}: {exc}", 1, hint=hint))
    else:
        click.echo(f"internal error: {type(exc).__name__}: {exc}\n  hint: {hint}", err=True)
    sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
