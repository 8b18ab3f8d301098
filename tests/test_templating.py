"""The expression fast path in runbook.templating must agree with Jinja's compiler, sandbox included."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from templating_equivalence import CORPUS, check, run

from runbook.templating import render_string


def test_direct_evaluation_equals_compiled_jinja() -> None:
    total, direct, mismatches = run(count=1500, seed=7)
    assert direct > total // 2, "most expressions should take the fast path"
    assert mismatches == []


def test_sandbox_escapes_are_in_the_corpus_and_refused() -> None:
    escapes = [e for e in CORPUS if "__" in e]
    assert escapes, "the corpus must exercise internal attributes"
    _direct, mismatches = check(escapes)
    assert mismatches == []
    for expression in ("''.__class__.__mro__", "x.__class__"):
        try:
            render_string("{{ " + expression + " }}", {"x": 1})
        except Exception as exc:
            assert "sandbox" in str(exc) or "unsafe" in str(exc)
        else:
            raise AssertionError(f"{expression} was not refused")
