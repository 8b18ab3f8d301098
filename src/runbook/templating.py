"""The sandboxed Jinja environment that renders step parameters, `when`, `until` and `expect`.

Every string a runbook hands to an action goes through here. The environment is a
`SandboxedEnvironment` with `StrictUndefined`: internal attributes (`__class__`, `__globals__`…) are
refused, and an undefined name is an error instead of an empty string. A string that is exactly one
`{{ expr }}` yields the native value (list, dict, number), not its text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from .errors import SecurityViolation, TemplateError

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=False, ensure_ascii=False, default=str)


def _regex_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.search(pattern, str(value), re.IGNORECASE if ignorecase else 0) is not None


def _regex_replace(value: Any, pattern: str, replacement: str = "") -> str:
    return re.sub(pattern, replacement, str(value))


def _regex_findall(value: Any, pattern: str) -> list[Any]:
    return re.findall(pattern, str(value))


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The one sandboxed environment for runbook expressions (built once, reused)."""
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
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
    try:
        environment().parse(text)
    except TemplateSyntaxError as exc:
        return f"Jinja syntax error: {exc.message}"
    return None


def check_expression(text: str) -> str | None:
    """Return a syntax error message for a bare expression (`when`, `expect`), or None."""
    try:
        environment().compile_expression(_strip_braces(text))
    except TemplateSyntaxError as exc:
        return f"Jinja syntax error in expression: {exc.message}"
    return None


def _strip_braces(text: str) -> str:
    match = _SINGLE_EXPR.match(text)
    return match.group("expr") if match else text


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> Any:
    return environment().compile_expression(expr, undefined_to_none=False)


@lru_cache(maxsize=4096)
def _compiled_template(text: str) -> Any:
    return environment().from_string(text)


def _fail(exc: Exception, source: str) -> TemplateError:
    if isinstance(exc, SecurityError):
        return SecurityViolation(
            f"template refused by the sandbox: {exc} (in {source!r})",
            hint="templates may read values, not Python internals; remove the attribute access",
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
            value = _compiled_expression(match.group("expr").strip())(**context)
            if isinstance(value, Undefined):
                # The sandbox answers some refused accesses with an undefined value; make it fail here.
                value._fail_with_undefined_error()
            return value
        return _compiled_template(text).render(**context)
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
        value = _compiled_expression(expr)(**context)
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return value
    except Exception as exc:
        raise _fail(exc, expression) from exc
