"""The loader's two paths agree: ruamel's C parser with positions built here, and ruamel's round-trip
loader (the definition). Same data (types, spelling of floats, key order), the same `line:col` for
every key, value and item and for paths that do not exist, the same syntax errors, and the same
validation problems, on the sample, the estate files, the fuzz strategies and YAML 1.1/1.2 traps.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO
from runbook.errors import InputError
from runbook.loader import NodePositions, YamlDocument, _position, parse_yaml, validate_document
from test_fuzz import FUZZ, structural_mutants, textual_mutants, values, yaml_text

SAMPLES = [
    REPO / "runbooks" / "phase-1.5.yaml",
    REPO / "runbook.yaml",
    REPO / "mkdocs.yml",
    REPO / "src" / "runbook" / "azure" / "default_estate.yaml",
    *sorted((REPO / "tests" / "golden").rglob("*.yaml")),
]

# Scalars whose meaning differs between YAML 1.1 and 1.2, or that ruamel spells in its own way.
TRAPS = [
    "on", "off", "yes", "no", "y", "n", "True", "TRUE", "false", "017", "0o17", "0x1F", "0b101", "1_000",
    "1:30", "12:30:00", "1.5", "1.10", "1.", ".5", "-1.50", "1e3", "1.0e+3", "6.02E23", "~", "null", "Null",
    "", ".inf", "-.Inf", ".nan", "+12", "-0", "0", "00", "2024-01-01", "2024-01-01T10:00:00Z", "=", "<<",
    "'quoted'", '"dq \\u00e9"', "!!str 017", "!!int '12'", "!!float 3", "!custom text", "!!bool true",
]


def canonical(value: Any) -> Any:
    """A comparable form that keeps types, key order and the text a float prints as."""
    if isinstance(value, dict):
        return ("map", [(canonical(k), canonical(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [canonical(v) for v in value])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return ("float", repr(float(value)), str(value))
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, str):
        return ("str", str(value))
    if isinstance(value, datetime.date):
        return ("date", type(value).__mro__[-2].__name__, value.isoformat())
    return (type(value).__name__, repr(value))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `value`, plus a missing key and an index past the end under each container."""
    found = [prefix]
    if isinstance(value, dict):
        found.append((*prefix, "no-such-key"))
        for key, child in value.items():
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        found.append((*prefix, len(value)))
        for index, child in enumerate(value):
            found.extend(paths(child, (*prefix, index)))
    return found


def both(text: str) -> tuple[Any, Any]:
    """(data, tree) or the InputError message, for each path."""
    results = []
    for fast in (True, False):
        try:
            results.append(parse_yaml(text, "f.yaml", fast=fast))
        except InputError as exc:
            results.append(str(exc))
    return results[0], results[1]


def assert_same(text: str) -> bool:
    """Both paths agree on `text`; True when the C path read it (it did not fall back)."""
    fast, slow = both(text)
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return False
    assert canonical(fast[0]) == canonical(slow[0])
    for path in paths(slow[0]):
        for key in (False, True):
            expected = _position(slow[1], path, key=key)
            actual = fast[1].position(path, key=key) if isinstance(fast[1], NodePositions) else expected
            assert actual == expected, (path, key)
    docs = [YamlDocument(Path("f.yaml"), "f.yaml", text, tree, data) for data, tree in (fast, slow)]
    problems = [[str(p) for p in validate_document(doc, known_phases=["1.5", "1.6"])] for doc in docs]
    assert problems[0] == problems[1]
    return isinstance(fast[1], NodePositions)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_samples_read_the_same_and_take_the_c_path(path: Path) -> None:
    took_c_path = assert_same(path.read_text(encoding="utf-8"))
    # mkdocs.yml holds !!python/name tags, which only the round-trip loader reads
    assert took_c_path or path.name == "mkdocs.yml"


@pytest.mark.parametrize("trap", TRAPS)
def test_yaml_traps_in_block_and_flow_context(trap: str) -> None:
    assert_same(f"a: {trap}\nlist:\n  - {trap}\n  - x\nflow: [{trap}, x]\nmap: {{k: {trap}}}\n")
    assert_same(f"{trap}: value\nother: 1\n")


@pytest.mark.parametrize(
    "text",
    [
        # anchors and aliases: an alias points at the anchored node's position
        "base: &b {x: 1, y: [1, 2]}\nuse: *b\nlist: [*b, *b]\n",
        # merge keys (the round-trip path reads these)
        "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n",
        "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n",
        # duplicate keys: the same located error
        "a: 1\nb: 2\na: 3\n",
        "steps:\n  - id: x\n    id: y\n",
        "1: a\n1.0: b\n",
        "true: a\n1: b\n",
        # tags
        "a: !!str 1.5\nb: !thing {k: v}\nc: !thing [1, 2]\nd: !!binary aGVsbG8=\ne: !!set {a, b}\nf: !!omap [a: 1]\n",
        "a: !!python/object:os.system ls\n",
        # syntax errors and documents that are not runbooks
        "a: [1, 2\n", "a: b: c\n", "- a\nb: c\n", "", "# only a comment\n", "just text\n", "---\na: 1\n---\nb: 2\n",
        "a: 'unterminated\n", "a:\n\t- tab\n", "a: 1\r\nb:\r\n  - 2\r\n", "a: x\u2028y\n", "%YAML 1.1\n---\na: yes\n",
        "\ufeffa: 1\n", "a: &x\n  b: *x\n", "[" * 600, "[" * 6000 + "]" * 6000, "a: " + "{x: " * 20 + "1" + "}" * 20 + "\n", "a: " + "[" * 300 + "]" * 300 + "\n",
        "? complex\n: key\n", "? [a, b]\n: c\n", "a: \"\\/\"\nb: 'it''s'\nc: >\n  folded\n  text\n\n  more\nd: |+\n  keep\n\n",
        "a: 1:30\nb: [1:30]\n", "é: ü\n😀: [x]\n",
    ],
)
def test_constructs_and_errors(text: str) -> None:
    assert_same(text)


trap_values = st.sampled_from(TRAPS) | st.from_regex(r"[-+]?[0-9_.:eExXoObB]{1,8}", fullmatch=True)
keys = st.sampled_from(["id", "uses", "with", "a", "on", "yes", "1", "1.5", "~", "<<"]) | st.text("abc", min_size=1, max_size=3)


@st.composite
def trap_documents(draw: st.DrawFn) -> str:
    """Block and flow YAML built from trap scalars, with anchors, aliases and tags mixed in."""
    lines = []
    anchors: list[str] = []
    for index in range(draw(st.integers(1, 8))):
        key = draw(keys)
        form = draw(st.sampled_from(["scalar", "seq", "flow", "anchor", "alias", "tagged"]))
        value = draw(trap_values)
        if form == "scalar":
            lines.append(f"{key}: {value}")
        elif form == "seq":
            items = draw(st.lists(trap_values, min_size=1, max_size=3))
            lines.append(f"{key}:\n" + "\n".join(f"  - {v}" for v in items))
        elif form == "flow":
            items = draw(st.lists(trap_values, min_size=0, max_size=3))
            lines.append(f"{key}: [{', '.join(items)}]")
        elif form == "anchor":
            anchors.append(f"a{index}")
            lines.append(f"{key}: &a{index}\n  x: {value}\n  y: [{value}]")
        elif form == "alias" and anchors:
            lines.append(f"{key}: *{draw(st.sampled_from(anchors))}")
        else:
            lines.append(f"{key}: {draw(st.sampled_from(['!!str', '!t', '!!int', '!!float']))} {value}")
    return "\n".join(lines) + "\n"


@settings(FUZZ, max_examples=150)
@given(text=trap_documents())
def test_generated_trap_documents(text: str) -> None:
    assert_same(text)


@settings(FUZZ, max_examples=80)
@given(data=values)
def test_generated_documents(data: Any) -> None:
    from test_fuzz import _dump

    assert_same(_dump(data))


@settings(FUZZ, max_examples=80)
@given(text=yaml_text)
def test_random_yaml_text(text: str) -> None:
    assert_same(text)


@settings(FUZZ, max_examples=40)
@given(text=structural_mutants())
def test_structural_mutations_of_the_flagship(text: str) -> None:
    assert_same(text)


@settings(FUZZ, max_examples=40)
@given(text=textual_mutants())
def test_textual_mutations_of_the_flagship(text: str) -> None:
    assert_same(text)


def test_generated_runbooks_of_every_size_take_the_c_path() -> None:
    steps = "\n".join(
        f"  - id: s{i}\n    uses: set\n    with:\n      v{i}: {TRAPS[i % len(TRAPS)] or '~'}\n    expect:\n      - \"{{{{ true }}}}\""
        for i in range(120)
    )
    text = f'phase: "1.5"\ntitle: generated\ndiscovery:\n{steps}\n'
    assert assert_same(text.replace("!custom text", "x").replace("!!", "x"))


# ------------------------------------------- load_runbook reuses the steps validated one by one


def _fields_set(model: Any) -> Any:
    """Every model's `model_fields_set`, recursively (what `exclude_unset` dumps depend on)."""
    from pydantic import BaseModel

    if isinstance(model, BaseModel):
        return (type(model).__name__, sorted(model.model_fields_set), {k: _fields_set(v) for k, v in model})
    if isinstance(model, list):
        return [_fields_set(v) for v in model]
    if isinstance(model, dict):
        return {k: _fields_set(v) for k, v in model.items()}
    return model


RUNBOOKS = [*sorted((REPO / "runbooks").glob("phase-*.yaml")), *sorted((REPO / "tests").rglob("phase-*.y*ml"))]


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_load_runbook_gives_the_model_a_whole_validation_gives(path: Path) -> None:
    from runbook.errors import ValidationFailed
    from runbook.loader import load_runbook, read_yaml
    from runbook.model import Runbook

    doc = read_yaml(path, root=REPO)
    if validate_document(doc):
        with pytest.raises(ValidationFailed):
            load_runbook(path, root=REPO)
        return
    loaded = load_runbook(path, root=REPO).runbook
    whole = Runbook.model_validate(doc.data)
    assert loaded == whole
    assert loaded.model_dump(by_alias=True) == whole.model_dump(by_alias=True)
    assert loaded.model_dump(exclude_unset=True) == whole.model_dump(exclude_unset=True)
    assert _fields_set(loaded) == _fields_set(whole)


def test_a_duplicate_step_id_still_says_where_it_was_first_used(tmp_path: Path) -> None:
    path = tmp_path / "phase-1.1.yaml"
    path.write_text(
        "phase: '1.1'\ntitle: T\nfix:\n  - id: a\n    uses: set\n  - id: b\n    uses: set\nverify:\n"
        "  - {id: a, uses: set}\n",
        encoding="utf-8",
    )
    from runbook.loader import read_yaml

    problems = validate_document(read_yaml(path, root=tmp_path))
    assert [str(p) for p in problems] == [
        "phase-1.1.yaml:9:10: duplicate step id 'a' (first used at phase-1.1.yaml:4:9)"
    ]


def test_load_runbook_of_generated_steps_gives_the_whole_validation_model(tmp_path: Path) -> None:
    from runbook.loader import load_runbook, read_yaml
    from runbook.model import Runbook

    lines = ["phase: '1.1'", "title: Generated", "vars: {base: 7}", "discovery: []", "fix:"]
    for i in range(60):
        lines += [f"  - id: s{i}", "    uses: set", f"    with: {{value: '{{{{ base + {i} }}}}'}}", f"    register: r{i}"]
        if i % 3 == 0:
            lines += ["    expect: 'output.value > 0'", "    retries: 2", "    when: true"]
        elif i % 5 == 0:
            lines += ["    expect:", "      - {that: 'output.value != 0', message: zero}", "      - 'output.value < 1000'"]
    lines += ["verify:", "  - id: v", "    uses: assert", "    with: {that: '{{ r1.value == 8 }}'}", "    reproduce: {expect: 'not output.passed'}"]
    path = tmp_path / "phase-1.1.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    doc = read_yaml(path, root=tmp_path)
    loaded = load_runbook(path, root=tmp_path).runbook
    whole = Runbook.model_validate(doc.data)
    assert loaded == whole
    assert _fields_set(loaded) == _fields_set(whole)
    assert loaded.model_dump(exclude_unset=True) == whole.model_dump(exclude_unset=True)
