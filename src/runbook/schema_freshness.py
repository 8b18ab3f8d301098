"""Whether the workspace's committed schema files are current, without generating the schemas each time.

`schemas.stale_schemas()` generates every JSON Schema from the models to compare it with the
committed file: ~0.3 s, more than the rest of validating the sample. What it generates depends only
on the installed code (runbook's own source, pydantic, the installed action plug-ins), so two
answers are remembered:

- **per installation** (`installation_digests`): the SHA-256 of each kind's schema, as canonical
  JSON (sorted keys, no spaces), in the user's cache folder (`user_cache_dir`: `RUNBOOK_CACHE_DIR`,
  else `$XDG_CACHE_HOME/runbook`, `~/Library/Caches/runbook` or `%LOCALAPPDATA%\\runbook\\Cache`),
  in a file named after its key: where the `runbook` package is, the size and modification time of
  every one of its modules, pydantic's version file, the `runbook.actions` entry points with their
  distributions' versions, and Python's version. Any difference is another file, computed afresh; a
  workspace never seen before, or a schema file just edited, is checked against the digests
  without generating anything (~5 ms instead of ~300).
- **per workspace** (`stale_schemas`): the warnings themselves, in `reports/.index/schemas.json`
  (derived, never committed: the folder ignores itself for git), under that key plus the schema
  files' size, modification time and inode.

A committed file is current when its JSON, written canonically, hashes to the installation's
digest: the same answer as comparing the parsed JSON with the generated schema (tested against
`schemas.stale_schemas`), except that `true` and `1` now differ, as they do for an editor. `1`
and `1.0` are the same number (to JSON Schema, and to a reformatter such as jq 1.6 or
`JSON.stringify`, which write `300.0` as `300`): canonically both are `1`. Writing either file is
best effort: a read-only cache or workspace (or no home folder) costs speed only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .derived import read_derived, read_regular_file, source_listing, stamp, write_derived

CACHE_NAME = "schemas.json"
VERSION = 3  # 2: checked against the installation's digests; 3: integral numbers canonical
DIGESTS_PREFIX = "schema-digests-"
KEEP_DIGEST_FILES = 8  # other installations (or checkouts) sharing the cache folder keep theirs
DIGESTS_LIMIT = 4 << 20  # bytes: a digest file is a few kB; anything bigger was not written here
#: The kinds every installation produces: a digest file without one of them is not trusted.
ALWAYS_KINDS = frozenset({"runbook", "config", "estate"})


def stale_schemas(root: Path, reports_dir: Path) -> list[str]:
    """`runbook.schemas.stale_schemas(root)`, from remembered answers when nothing they depend on changed."""
    from .schemas import FILE_NAMES

    if not any((root / name).is_file() for name in FILE_NAMES.values()):
        return []  # nothing committed to compare
    installed = _installation_key()
    key = {
        "version": VERSION,
        "files": {name: stamp(root / name) for name in sorted(set(FILE_NAMES.values()))},
        "installation": installed,
    }
    cached = read_derived(reports_dir, CACHE_NAME)
    if cached is not None and cached.get("key") == key and isinstance(cached.get("warnings"), list):
        return [str(warning) for warning in cached["warnings"]]
    warnings = compare(root, installation_digests(installed))
    write_derived(reports_dir, CACHE_NAME, {"key": key, "warnings": warnings})
    return warnings


def compare(root: Path, digests: dict[str, str]) -> list[str]:
    """Warnings for the committed schema files at `root` whose canonical JSON does not hash to `digests`."""
    from .schemas import FILE_NAMES

    warnings = []
    for kind, digest in digests.items():
        path = root / FILE_NAMES[kind]
        if not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8")  # strictly: a BOM or UTF-16 is not what was written
            committed: str | None = canonical_digest(json.loads(text, parse_float=_number))
        except (OSError, ValueError, RecursionError):
            committed = None  # unreadable, not JSON or nested too deep: out of date like any other difference
        if committed != digest:
            warnings.append(
                f"{FILE_NAMES[kind]} is out of date (editors check against an older format): "
                f"run `runbook schema --kind {kind} -o {FILE_NAMES[kind]}`"
            )
    return warnings


def canonical_digest(data: Any) -> str:
    """SHA-256 of `data` as canonical JSON: key order and whitespace do not count (parse with
    `parse_float=_number`, or pass through `_normalized`, so that `1.0` and `1` do not either)."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def installation_digests(key: dict[str, Any] | None = None) -> dict[str, str]:
    """The digest of every schema kind this installation produces (`schemas.kinds()`), remembered
    in the user's cache folder under the installation's key; generated when not remembered."""
    key = key if key is not None else _installation_key()
    name = DIGESTS_PREFIX + canonical_digest(key)[:20] + ".json"
    try:
        folder: Path | None = user_cache_dir()
    except RuntimeError:  # no home folder (HOME unset, a user id without a passwd entry): nothing remembered
        folder = None
    raw = read_regular_file(folder / name, DIGESTS_LIMIT) if folder is not None else None
    try:
        data = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        data = None
    from .schemas import FILE_NAMES

    if isinstance(data, dict) and data.get("key") == key:
        digests = data.get("digests")
        if (
            isinstance(digests, dict)
            and ALWAYS_KINDS.issubset(digests)
            and all(k in FILE_NAMES and isinstance(v, str) for k, v in digests.items())
        ):
            return dict(digests)
    from .schemas import kinds, schema

    found = {kind: canonical_digest(_normalized(schema(kind))) for kind in kinds()}
    if folder is not None:
        _write_cache(folder, name, {"key": key, "digests": found})
    return found


def _number(text: str) -> float | int:
    """A JSON number with a fraction or exponent: an integral one as the int it equals (`1.0` is `1`)."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _normalized(data: Any) -> Any:
    """`data` as its JSON parses with `_number` (integral floats become ints)."""
    return json.loads(json.dumps(data), parse_float=_number)


def user_cache_dir() -> Path:
    """Where runbook keeps answers that depend only on the installed code, per user.

    Written here rather than with platformdirs, whose import costs more than the check it serves."""
    configured = os.environ.get("RUNBOOK_CACHE_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base, "runbook", "Cache") if base else Path.home() / "AppData" / "Local" / "runbook" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "runbook"
    base = Path(os.environ.get("XDG_CACHE_HOME", ""))
    return (base if base.is_absolute() else Path.home() / ".cache") / "runbook"


def _write_cache(folder: Path, name: str, data: dict[str, Any]) -> None:
    """Write one cache file whole (a temporary file renamed over it) and keep the newest few; best effort."""
    with contextlib.suppress(OSError, TypeError, ValueError):
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            temporary.write_text(json.dumps(data), encoding="utf-8")
            os.replace(temporary, folder / name)
        finally:
            temporary.unlink(missing_ok=True)
        others = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(DIGESTS_PREFIX) and entry.name != name:
                    # one gone meanwhile (another validate pruned it) or not a file does not stop the rest
                    with contextlib.suppress(OSError):
                        others.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
        for _mtime, path in sorted(others)[: max(0, len(others) - (KEEP_DIGEST_FILES - 1))]:
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)


def _installation_key() -> dict[str, Any]:
    return {
        "package": str(Path(__file__).resolve().parent),
        "source": source_listing(),
        "pydantic": _pydantic_stamp(),
        "plugins": _plugins(),
        "python": sys.version,
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
