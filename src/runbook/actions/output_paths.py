"""Checks a runbook's template expressions against the declared outputs of the steps they read.

`undeclared_paths(steps)` parses every template and expression of the steps (`with`, `when`,
`until`, `expect`) with Jinja's own parser and follows each attribute path that starts at a
registered step output (`deployments.deployments[0].model`), at `steps.<id>.output` or, in `expect`
and `until`, at `output`. List items are followed through `[0]`, `for` loops and the filters that
keep or pick items (`selectattr`, `first`, `map(attribute=…)` …); a `set` step's output is its
`with` keys, typed by their expressions where they are one `{{ … }}`. A field the action does not
declare is a `PathProblem` naming the expression, the step and the missing field. Anything it
cannot type (vars, `target`, arbitrary JSON, calls) is not checked.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from . import get
from .outputs import Output, element, is_model, without_none

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
# Filters whose result is a list of the same items as their input.
_SAME_ITEMS = frozenset({"select", "reject", "selectattr", "rejectattr", "list", "sort", "unique", "reverse"})
# Filters that pick one item.
_ONE_ITEM = frozenset({"first", "last", "random", "min", "max"})
# Filters whose first argument (or `attribute=`) names a field of the items.
_ATTRIBUTE_FILTERS = frozenset({"selectattr", "rejectattr", "map", "sort", "unique", "min", "max", "sum", "groupby"})


class StepLike(Protocol):
    id: str
    uses: str
    with_: dict[str, Any]
    register_: str | None
    expect: list[Any]
    when: str | bool | None
    until: str | None


@dataclass(frozen=True)
class PathProblem:
    """`expression` in step `step` reads `path`, whose last part `missing` is not declared."""

    step: str
    where: str  # with.url, when, expect[0] …
    expression: str
    path: str
    missing: str
    source: str  # which output: "step deployments (azure.deployments)"

    def __str__(self) -> str:
        return (
            f"step {self.step}, {self.where}: {self.expression.strip()!r} reads {self.path}, "
            f"but {self.source} declares no field {self.missing!r}"
        )


# ------------------------------------------------------------------------------------- shapes


class Shape:
    """What is known about a value: nothing (the base), a model, a list, a mapping, or fixed keys."""


ANY = Shape()


@dataclass(frozen=True, eq=False)
class ModelShape(Shape):
    model: type[Any]
    source: str


@dataclass(frozen=True, eq=False)
class ListShape(Shape):
    item: Shape


@dataclass(frozen=True, eq=False)
class MapShape(Shape):
    value: Shape


@dataclass(frozen=True, eq=False)
class KeysShape(Shape):
    """A mapping with known keys (a `set` step's output, `steps`); `strict`: other keys are errors."""

    keys: Mapping[str, Shape]
    source: str
    strict: bool = True


def shape_of(annotation: Any, source: str) -> Shape:
    """The shape of a value of type `annotation` (`X | None` read as X)."""
    annotation = without_none(annotation)
    if is_model(annotation):
        return ModelShape(annotation, source)
    inner = element(annotation)
    if inner is None:
        return ANY
    kind, item = inner
    return ListShape(shape_of(item, source)) if kind == "[]" else MapShape(shape_of(item, source))


@dataclass(frozen=True)
class _Typed:
    shape: Shape
    path: str


_UNKNOWN = _Typed(ANY, "")


# ------------------------------------------------------------------------------------- walking


@dataclass
class _Walker:
    step: str
    where: str
    expression: str
    problems: list[PathProblem] = field(default_factory=list)

    def member(self, base: _Typed, name: str, shown: str) -> _Typed:
        """`base.name` / `base['name']`."""
        path = base.path + shown if base.path else ""
        shape = base.shape
        if isinstance(shape, ModelShape):
            fields = {info.alias or key: info for key, info in shape.model.model_fields.items()}
            if name in fields:
                return _Typed(shape_of(fields[name].annotation, shape.source), path)
            if shape.model.model_config.get("extra") != "allow":
                self._missing(path, name, shape.source)
            return _Typed(ANY, path)
        if isinstance(shape, KeysShape):
            if name in shape.keys:
                return _Typed(shape.keys[name], path)
            if shape.strict:
                self._missing(path, name, shape.source)
            return _Typed(ANY, path)
        if isinstance(shape, MapShape):
            return _Typed(shape.value, path)
        return _Typed(ANY, path)

    def _missing(self, path: str, name: str, source: str) -> None:
        self.problems.append(PathProblem(self.step, self.where, self.expression, path, name, source))

    def expr(self, node: nodes.Node, scope: Mapping[str, _Typed]) -> _Typed:
        if isinstance(node, nodes.Name):
            return scope.get(node.name, _UNKNOWN)
        if isinstance(node, nodes.Getattr):
            return self.member(self.expr(node.node, scope), node.attr, f".{node.attr}")
        if isinstance(node, nodes.Getitem):
            return self._item(node, scope)
        if isinstance(node, nodes.Filter):
            return self._filter(node, scope)
        if isinstance(node, nodes.Call):
            # A method call (`x.items()`): the method is no field; check what it is called on.
            callee = node.node.node if isinstance(node.node, nodes.Getattr) else node.node
            self.expr(callee, scope)
            self._children(node, scope, skip=(node.node,))
            return _UNKNOWN
        if isinstance(node, nodes.Or | nodes.CondExpr):
            parts = [node.left, node.right] if isinstance(node, nodes.Or) else [node.expr1, node.expr2]
            if isinstance(node, nodes.CondExpr):
                self.expr(node.test, scope)
            typed = [self.expr(part, scope) for part in parts if part is not None]
            return next((t for t in typed if t.shape is not ANY), _UNKNOWN)
        self._children(node, scope)
        return _UNKNOWN

    def _children(self, node: nodes.Node, scope: Mapping[str, _Typed], skip: tuple[nodes.Node, ...] = ()) -> None:
        for child in node.iter_child_nodes():
            if not any(child is s for s in skip):
                self.expr(child, scope)

    def _item(self, node: nodes.Getitem, scope: Mapping[str, _Typed]) -> _Typed:
        base = self.expr(node.node, scope)
        arg = node.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            return self.member(base, arg.value, f"[{arg.value!r}]")
        path = base.path + "[…]" if base.path else ""
        if isinstance(arg, nodes.Slice):
            self._children(arg, scope)
            return _Typed(base.shape if isinstance(base.shape, ListShape) else ANY, path)
        if not isinstance(arg, nodes.Const):
            self.expr(arg, scope)
        elif base.path:
            path = f"{base.path}[{arg.value!r}]"
        if isinstance(base.shape, ListShape):
            return _Typed(base.shape.item, path)
        if isinstance(base.shape, MapShape):
            return _Typed(base.shape.value, path)
        return _Typed(ANY, path)

    def _filter(self, node: nodes.Filter, scope: Mapping[str, _Typed]) -> _Typed:
        base = self.expr(node.node, scope) if node.node is not None else _UNKNOWN
        for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
            self.expr(arg, scope)
        if node.dyn_args is not None:
            self.expr(node.dyn_args, scope)
        if node.dyn_kwargs is not None:
            self.expr(node.dyn_kwargs, scope)
        item = base.shape.item if isinstance(base.shape, ListShape) else ANY
        item_path = f"{base.path}[]" if base.path else ""
        attribute = self._attribute_argument(node)
        picked = _Typed(item, item_path)
        if attribute is not None and node.name in _ATTRIBUTE_FILTERS:
            for part in attribute.split("."):
                shown = f"[{part}]" if part.isdigit() else f".{part}"
                picked = self.member(picked, part, shown) if not part.isdigit() else _Typed(ANY, picked.path)
        if node.name == "map" and attribute is not None:
            return _Typed(ListShape(picked.shape), picked.path)
        if node.name in _SAME_ITEMS:
            return _Typed(base.shape if isinstance(base.shape, ListShape) else ANY, base.path)
        if node.name in _ONE_ITEM:
            return _Typed(item, item_path)
        if node.name == "default":
            return base
        return _UNKNOWN

    @staticmethod
    def _attribute_argument(node: nodes.Filter) -> str | None:
        for kw in node.kwargs:
            if kw.key == "attribute" and isinstance(kw.value, nodes.Const) and isinstance(kw.value.value, str):
                return kw.value.value
        if node.name in ("selectattr", "rejectattr") and node.args:
            first = node.args[0]
            if isinstance(first, nodes.Const) and isinstance(first.value, str):
                return first.value
        return None

    def body(self, statements: Iterable[nodes.Node], scope: dict[str, _Typed]) -> None:
        for statement in statements:
            if isinstance(statement, nodes.For):
                iterated = self.expr(statement.iter, scope)
                inner = dict(scope)
                if isinstance(statement.target, nodes.Name):
                    item = iterated.shape.item if isinstance(iterated.shape, ListShape) else ANY
                    inner[statement.target.name] = _Typed(item, f"{iterated.path}[]" if iterated.path else "")
                if statement.test is not None:
                    self.expr(statement.test, inner)
                self.body(statement.body, inner)
                self.body(statement.else_, scope)
            elif isinstance(statement, nodes.Assign) and isinstance(statement.target, nodes.Name):
                scope[statement.target.name] = self.expr(statement.node, scope)
            elif isinstance(statement, nodes.If):
                self.expr(statement.test, scope)
                self.body(statement.body, scope)
                for branch in statement.elif_:
                    self.body([branch], scope)
                self.body(statement.else_, scope)
            elif isinstance(statement, nodes.Output):
                for part in statement.nodes:
                    self.expr(part, scope)
            else:
                for child in statement.iter_child_nodes():
                    if isinstance(child, nodes.Stmt):
                        self.body([child], scope)
                    else:
                        self.expr(child, scope)


def _parse(text: str, *, expression: bool) -> nodes.Template | None:
    from ..templating import environment

    if expression and not _SINGLE_EXPR.match(text):
        text = "{{ " + text + " }}"
    try:
        return environment().parse(text)
    except TemplateSyntaxError:
        return None  # `runbook validate` reports syntax errors; nothing to follow here


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    if len(tree.body) == 1 and isinstance(tree.body[0], nodes.Output) and len(tree.body[0].nodes) == 1:
        only = tree.body[0].nodes[0]
        return None if isinstance(only, nodes.TemplateData) else only
    return None


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def _check(step: StepLike, where: str, text: str, scope: dict[str, _Typed], *, expression: bool,
           problems: list[PathProblem]) -> _Typed | None:
    if "{" not in text and not expression:
        return None
    tree = _parse(text, expression=expression)
    if tree is None:
        return None
    walker = _Walker(step.id, where, text)
    single = _single_expression(tree)
    typed = walker.expr(single, scope) if single is not None else None
    if single is None:
        walker.body(tree.body, dict(scope))
    problems.extend(walker.problems)
    return typed


def _output_shape(step: StepLike, model: type[Output] | None, with_types: dict[str, Shape]) -> Shape:
    source = f"step {step.id} ({step.uses})"
    if model is None:
        return ANY
    if model.echoes_with:
        return KeysShape(with_types, source)
    return ModelShape(model, source)


def undeclared_paths(steps: Iterable[StepLike]) -> list[PathProblem]:
    """Every template path, in run order, that reads a field its step's action does not declare."""
    problems: list[PathProblem] = []
    scope: dict[str, _Typed] = {}
    step_entries: dict[str, Shape] = {}
    for step in steps:
        scope["steps"] = _Typed(KeysShape(dict(step_entries), "the steps before it", strict=False), "steps")
        spec = get(step.uses)
        if isinstance(step.when, str):
            _check(step, "when", step.when, scope, expression=True, problems=problems)
        with_types: dict[str, Shape] = {}
        for key, value in step.with_.items():
            shape: Shape = ANY
            for where, text in _strings(value, f"with.{key}"):
                typed = _check(step, where, text, scope, expression=False, problems=problems)
                if where == f"with.{key}" and typed is not None:
                    shape = typed.shape
            with_types[key] = shape
        own = _output_shape(step, spec.output, with_types)
        own_scope = {**scope, "output": _Typed(own, "output")}
        if step.until is not None:
            _check(step, "until", step.until, own_scope, expression=True, problems=problems)
        for index, item in enumerate(step.expect):
            that = item if isinstance(item, str) else getattr(item, "that", None)
            if isinstance(that, str):
                _check(step, f"expect[{index}]", that, own_scope, expression=True, problems=problems)
        step_entries[step.id] = KeysShape(
            {"output": own, "status": ANY}, f"steps.{step.id}", strict=True
        )
        if step.register_:
            scope[step.register_] = _Typed(own, step.register_)
    return problems
