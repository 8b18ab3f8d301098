"""YAML loading with positions, and validation of runbooks into `file:line:col` problems.

Reading goes through ruamel's C parser (ruamel.yaml.clib, LibYAML underneath) composing a node
graph, with ruamel's own YAML 1.2 resolver tagging the scalars; plain values are built from that
graph here and the nodes stay behind as the position map, so `file:line:col` is where the text is.
Whatever the C path cannot reproduce exactly (a syntax error, duplicate keys, merge keys, `%YAML`
directives, characters LibYAML reads differently, deep nesting, exotic tags) is read again with
ruamel's round-trip loader, which is what defines the result: tests/test_loader_equivalence.py
checks both paths give the same data and the same locations. The round-trip loader is also the
one to use where a file is edited (workspace.add_phase_to_plan). pydantic's error locations are
walked back through the position map so each problem points at the text the user wrote. All
problems of a file are collected (schema, unknown actions, action parameters, duplicate step ids,
unknown `next` phase, Jinja syntax) before anything runs.
"""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InputError, Location, Problem, ValidationFailed, did_you_mean, relative_display
from .model import Runbook, Step
from .schema_errors import is_union_tag, schema_problems

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
        if isinstance(self.tree, NodePositions):
            return Location(self.display, *self.tree.position(loc, key=key))
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
    data, tree = parse_yaml(text, display)
    return YamlDocument(path=path, display=display, text=text, tree=tree, data=data)


def parse_yaml(text: str, display: str, *, fast: bool = True) -> tuple[Any, Any]:
    """Plain data and a position map for YAML `text` (the C path, else the round-trip loader)."""
    check_alias_expansion(text, display)
    if fast:
        parsed = _parse_fast(text)
        if parsed is not None:
            return parsed
    tree = _load_round_trip(text, display)
    return to_plain(tree), tree


# Nodes a document may reach once every alias is expanded. Real runbooks, configs and estates stay in
# the hundreds or thousands; an expansion bomb (nested aliases, 639 bytes) reaches billions.
MAX_EXPANDED_NODES = 100_000


def check_alias_expansion(text: str, display: str, *, limit: int = MAX_EXPANDED_NODES) -> None:
    """Refuse YAML whose aliases expand to more than `limit` nodes, located at the alias that crosses it.

    Counted over the parser's events, so nothing is expanded to count it: each anchored node's
    expanded size is remembered when it closes, and each alias occurrence adds that size. A syntax
    error stops the count silently; the loader words it.
    """
    if "*" not in text or "&" not in text or not (_ANCHOR.search(text) and _ALIAS.search(text)):
        return  # no alias without an anchor (a cheap look first: `a & b` is none)
    try:
        events = _events(text)
        sizes: dict[Any, int] = {}
        frames: list[list[Any]] = []  # [expanded size so far, anchor] of each open collection
        total = 0
        for event in events:
            kind = event.__class__.__name__
            if kind in ("MappingStartEvent", "SequenceStartEvent"):
                frames.append([1, event.anchor])
                total += 1
                continue
            if kind in ("MappingEndEvent", "SequenceEndEvent"):
                size, anchor = frames.pop()
            elif kind == "ScalarEvent":
                size, anchor = 1, event.anchor
                total += 1
            elif kind == "AliasEvent":
                size, anchor = sizes.get(event.anchor, 1), None
                total += size
                if total > limit:
                    mark = event.start_mark
                    raise InputError(
                        f"YAML aliases expand to more than {limit:,} nodes (alias *{event.anchor})",
                        location=Location(display, mark.line + 1, mark.column + 1),
                        hint="write the values out, or use fewer nested aliases",
                    )
            else:
                continue
            if anchor is not None:
                sizes[anchor] = size
            if frames:
                frames[-1][0] += size
    except InputError:
        raise
    except Exception:  # a syntax error: the loader reports it with its own words
        return


# Where an anchor or an alias may start: after a line start, a space or a flow indicator.
_ANCHOR = re.compile(r"(?:^|[\s\[{,:])&[^\s,\[\]{}]", re.M)
_ALIAS = re.compile(r"(?:^|[\s\[{,:])\*[^\s,\[\]{}]", re.M)


def _events(text: str) -> Any:
    """YAML parser events for `text`: LibYAML's when available, else ruamel's."""
    loader = _c_loader()
    if loader:
        parser = loader[0](text)
        try:
            while parser.check_event():
                yield parser.get_event()
        finally:
            parser.dispose()
        return
    from ruamel.yaml import YAML

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from YAML(typ="rt").parse(text)


def parse_yaml_text(text: str, display: str) -> Any:
    """Parse YAML text with ruamel's round-trip loader; every failure is a located InputError."""
    check_alias_expansion(text, display)
    return _load_round_trip(text, display)


def _load_round_trip(text: str, display: str) -> Any:
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
    except (IndexError, KeyError, TypeError) as exc:
        # ruamel's constructors trip over some scalars its resolver accepted (`-_` as an int,
        # `!!bool maybe`): a located problem, not a traceback.
        raise InputError(
            f"invalid YAML: a value cannot be read ({type(exc).__name__}: {exc})",
            location=Location(display, 1, 1),
            hint="quote the value to make it a string",
        ) from None
    return tree


def to_plain(node: Any) -> Any:
    """ruamel's round-trip types -> plain dict/list/str/int/float/bool/None."""
    from ruamel.yaml.scalarbool import ScalarBoolean
    from ruamel.yaml.scalarfloat import ScalarFloat

    if isinstance(node, Mapping):
        return {str(k) if not isinstance(k, str | int | float | bool) else k: to_plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarBoolean):
        # an anchored `true` (&a true) is ruamel's int subclass; it means the boolean.
        return bool(node)
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


# ---------------------------------------------------------------------------------- the C path

# Characters LibYAML reads differently from ruamel's YAML 1.2 scanner (tabs as separators, NEL and
# the Unicode line separators as line breaks, a lone CR) or that are errors either way: their
# presence sends the text to the round-trip loader.
_UNSAFE = re.compile(r"[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]|\r(?!\n)|^%", re.M)
# LibYAML's composer recurses on the C stack (~0.3-0.8 KB a level; 30,000 levels overflow the main
# thread's 8 MB): text that might nest deeper than _INLINE_DEPTH is composed in a thread with a
# 256 MB stack (reserved, touched only as deep as the text goes); beyond _MAX_DEPTH, or nested
# deeper than _BUILD_DEPTH once composed, it goes to the round-trip loader, which decides (its
# Python recursion limit makes that a located error from ~200 levels on).
_INLINE_DEPTH = 5_000
_MAX_DEPTH = 200_000
_BUILD_DEPTH = 100
_Y = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = _Y + "str", _Y + "null", _Y + "bool", _Y + "int", _Y + "float"
_TIMESTAMP, _MAP, _SEQ = _Y + "timestamp", _Y + "map", _Y + "seq"
_VALUE, _MERGE = _Y + "value", _Y + "merge"


class _Fallback(Exception):
    """The C path cannot give the round-trip loader's answer for this text."""


class NodePositions:
    """The position map of the C path: the composed node graph, looked up like the round-trip tree."""

    def __init__(self, root: Any, scalar: Any, text: str) -> None:
        self.root = root
        self._scalar = scalar
        self._text = text
        self._entries: dict[int, dict[Any, tuple[Any, Any]]] = {}
        self._round_trip: Any = None

    def _round_trip_position(self, loc: Sequence[str | int], key: bool) -> tuple[int | None, int | None] | None:
        """LibYAML and ruamel place an empty value differently: ask the round-trip tree (errors only)."""
        if self._round_trip is None:
            try:
                self._round_trip = parse_yaml_text(self._text, "")
            except InputError:
                self._round_trip = False
        return _position(self._round_trip, loc, key=key) if self._round_trip is not False else None

    def _mapping(self, node: Any) -> dict[Any, tuple[Any, Any]]:
        entries = self._entries.get(id(node))
        if entries is None:
            entries = {self._scalar(k): (k, v) for k, v in node.value}
            self._entries[id(node)] = entries
        return entries

    def position(self, loc: Sequence[str | int], *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the node at `loc`, or of the deepest ancestor that exists."""
        from ruamel.yaml.nodes import MappingNode, SequenceNode

        line: int | None = None
        col: int | None = None
        node = self.root
        if isinstance(node, MappingNode | SequenceNode):
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
        for depth, part in enumerate(loc):
            last = depth == len(loc) - 1
            if isinstance(node, MappingNode):
                try:
                    found = self._mapping(node).get(part)
                except TypeError:  # an unhashable part
                    break
                if found is None:
                    break
                marked = found[0] if (key and last) else found[1]
                node = found[1]
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = marked = node.value[part]
            else:
                break
            if marked.value == "" and not marked.style:
                return self._round_trip_position(loc, key) or (marked.start_mark.line + 1, marked.start_mark.column + 1)
            line, col = marked.start_mark.line + 1, marked.start_mark.column + 1
        return line, col


_C_LOADER: Any = None
# Implicit tags of plain scalars depend on their text only: resolved once per distinct text, and the
# text of every Tag object handed out, so the builder never formats a Tag per node.
_RESOLVED: dict[str, Any] = {}
_TAG_TEXT: dict[int, str] = {}


def _c_loader() -> Any:
    """The C parser class with ruamel's YAML 1.2 resolver, and a round-trip scalar constructor."""
    global _C_LOADER
    if _C_LOADER is None:
        try:
            from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]
        except ImportError:  # ruamel.yaml.clib not installed: every file takes the round-trip path
            _C_LOADER = False
            return _C_LOADER
        from ruamel.yaml import YAML
        from ruamel.yaml.nodes import ScalarNode
        from ruamel.yaml.resolver import VersionedResolver

        class _Parser(CParser, VersionedResolver):  # type: ignore[misc]
            def __init__(self, text: str) -> None:
                CParser.__init__(self, text)
                VersionedResolver.__init__(self, loadumper=self)
                # What ruamel's `processing_version` says for this parser, asked once: it looks for a
                # scanner and a serializer this parser does not have (two exceptions on every new
                # scalar, ~half of composing); texts with a %YAML directive take the round-trip path.
                self._yaml_version = VersionedResolver.processing_version.fget(self)  # type: ignore[attr-defined]

            @property
            def processing_version(self) -> Any:
                return self._yaml_version

            def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
                if kind is ScalarNode and implicit[0]:
                    tag = _RESOLVED.get(value)
                    if tag is None:
                        tag = VersionedResolver.resolve(self, kind, value, implicit)
                        if len(value) <= 64 and len(_RESOLVED) < 20_000:
                            _RESOLVED[value] = tag
                            _TAG_TEXT[id(tag)] = str(tag)
                    return tag
                return VersionedResolver.resolve(self, kind, value, implicit)

        for tag in (_Parser.DEFAULT_SCALAR_TAG, _Parser.DEFAULT_SEQUENCE_TAG, _Parser.DEFAULT_MAPPING_TAG):
            _TAG_TEXT[id(tag)] = str(tag)
        # ruamel's own constructors for the scalars whose spelling matters (ints, floats, dates),
        # so their values are exactly what the round-trip loader makes of them.
        _C_LOADER = (_Parser, YAML(typ="rt").constructor)
    return _C_LOADER


def _parse_fast(text: str) -> tuple[Any, NodePositions] | None:
    """Data and positions through the C parser, or None when only the round-trip loader will do."""
    loader = _c_loader()
    if not loader or _UNSAFE.search(text) is not None:
        return None
    depth = text.count("[") + text.count("{") + max(map(len, _LEADING.findall(text)), default=0)
    if depth > _MAX_DEPTH:
        return None
    parser_class, constructor = loader
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = _compose(parser_class, text) if depth <= _INLINE_DEPTH else _compose_on_a_big_stack(parser_class, text)
            builder = _Builder(constructor, text)
            data = None if root is None else builder.value(root, 0)
    except (_Fallback, RecursionError):
        return None
    except Exception:  # any error: the round-trip loader words it (or, being more lenient, reads the text)
        return None
    return data, NodePositions(root, builder.key, text)


def _compose(parser_class: Any, text: str) -> Any:
    parser = parser_class(text)
    try:
        return parser.get_single_node()
    finally:
        parser.dispose()


def _compose_on_a_big_stack(parser_class: Any, text: str) -> Any:

    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append((True, _compose(parser_class, text)))
        except Exception as exc:
            outcome.append((False, exc))

    with _STACK_LOCK:
        previous = threading.stack_size(256 * 1024 * 1024)
        try:
            thread = threading.Thread(target=work, name="yaml-compose", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    ok, result = outcome[0]
    if not ok:
        raise result
    return result


_STACK_LOCK = threading.Lock()
_LEADING = re.compile(r"^[ ?:-]*", re.M)


class _Builder:
    """Plain values from a composed node graph, as `to_plain` makes them of the round-trip tree."""

    def __init__(self, constructor: Any, text: str) -> None:
        from ruamel.yaml.nodes import MappingNode, ScalarNode

        self._constructor = constructor
        self._text = text
        self._active: set[int] = set()
        self._scalar_node, self._mapping_node = ScalarNode, MappingNode

    @staticmethod
    def _tag(node: Any) -> str:
        return _TAG_TEXT.get(id(node.ctag)) or str(node.tag)

    def scalar(self, node: Any, tag: str | None = None) -> Any:
        tag = tag or self._tag(node)
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == _INT:
            return self._constructor.construct_yaml_int(node)
        if tag == _FLOAT:
            return self._constructor.construct_yaml_float(node)
        if tag == _BOOL:
            return self._constructor.construct_yaml_bool(node)
        if (tag.startswith("!") and tag != "!") or tag in (_VALUE, _MERGE):
            return node.value  # a local tag, a lone `=` or `<<`: the round-trip loader keeps the text
        raise _Fallback(tag)

    def key(self, node: Any, tag: str | None = None) -> Any:
        tag = tag or self._tag(node)
        if node.__class__ is not self._scalar_node or tag == _TIMESTAMP:
            raise _Fallback("complex key")
        if self._text[node.start_mark.index] in "!&":
            # the round-trip loader keeps a tagged key as an object of its own, not its text
            raise _Fallback("tagged key")
        return self.scalar(node, tag)

    def value(self, node: Any, depth: int) -> Any:
        tag = self._tag(node)
        if node.__class__ is self._scalar_node:
            if tag == _STR:
                return node.value
            if tag == _TIMESTAMP:
                return self._constructor.construct_yaml_timestamp(node)
            value = self.scalar(node, tag)
            if tag == _FLOAT:
                return _FloatText(value) if hasattr(value, "_width") else float(value)
            if tag == _INT:
                return int(value)
            return bool(value) if tag == _BOOL else value
        if tag not in (_MAP, _SEQ) and not (tag.startswith("!") and tag != "!"):
            raise _Fallback(tag)
        if depth > _BUILD_DEPTH:
            raise _Fallback("deep nesting")
        marker = id(node)
        if marker in self._active:
            raise _Fallback("recursive alias")
        self._active.add(marker)
        try:
            if node.__class__ is self._mapping_node:
                return self._mapping(node, depth + 1)
            return [self.value(child, depth + 1) for child in node.value]
        finally:
            self._active.discard(marker)

    def _mapping(self, node: Any, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            tag = self._tag(key_node)
            if tag == _MERGE:
                raise _Fallback("merge key")
            key = key_node.value if tag == _STR and key_node.__class__ is self._scalar_node else self.key(key_node, tag)
            if self._text[key_node.start_mark.index] in "!&":
                raise _Fallback("tagged key")
            if key in seen:
                raise _Fallback("duplicate key")  # the round-trip loader words the error
            seen.add(key)
            plain = key if isinstance(key, str | int | float | bool) else str(key)
            out[plain] = self.value(value_node, depth)
        return out


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
    from .collector import paused

    # Loading builds ~100 long-lived objects per step and no cyclic garbage to speak of, and the
    # collections it set off walked them all again (three full ones at 5,000 steps, ~25% of the load).
    with paused():
        return _load_runbook(path, root, known_phases)


def _load_runbook(path: Path, root: Path | None, known_phases: Iterable[str] | None) -> LoadedRunbook:
    doc = read_yaml(path, root=root)
    steps: dict[str, list[Step]] = {}
    problems = _document_problems(doc, known_phases, steps)
    if problems:
        raise ValidationFailed(problems)
    # The steps were validated one by one above: the runbook takes those models as they are
    # (pydantic does not validate a model instance again) instead of validating every step twice.
    runbook = Runbook.model_validate({**doc.data, **steps})
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
    return _document_problems(doc, known_phases, {})


def _document_problems(
    doc: YamlDocument, known_phases: Iterable[str] | None, validated: dict[str, list[Step]]
) -> list[Problem]:
    """validate_document's problems; the steps that validated are put in `validated` by stage."""
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict):
        return [Problem(_top(doc), "a runbook is a mapping with phase, title and stages")]
    # Validate steps one by one so one bad step does not hide the others' problems.
    step_problems: list[Problem] = []
    seen: dict[str, list[str | int]] = {}
    for stage in ("discovery", "fix", "verify"):
        steps = data.get(stage)
        if not isinstance(steps, list):
            continue
        models = validated[stage] = []
        for index, raw in enumerate(steps):
            found, step = _validate_step(doc, stage, index, raw, seen)
            step_problems.extend(found)
            if step is not None:
                models.append(step)
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
    doc: YamlDocument, stage: str, index: int, raw: Any, seen: dict[str, list[str | int]]
) -> tuple[list[Problem], Step | None]:
    """The step's problems, and its model when it passed the schema. `seen` maps each step id to
    where it first appears (located only when a duplicate needs the position)."""
    from . import actions
    from .templating import check_expression, check_syntax

    prefix: list[str | int] = [stage, index]
    if not isinstance(raw, dict):
        return [Problem(doc.location(prefix), "a step is a mapping with id, uses and with")], None
    try:
        step = Step.model_validate(raw)
    except ValidationError as exc:
        return schema_problems(exc, doc, prefix, model=Step), None
    problems: list[Problem] = []
    first = seen.setdefault(step.id, [*prefix, "id"])
    if first[:2] != prefix:
        problems.append(
            Problem(doc.location([*prefix, "id"]), f"duplicate step id {step.id!r} (first used at {doc.location(first)})")
        )
    try:
        spec = actions.get(step.uses)
    except InputError as exc:
        problems.append(Problem(doc.location([*prefix, "uses"]), exc.message))
        spec = None
    # Jinja syntax in every templated string.
    for loc, text in strings_in(raw.get("with", {}), [*prefix, "with"]):
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
    return problems, step


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
        elif is_union_tag(part):
            continue
        else:
            return False
    return isinstance(node, str) and "{{" in node


def strings_in(value: Any, loc: list[str | int]) -> Iterable[tuple[list[str | int], str]]:
    """Every string inside a JSON-like value, with its place (`loc` extended by keys and indexes)."""
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(v, [*loc, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_in(v, [*loc, i])
