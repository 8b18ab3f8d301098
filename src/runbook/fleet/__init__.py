"""Fleets: one phase rolled across many deployments, rate-controlled, recorded, resumable.

A fleet file (`fleet.yaml`, `model.py`) lists members — workspaces or git repositories, each with its
target settings. The coordinator (`coordinator.py`) starts member runs under SSM-style limits
(max concurrency, max errors, per subscription) on an engine (`engines.py`: a local process pool or
a Dask cluster); each member run (`member.py`) is an ordinary phase run with its own run record,
report, timestamp log and commit. The fleet record (`record.py`) logs every member start and finish
durably; `report.py` turns it into status, a markdown report and an SVG chart. `generate.py` writes
a demo fleet from the sample workspace.
"""

from __future__ import annotations

from .coordinator import FleetOptions, FleetOutcome, FleetPlan, parse_limit, plan_fleet, run_fleet
from .model import FLEET_FILE, LoadedFleet, MemberSpec, fleet_schema, load_fleet, write_schema

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
