"""runbook: declarative, recorded incident runbooks (discovery -> fix -> verify -> report).

The plain Python API lives in `runbook.api`; this module stays import-light so `runbook --help` is fast.
"""

__version__ = "0.1.0"
