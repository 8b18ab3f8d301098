"""The remembered outcome of a clean `runbook validate`, in `reports/.index/validate.json`.

Validating the sample costs ~0.5 s of CPU, nearly all of it importing pydantic, Jinja and ruamel and
building the models the runbooks use; the answer only changes when one of its inputs does. After a
`runbook validate` of the whole workspace that found no problem, this module remembers the outcome
(files checked, the schema warnings) under a key made of every input, and the next `runbook
validate` with the same key prints it without loading anything heavy. Problems are never
remembered: a workspace with problems is validated afresh each time, so every message, location and
suggestion comes from the validators themselves.

The key (`_key`) holds:
- every file the validation opened for reading (recorded with an audit hook while it ran), by size,
  modification time, inode and a CRC-32 of its bytes, except Python modules: runbook's own are listed by
  `derived.source_listing`, installed libraries by the `*.dist-info` folders on `sys.path` (name,
  modification time, inode: another version of pydantic, Jinja, ruamel, click or any other library,
  or a reinstall, is another key);
- every folder of the workspace (outside `reports/`, `.git` and virtual environments) with the names
  in it: a file that appears or disappears changes that list, which covers the checks that only ask
  whether a notebook or an estate exists; a symlink also by its target and the stamp of what it
  points at (a link pointed elsewhere, even at the same file's hard link outside the workspace,
  keeps its name but changes what the confinement check sees);
- for every string of the runbooks and the config that could name a path outside the workspace
  (absolute, or with a `..` part), that path and its folder;
- the names in the runbooks and templates folders and in the folders of files read under `reports/`
  (which the walk skips: its run records change with every run);
- the committed schema files, the folders from where the workspace was looked for up to its root
  (a `runbook.yaml` appearing in between moves the workspace), the current folder, the `--workspace`
  option, runbook's and Python's versions.
A workspace with `runbook.actions` plug-ins installed (their code defines actions and parameters),
a process where code registered actions of its own, or a workspace whose reports folder is not
`reports/` is never remembered. The file is derived, never committed
(derived.py); deleting it only costs speed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .derived import read_derived, source_listing, stamp, write_derived

CACHE_NAME = "validate.json"
VERSION = 2  # 2: symlink targets, and the runbook and template folders listed wherever they are
CONFIG_NAME = "runbook.yaml"  # workspace.CONFIG_NAME (that module builds models on import)
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".index"})

_RECORDING: list[set[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _RECORDING:
        path, mode, flags = args
        if not isinstance(path, str | bytes | os.PathLike):
            return  # a file descriptor
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & (os.O_WRONLY | os.O_RDWR))
        if not writes:
            _RECORDING[-1].add(os.fsdecode(path))


_HOOKED = False


@contextmanager
def recording_reads() -> Iterator[set[str]]:
    """The paths of the files opened for reading while the block runs (an audit hook, installed once)."""
    global _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    opened: set[str] = set()
    _RECORDING.append(opened)
    try:
        yield opened
    finally:
        _RECORDING.remove(opened)


def find_root(start: Path | None) -> Path | None:
    """workspace.find_root without its errors: the folder the validation would use, or None."""
    if start is not None and not start.is_dir():
        return None
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    return None


def recall(start: Path | None) -> tuple[int, list[str]] | None:
    """(files checked, schema warnings) of the last clean validation of the workspace at `start`,
    when none of its inputs changed since; otherwise None."""
    root = find_root(start)
    if root is None or not _builtin_actions_only():
        return None
    cached = read_derived(root / "reports", CACHE_NAME)
    if cached is None or not all(isinstance(cached.get(part), list) for part in ("files", "outside", "listed")):
        return None
    key = _key(
        root,
        start,
        [str(p) for p in cached["files"]],
        [str(p) for p in cached["outside"]],
        [str(p) for p in cached["listed"]],
    )
    if cached.get("key") != key:
        return None
    count, warnings = cached.get("count"), cached.get("warnings")
    if not isinstance(count, int) or not isinstance(warnings, list):
        return None
    return count, [str(w) for w in warnings]


def remember(
    workspace: Any, start: Path | None, opened: Iterable[str], documents: Iterable[Any], count: int, warnings: list[str]
) -> None:
    """Remember a clean validation of `workspace` (whose files were `opened`, whose YAML data are
    `documents`) so the next one with the same inputs is answered from reports/.index/."""
    root = workspace.root
    if not _builtin_actions_only() or _plugins_installed():
        return
    if Path(workspace.reports_dir).resolve() != (root / "reports").resolve() or find_root(start) != root:
        return
    files = sorted(path for path in set(opened) if _is_input(Path(path), root))
    outside = sorted({path for data in documents for path in _escaping_paths(data, root)})
    # the folders runbooks and templates are found in, and those of files read under reports/ (which
    # the walk of the workspace skips): a runbook added to `paths: {runbooks: reports/runbooks}`
    reports = root / "reports"
    listed = sorted(
        {str(workspace.runbooks_dir), str(workspace.templates_dir)}
        | {str(Path(path).parent) for path in files if _under(Path(path), reports)}
    )
    key = _key(root, start, files, outside, listed)
    write_derived(
        workspace.reports_dir,
        CACHE_NAME,
        {"key": key, "files": files, "outside": outside, "listed": listed, "count": count, "warnings": warnings},
    )


def _builtin_actions_only() -> bool:
    """Whether this process knows only runbook's own actions (code can register more: `@action`)."""
    registry = sys.modules.get("runbook.actions")
    if registry is None:
        return True
    return all(registry._is_builtin(spec) for spec in registry._registry.values())


def _plugins_installed() -> bool:
    """Whether any distribution declares `runbook.actions` entry points (the validation looked them
    up already; the look-up is remembered)."""
    from .actions import plugin_entry_points

    return bool(plugin_entry_points())


def _content(path: Path) -> list[Any] | None:
    """Size, modification time, inode and CRC-32 of a file's bytes (timestamps are coarse: two
    writes of the same length within one clock tick keep them)."""
    import zlib

    try:
        with path.open("rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return [*(stamp(path) or []), zlib.crc32(data)]


def _is_input(path: Path, root: Path) -> bool:
    """A file whose bytes the outcome depends on and the key does not cover otherwise."""
    absolute = path if path.is_absolute() else Path.cwd() / path
    if absolute.suffix in (".py", ".pyc", ".pyd", ".so") or absolute.parent.name.endswith((".dist-info", ".egg-info")):
        return False  # code, and distribution metadata (their names and the plug-in check cover those)
    if _under(absolute, root / "reports" / ".index"):
        return False
    package = Path(__file__).resolve().parent
    return not (_under(absolute, package) and absolute.suffix in (".py", ".pyc"))


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _escaping_paths(value: Any, root: Path) -> Iterator[str]:
    """Strings of a YAML document that, read as a path of the workspace, may lead out of it."""
    if isinstance(value, str):
        if value.startswith(("/", "~")) or ".." in value.replace("\\", "/").split("/"):
            yield os.path.normpath(root / value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _escaping_paths(item, root)
    elif isinstance(value, list):
        for item in value:
            yield from _escaping_paths(item, root)


def _key(root: Path, start: Path | None, files: list[str], outside: list[str], listed: list[str]) -> dict[str, Any]:
    here = (start or Path.cwd()).resolve()
    between = [str(folder) for folder in (here, *here.parents) if folder != root and _under(folder, root)]
    return {
        "version": VERSION,
        "python": list(sys.version_info[:3]),
        "cwd": str(Path.cwd()),
        "start": None if start is None else str(start),
        "root": str(root),
        "between": [stamp(Path(folder) / CONFIG_NAME) for folder in between],
        "source": source_listing(),
        "libraries": _distributions(),
        "files": [[path, _content(Path(path))] for path in files],
        "outside": [[path, stamp(Path(path)), stamp(Path(path).parent)] for path in outside],
        "folders": _folders(root),
        "listed": [[folder, _names(folder)] for folder in listed],
        "schemas": [stamp(root / name) for name in _schema_file_names()],
    }


def _schema_file_names() -> list[str]:
    from .schemas import FILE_NAMES

    return sorted(set(FILE_NAMES.values()))


def _distributions() -> list[list[Any]]:
    """The `*.dist-info` / `*.egg-info` folders on sys.path, in order, with their modification time
    and inode: a library's version is in the name, and installing again (another version, a plug-in's
    new entry points) makes a new folder."""
    found: list[list[Any]] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as entries:
                listed = [e for e in entries if e.name.endswith((".dist-info", ".egg-info"))]
                found.extend(sorted([e.name, e.stat().st_mtime_ns, e.inode()] for e in listed))
        except OSError:
            continue
    return found


def _folders(root: Path) -> list[list[Any]]:
    """Every folder of the workspace with the names in it (outside reports/ and SKIPPED_FOLDERS): a
    file that appears or disappears changes its folder's list."""
    found: list[list[Any]] = []
    pending = [str(root)]
    while pending:
        folder = pending.pop()
        try:
            names: list[Any] = []
            found.append([os.path.relpath(folder, root), names])
            with os.scandir(folder) as entries:
                for entry in entries:
                    names.append(entry.name)
                    if entry.is_symlink():  # retargeting a link changes no name: its target and stamp do
                        names.append([entry.name, _link_target(entry.path), stamp(Path(entry.path))])
                    if entry.is_dir(follow_symlinks=False) and entry.name not in SKIPPED_FOLDERS:
                        if folder == str(root) and entry.name == "reports":
                            continue
                        pending.append(entry.path)
        except OSError:
            continue
        names.sort(key=str)
    return sorted(found, key=lambda item: item[0])


def _names(folder: str) -> list[str] | None:
    try:
        return sorted(entry.name for entry in Path(folder).iterdir())
    except OSError:
        return None


def _link_target(path: str) -> str | None:
    try:
        return str(Path(path).readlink())
    except OSError:
        return None
