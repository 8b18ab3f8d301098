"""The schema check without generating: digests per installation give the generating check's answers.

`runbook.schemas.stale_schemas` (generate every schema, compare the parsed JSON) is the reference;
`runbook.schema_freshness` answers from canonical-JSON digests remembered in the user's cache folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runbook import schema_freshness, schemas

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RUNBOOK_CACHE_DIR", str(folder))
    return folder


def committed(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for kind in schemas.kinds():
        name = schemas.FILE_NAMES[kind]
        (root / name).write_text(schemas.schema_text(kind), encoding="utf-8")
    return root


def rewrite(path: Path, change: Any) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text(encoding="utf-8"))), indent=4), encoding="utf-8")


def reordered(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: reordered(data[key]) for key in reversed(list(data))}
    if isinstance(data, list):
        return [reordered(item) for item in data]
    return data


def described(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "description": "edited by hand"}


VARIANTS = {
    "as generated": lambda _path: None,
    "keys reordered, indented by 4": lambda path: rewrite(path, reordered),
    "a description edited": lambda path: rewrite(path, described),
    "not JSON": lambda path: path.write_text("{ this is not json\n", encoding="utf-8"),
    "empty": lambda path: path.write_text("", encoding="utf-8"),
    "a list": lambda path: path.write_text("[]\n", encoding="utf-8"),
    "removed": lambda path: path.unlink(),
    "not UTF-8": lambda path: path.write_bytes(b'{"title": "\xff"}'),
    # what jq 1.6 (or JSON.stringify, or Go) writes when reformatting: `300.0` as `300`
    "reformatted by jq 1.6": lambda path: rewrite(path, lambda data: json.loads(json.dumps(data), parse_float=jq16_number)),
    "a UTF-8 byte order mark": lambda path: path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes()),
    "UTF-16": lambda path: path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16")),
    "nested too deep for the parser": lambda path: path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8"),
}
CURRENT_VARIANTS = ("as generated", "keys reordered, indented by 4", "removed", "reformatted by jq 1.6")


def jq16_number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", ["runbook", "config", "estate"])
@pytest.mark.usefixtures("cache")
def test_the_digests_give_the_generating_checks_answer(tmp_path: Path, kind: str, variant: str) -> None:
    root = committed(tmp_path / "ws")
    VARIANTS[variant](root / schemas.FILE_NAMES[kind])
    expected = schemas.stale_schemas(root)
    assert schema_freshness.stale_schemas(root, root / "reports") == expected
    # and again from what was remembered, in this workspace and in a copy of it elsewhere
    assert schema_freshness.stale_schemas(root, root / "reports") == expected
    assert schema_freshness.compare(root, schema_freshness.installation_digests()) == expected
    stale_expected = variant not in CURRENT_VARIANTS
    assert bool(expected) == stale_expected, expected


def test_the_installation_digests_are_generated_once(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = committed(tmp_path / "new")  # a workspace never seen before
    first = schema_freshness.installation_digests()
    assert set(first) == set(schemas.kinds())
    assert [p.name for p in cache.iterdir() if p.name.startswith("schema-digests-")] != []

    def refuse(kind: str = "runbook") -> dict[str, Any]:
        raise AssertionError(f"generated the {kind} schema")

    monkeypatch.setattr(schemas, "schema", refuse)
    assert schema_freshness.installation_digests() == first
    # the new workspace is checked without generating anything
    assert schema_freshness.stale_schemas(root, root / "reports") == []
    (root / "config.schema.json").write_text('{"type": "object"}\n', encoding="utf-8")
    assert [w.split(" ")[0] for w in schema_freshness.stale_schemas(root, root / "reports")] == ["config.schema.json"]


@pytest.mark.usefixtures("cache")
def test_another_installation_key_generates_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    key = schema_freshness._installation_key()
    digests = schema_freshness.installation_digests(key)
    calls: list[str] = []
    real = schemas.schema

    def counting(kind: str = "runbook") -> dict[str, Any]:
        calls.append(kind)
        return real(kind)

    monkeypatch.setattr(schemas, "schema", counting)
    other = {**key, "plugins": [["extra", "some_plugin", "some-dist", "1.0"]]}
    assert schema_freshness.installation_digests(other) == digests  # same code: same digests, generated again
    assert sorted(calls) == sorted(schemas.kinds())


def test_a_cache_file_for_another_key_is_not_trusted(cache: Path) -> None:
    key = schema_freshness._installation_key()
    real = schema_freshness.installation_digests(key)
    (path,) = [p for p in cache.iterdir() if p.name.startswith("schema-digests-")]
    # the file's name matches, its key does not (written by a different version of this code)
    path.write_text(json.dumps({"key": {**key, "python": "other"}, "digests": dict.fromkeys(real, "0" * 64)}), encoding="utf-8")
    assert schema_freshness.installation_digests(key) == real
    path.write_text("not json", encoding="utf-8")
    assert schema_freshness.installation_digests(key) == real
    without_config = {kind: digest for kind, digest in real.items() if kind != "config"}
    for digests in ({**real, "no-such-kind": "0" * 64}, {"runbook": 1}, ["runbook"], {}, without_config):
        path.write_text(json.dumps({"key": key, "digests": digests}), encoding="utf-8")
        assert schema_freshness.installation_digests(key) == real
    assert json.loads(path.read_text(encoding="utf-8"))["digests"] == real  # and written again


def test_an_unwritable_cache_costs_speed_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("RUNBOOK_CACHE_DIR", str(blocker / "cache"))
    root = committed(tmp_path / "ws")
    (root / "runbook.schema.json").write_text("{}", encoding="utf-8")
    assert schema_freshness.stale_schemas(root, root / "reports") == schemas.stale_schemas(root)
    assert len(schema_freshness.stale_schemas(root, root / "reports")) == 1


def test_old_cache_files_are_pruned(cache: Path) -> None:
    cache.mkdir()
    for n in range(20):
        path = cache / f"{schema_freshness.DIGESTS_PREFIX}old{n:02}.json"
        path.write_text("{}", encoding="utf-8")
        os.utime(path, ns=(n * 10**9, n * 10**9))
    (cache / "unrelated.txt").write_text("keep me", encoding="utf-8")
    schema_freshness.installation_digests()
    names = sorted(p.name for p in cache.iterdir())
    kept = [name for name in names if name.startswith(schema_freshness.DIGESTS_PREFIX)]
    assert len(kept) == schema_freshness.KEEP_DIGEST_FILES
    assert "unrelated.txt" in names
    assert f"{schema_freshness.DIGESTS_PREFIX}old19.json" in kept and f"{schema_freshness.DIGESTS_PREFIX}old00.json" not in kept


def test_the_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RUNBOOK_CACHE_DIR", str(tmp_path / "mine"))
    assert schema_freshness.user_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("RUNBOOK_CACHE_DIR")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert schema_freshness.user_cache_dir() == tmp_path / "xdg" / "runbook"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: relative paths are invalid
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert schema_freshness.user_cache_dir() == tmp_path / "home" / ".cache" / "runbook"


@pytest.mark.usefixtures("cache")
def test_the_committed_schemas_of_this_repository_are_current() -> None:
    assert schema_freshness.compare(REPO, schema_freshness.installation_digests()) == schemas.stale_schemas(REPO) == []


def test_the_numbers_of_the_generated_schemas_include_integral_floats() -> None:
    """What makes the jq 1.6 variant above a real case: the schemas hold defaults like `300.0`."""
    assert '"default": 300.0' in schemas.schema_text("runbook")


HOSTILE_READER = """
import os, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))  # reading /dev/zero whole fails, not the machine
from runbook import schema_freshness
root = Path(sys.argv[1])
print(schema_freshness.stale_schemas(root, root / "reports"))
"""


@pytest.mark.parametrize("where", ["digests", "workspace answer"])
@pytest.mark.parametrize("what", ["a symlink to /dev/zero", "a FIFO", "a directory", "huge"])
def test_a_cache_file_that_is_not_a_small_regular_file_is_not_read(tmp_path: Path, cache: Path, where: str, what: str) -> None:
    root = committed(tmp_path / "ws")
    (root / "config.schema.json").write_text("{}", encoding="utf-8")
    key = schema_freshness._installation_key()
    name = schema_freshness.DIGESTS_PREFIX + schema_freshness.canonical_digest(key)[:20] + ".json"
    path = cache / name if where == "digests" else root / "reports" / ".index" / schema_freshness.CACHE_NAME
    path.parent.mkdir(parents=True)
    if what == "a symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif what == "a FIFO":
        os.mkfifo(path)  # nobody writes: a blocking open waits for ever
    elif what == "a directory":
        path.mkdir()
    else:
        with path.open("wb") as handle:  # sparse: 8 GiB of nothing
            handle.truncate(8 << 30)
    result = subprocess.run(
        [sys.executable, "-c", HOSTILE_READER, str(root)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("config.schema.json is out of date") == 1, result.stdout


def test_a_name_that_cannot_be_pruned_does_not_stop_the_pruning(cache: Path) -> None:
    cache.mkdir()
    dangling = cache / f"{schema_freshness.DIGESTS_PREFIX}aa-dangling.json"
    dangling.symlink_to(cache / "nowhere")
    folder = cache / f"{schema_freshness.DIGESTS_PREFIX}ab-folder.json"
    folder.mkdir()
    for oldest in (dangling, folder):  # the first to go: stat (following the link) or unlink fails on them
        os.utime(oldest, ns=(0, 0), follow_symlinks=False)
    for n in range(20):
        path = cache / f"{schema_freshness.DIGESTS_PREFIX}old{n:02}.json"
        path.write_text("{}", encoding="utf-8")
        os.utime(path, ns=(n * 10**9, n * 10**9))
    schema_freshness.installation_digests()
    kept = sorted(p.name for p in cache.iterdir() if p.name.startswith(f"{schema_freshness.DIGESTS_PREFIX}old"))
    assert kept == [f"{schema_freshness.DIGESTS_PREFIX}old{n:02}.json" for n in range(20)][-(schema_freshness.KEEP_DIGEST_FILES - 1) :]


def test_no_home_folder_costs_speed_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container user without a passwd entry and no HOME (OpenShift's random ids, `env -i`)."""
    import pwd

    for name in ("RUNBOOK_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")

    def no_entry(uid: int) -> Any:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(RuntimeError):
        Path.home()
    root = committed(tmp_path / "ws")
    (root / "estate.schema.json").write_text("{}", encoding="utf-8")
    assert schema_freshness.stale_schemas(root, root / "reports") == schemas.stale_schemas(root)
    assert [w.split(" ")[0] for w in schema_freshness.stale_schemas(root, root / "reports")] == ["estate.schema.json"]
