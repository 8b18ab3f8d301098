"""The expression fast path in runbook.templating must agree with Jinja's compiler, sandbox included."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

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


def test_expressions_of_one_shape_share_a_parse_and_keep_their_own_names_and_numbers() -> None:
    from templating_equivalence import shaped

    from runbook.templating import _shape, evaluate

    assert shaped(CORPUS) > len(CORPUS) // 2
    context = {"base": 7, **{f"r{i}": {"value": 7 + i} for i in range(3)}}
    first, second = _shape("r1.value == base + 1"), _shape("r2.value == base + 2")
    assert first is not None and second is not None and first[0] == second[0]
    assert [evaluate(f"r{i}.value == base + {i}", context) for i in range(3)] == [True, True, True]
    assert evaluate("r2.value == base + 1", context) is False
    # where a placeholder could change the parse, there is no shape: the expression is parsed as itself
    for expression in ("l.0", "x + 1.5", "01 + x", "x | 1", "x is 2", "d | to_json(1=2)", "x + 1_000"):
        shape = _shape(expression)
        assert shape is None or "__runbook_int_" not in shape[0].split(".")[-1], expression


def test_an_expression_left_to_the_compiler_is_compiled_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook import templating

    compiled: list[str] = []
    env = templating.environment()
    real = env.compile_expression

    def counting(source: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(env, "compile_expression", counting)
    templating._compile_check.cache_clear()
    # A filter chain the direct evaluator leaves to Jinja (phase 1.5's claim and its verify step share it).
    text = "deployments.deployments | selectattr('image') | map(attribute='account') | unique | list | length == 1"
    assert templating._direct_expression(text) is None
    assert templating.check_expression(text) is None
    assert templating.check_expression(text) is None
    assert compiled == [text]
    bad = "items | selectattr('x') | nosuchfilter"
    first = templating.check_expression(bad)
    assert first is not None and "nosuchfilter" in first
    assert templating.check_expression(bad) == first and compiled.count(bad) == 1
