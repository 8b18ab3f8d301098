"""Pydantic errors as the located problems people read: one problem per mistake, with a did-you-mean.

`schema_problems` walks pydantic's error locations back to the YAML a user wrote (through
`YamlDocument.location`). Unknown keys get the known keys of the mapping they are in (nested models,
list items, dict values and union members are followed) and a "did you mean"; the errors a union
produces for each of its members ("Input should be a valid integer / ... string") are collapsed
into the errors of the model member (for a mapping) or into one sentence listing what the place
accepts; a misspelt key is not also reported as the missing key it was meant to be.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from .errors import Location, Problem, did_you_mean


class YamlDocument(Protocol):
    """What the formatting needs of a parsed file (`loader.YamlDocument`): its data and positions."""

    data: Any

    def location(self, loc: Sequence[str | int] = (), *, key: bool = False) -> Location: ...

__all__ = ["is_union_tag", "schema_problems"]


def schema_problems(
    exc: ValidationError | list[Any],
    doc: YamlDocument,
    prefix: Sequence[str | int] = (),
    model: type[BaseModel] | None = None,
) -> list[Problem]:
    """Turn pydantic errors into located problems, one per mistake.

    Unknown keys get the known keys of the mapping they are in and a "did you mean"; the errors a
    union produces for each of its members ("Input should be a valid integer / ... string") are
    collapsed: a mapping is judged by the member that is a model, anything else gets one sentence
    listing what the place accepts.
    """
    errors = list(exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc)
    errors = _collapse_unions(errors, doc, prefix, model)
    problems = []
    extras: dict[tuple[Any, ...], list[str]] = {}
    for err in errors:
        if err["type"] == "extra_forbidden" and err["loc"]:
            place = tuple(p for p in err["loc"][:-1] if not is_union_tag(p))
            extras.setdefault(place, []).append(str(err["loc"][-1]))
    for err in errors:
        if err.get("type") == "union_collapsed":
            problems.append(Problem(doc.location([*prefix, *err["loc"]]), err["msg"]))
            continue
        loc = [*prefix, *(p for p in err["loc"] if not is_union_tag(p))]
        kind = err["type"]
        if kind in ("extra_forbidden", "missing") and (not loc or loc[-1] != (err["loc"] or [None])[-1]):
            loc.append(err["loc"][-1] if err["loc"] else "")  # a key that looks like a union tag ("None")
        if kind == "extra_forbidden":
            name = str(loc[-1])
            known = _known_fields(model, err["loc"]) if model else []
            hint = did_you_mean(name, known).strip() or f"known keys: {', '.join(known) or 'none'}"
            message = f"unknown key {name!r}: {hint}"
            location = doc.location(loc, key=True)
        elif kind == "missing":
            name = str(loc[-1])
            place = tuple(p for p in err["loc"][:-1] if not is_union_tag(p))
            if any(did_you_mean(extra, [name]) for extra in extras.get(place, [])):
                continue  # the same mistake as a misspelt key next to it: one problem, not two
            message = f"missing required key {name!r}"
            location = doc.location(loc[:-1])
        else:
            where = ".".join(str(p) if str(p).isprintable() else repr(p) for p in loc)
            # a validator's own words, without pydantic's "Value error, " in front of them
            message = f"{where}: {str(err['msg']).removeprefix('Value error, ')}"
            location = doc.location(loc)
        problems.append(Problem(location, message))
    return problems


_TAG_MODEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\]$")


def is_union_tag(part: Any) -> bool:
    # pydantic inserts the member type name ("str", "Expectation", "function-after[f(), CellAddress]")
    # into locs of union errors.
    if not isinstance(part, str):
        return False
    return part[:1].isupper() or part in {"str", "int", "float", "bool"} or bool(re.match(r"^[a-z-]+\[.*\]$", part))


def _tag_name(part: str) -> str:
    found = _TAG_MODEL.search(part)
    return found.group(1) if found else part


def _collapse_unions(
    errors: list[Any], doc: YamlDocument, prefix: Sequence[str | int], model: type[BaseModel] | None
) -> list[Any]:
    """Keep one union member's errors per place (the model's, for a mapping), or one sentence."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        cut = next((i for i, part in enumerate(loc) if is_union_tag(part)), None)
        if cut is not None:
            groups.setdefault(loc[:cut], []).append(err)
    if not groups:
        return errors
    kept: list[Any] = []
    done: set[tuple[Any, ...]] = set()
    for err in errors:
        loc = tuple(err["loc"])
        cut = next((i for i, part in enumerate(loc) if is_union_tag(part)), None)
        if cut is None:
            kept.append(err)
            continue
        place = loc[:cut]
        if place in done:
            continue
        done.add(place)
        members = groups[place]
        value = _value_at(doc.data, [*prefix, *place])
        by_tag: dict[str, list[Any]] = {}
        for member in members:
            by_tag.setdefault(str(member["loc"][cut]), []).append(member)
        model_tags = [tag for tag in by_tag if _tag_name(tag)[:1].isupper()]
        if isinstance(value, dict) and len(model_tags) == 1:
            kept.extend(by_tag[model_tags[0]])
            continue
        if len(by_tag) == 1:
            kept.extend(members)
            continue
        words = [_describe_tag(tag, model) for tag in by_tag]
        accepted = ", ".join(words[:-1]) + f" or {words[-1]}"
        where = ".".join(str(p) for p in [*prefix, *place])
        kept.append(
            {"type": "union_collapsed", "loc": place, "msg": f"{where}: expected {accepted}, not {_describe_value(value)}"}
        )
    return kept


def _describe_tag(tag: str, model: type[BaseModel] | None) -> str:
    words = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false", "none": "null"}
    name = _tag_name(tag)
    if name in words:
        return words[name]
    if name.startswith(("list", "tuple")):
        return "a list"
    if name.startswith("dict"):
        return "a mapping"
    found = _model_named(model, name) if model else None
    if found is not None:
        return f"a mapping with keys {', '.join(f.alias or n for n, f in found.model_fields.items())}"
    return f"a {name}"


def _describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else f"the string {value!r}"


def _value_at(data: Any, loc: Sequence[Any]) -> Any:
    node = data
    for part in loc:
        inside = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not inside:
            return None
        node = node[part]
    return node


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a type: Union/Optional members, Annotated unwrapped."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _step_into(annotation: Any, part: Any) -> Any:
    """The type of `part` inside a value of type `annotation` (a field, a list item, a dict value)."""
    import typing

    if is_union_tag(part):
        name = _tag_name(str(part))
        for member in _members(annotation):
            if getattr(member, "__name__", None) == name:
                return member
        return annotation
    for member in _members(annotation):
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            field = _field_by_alias(member, part)
            if field is not None:
                return field.annotation
        elif isinstance(part, int) and origin in (list, tuple, set, frozenset) and args:
            return args[0]
        elif isinstance(part, str) and origin is dict and len(args) == 2:
            return args[1]
    return None


def _known_fields(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names (aliases) of the model that owns the last element of `loc`."""
    current: Any = model
    for part in loc[:-1]:
        current = _step_into(current, part)
        if current is None:
            return []
    found = [m for m in _members(current) if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(found) == 1:
        return [f.alias or n for n, f in found[0].model_fields.items()]
    return []


def _model_named(model: type[BaseModel], name: str, seen: set[Any] | None = None) -> type[BaseModel] | None:
    """The model class called `name` among the types `model` uses (for union messages)."""
    import typing

    seen = seen if seen is not None else set()
    if model.__name__ == name:
        return model
    seen.add(model)
    for field in model.model_fields.values():
        todo = [field.annotation]
        while todo:
            item = todo.pop()
            for member in _members(item):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    if member not in seen:
                        hit = _model_named(member, name, seen)
                        if hit is not None:
                            return hit
                else:
                    todo.extend(typing.get_args(member))
    return None


def _field_by_alias(model: type[BaseModel], name: str) -> Any:
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None
