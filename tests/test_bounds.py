"""Hostile sizes stay bounded: YAML alias bombs, slow or huge HTTP answers, escaping templates, NUL paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import invoke

from runbook.azure.estate import parse_estate
from runbook.errors import InputError, ValidationFailed
from runbook.loader import check_alias_expansion

CONFIG = """\
project: t
plan:
  - group: "1"
    phases: [{id: "1.1", title: t}]
targets:
  local: {kind: local}
default_target: local
"""

# Nine levels of nine: 9**9 (387 million) strings from a few hundred bytes.
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def _workspace(root: Path, runbook: str, config: str = CONFIG) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "runbook.yaml").write_text(config)
    (root / "runbooks" / "phase-1.1.yaml").write_text(runbook)
    return root


def _indented(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


def test_an_alias_bomb_in_vars_is_a_located_error(tmp_path: Path) -> None:
    runbook = 'phase: "1.1"\ntitle: t\nvars:\n' + _indented(BOMB) + "fix:\n  - {id: a, uses: set, with: {x: 1}}\n"
    root = _workspace(tmp_path / "ws", runbook)
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2, result.output
    assert "YAML aliases expand to more than 100,000 nodes" in result.stderr
    # 9 + 81 + 729 + 6,561 + 59,049 (e) + ... : the bound falls inside `f:` (line 9 of the file)
    assert "phase-1.1.yaml:9:" in result.stderr and "Traceback" not in result.output


def test_an_alias_bomb_in_the_workspace_config_is_a_located_error(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n',
                      CONFIG + "x-bomb:\n" + _indented(BOMB))
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2, result.output
    assert "runbook.yaml:" in result.stderr and "YAML aliases expand to more than" in result.stderr


def test_an_alias_bomb_in_an_estate_is_a_located_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_estate("subscriptions: []\nx:\n" + _indented(BOMB), source="estate.yaml")
    assert "YAML aliases expand to more than" in str(caught.value)


def test_the_alias_crossing_the_bound_is_the_one_located() -> None:
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\nc: [*a, *a, *a]\n"
    check_alias_expansion(text, "f.yaml", limit=100)  # 30 nodes expanded: well under
    with pytest.raises(InputError) as caught:
        check_alias_expansion(text, "f.yaml", limit=20)
    # map 1, a 1 + [1,2,3] 4, b 1 + seq 1 + 4 + 4 = 16, c 1 + seq 1 + first *a 4 = 22 > 20
    assert str(caught.value.location) == "f.yaml:3:5"


def test_ordinary_aliases_still_load(tmp_path: Path) -> None:
    runbook = (
        'phase: "1.1"\ntitle: t\nvars:\n  base: &base {a: 1, b: [1, 2]}\n  copy: *base\n'
        "fix:\n  - {id: a, uses: set, with: {x: 1}}\n"
    )
    root = _workspace(tmp_path / "ws", runbook)
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 0, result.output
