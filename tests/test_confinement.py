"""Paths in the workspace config stay inside the workspace unless `allowed_paths` names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import invoke

CONFIG = """\
project: t
{extra}plan:
  - group: "1"
    phases: [{{id: "1.1", title: t}}]
targets:
  local: {{kind: local}}
default_target: local
"""


def _workspace(root: Path, extra: str) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "runbook.yaml").write_text(CONFIG.format(extra=extra))
    (root / "runbooks" / "phase-1.1.yaml").write_text('phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    return root


@pytest.mark.parametrize(
    ("extra", "line", "col"),
    [
        ("paths:\n  reports: ../../outside/reports\n", 3, 12),
        ("env_file: ../secrets.env\n", 2, 11),
        ("notebooks: [/etc/passwd]\n", 2, 13),
    ],
)
def test_config_paths_leaving_the_workspace_are_refused(tmp_path: Path, extra: str, line: int, col: int) -> None:
    root = _workspace(tmp_path / "ws", extra)
    result = invoke(["run", "1.1"], cwd=root)
    assert result.exit_code == 2, result.output
    assert f"runbook.yaml:{line}:{col}: " in result.stderr
    assert "outside the workspace" in result.stderr and "allowed_paths" in result.stderr
    assert not (tmp_path / "outside").exists()
    assert not (root / "reports").exists()  # nothing was written anywhere


def test_a_symlinked_reports_folder_pointing_out_is_refused(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", "")
    (tmp_path / "elsewhere").mkdir()
    (root / "reports").symlink_to(tmp_path / "elsewhere")
    result = invoke(["run", "1.1"], cwd=root)
    assert result.exit_code == 2, result.output
    assert "outside the workspace" in result.stderr
    assert not any((tmp_path / "elsewhere").iterdir())


def test_allowed_paths_lets_a_named_folder_in(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", "allowed_paths: [../shared-reports]\npaths:\n  reports: ../shared-reports\n")
    result = invoke(["run", "1.1"], cwd=root)
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "shared-reports" / "runs").rglob("*.jsonl"))
