"""A run's evidence can be trusted: reproduce counts only failed checks, and only failures like the fault."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conftest import invoke
from runbook.record import read_record, record_paths


def _runbook(root: Path, verify: str, *, discovery: str = "") -> None:
    (root / "app.txt").write_text("model = dall-e-3\n")
    (root / "runbooks" / "phase-1.1.yaml").write_text(
        textwrap.dedent(
            """\
            phase: "1.1"
            title: Image model
            {discovery}
            fix:
              - id: fix-model
                uses: file.replace
                with: {{path: app.txt, replacements: [{{find: dall-e-3, replace: FLUX-1.1-pro}}]}}
            verify:
            {verify}
            """
        ).format(discovery=discovery, verify=textwrap.indent(textwrap.dedent(verify), "  "))
    )


def _record(root: Path):  # type: ignore[no-untyped-def]
    (path,) = record_paths(root / "reports", "1.1")
    return read_record(path)


def _notes(record) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {e["kind"]: e["message"] for e in record.raw_events if e.get("event") == "note"}


GREP = "{id: uses-flux, uses: shell, with: {cmd: [grep, -q, FLUX-1.1-pro, app.txt]}}"


def test_an_error_during_reproduce_stops_the_run_before_any_fix(local_workspace: Path) -> None:
    # A verify step that cannot run (an undefined name) is not evidence of the fault.
    _runbook(local_workspace, "- {id: probe, uses: shell, with: {cmd: [echo, '{{ configured }}']}}\n")
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1, result.output
    assert (local_workspace / "app.txt").read_text() == "model = dall-e-3\n"  # nothing was changed
    record = _record(local_workspace)
    steps = {(e["stage"], e["step"]): e for e in record.step_results()}
    assert steps[("reproduce", "probe")]["status"] == "error"
    assert steps[("fix", "fix-model")]["status"] == "skipped"
    assert steps[("fix", "fix-model")]["reason"] == "the fault could not be checked before the fix"
    assert "could not check the fault" in _notes(record)["reproduce_error"]
    report = (local_workspace / "reports" / "phase-1.1.md").read_text()
    assert "The runbook could not check the fault" in report
    assert "the fault is reproduced" not in report and "reproduced the fault" not in report


def test_a_failure_matching_the_signature_reproduces_and_the_report_says_so(local_workspace: Path) -> None:
    _runbook(local_workspace, f"- {GREP[:-1]}, reproduce: {{expect: ['output.rc == 1']}}}}\n")
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    record = _record(local_workspace)
    probe = next(e for e in record.step_results() if e["stage"] == "reproduce")
    assert probe["status"] == "failed"
    assert probe["signature"] == {"matched": True, "results": [{"that": "output.rc == 1", "passed": True}]}
    assert record.finished["reproduced"] is True
    report = (local_workspace / "reports" / "phase-1.1.md").read_text()
    assert "matched its expected signature" in report


def test_a_failure_unlike_the_fault_is_not_evidence(local_workspace: Path) -> None:
    # The check fails before the fix, but not the way the fault makes it fail (rc 1, not 2).
    _runbook(local_workspace, f"- {GREP[:-1]}, reproduce: {{expect: ['output.rc == 2']}}}}\n")
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1, result.output
    assert (local_workspace / "app.txt").read_text() == "model = dall-e-3\n"
    record = _record(local_workspace)
    assert "not the way the fault does" in _notes(record)["reproduce_mismatch"]
    report = (local_workspace / "reports" / "phase-1.1.md").read_text()
    assert "but not the way the fault does" in report and "output.rc == 2" in report


def test_when_discovery_fails_the_report_does_not_claim_anything_about_reproduce(local_workspace: Path) -> None:
    _runbook(
        local_workspace,
        f"- {GREP}\n",
        discovery="discovery:\n  - {id: look, uses: shell, with: {cmd: ['false']}}",
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1
    report = (local_workspace / "reports" / "phase-1.1.md").read_text()
    assert "did not reproduce" not in report and "every check passed before the fix" not in report
    assert "The reproduce checks did not run." in report
