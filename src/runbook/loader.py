"""YAML loading with positions, and validation of runbooks into `file:line:col` problems.

ruamel.yaml's round-trip loader keeps the line and column of every key and item; pydantic's error
locations are walked back through that tree so each problem points at the text the user wrote. All
problems of a file are collected (schema, unknown actions, action parameters, duplicate step ids,
unknown `next` phase, Jinja syntax) before anything runs.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InputError, Location, Problem, ValidationFailed, did_you_mean, relative_display
from .model import Runbook, Step

M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDocument:
    """A parsed YAML file: plain Python data plus the ruamel tree that knows positions."""

    path: Path
    display: str
    text: str
    tree: Any
    data: Any

    def location(self, loc: Sequence[str | int] = (), *, key: bool = False) -> Location:
        return Location(self.display, *_position(self.tree, loc, key=key))


def read_yaml(path: Path, *, root: Path | None = None) -> YamlDocument:
    """Parse a YAML file; a syntax error becomes an InputError with file:line:col."""
    display = relative_display(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{display}: no such file") from None
    except UnicodeDecodeError as exc:
        head = path.read_bytes()[: exc.start]
        where = Location(display, head.count(b"\n") + 1, exc.start - (head.rfind(b"\n") + 1) + 1)
        raise InputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", location=where, hint="save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise InputError(f"{display}: cannot read: {exc.strerror}") from None
    tree = parse_yaml_text(text, display)
    return YamlDocument(path=path, display=display, text=text, tree=tree, data=to_plain(tree))


def parse_yaml_text(text: str, display: str) -> Any:
    """Parse YAML text with ruamel's round-trip loader; every failure is a located InputError."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    yaml = YAML(typ="rt")
    try:
        with warnings.catch_warnings():
            # ruamel warns on stderr (e.g. a redefined anchor, which YAML allows); the CLI speaks
            # only in located problems.
            warnings.simplefilter("ignore")
            tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
        what = str(exc.problem or exc)
        if exc.context and exc.context_mark is not None:
            started = exc.context_mark
            what += f" ({exc.context}, from line {started.line + 1} column {started.column + 1})"
        raise InputError(f"invalid YAML: {what}", location=where, hint="check indentation and quoting") from None
    except ReaderError as exc:
        # A character YAML does not allow (NUL, other control characters): point at it.
        before = text[: max(exc.position, 0)]
        where = Location(display, before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1)
        raise InputError(
            f"invalid YAML: {exc.reason} (character {exc.character!r})",
            location=where,
            hint="remove the control character",
        ) from None
    except (YAMLError, RecursionError, ValueError) as exc:
        raise InputError(f"invalid YAML: {exc}", location=Location(display, 1, 1)) from None
    return tree


def to_plain(node: Any) -> Any:
    """ruamel's round-trip types -> plain dict/list/str/int/float/bool/None."""
    from ruamel.yaml.scalarfloat import ScalarFloat

    if isinstance(node, Mapping):
        return {str(k) if not isinstance(k, str | int | float | bool) else k: to_plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarFloat):
        # Keep what was written: phase 1.10 is not phase 1.1.
        return _FloatText(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if hasattr(node, "value"):  # tagged scalars
        return to_plain(node.value)
    return node


class _FloatText(float):
    """A float that remembers its YAML spelling, so `str()` of 1.10 stays "1.10"."""

    _text: str

    def __new__(cls, node: Any) -> _FloatText:
        self = super().__new__(cls, float(node))
        text = None
        try:
            width, prec = node._width, node._prec
            if width is not None and prec is not None and not node._exp:
                text = f"{float(node):.{max(width - prec - 1, 0)}f}"
        except AttributeError:
            text = None
        self._text = text or repr(float(node))
        return self

    def __str__(self) -> str:
        return self._text


def _position(tree: Any, loc: Sequence[str | int], *, key: bool = False) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the node at `loc`, or of the deepest ancestor that exists."""
    line: int | None = None
    col: int | None = None
    node: Any = tree
    if hasattr(node, "lc") and node.lc.line is not None:  # tagged scalars have no position
        line, col = node.lc.line + 1, (node.lc.col or 0) + 1
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        try:
            lc: Any = getattr(node, "lc", None)
            if isinstance(node, Mapping) and part in node:
                pos = lc.key(part) if (key and last) else lc.value(part)
                if pos is not None:
                    line, col = pos[0] + 1, pos[1] + 1
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                pos = lc.item(part)
                if pos is not None:
                    line, col = pos[0] + 1, pos[1] + 1
                node = node[part]
            else:
                break
        except (AttributeError, KeyError, TypeError, IndexError):
            break
    return line, col


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
            place = tuple(p for p in err["loc"][:-1] if not _is_union_tag(p))
            extras.setdefault(place, []).append(str(err["loc"][-1]))
    for err in errors:
        if err.get("type") == "union_collapsed":
            problems.append(Problem(doc.location([*prefix, *err["loc"]]), err["msg"]))
            continue
        loc = [*prefix, *(p for p in err["loc"] if not _is_union_tag(p))]
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
            place = tuple(p for p in err["loc"][:-1] if not _is_union_tag(p))
            if any(did_you_mean(extra, [name]) for extra in extras.get(place, [])):
                continue  # the same mistake as a misspelt key next to it: one problem, not two
            message = f"missing required key {name!r}"
            location = doc.location(loc[:-1])
        else:
            where = ".".join(str(p) if str(p).isprintable() else repr(p) for p in loc)
            message = f"{where}: {err['msg']}"
            location = doc.location(loc)
        problems.append(Problem(location, message))
    return problems


_TAG_MODEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\]$")


def _is_union_tag(part: Any) -> bool:
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
        cut = next((i for i, part in enumerate(loc) if _is_union_tag(part)), None)
        if cut is not None:
            groups.setdefault(loc[:cut], []).append(err)
    if not groups:
        return errors
    kept: list[Any] = []
    done: set[tuple[Any, ...]] = set()
    for err in errors:
        loc = tuple(err["loc"])
        cut = next((i for i, part in enumerate(loc) if _is_union_tag(part)), None)
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
        words = [_describe_tag(tag, model, place) for tag in by_tag]
        accepted = ", ".join(words[:-1]) + f" or {words[-1]}"
        where = ".".join(str(p) for p in [*prefix, *place])
        kept.append(
            {"type": "union_collapsed", "loc": place, "msg": f"{where}: expected {accepted}, not {_describe_value(value)}"}
        )
    return kept


def _describe_tag(tag: str, model: type[BaseModel] | None, place: Sequence[Any]) -> str:
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

    if _is_union_tag(part):
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


def parse_model(model: type[M], doc: YamlDocument) -> tuple[M | None, list[Problem]]:
    if not isinstance(doc.data, dict):
        return None, [Problem(_top(doc), f"expected a mapping of keys at the top of {doc.display}")]
    try:
        return model.model_validate(doc.data), []
    except ValidationError as exc:
        return None, schema_problems(exc, doc, model=model)


@dataclass
class LoadedRunbook:
    """A validated runbook with where it came from (for records, reports and error messages)."""

    runbook: Runbook
    path: Path
    doc: YamlDocument

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.doc.text.encode()).hexdigest()

    def step_location(self, stage: str, index: int) -> Location:
        return self.doc.location([stage, index])


def load_runbook(path: Path, *, root: Path | None = None, known_phases: Iterable[str] | None = None) -> LoadedRunbook:
    """Load and fully validate a runbook; raise ValidationFailed listing every problem."""
    doc = read_yaml(path, root=root)
    problems = validate_document(doc, known_phases=known_phases)
    if problems:
        raise ValidationFailed(problems)
    runbook = Runbook.model_validate(doc.data)
    return LoadedRunbook(runbook=runbook, path=path, doc=doc)


def _top(doc: YamlDocument) -> Location:
    """Where the document starts; for an empty file or a bare scalar, its first line of content."""
    where = doc.location()
    if where.line is None:
        lines = doc.text.splitlines()
        first = next((n for n, t in enumerate(lines, 1) if t.strip() and not t.lstrip().startswith("#")), 1)
        where = Location(doc.display, first, 1)
    return where


def validate_document(doc: YamlDocument, *, known_phases: Iterable[str] | None = None) -> list[Problem]:
    """Every problem in one runbook document, in file order."""
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict):
        return [Problem(_top(doc), "a runbook is a mapping with phase, title and stages")]
    # Validate steps one by one so one bad step does not hide the others' problems.
    step_problems: list[Problem] = []
    seen: dict[str, Location] = {}
    for stage in ("discovery", "fix", "verify"):
        steps = data.get(stage)
        if not isinstance(steps, list):
            continue
        for index, raw in enumerate(steps):
            step_problems.extend(_validate_step(doc, stage, index, raw, seen))
    # The runbook without its steps: schema of the rest.
    stripped = {k: (v if k not in ("discovery", "fix", "verify") or not isinstance(v, list) else []) for k, v in data.items()}
    try:
        Runbook.model_validate(stripped)
    except ValidationError as exc:
        problems.extend(schema_problems(exc, doc, model=Runbook))
    problems.extend(step_problems)
    raw_next = data.get("next")
    if raw_next is not None and known_phases is not None:
        from .model import normalise_phase

        wanted = normalise_phase(str(raw_next))
        phases = set(known_phases)
        if wanted not in phases:
            hint = did_you_mean(wanted, sorted(phases))
            problems.append(
                Problem(
                    doc.location(["next"]),
                    f"next phase {wanted!r} is not in the plan: {hint}"
                    f"add it to the plan in runbook.yaml or run `runbook new {wanted}`",
                )
            )
    problems.sort(key=lambda p: (p.location.line or 0, p.location.column or 0))
    # One problem, one line: keys and values quoted from the file may hold line breaks.
    return [Problem(p.location, p.message.translate(_LINE_BREAKS)) for p in problems]


_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _validate_step(
    doc: YamlDocument, stage: str, index: int, raw: Any, seen: dict[str, Location]
) -> list[Problem]:
    from . import actions
    from .templating import check_expression, check_syntax

    prefix: list[str | int] = [stage, index]
    if not isinstance(raw, dict):
        return [Problem(doc.location(prefix), "a step is a mapping with id, uses and with")]
    try:
        step = Step.model_validate(raw)
    except ValidationError as exc:
        return schema_problems(exc, doc, prefix, model=Step)
    problems: list[Problem] = []
    if step.id in seen:
        problems.append(
            Problem(doc.location([*prefix, "id"]), f"duplicate step id {step.id!r} (first used at {seen[step.id]})")
        )
    else:
        seen[step.id] = doc.location([*prefix, "id"])
    try:
        spec = actions.get(step.uses)
    except InputError as exc:
        problems.append(Problem(doc.location([*prefix, "uses"]), exc.message))
        spec = None
    # Jinja syntax in every templated string.
    for loc, text in _strings(raw.get("with", {}), [*prefix, "with"]):
        message = check_syntax(text)
        if message:
            problems.append(Problem(doc.location(loc), message))
    for field_name in ("when", "until"):
        value = raw.get(field_name)
        if isinstance(value, str):
            message = check_expression(value)
            if message:
                problems.append(Problem(doc.location([*prefix, field_name]), message))
    for i, item in enumerate(step.expect):
        text = item if isinstance(item, str) else item.that
        message = check_expression(text)
        if message:
            problems.append(Problem(doc.location([*prefix, "expect", i]), message))
    if spec is not None:
        problems.extend(_check_params(doc, spec, raw.get("with") or {}, [*prefix, "with"]))
    return problems


def _check_params(doc: YamlDocument, spec: Any, params: Any, prefix: list[str | int]) -> list[Problem]:
    """Check parameters against the action's model; templated values are checked after rendering."""
    if not isinstance(params, dict):
        return [Problem(doc.location(prefix), f"`with` of {spec.name} must be a mapping of parameters")]
    try:
        spec.params.model_validate(params)
    except ValidationError as exc:
        # A templated value cannot be type-checked before it is rendered; unknown/missing keys can.
        errors = [e for e in exc.errors(include_url=False) if not _templated(params, e["loc"])]
        return [
            Problem(p.location, f"{spec.name}: {p.message}")
            for p in schema_problems(errors, doc, prefix, model=spec.params)
        ]
    return []


def _templated(params: Any, loc: Sequence[Any]) -> bool:
    node = params
    for part in loc:
        if isinstance(node, str):
            break
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif _is_union_tag(part):
            continue
        else:
            return False
    return isinstance(node, str) and "{{" in node


def _strings(value: Any, loc: list[str | int]) -> Iterable[tuple[list[str | int], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, [*loc, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, [*loc, i])
