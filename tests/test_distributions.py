"""`runbook.distributions`: the cheap entry-point look-up gives what importlib.metadata gives."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from runbook.distributions import declared_groups
from runbook.distributions import entry_points as runbook_entry_points


def test_declared_groups_are_the_groups_importlib_metadata_finds() -> None:
    assert declared_groups() == set(entry_points().groups)


def test_a_declared_group_is_answered_by_importlib_metadata(tmp_path: Path) -> None:
    dist = tmp_path / "lab_actions-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-actions\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[console_scripts]\nlab = lab:main\n\n[runbook.actions]\nlab = lab_actions\n")
    (tmp_path / "plain-2.0.dist-info").mkdir()  # no entry_points.txt
    (tmp_path / "single.egg-info").write_text("Name: single\n")  # an egg-info file, not a directory
    groups = declared_groups([str(tmp_path)])
    assert groups == {"console_scripts", "runbook.actions"}
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from runbook.distributions import entry_points; "
        "print([(e.name, e.value, e.dist.name) for e in entry_points('runbook.actions')]); "
        "print(entry_points('no.such.group'))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[('lab', 'lab_actions', 'lab-actions')]", "()"]


def test_a_path_entry_it_cannot_list_defers_to_importlib_metadata(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip file
    assert declared_groups([str(archive)]) is None
    assert declared_groups([str(tmp_path / "bundle.egg")]) is None
    assert declared_groups([str(tmp_path / "missing")]) == set()


def test_no_declared_group_means_no_entry_points() -> None:
    assert runbook_entry_points("runbook.no-such-group") == ()
    assert tuple(entry_points(group="runbook.no-such-group")) == ()


def test_pydantic_is_told_it_has_no_plugins_only_when_none_is_installed() -> None:
    code = (
        "import runbook.model, pydantic.plugin._loader as loader; "
        "from importlib.metadata import entry_points; "
        "print(loader._plugins == {} and not entry_points(group='pydantic'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_the_groups_are_read_once_per_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from runbook import distributions

    dist = tmp_path / "lab-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[runbook.actions]\nlab = lab_actions\n")
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    first = declared_groups([str(tmp_path)])
    assert first == {"runbook.actions"} and len(opened) == 1
    first.add("changed by the caller")  # a copy: the remembered answer is not touched
    assert declared_groups([str(tmp_path)]) == {"runbook.actions"} and len(opened) == 1
    other = tmp_path / "other"
    other.mkdir()
    assert declared_groups([str(tmp_path), str(other)]) == {"runbook.actions"} and len(opened) == 2
    # a relative entry is read again from another folder
    monkeypatch.chdir(tmp_path)
    assert declared_groups(["."]) == {"runbook.actions"}
    monkeypatch.chdir(other)
    assert declared_groups(["."]) == set()
    assert len(distributions._DECLARED) >= 4


def test_a_plugin_installed_while_the_process_runs_is_found(tmp_path: Path) -> None:
    """A kernel imports runbook (pydantic's group is asked), then `%pip install`s a plug-in into a
    path entry, then runs a runbook: the action registry's look-up must see the new distribution,
    as importlib.metadata does."""
    site = tmp_path / "site"
    site.mkdir()
    os.utime(site, ns=(10**9, 10**9))  # listed long ago: installing changes its modification time
    code = """
import sys
from pathlib import Path
site = Path(sys.argv[1])
sys.path.insert(0, str(site))
import runbook.model
from runbook import actions
from runbook.distributions import declared_groups
before = declared_groups()
(site / "lab_actions").mkdir()
(site / "lab_actions" / "__init__.py").write_text("")
dist = site / "lab_actions-1.0.dist-info"
dist.mkdir()
(dist / "METADATA").write_text("Metadata-Version: 2.1\\nName: lab-actions\\nVersion: 1.0\\n")
(dist / "entry_points.txt").write_text("[runbook.actions]\\nlab = lab_actions\\n")
print(before is not None and "runbook.actions" not in before)
print([(e.name, e.dist.name) for e in actions.plugin_entry_points()])
"""
    result = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True", "[('lab', 'lab-actions')]"]


def test_the_remembered_groups_follow_a_path_entrys_listing(tmp_path: Path) -> None:
    os.utime(tmp_path, ns=(10**9, 10**9))
    assert declared_groups([str(tmp_path)]) == set()
    dist = tmp_path / "lab-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[runbook.actions]\nlab = lab_actions\n")
    assert declared_groups([str(tmp_path)]) == {"runbook.actions"}
