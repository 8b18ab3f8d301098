"""`python -m runbook` and the `runbook` console script: start the CLI, quietly even when interrupted early.

The CLI module is imported here, inside a guard, so a Ctrl-C while Python is still importing click and
runbook ends with "interrupted" and exit code 130 instead of a traceback; from then on
`runbook.cli.main` is the one place that maps errors to exit codes.

`runbook --help` (or `-h`, nothing else on the command line) prints the top-level help screen from
the text click renders for it, kept in `runbook/cli/help-WIDTH.txt` (`python -m runbook.cli.help_screen`
writes them): importing click and rendering costs ~60 ms, reading the file ~1. The file is used only
when it was rendered at the width click would use now (80-column output, or 100 columns and wider)
and its fingerprint matches the sources it was rendered from (runbook/cli/__init__.py and common.py,
click's installed version, Python's version); otherwise click renders the screen as for any other
command line. tests/test_cli_commands.py checks the files against click's rendering byte for byte.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:] in (["--help"], ["-h"]) and sys.stdout is not None:
        screen = prerendered_help()
        if screen is not None:
            try:
                sys.stdout.write(screen)
                sys.stdout.flush()
            except BrokenPipeError:
                _pipe_closed()
            except OSError as exc:  # a full disk, a closed descriptor: said as for any other command
                from .cli import _exit_for

                _exit_for(exc, sys.argv[1:])
            raise SystemExit(0)
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    cli_main(argv)


def _pipe_closed() -> None:
    """End as click does when the reader of stdout went away (`runbook --help | head -0`): exit 1,
    nothing on stderr, and no second BrokenPipeError when Python flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    raise SystemExit(1)


#: The formatter widths help files are kept for: click's width rule gives 78 for 80-column output
#: (and for output that is not a terminal), 98 for 100 columns and more (max_content_width 100).
HELP_WIDTHS = (78, 98)
_FOLDER = os.path.dirname(os.path.abspath(__file__))  # noqa: PTH100, PTH120 (no pathlib at start-up)


def help_width() -> int | None:
    """The width click's help formatter will use (runbook.cli._HelpFormatter's rule), or None when
    click decides it some other way (`click.formatting.FORCED_WIDTH` is set once click is imported)."""
    if "click" in sys.modules:
        return None
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 100) - 2, 50)


def help_path(width: int) -> str:
    return os.path.join(_FOLDER, "cli", f"help-{width}.txt")  # noqa: PTH118 (no pathlib at start-up)


def help_fingerprint() -> str | None:
    """What the top-level help screen is rendered from: the CLI's root module and shared settings,
    click's installed version and Python's; None when click's version cannot be told."""
    import zlib

    click_version = None
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")  # noqa: PTH208
        except OSError:
            continue
        if "click" in names:
            click_version = next((n for n in names if n.startswith("click-") and n.endswith(".dist-info")), None)
            break
    if click_version is None:
        return None
    crc = zlib.crc32(f"{click_version} {sys.version_info[0]}.{sys.version_info[1]}".encode())
    folder = os.path.join(_FOLDER, "cli")  # noqa: PTH118
    for name in ("__init__.py", "common.py"):
        try:
            with open(os.path.join(folder, name), "rb") as handle:  # noqa: PTH118
                crc = zlib.crc32(handle.read(), crc)
        except OSError:
            return None
    return f"{crc:08x}"


def prerendered_help() -> str | None:
    """The top-level help screen as click prints it now (ending in a newline), or None when there is
    no current pre-rendered copy for this width."""
    width = help_width()
    if width not in HELP_WIDTHS:
        return None
    try:
        with open(help_path(width), encoding="utf-8") as handle:
            header, _, screen = handle.read().partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if not screen.isascii() or header != f"fingerprint {help_fingerprint()}":
        return None
    return screen


if __name__ == "__main__":
    main()
