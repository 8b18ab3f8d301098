"""A full disk or a read-only reports folder is a clear error that says nothing was lost (real tmpfs mounts)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import invoke
from runbook.record import read_record, record_paths

MANY_STEPS = 'phase: "1.1"\ntitle: t\nfix:\n' + "".join(
    f"  - {{id: s{i}, uses: shell, with: {{cmd: [python3, -c, \"print('x' * 3000)\"]}}}}\n" for i in range(40)
)


@pytest.fixture
def mounted(local_workspace: Path) -> Iterator[Path]:
    reports = local_workspace / "reports"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(reports)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield reports
    finally:
        subprocess.run(["umount", "-l", str(reports)], check=False)


def test_a_full_disk_mid_run_is_a_clear_error_and_the_record_stays_readable(local_workspace: Path, mounted: Path) -> None:
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(MANY_STEPS)
    result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert "no space left" in result.stderr.lower()
    assert "nothing already recorded was lost" in result.stderr
    assert "runbook run 1.1 --resume" in result.stderr
    (path,) = record_paths(mounted, "1.1")
    record = read_record(path)  # what was written before the disk filled still reads
    assert record.step_results(), "some steps were recorded before the disk filled"


def test_a_read_only_reports_folder_is_a_clear_error(local_workspace: Path, mounted: Path) -> None:
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text('phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    subprocess.run(["mount", "-o", "remount,ro", str(mounted)], check=True)
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code in (1, 2), result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert "read-only" in result.stderr.lower()
    assert str(Path("reports")) in result.stderr
