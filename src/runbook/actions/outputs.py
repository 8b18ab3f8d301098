"""Declared action outputs: the `Output` base model, their description as fields, and the contract check.

Every built-in action declares, next to its parameter model, an `Output` model of what it returns
(every field with a type and a description). `describe(model)` flattens it into `OutputField`s with
paths a runbook author writes in templates (`deployments[].model`, `by_account.*[].name`), which
`runbook actions`, the JSON Schema and the actions reference show. With `RUNBOOK_CHECK_OUTPUTS=1`
(the test suite sets it) every call through the registry validates the returned output against
the declared model, strictly: a field the action returns but does not declare is an error.
"""

import os
import types
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import RunbookError

CHECK_VARIABLE = "RUNBOOK_CHECK_OUTPUTS"
NOT_DECLARED = "Output not declared."


class Output(BaseModel):
    """Base of every action's output model: unknown keys and wrong types are contract errors.

    Built on first use (`defer_build`): only the contract check and `runbook schema` validate or
    describe outputs, so `validate` and a plain run do not pay for ~45 models' validators.
    """

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    # True for an action whose output is the step's own `with` keys (`set`).
    echoes_with: ClassVar[bool] = False


@dataclass(frozen=True)
class OutputField:
    """One field of an action's output, as a template reaches it.

    `path` is dotted, `[]` for the items of a list and `.*` for the values of a mapping
    (`deployments[].model`, `by_account.*[].name`); `type` is short text (`str | None`,
    `list[object]`); `required` is false for fields present only in some outcomes.
    """

    path: str
    type: str
    description: str
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "description": self.description, "required": self.required}


class OutputContractError(RunbookError):
    """An action returned an output its declared model does not allow (a bug in the action)."""


_violations: list[str] = []


def checking() -> bool:
    """Whether outputs are validated on every call (`RUNBOOK_CHECK_OUTPUTS=1`)."""
    return os.environ.get(CHECK_VARIABLE, "") not in ("", "0")


def contract_violations() -> list[str]:
    """Every violation seen in this process since it started (the test suite asserts none)."""
    return list(_violations)


def check(action_name: str, model: type[Output], output: Any, *, failed: bool = False) -> None:
    """Raise OutputContractError unless `output` fits `model` exactly (no undeclared field)."""
    if output is None and failed:
        return
    try:
        model.model_validate(output)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(the output)'}: {error['msg']}"
            for error in exc.errors()
        )
        outcome = "failure output" if failed else "output"
        message = f"{action_name} returned an {outcome} that breaks its declared model {model.__name__}: {problems}"
        _violations.append(message)
        raise OutputContractError(
            message, hint=f"declare the field in {model.__module__}.{model.__name__}, or stop returning it"
        ) from None


# ------------------------------------------------------------------------------------ describing


def without_none(annotation: Any) -> Any:
    """`X | None` -> X (other unions are kept)."""
    if _is_union(annotation):
        kept = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def type_text(annotation: Any) -> str:
    """A short, readable type: `str | None`, `list[object]`, `dict[str, int]`, `'ok' | 'changed'`."""
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Any:
        return "any"
    if is_model(annotation):
        return "object"
    origin = get_origin(annotation)
    if _is_union(annotation):
        return " | ".join(type_text(arg) for arg in get_args(annotation))
    if origin is Literal:
        return " | ".join(repr(arg) for arg in get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        args = get_args(annotation)
        return f"list[{type_text(args[0]) if args else 'any'}]"
    if origin is dict:
        args = get_args(annotation)
        return f"dict[{type_text(args[0])}, {type_text(args[1])}]" if args else "dict"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def element(annotation: Any) -> tuple[str, Any] | None:
    """('[]', item type) for a list, ('.*', value type) for a mapping, else None (after `| None`)."""
    annotation = without_none(annotation)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (list, tuple, set, frozenset):
        return "[]", args[0] if args else Any
    if origin is dict:
        return ".*", args[1] if len(args) == 2 else Any
    return None


def describe(model: type[BaseModel] | None) -> list[OutputField]:
    """Every field of an output model, nested ones included, in declaration order."""
    if model is None:
        return []
    fields: list[OutputField] = []
    _walk(model, "", fields)
    return fields


def _walk(model: type[BaseModel], prefix: str, into: list[OutputField]) -> None:
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        into.append(OutputField(path, type_text(info.annotation), info.description or "", info.is_required()))
        _nested(info.annotation, path, into)


def _nested(annotation: Any, path: str, into: list[OutputField]) -> None:
    annotation = without_none(annotation)
    if is_model(annotation):
        _walk(annotation, f"{path}.", into)
        return
    inner = element(annotation)
    if inner is not None:
        step, item = inner
        _nested(item, path + step, into)



def summary(model: type[Output] | None) -> str:
    """The output in one sentence: its field paths, or how it is made (for schema descriptions)."""
    if model is None:
        return NOT_DECLARED
    if model.echoes_with:
        return "Output: each key of `with` becomes a field."
    return "Output fields: " + ", ".join(f.path for f in describe(model)) + "."


def json_schema(model: type[Output]) -> dict[str, Any]:
    """The JSON Schema of an output model (field names as templates see them: `json`, not `json_`)."""
    return model.model_json_schema(by_alias=True)
