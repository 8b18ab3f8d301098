"""runbook: declarative, recorded incident runbooks (discovery -> fix -> verify -> report).

The plain Python API lives in `runbook.api`; this module stays import-light so `runbook --help` is fast.
When the process is the `runbook` command itself, a Ctrl-C that lands while Python is still importing
the CLI exits quietly with 130 (`runbook.cli.main` restores Python's handler before doing any work).
"""

import _signal  # type: ignore[import-not-found]  # the C module: importing `signal` pulls in enum and takes ~10 ms, a window of its own
import os as _os  # already loaded by the interpreter
import sys as _sys

__version__ = "0.1.0"


def _interrupted_while_starting(_signum: int, _frame: object) -> None:
    _os.write(2, b"interrupted\n")
    _os._exit(130)


def _started_as_cli() -> bool:
    name = _sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] if _sys.argv and _sys.argv[0] else ""
    return name in ("runbook", "-m", "__main__.py")


if _started_as_cli() and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
