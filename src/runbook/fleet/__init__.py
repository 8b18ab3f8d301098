"""Fleets: one phase rolled across many deployments, rate-controlled, recorded, resumable.

A fleet file (`fleet.yaml`, `model.py`) lists members — workspaces or git repositories, each with its
target settings. The coordinator (`coordinator.py`) starts member runs under SSM-style limits
(max concurrency, max errors, per subscription) on an engine (`engines.py`: a local process pool or
a Dask cluster); each member run (`member.py`) is an ordinary phase run with its own run record,
report, timestamp log and commit. The fleet record (`record.py`) logs every member start and finish
durably; `report.py` turns it into status, a markdown report and an SVG chart. `emulator.py` runs the one
emulator that serves a fleet's estate while it runs; `generate.py` writes a demo fleet (members,
and the estate that emulator serves) from the sample workspace.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Names are imported on first use, so `python -m runbook.fleet.member` (how a Dask worker starts a
# member) does not import its own module twice, and `runbook --help` imports none of this.
_EXPORTS = {
    "FLEET_FILE": "model",
    "LoadedFleet": "model",
    "MemberSpec": "model",
    "fleet_schema": "model",
    "load_fleet": "model",
    "write_schema": "model",
    "FleetOptions": "coordinator",
    "FleetOutcome": "coordinator",
    "FleetPlan": "coordinator",
    "parse_limit": "coordinator",
    "plan_fleet": "coordinator",
    "run_fleet": "coordinator",
}
__all__ = [
    "FLEET_FILE",
    "FleetOptions",
    "FleetOutcome",
    "FleetPlan",
    "LoadedFleet",
    "MemberSpec",
    "fleet_schema",
    "load_fleet",
    "parse_limit",
    "plan_fleet",
    "run_fleet",
    "write_schema",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
