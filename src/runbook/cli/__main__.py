"""`python -m runbook.cli` (the same as `python -m runbook`)."""

from runbook.__main__ import main

if __name__ == "__main__":
    main()
