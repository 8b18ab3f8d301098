"""One replacement engine: a fix applied twice changes nothing, for files as for cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import invoke
from runbook.replacements import Replacement, replace_in_text


def test_a_replacement_containing_its_search_text_is_applied_once() -> None:
    rep = [Replacement(find="f(", replace="f(model, ")]
    first = replace_in_text("y = f(x) + f(z)\n", rep)
    assert first.after == "y = f(model, x) + f(model, z)\n"
    second = replace_in_text(first.after, rep)
    assert second.status == "already" and second.after == first.after


def test_a_regex_that_matches_its_own_result_is_refused() -> None:
    outcome = replace_in_text("f(x)\n", [Replacement(find=r"f\(", replace="f(model, ", regex=True)])
    assert outcome.status == "failed" and "second run would apply it again" in outcome.results[0].message
    fixed = [Replacement(find=r"f\((?!model, )", replace="f(model, ", regex=True)]
    once = replace_in_text("f(x)\n", fixed)
    assert once.after == "f(model, x)\n" and replace_in_text(once.after, fixed).status == "already"


def test_file_replace_run_twice_changes_the_file_once(local_workspace: Path) -> None:
    (local_workspace / "app.py").write_text("result = f(x)\n")
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: t\nfix:\n'
        "  - id: fix\n    uses: file.replace\n    with:\n      path: app.py\n"
        '      replacements:\n        - {find: "f(", replace: "f(model, "}\n'
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    second = invoke(["run", "1.1"], cwd=local_workspace)
    assert second.exit_code == 0, second.output
    assert (local_workspace / "app.py").read_text() == "result = f(model, x)\n"


@pytest.mark.parametrize("count", [1, 3])
def test_counts_are_checked_and_nothing_is_written_on_mismatch(local_workspace: Path, count: int) -> None:
    (local_workspace / "app.py").write_text("a a\n")
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: t\nfix:\n'
        "  - id: fix\n    uses: file.replace\n    with:\n      path: app.py\n"
        f'      replacements:\n        - {{find: "a", replace: "b", count: {count}}}\n'
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1
    assert f"expected {count} occurrence" in result.output and "found 2" in result.output
    assert (local_workspace / "app.py").read_text() == "a a\n"
