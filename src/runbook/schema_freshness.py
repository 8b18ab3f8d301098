"""Whether the workspace's committed schema files are current, remembered between `runbook validate`s.

`schemas.stale_schemas()` generates every JSON Schema from the models to compare it with the
committed file: ~0.4 s, more than the rest of validating the sample. Its answer only changes when a
committed schema file changes, or what generates the schemas does (runbook's own source, pydantic,
an installed action plug-in). `stale_schemas()` here keeps the answer in
`reports/.index/schemas.json` (derived, never committed: the folder ignores itself for git) under a
key made of exactly those: the schema files' size, modification time and inode, the size and
modification time of every module of the `runbook` package, pydantic's version file, and the
`runbook.actions` entry points with their distributions' versions. Any difference, or no readable
file, generates the schemas again (and remembers the new answer when the folder is writable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .derived import read_derived, source_listing, stamp, write_derived

CACHE_NAME = "schemas.json"
VERSION = 1


def stale_schemas(root: Path, reports_dir: Path) -> list[str]:
    """`runbook.schemas.stale_schemas(root)`, from the remembered answer when nothing it depends on changed."""
    from .schemas import FILE_NAMES

    if not any((root / name).is_file() for name in FILE_NAMES.values()):
        return []  # nothing committed to compare
    key = _key(root)
    cached = read_derived(reports_dir, CACHE_NAME)
    if cached is not None and cached.get("key") == key and isinstance(cached.get("warnings"), list):
        return [str(warning) for warning in cached["warnings"]]
    from .schemas import stale_schemas as generate_and_compare

    warnings = generate_and_compare(root)
    write_derived(reports_dir, CACHE_NAME, {"key": key, "warnings": warnings})
    return warnings


def _key(root: Path) -> dict[str, Any]:
    from .schemas import FILE_NAMES

    return {
        "version": VERSION,
        "files": {name: stamp(root / name) for name in sorted(set(FILE_NAMES.values()))},
        "source": source_listing(),
        "pydantic": _pydantic_stamp(),
        "plugins": _plugins(),
    }


def _pydantic_stamp() -> list[Any] | None:
    """pydantic's version file (size, modification time): another pydantic writes other schemas."""
    from importlib.util import find_spec

    spec = find_spec("pydantic")
    if spec is None or spec.origin is None:
        return None
    return stamp(Path(spec.origin).parent / "version.py")


def _plugins() -> list[list[str]]:
    """The installed action plug-ins: they add actions (and their parameters) to the runbook schema."""
    from .actions import plugin_entry_points

    return [[ep.name, ep.value, ep.dist.name if ep.dist else "", ep.dist.version if ep.dist else ""] for ep in plugin_entry_points()]
