"""The sandboxed Jinja environment that renders step parameters, `when`, `until` and `expect`.

Every string a runbook hands to an action goes through here. The environment is a
`SandboxedEnvironment` with `StrictUndefined`: internal attributes (`__class__`, `__globals__`…) are
refused, and an undefined name is an error instead of an empty string. A string that is exactly one
`{{ expr }}` yields the native value (list, dict, number), not its text.
"""

from __future__ import annotations

import copy
import json
import math
import operator
import re
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.lexer import operators as lexer_operators
from jinja2.optimizer import Optimizer
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg

from .errors import SecurityViolation, TemplateError

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=False, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    # mappings that are not dicts (a target's settings, filled on first use) are objects too
    return dict(value) if isinstance(value, Mapping) else str(value)


def _regex_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.search(pattern, str(value), re.IGNORECASE if ignorecase else 0) is not None


def _regex_replace(value: Any, pattern: str, replacement: str = "") -> str:
    return re.sub(pattern, replacement, str(value))


def _regex_findall(value: Any, pattern: str) -> list[Any]:
    return re.findall(pattern, str(value))


# Bounds on what one operator may build: `9**(9**9)` would compute for hours and ignore Ctrl-C (it runs
# in C), `'a' * 10**9` takes a gigabyte. Real runbooks stay far below both.
MAX_POWER_BITS = 4096
MAX_REPEAT_ITEMS = 1_000_000


def _too_large(what: str) -> SecurityError:
    return SecurityError(f"{what} is too large for a runbook expression (the sandbox refuses it)")


def _bounded_pow(left: Any, right: Any) -> Any:
    numbers = isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
    if numbers and right * math.log2(abs(left)) > MAX_POWER_BITS:
        raise _too_large(f"{left} ** {right}")
    return operator.pow(left, right)


def _bounded_mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        repeated = (
            isinstance(seq, str | bytes | list | tuple) and isinstance(times, int) and not isinstance(times, bool)
        )
        if repeated and len(seq) * times > MAX_REPEAT_ITEMS:
            raise _too_large(f"repeating {type(seq).__name__} of {len(seq)} {times} times")
    return operator.mul(left, right)


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, with `**` and `*` bounded (also where Jinja would fold constants at compile time)."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            return _bounded_pow(left, right)
        if operator == "*":
            return _bounded_mul(left, right)
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The one sandboxed environment for runbook expressions (built once, reused)."""
    env = _BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(
        to_json=_to_json,
        regex_search=_regex_search,
        regex_replace=_regex_replace,
        regex_findall=_regex_findall,
    )
    env.tests["regex"] = _regex_search
    env.globals.pop("cycler", None)
    env.globals.pop("joiner", None)
    env.globals.pop("namespace", None)
    return env


def check_syntax(text: str) -> str | None:
    """Return a syntax error message for a template string, or None when it parses."""
    if "{" not in text:
        return None  # no block can start without `{`: plain text always parses (and is most strings)
    match = _SINGLE_EXPR.match(text)
    expr = match.group("expr") if match else None
    # Rendered as one expression: parsing it for the direct evaluator checks it, and the run that
    # follows finds it parsed (one parse per expression, not two).
    if expr is not None and "{{" not in expr and "}}" not in expr and _direct_expression(expr.strip()) is not None:
        return None
    tree, failed, message = _parse(text)
    if failed:
        return f"Jinja syntax error: {message}"
    return unknown_filter(tree)


def unknown_filter(tree: Any) -> str | None:
    """A filter or test the template names that the sandbox does not have (Jinja's parser accepts
    any name; only compiling or rendering refuses it), as a message with a did-you-mean."""
    from jinja2 import nodes

    from .errors import did_you_mean

    env = environment()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        is_filter = isinstance(node, nodes.Filter)
        known = env.filters if is_filter else env.tests
        if node.name not in known:
            kind = "filter" if is_filter else "test"
            hint = did_you_mean(node.name, sorted(known))
            return f"no {kind} named {node.name!r}: {hint}use one of Jinja's built-in {kind}s or runbook's (docs/guide/writing-runbooks.md lists them)"
    return None


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[Any, bool, str | None]:
    """(tree, failed, the syntax error's message) of a template string, parsed once."""
    try:
        return environment().parse(text), False, None
    except TemplateSyntaxError as exc:
        return None, True, exc.message


def parsed_template(text: str) -> Any:
    """Jinja's parse tree of a template string (shared with the syntax check: validate parses each
    text once), or None on a syntax error. The tree is shared: read it, never change it."""
    return _parse(text)[0]


def check_expression(text: str) -> str | None:
    """Return a syntax error message for a bare expression (`when`, `expect`), or None."""
    if _direct_expression(_strip_braces(text).strip()) is not None:
        return None  # parsed for the direct evaluator (and kept for the run): no need to compile it
    return _compile_check(_strip_braces(text))


@lru_cache(maxsize=4096)
def _compile_check(expr: str) -> str | None:
    """check_expression for what the direct evaluator leaves to Jinja's compiler, once per text (a
    step's `expect` and the report's claim often repeat it: ~10 ms of code generation each)."""
    try:
        environment().compile_expression(expr)
    except TemplateSyntaxError as exc:
        return f"Jinja syntax error in expression: {exc.message}"
    return None


def _strip_braces(text: str) -> str:
    match = _SINGLE_EXPR.match(text)
    return match.group("expr") if match else text


# Sized for the largest runbooks: validation parses every expression once and the run must find it
# still cached (at 4,096 entries a 5,000-step runbook of two expressions a step parsed each twice).
# An entry is ~1 KB, so a full cache is ~35 MB.
EXPRESSION_CACHE = 1 << 15


@lru_cache(maxsize=EXPRESSION_CACHE)
def _compiled_expression(expr: str) -> Evaluator:
    """A function of the context mapping: the direct evaluator, else Jinja's compiled expression."""
    direct = _direct_expression(expr)
    if direct is not None:
        return direct
    template = environment().compile_expression(expr, undefined_to_none=False)._template

    def run_compiled(context: Mapping[str, Any]) -> Any:
        # TemplateExpression.__call__ without its `dict(**context)` copy of every registered value
        jinja_context = _shared_context(template, context)
        for _ in template.root_render_func(jinja_context):
            pass
        return jinja_context.vars["result"]

    return run_compiled


def _shared_context(template: Any, context: Mapping[str, Any]) -> Any:
    """A Jinja context that reads `context` in place (no copy per render); names not in it fall
    through to the environment's globals, as `dict(globals, **context)` would resolve them."""
    return template.new_context(ChainMap(context, template.globals), shared=True)  # type: ignore[arg-type]


# Compiling an expression to Python costs about 1 ms (Jinja generates a module and `compile()`s
# it), and a runbook has one or more distinct expressions per step, so most are evaluated straight
# from Jinja's own parse tree instead: names, constants, literals, `.attr` and `[key]` through the
# same sandboxed `environment.getattr`/`getitem` the compiled code calls, operators, comparisons,
# `a if b else c`, and filters/tests that take no context, after the compiler's own constant folding.
# That is exactly the Python the compiler would generate for these nodes. Anything else (calls,
# slices, context filters…) is compiled. bench/templating_equivalence.py checks the two agree.
_BINARY: dict[type[nodes.Node], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Mul: _bounded_mul,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Pow: _bounded_pow,
    nodes.Mod: operator.mod,
}
_UNARY: dict[type[nodes.Node], Callable[[Any], Any]] = {nodes.Neg: operator.neg, nodes.Pos: operator.pos}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
# `self` is a template reference and `result` the compiled expression's own output variable.
_COMPILED_NAMES = frozenset({"self", "result"})
Evaluator = Callable[[Mapping[str, Any]], Any]


class _Compile(Exception):
    """The expression uses something the direct evaluator leaves to Jinja's compiler."""


@lru_cache(maxsize=EXPRESSION_CACHE)
def _direct_expression(expr: str) -> Evaluator | None:
    """`compile_expression(expr)` as a function of the context mapping (read in place, never
    copied), or None when the expression must be compiled."""
    env = environment()
    # Intercepted binary operators are fine: the direct evaluator uses the same bounded `**` and `*`.
    if env.is_async or env.intercepted_unops or env.autoescape:
        return None
    shape = _shape(expr)
    shaped = _shape_evaluator(shape[0]) if shape is not None else None
    if shape is not None and shaped is not None:  # else a node left to the compiler: parse the expression itself
        slots = shape[1]
        return lambda ctx: shaped(ctx, slots)
    tree = _optimized_tree(expr)
    if tree is None:
        return None
    try:
        return _evaluator(tree, env)
    except Exception:  # a node left to the compiler
        return None


def _optimized_tree(expr: str) -> Any:
    """Jinja's parse of `expr` after the compiler's constant folding, or None (a syntax error...)."""
    env = environment()
    try:
        parser = Parser(env, expr, state="variable")
        node = parser.parse_expression()
        if not parser.stream.eos:
            return None  # the compiler raises the syntax error
        node.set_environment(env)
        return Optimizer(env).visit(node, nodes.EvalContext(env))
    except Exception:  # a syntax error, or a constant that fails to fold
        return None


@lru_cache(maxsize=EXPRESSION_CACHE)
def _shape_tree(shape: str) -> Any:
    """The folded parse of a shape (one per shape, shared by every expression of that shape), or None
    when it has none or a number in it might have been folded with other constants."""
    tree = _optimized_tree(shape)
    return tree if tree is not None and _folds_alike(tree)[0] else None


def _folds_alike(node: Any) -> tuple[bool, bool, bool]:
    """(safe, constant, holds a number placeholder) of a shape's subtree.

    The compiler folds a subtree whose leaves are all constants (`-1`, `1 + 2`, `(not true)[0]`), and
    a fold can fail at compile time where the evaluation would not. A number placeholder is not a
    constant to the compiler, so a shape is used only where no constant-only subtree holds one: then
    the expression itself folds exactly where its shape does.
    """
    if isinstance(node, nodes.Name):
        number = node.name.startswith(_SLOT_INT)
        return True, number, number
    if isinstance(node, nodes.Const):
        return True, True, False
    constant, number, children = True, False, False
    for child in node.iter_child_nodes():
        safe, child_constant, child_number = _folds_alike(child)
        if not safe:
            return False, False, False
        constant, number, children = constant and child_constant, number or child_number, True
    constant = constant and children
    return not (constant and number), constant, number


# Shapes. Parsing costs ~0.25 ms an expression (Jinja's lexer, parser and optimizer), and runbooks
# repeat a few shapes with other names and numbers (`r1.value == base + 1`, `r2.value == base + 2`):
# an expression is cut into tokens the way Jinja's lexer cuts them, every variable name and decimal
# integer becomes a numbered placeholder, and the shape's parse and evaluator are reused (built once
# per shape, `_shape_evaluator`), the placeholders read at call time as the names and numbers of this
# expression (its slots). Only where that cannot change the parse: names after
# `.`, `|`, `is` (attributes, filters, tests), before `(` or `=`, keywords and Jinja's literal names
# stay as they are; anything unusual (non-ASCII, floats, `1_000`, `0x1f`, `}}`, a number after `|`
# or `is` or before `(` or `=`) has no shape and is parsed as itself. A placeholder for a number is not folded with its
# neighbours as the constant would be; evaluating it gives the same value (the folding is the same
# Python operation done earlier). bench/templating_equivalence.py and tests/test_templating.py
# compare the shaped evaluation with Jinja's own on the same expressions.
_SLOT = "__runbook_"
_SLOT_NAME, _SLOT_INT = f"{_SLOT}name_", f"{_SLOT}int_"
Slot = str | int  # a variable's name, or a number
_SHAPE_TOKEN = re.compile(
    r"\s*(?:"  # the spaces before a token go with it
    r"(?P<string>'[^'\\]*(?:\\.[^'\\]*)*'|\"[^\"\\]*(?:\\.[^\"\\]*)*\")"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<int>0|[1-9][0-9]*)"
    r"|(?P<op>" + "|".join(re.escape(op) for op in sorted(lexer_operators, key=len, reverse=True)) + "))",
    re.DOTALL,
)
_KEPT_NAMES = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"}
)
_NAMED_AFTER = frozenset({".", "|", "is"})  # the name that follows is an attribute, a filter or a test
_CALLED = re.compile(r"\s*(?:\(|=(?!=))")  # a name before `(` or a keyword argument's `=`
_AFTER_NUMBER = re.compile(r"[.\w]")  # a float, 1_000, 0x1f, 1e5: no shape


def _shape(expr: str) -> tuple[str, tuple[Slot, ...]] | None:
    """(the shape of `expr`, its names and numbers in order), or None when it has no safe shape."""
    if not expr.isascii() or "}}" in expr or "{{" in expr or _SLOT in expr:
        return None
    tokens: list[str] = []
    slots: list[Slot] = []
    position, end = 0, len(expr)
    match_token = _SHAPE_TOKEN.match
    while position < end:
        match = match_token(expr, position)
        if match is None:
            if expr[position:].isspace():
                break  # spaces after the last token
            return None
        position, kind = match.end(), match.lastgroup
        text = match.group(kind or 0)
        before = tokens[-1] if tokens else ""
        named = before in _NAMED_AFTER or (before == "not" and len(tokens) > 1 and tokens[-2] == "is")
        if kind == "name" and not (text in _KEPT_NAMES or text in _COMPILED_NAMES or named):
            if not _CALLED.match(expr, position):
                slots.append(text)
                text = f"{_SLOT_NAME}{len(slots) - 1}"
        elif kind == "int" and before != ".":
            if named or _AFTER_NUMBER.match(expr, position) or _CALLED.match(expr, position):
                return None
            slots.append(int(text))
            text = f"{_SLOT_INT}{len(slots) - 1}"
        tokens.append(text)
    return " ".join(tokens), tuple(slots)


def _evaluator(node: Any, env: SandboxedEnvironment, slots: Sequence[Slot] = ()) -> Evaluator:
    """A function of the template context that evaluates `node` as the compiled code would."""
    shaped = _shaped(node, env, placeholders=bool(slots))
    return lambda ctx: shaped(ctx, slots)


# A shaped evaluator takes the context and the expression's slots (its names and numbers, in the
# order of the shape's placeholders): built once per shape, it serves every expression of that shape.
Shaped = Callable[[Mapping[str, Any], Sequence[Slot]], Any]


@lru_cache(maxsize=EXPRESSION_CACHE)
def _shape_evaluator(shape: str) -> Shaped | None:
    """The evaluator of a shape's folded parse, or None when it has none or a node is left to the compiler."""
    tree = _shape_tree(shape)
    if tree is None:
        return None
    try:
        return _shaped(tree, environment(), placeholders=True)
    except Exception:  # a node left to the compiler: each expression is parsed as itself
        return None


def _shaped(node: Any, env: SandboxedEnvironment, *, placeholders: bool) -> Shaped:  # noqa: C901 - one branch per Jinja node kind, mirroring Jinja's compiler
    """`node` as a function of (context, slots) that evaluates it as the compiled code would; with
    `placeholders`, a shape's placeholder names read the name or number in their slot."""

    def build(child: Any) -> Shaped:
        return _shaped(child, env, placeholders=placeholders)

    kind = type(node)
    if kind is nodes.Const:
        value = node.value
        if isinstance(value, list | dict | set):  # a folded literal: the compiled code builds a new one
            return lambda _ctx, _slots: copy.deepcopy(value)
        return lambda _ctx, _slots: value
    if kind is nodes.Name:
        if node.ctx != "load" or node.name in _COMPILED_NAMES:
            raise _Compile()
        name, names, undefined = node.name, env.globals, env.undefined
        if name.startswith(_SLOT):
            if not placeholders:  # not a shape: such a name is left to the compiler
                raise _Compile()
            index = int(name.rpartition("_")[2])
            if name.startswith(_SLOT_INT):
                return lambda _ctx, slots: slots[index]

            def load_slot(ctx: Mapping[str, Any], slots: Sequence[Slot]) -> Any:
                slot = slots[index]
                if slot in ctx:
                    return ctx[slot]  # type: ignore[index]
                if slot in names:
                    return names[slot]
                return undefined(name=slot)  # type: ignore[arg-type]

            return load_slot

        def load(ctx: Mapping[str, Any], _slots: Sequence[Slot]) -> Any:
            if name in ctx:
                return ctx[name]
            if name in names:
                return names[name]
            return undefined(name=name)

        return load
    if kind is nodes.Getattr:
        target, attr, getattr_ = build(node.node), node.attr, env.getattr
        return lambda ctx, slots: getattr_(target(ctx, slots), attr)
    if kind is nodes.Getitem:
        if isinstance(node.arg, nodes.Slice):
            raise _Compile()
        target, key, getitem = build(node.node), build(node.arg), env.getitem
        return lambda ctx, slots: getitem(target(ctx, slots), key(ctx, slots))
    if kind in _BINARY:
        op, left, right = _BINARY[kind], build(node.left), build(node.right)
        return lambda ctx, slots: op(left(ctx, slots), right(ctx, slots))
    if kind in _UNARY:
        unary, operand = _UNARY[kind], build(node.node)
        return lambda ctx, slots: unary(operand(ctx, slots))
    if kind is nodes.And:
        left, right = build(node.left), build(node.right)
        return lambda ctx, slots: left(ctx, slots) and right(ctx, slots)
    if kind is nodes.Or:
        left, right = build(node.left), build(node.right)
        return lambda ctx, slots: left(ctx, slots) or right(ctx, slots)
    if kind is nodes.Not:
        operand = build(node.node)
        return lambda ctx, slots: not operand(ctx, slots)
    if kind is nodes.Compare:
        return _compare(node, build)
    if kind is nodes.CondExpr:
        if node.expr2 is None:
            raise _Compile()
        test, yes, no = build(node.test), build(node.expr1), build(node.expr2)
        return lambda ctx, slots: yes(ctx, slots) if test(ctx, slots) else no(ctx, slots)
    if kind is nodes.Concat:
        parts = [build(part) for part in node.nodes]
        return lambda ctx, slots: "".join(map(str, tuple(part(ctx, slots) for part in parts)))
    if kind in (nodes.Tuple, nodes.List):
        if getattr(node, "ctx", "load") != "load":
            raise _Compile()
        items = [build(item) for item in node.items]
        make: Callable[[Any], Any] = tuple if kind is nodes.Tuple else list
        return lambda ctx, slots: make([item(ctx, slots) for item in items])
    if kind is nodes.Dict:
        pairs = [(build(p.key), build(p.value)) for p in node.items]
        return lambda ctx, slots: {key(ctx, slots): value(ctx, slots) for key, value in pairs}
    if kind in (nodes.Filter, nodes.Test):
        return _filter_or_test(node, env, build)
    raise _Compile()


def _compare(node: Any, build: Callable[[Any], Shaped]) -> Shaped:
    first = build(node.expr)
    steps = [(_COMPARE[operand.op], build(operand.expr)) for operand in node.ops]

    def compare(ctx: Mapping[str, Any], slots: Sequence[Slot]) -> Any:
        # Python's chained comparison: `a < b < c` is `a < b and b < c`, b evaluated once.
        left, result = first(ctx, slots), True
        for op, operand in steps:
            right = operand(ctx, slots)
            result = op(left, right)
            if not result:
                return result
            left = right
        return result

    return compare


def _filter_or_test(node: Any, env: SandboxedEnvironment, build: Callable[[Any], Shaped]) -> Shaped:
    table = env.filters if isinstance(node, nodes.Filter) else env.tests
    func: Any = table.get(node.name)
    if func is None or node.node is None or node.dyn_args is not None or node.dyn_kwargs is not None:
        raise _Compile()
    passed = _PassArg.from_obj(func)
    if passed not in (None, _PassArg.environment):
        raise _Compile()
    value = build(node.node)
    args = [build(arg) for arg in node.args]
    kwargs: list[tuple[str, Shaped]] = [(kw.key, build(kw.value)) for kw in node.kwargs]
    lead = (env,) if passed is _PassArg.environment else ()

    def apply(ctx: Mapping[str, Any], slots: Sequence[Slot]) -> Any:
        subject = value(ctx, slots)
        positional = [arg(ctx, slots) for arg in args]
        return func(*lead, subject, *positional, **{key: kw(ctx, slots) for key, kw in kwargs})

    return apply


@lru_cache(maxsize=4096)
def _compiled_template(text: str) -> Any:
    return environment().from_string(text)


def _fail(exc: Exception, source: str) -> TemplateError | SecurityViolation:
    if isinstance(exc, SecurityError):
        too_large = "too large for a runbook expression" in str(exc)
        return SecurityViolation(
            f"template refused by the sandbox: {exc} (in {source!r})",
            hint=f"keep powers under {MAX_POWER_BITS} bits and repetitions under {MAX_REPEAT_ITEMS:,} items"
            if too_large
            else "templates may read values, not Python internals; remove the attribute access",
        )
    if isinstance(exc, UndefinedError):
        return TemplateError(
            f"undefined value in {source!r}: {exc.message}",
            hint="define it under `vars:`, register it from an earlier step, or pass --var NAME=VALUE",
        )
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(f"Jinja syntax error in {source!r}: {exc.message}")
    return TemplateError(f"cannot render {source!r}: {type(exc).__name__}: {exc}")


def render_string(text: str, context: Mapping[str, Any]) -> Any:
    """Render one string; `{{ expr }}` alone yields the native value."""
    if "{" not in text:
        return text
    try:
        match = _SINGLE_EXPR.match(text)
        if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
            # The sandbox answers some refused accesses with an undefined value, and a list or a map()
            # may hold undefined items: make them fail here, as a located template error.
            return _materialised(_compiled_expression(match.group("expr").strip())(context))
        template = _compiled_template(text)
        # Template.render without its `dict(**context)` copy
        return template.environment.concat(template.root_render_func(_shared_context(template, context)))
    except Exception as exc:
        raise _fail(exc, text) from exc


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like value (dicts, lists), keeping other types."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, Mapping):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context) for v in value]
    return value


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a condition (`when`, `until`, `expect`): bare (`x > 1`) or braced (`{{ x > 1 }}`)."""
    expr = _strip_braces(expression).strip()
    try:
        return _materialised(_compiled_expression(expr)(context))
    except Exception as exc:
        raise _fail(exc, expression) from exc


def _materialised(value: Any, depth: int = 0) -> Any:
    """A native result with no undefined value anywhere in it, and lazy results (map, select) as lists."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if depth > 64 or isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: _materialised(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_materialised(v, depth + 1) for v in value]
    if isinstance(value, Iterator):
        return [_materialised(v, depth + 1) for v in value]
    return value
