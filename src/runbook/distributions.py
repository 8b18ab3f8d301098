"""Entry points of the installed distributions, found without a full metadata scan when none applies.

`importlib.metadata.entry_points(group=...)` reads and parses the metadata of every installed
distribution (~160 here, ~20 ms a scan), and a process of runbook did two: pydantic's plug-in
loader (group `pydantic`, on the first model built) and the action registry (`runbook.actions`).
Almost always neither group is declared by anything. `declared_groups` reads only the
`entry_points.txt` files of the `*.dist-info` / `*.egg-info` directories on `sys.path` and
returns the section names they declare; when a group is among them, or a path entry is something
this cannot list (a zip, an egg, a custom distribution finder), `importlib.metadata` answers as
before, so the entry points found, their order and precedence are unchanged.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from importlib.machinery import PathFinder
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

_SECTION = re.compile(r"^[ \t]*\[([^\]\n]*)\]", re.MULTILINE)


def declared_groups(path: list[str] | tuple[str, ...] | None = None) -> set[str] | None:
    """Entry-point groups any distribution on `path` (default `sys.path`) declares, or None when
    some entry cannot be listed here (then only `importlib.metadata` can tell)."""
    for finder in sys.meta_path:
        if finder is not PathFinder and getattr(finder, "find_distributions", None) is not None:
            return None
    entries = tuple(sys.path if path is None else path)
    # A process asks twice (pydantic's group, then the actions'): read once per path (and folder,
    # when a path entry is relative) while no path entry's listing changed (its modification time,
    # as importlib.metadata checks: installing a distribution adds a folder to one).
    key = (entries, "" if all(os.path.isabs(entry) for entry in entries) else os.getcwd())  # noqa: PTH109, PTH117
    listings = tuple(_modified(entry or ".") for entry in entries)
    remembered = _DECLARED.get(key)
    if remembered is None or remembered[0] != listings:
        remembered = _DECLARED[key] = (listings, _read_groups(entries))
    found = remembered[1]
    return None if found is None else set(found)


#: declared_groups' answers by path, for this process, with the path entries' modification times.
_DECLARED: dict[tuple[tuple[str, ...], str], tuple[tuple[int | None, ...], frozenset[str] | None]] = {}


def _modified(entry: str) -> int | None:
    try:
        return os.stat(entry).st_mtime_ns  # noqa: PTH116 - a string path, no Path per entry (hot loop)
    except OSError:
        return None


def _read_groups(entries: tuple[str, ...]) -> frozenset[str] | None:
    groups: set[str] = set()
    for entry in entries:
        root = entry or "."
        if root.lower().endswith(".egg"):
            return None
        try:
            names = os.listdir(root)  # noqa: PTH208 - names only, no Path per entry (hot loop)
        except NotADirectoryError:
            return None  # a zip file on sys.path
        except OSError:
            continue  # a missing directory holds no distribution
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(root, name, "entry_points.txt"), encoding="utf-8") as handle:  # noqa: PTH118
                    text = handle.read()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except (OSError, UnicodeDecodeError):
                return None
            groups.update(match.group(1).strip() for match in _SECTION.finditer(text))
    return frozenset(groups)


def entry_points(group: str) -> tuple[EntryPoint, ...]:
    """The installed entry points of `group`, as `importlib.metadata.entry_points(group=...)` gives them."""
    groups = declared_groups()
    if groups is not None and group not in groups:
        return ()
    from importlib.metadata import entry_points as scan

    return tuple(scan(group=group))


def skip_pydantic_plugin_scan() -> None:
    """Tell pydantic it has no plug-ins when no distribution declares one (its scan would find none).

    Call before the first model is built. Pydantic keeps the plug-ins it found in
    `pydantic.plugin._loader._plugins` (None until it scans); if that is gone in some version, or
    it scanned already, nothing is changed and pydantic scans as usual.
    """
    loader = importlib.import_module("pydantic.plugin._loader")
    if getattr(loader, "_plugins", False) is not None:
        return
    groups = declared_groups()
    if groups is not None and getattr(loader, "PYDANTIC_ENTRY_POINT_GROUP", "pydantic") not in groups:
        setattr(loader, "_plugins", {})  # noqa: B010 - a private name pydantic may not declare
