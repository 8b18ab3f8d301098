"""Correctness guard for the executor's expression fast path (not a timing): direct == compiled.

`runbook.templating` evaluates most step expressions straight from Jinja's parse tree instead of
compiling them (see `_direct_expression`). This checks, on a fixed corpus of tricky expressions and a
few thousand random ones, that the direct evaluator and Jinja's `compile_expression` give the same
value, or the same exception type and message, in the same sandboxed environment. `bench/run.py`
runs it before the executor benchmark; it also runs on its own: `python3 bench/templating_equivalence.py`.
"""

from __future__ import annotations

import copy
import random
import re
import sys
from typing import Any

from jinja2 import Undefined

from runbook.templating import _compiled_expression, _direct_expression, environment

# fmt: off
CORPUS = [
    "x", "nothing", "range", "dict", "lipsum is defined", "self", "result", "loop", "x.real",
    "d.a", "d.missing", "d['a']", "d[k]", "l[0]", "l[10]", "l[-1]", "l[1:2]", "s.upper", "d.items",
    "d.__class__", "s.__class__.__mro__", "l.__len__", "x.__class__", "s.format", "d.__dict__",
    "x + 1", "x / 0", "x // 2", "x ** 2", "x % 3", "-x", "+x", "s * 3", "s + 1", "nothing + 1",
    "x == 1", "1 < x < 3", "0 < x < 1", "x in l", "'a' not in s", "nothing == 1", "x > 'a'", "1 < 2 < nothing",
    "x and y", "nothing or 1", "not x", "not nothing", "none", "true", "false", "True", "None",
    "[1, x, 'a']", "(1,)", "()", "{'a': x, 'b': [y]}", "(x, y)", "{}", "[]",
    "x if y else z", "x if nothing else z", "x if y", "nothing if y else z",
    "'a' ~ x ~ 'b'", "'a' ~ nothing", "s ~ l",
    "l | length", "l | first", "s | upper", "nothing | default(5)", "x | default(5)", "l | join(',')",
    "l | map('upper') | list", "d | tojson", "l | sum", "x | int", "'12' | int + 1", "s | regex_search('b')",
    "d | to_json", "d | to_json(indent=2)", "l | unknown_filter", "s | replace('a', 'b')", "s | truncate(3)",
    "x is defined", "nothing is defined", "nothing is undefined", "x is number", "s is regex('a')",
    "x is divisibleby 2", "none is none", "x is unknown_test", "l is iterable", "d is mapping",
    "range(3)", "d.items()", "s.upper()", "x.__class__.__subclasses__()", "dict(a=1)",
    "'%s-%d' % (s, x)", "'{0.__class__}'.format(x)", "l[0] + l[1] * (x - y) / 2",
    "d.a.b", "d['missing']['deeper']", "steps.first.output.rc == 0", "steps['first'].status in ['ok', 'changed']",
    "output.rc == 0 and 'ready' in output.stdout", "1 +", "x y", "", "{{ x }}", "x |",
    # shapes (names and numbers as placeholders): where a number or a name must not become one
    "l.0", "x .real", "d . a", "steps . first . status", "x is divisibleby 3", "x is not divisibleby 2",
    "x is not 1", "x | 1", "x is 2", "l | default(1=2)", "d | to_json(1=2)", "-1", "1 + 2", "(not true)[0]",
    "(not true)[0] if x else 1", "1 if true else nothing", "[1, 2][0]", "{1: x}[1]", "01 + x", "x+1", "x-1",
    "l[1] + l[0]", "x + 1 if y else 2", "0 < x < 10", "x * 2 ** 2", "x ** 2 ** 3", "2 * 3 + x", "1_000 + x",
    "0x1f + x", "1e3 + x", "x + 1.5", "x.1", "l[0].real", "d['a'] + 1", "d.a + 1 == 2", "nothing + 1 == 2",
    "true + 1", "none + 1", "x + 1 == y - 1", "__runbook_name_0 + 1", "x ~ 1 ~ y", "k ~ 10", "(1, x)", "(x, 1)[1]",
]

CONTEXTS: list[dict[str, Any]] = []
CONTEXT: dict[str, Any] = {
    "x": 2,
    "y": 0,
    "z": "zed",
    "s": "abc",
    "k": "a",
    "l": ["p", "q", "r"],
    "d": {"a": 1, "b": {"c": [1, 2]}},
    "steps": {"first": {"output": {"rc": 0, "stdout": "ready\n"}, "status": "ok"}},
    "output": {"rc": 0, "stdout": "all ready"},
}
# Same names, other types: empties, None, floats, a sandbox-sensitive object.
OTHER_CONTEXT: dict[str, Any] = {
    "x": 1.5,
    "y": None,
    "z": "",
    "s": "",
    "k": 0,
    "l": [],
    "d": {"a": None},
    "steps": {"first": {"output": {"rc": 1, "stdout": ""}, "status": "failed"}},
    "output": None,
}
CONTEXTS.extend([CONTEXT, OTHER_CONTEXT])

ATOMS = ["x", "y", "z", "s", "k", "l", "d", "nothing", "1", "0", "2.5", "'a'", "none", "true", "false",
         "d.a", "d.b.c", "l[0]", "d[k]", "steps.first.output.rc", "output.stdout", "[x, 1]", "(y,)", "{'q': s}"]
BINARY = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or"]
POSTFIX = ["| length", "| default(3)", "| upper", "| first", "| int", "| string", "| list", "| abs",
           "is defined", "is none", "is string", "is number", ".real", "[0]", "['a']"]
# fmt: on


def random_expression(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice(ATOMS)
    if roll < 0.65:
        return f"{random_expression(rng, depth + 1)} {rng.choice(BINARY)} {random_expression(rng, depth + 1)}"
    if roll < 0.75:
        return f"not {random_expression(rng, depth + 1)}"
    if roll < 0.85:
        a, b, c = (random_expression(rng, depth + 1) for _ in range(3))
        return f"({a} if {b} else {c})"
    return f"({random_expression(rng, depth + 1)}) {rng.choice(POSTFIX)}"


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def outcome(func: Any, context: dict[str, Any], *, mapping: bool = False) -> tuple[str, str]:
    """What `func` makes of `context`: called as Jinja calls it (`**context`), or with the mapping."""
    try:
        value = func(copy.deepcopy(context)) if mapping else func(**copy.deepcopy(context))
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"
    if isinstance(value, Undefined):
        return "undefined", f"{type(value).__name__}: {value._undefined_message}"
    return "value", f"{type(value).__name__}: {_ADDRESS.sub('', repr(value))}"


def shaped(expressions: list[str]) -> int:
    """How many of `expressions` reuse the parse of their shape (names and numbers as placeholders)."""
    from runbook.templating import _shape, _shape_tree

    return sum(1 for e in expressions if (shape := _shape(e)) is not None and _shape_tree(shape[0]) is not None)


def check(expressions: list[str]) -> tuple[int, list[str]]:
    """(expressions evaluated directly, mismatches)."""
    env = environment()
    direct_count = 0
    mismatches = []
    for expr in expressions:
        direct = _direct_expression(expr)
        try:
            compiled = env.compile_expression(expr, undefined_to_none=False)
        except Exception as exc:
            if direct is not None:
                mismatches.append(f"{expr!r}: direct evaluator accepted what the compiler refuses ({exc})")
            continue
        if direct is not None:
            direct_count += 1
            # validation trusts the direct parse in place of Jinja's template parse
            try:
                env.parse("{{ " + expr + " }}")
            except Exception as exc:
                mismatches.append(f"{expr!r}: direct evaluator accepted what the template parser refuses ({exc})")
        # runbook's path (direct, or compiled but fed the context in place) against Jinja's own call
        ours = _compiled_expression(expr)
        for context in CONTEXTS:
            got, want = outcome(ours, context, mapping=True), outcome(compiled, context)
            if got != want:
                kind = "direct" if direct is not None else "compiled, shared context"
                mismatches.append(f"{expr!r}: {kind} {got} != compiled {want}")
    return direct_count, mismatches


# Whole templates: runbook renders them against the context in place (no copy per render).
TEMPLATES = [
    "plain {{ x }} text", "{{ x }}{{ y }}", "{% for i in range(3) %}{{ i }},{% endfor %}", "{% set z = 2 %}{{ z }}",
    "{% if x %}yes{% else %}no{% endif %}", "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(x) }}",
    "{{ missing }}", "{{ x.__class__ }}", "{{ lipsum is defined }} {{ dict(a=1) }}", "{{ range(2) | list }} end",
    "{% for k in d %}{{ k }}={{ d[k] }};{% endfor %}", "{{ x | to_json }} and {{ self }}", "{{ loop }} x",
    "{% with q = x %}{{ q }}{% endwith %}", "{{ namespace }} {{ cycler }}",
]


def check_templates() -> list[str]:
    from runbook.templating import render_string

    env = environment()
    mismatches = []
    for text in TEMPLATES:
        for context in CONTEXTS:
            got = outcome(lambda ctx, t=text: render_string(t, ctx), context, mapping=True)
            want = outcome(lambda t=text, **ctx: env.from_string(t).render(**ctx), context)
            # runbook wraps errors in its own; compare the kind of outcome and the value
            if got[0] != want[0] or (got[0] != "error" and got != want):
                mismatches.append(f"template {text!r}: runbook {got} != jinja {want}")
    return mismatches


def run(count: int = 3000, seed: int = 1) -> tuple[int, int, list[str]]:
    rng = random.Random(seed)
    expressions = CORPUS + [random_expression(rng) for _ in range(count)]
    # The same expressions with other numbers and names: the runs below find their shapes parsed.
    renamed = [re.sub(r"(?<![.\w])(\d+)(?![.\w])", lambda m: str(int(m.group()) + 3), e) for e in expressions]
    renamed = [re.sub(r"\b([xyz])\b", lambda m: {"x": "y", "y": "z", "z": "x"}[m.group()], e) for e in renamed]
    expressions = expressions + [e for e in renamed if e not in expressions]
    direct, mismatches = check(expressions)
    return len(expressions), direct, mismatches + check_templates()


if __name__ == "__main__":
    total, direct, bad = run()
    print(f"{total} expressions, {direct} evaluated directly, {len(bad)} mismatches")
    print(f"shapes reused: {shaped(CORPUS)} of {len(CORPUS)} corpus expressions")
    for line in bad[:40]:
        print("  " + line)
    sys.exit(1 if bad else 0)
