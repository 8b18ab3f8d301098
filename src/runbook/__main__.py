"""`python -m runbook` and the `runbook` console script: start the CLI, quietly even when interrupted early.

The CLI module is imported here, inside a guard, so a Ctrl-C while Python is still importing click and
runbook ends with "interrupted" and exit code 130 instead of a traceback; from then on
`runbook.cli.main` is the one place that maps errors to exit codes.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    cli_main(argv)


if __name__ == "__main__":
    main()
