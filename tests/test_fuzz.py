"""Property-based fuzzing of `runbook validate`: random YAML, random text, and mutations of the
flagship runbook never produce a traceback, and every problem is reported as `file:line[:col]: ...`.

The strategies live here so `fuzz/campaign.py` can run the same properties for much longer.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO, invoke

FLAGSHIP = REPO / "runbooks" / "phase-1.5.yaml"
PROBLEM_LINE = re.compile(r"^[^:]+:\d+(:\d+)?: ")
SUMMARY_LINE = re.compile(r"^\d+ problems? found$")

# Words and punctuation that mean something to YAML, Jinja or the runbook schema.
TOKENS = [
    "phase: ", '"1.5"', "title: ", "discovery:", "fix:", "verify:", "report:", "vars:", "inputs:", "next: ",
    "  - id: ", "    uses: ", "    with: ", "    register: ", "    when: ", "    expect: ", "    retries: ",
    "shell", "set", "notebook.run", "notebook.edit", "http.request", "azure.accounts", "env.set",
    "\n", "\n  ", "\n    ", "  ", "\t", ": ", ":", "- ", "-", "[", "]", "{", "}", ",", "? ", "|", ">", "|-",
    "&a ", "*a", "!!str ", "!!binary ", "!!python/object:os.system ", "!custom ", "%YAML 1.2\n", "---\n",
    "...\n", "#", "'", '"', "\\", "{{ ", " }}", "{% if x %}", "{% endif %}", "{{ ''.__class__ }}",
    "~", "null", "true", "no", "1e309", "-.inf", ".nan", "0x1F", "0o17", "2024-01-01", "12:30:00",
    "\ufeff", "\x00", "\x07", "é", "😀", "\u2028", "<<: *a", "= ", "1.10",
]
KEYS = [
    "phase", "title", "summary", "next", "reproduce", "vars", "inputs", "discovery", "fix", "verify",
    "report", "id", "uses", "with", "register", "when", "expect", "until", "retries", "delay", "timeout",
    "continue_on_error", "that", "message", "cmd", "path", "cell", "replacements", "find", "replace",
    "Phase", "None", "str", "Expectation", "<<", "", " ", "id ", "uses:",
]
ACTIONS = ["shell", "set", "assert", "manual", "file.replace", "env.set", "http.request", "notebook.run",
           "notebook.edit", "notebook.cells", "notebook.insert", "azure.accounts", "no.such.action"]

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | text
    | st.sampled_from(["{{ x }}", "{{", "}}", "{% for %}", "1.5", "phase-1.5", "", "~", "*", "{{ vars }}", *ACTIONS])
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | text, children, max_size=4),
    max_leaves=12,
)
# Random YAML-ish text made of meaningful tokens and noise.
yaml_text = st.lists(st.sampled_from(TOKENS) | text, max_size=60).map("".join)


def _dump(data: Any) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def _flagship_data() -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(FLAGSHIP.read_text(encoding="utf-8"))


FLAGSHIP_TEXT = FLAGSHIP.read_text(encoding="utf-8")
FLAGSHIP_DATA = _flagship_data()


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict and list in `node` (the root included)."""
    found = []
    if isinstance(node, dict | list):
        found.append(path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            found.extend(_containers(child, (*path, key)))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def structural_mutants(draw: st.DrawFn) -> str:
    """The flagship's data with 1-4 edits: keys deleted or renamed, values of another type, garbage
    keys, duplicated or reordered items; dumped back to YAML."""
    import copy

    data = copy.deepcopy(FLAGSHIP_DATA)
    for _ in range(draw(st.integers(1, 4))):
        paths = _containers(data)
        path = draw(st.sampled_from(paths))
        node = _at(data, path)
        if not node:
            continue
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        operation = draw(st.sampled_from(["delete", "rename", "retype", "insert", "duplicate", "swap", "wrap"]))
        if operation == "delete":
            del node[key]
        elif operation == "rename" and isinstance(node, dict):
            new = draw(st.sampled_from(KEYS) | text | st.just(str(key)[:-1]) | st.just(str(key).upper()))
            node[new] = node.pop(key)
        elif operation == "retype":
            node[key] = draw(values)
        elif operation == "insert":
            if isinstance(node, dict):
                node[draw(st.sampled_from(KEYS) | text)] = draw(values)
            else:
                node.insert(draw(st.integers(0, len(node))), draw(values))
        elif operation == "duplicate" and isinstance(node, list):
            node.append(copy.deepcopy(node[key]))  # duplicate step ids, cells, replacements
        elif operation == "swap" and isinstance(node, list) and len(node) > 1:
            other = draw(st.sampled_from(keys))
            node[key], node[other] = node[other], node[key]
        elif operation == "wrap":
            node[key] = draw(st.sampled_from([[node[key]], {"value": node[key]}, str(node[key])]))
    return _dump(data)


@st.composite
def textual_mutants(draw: st.DrawFn) -> str:
    """The flagship's text cut, with noise inserted, or lines deleted, duplicated, swapped, re-indented."""
    lines = FLAGSHIP_TEXT.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["truncate", "noise", "delete", "duplicate", "swap", "indent"]))
        if operation == "truncate":
            joined = "".join(lines)
            lines = joined[: draw(st.integers(0, len(joined)))].splitlines(keepends=True)
        elif operation == "noise":
            line = lines[index]
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + draw(st.sampled_from(TOKENS) | text) + line[at:]
        elif operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, lines[index])
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index] = draw(st.sampled_from(["", " ", "  ", "\t", "    "])) + lines[index].lstrip(" ")
    return "".join(lines)


def check_validate(folder: Path, content: str | bytes, name: str = "phase-9.9.yaml") -> int:
    """`runbook validate` on `content`: exit 0 or 2, no traceback, and on 2 every problem located."""
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    result = invoke(["validate", str(path)], cwd=folder)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    if result.exit_code == 2:
        problems = [line for line in result.stderr.splitlines() if line and not line.startswith(" ")]
        assert problems, result.output
        for line in problems:
            assert SUMMARY_LINE.match(line) or PROBLEM_LINE.match(line), (line, result.stderr)
    else:
        assert "valid" in result.stdout
    return result.exit_code


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the sample's plan (so `next:` is checked against known phases)."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copy(REPO / "runbook.yaml", root / "runbook.yaml")
    shutil.copytree(REPO / "notebooks", root / "notebooks")  # validate checks that the config's notebook exists
    (root / "runbooks").mkdir()
    return root


@pytest.fixture(scope="module")
def loose(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside any workspace."""
    return tmp_path_factory.mktemp("loose")


FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_flagship_itself_is_valid(workspace: Path) -> None:
    assert check_validate(workspace / "runbooks", FLAGSHIP_TEXT, "phase-1.5.yaml") == 0


@settings(FUZZ, max_examples=120)
@given(data=values)
def test_random_yaml_documents(loose: Path, data: Any) -> None:
    check_validate(loose, _dump(data))


@settings(FUZZ, max_examples=120)
@given(content=yaml_text)
def test_random_yaml_text(loose: Path, content: str) -> None:
    check_validate(loose, content)


@settings(FUZZ, max_examples=40)
@given(content=st.binary(max_size=200))
def test_random_bytes(loose: Path, content: bytes) -> None:
    check_validate(loose, content)


@settings(FUZZ, max_examples=60)
@given(content=structural_mutants())
def test_structural_mutations_of_the_flagship(workspace: Path, content: str) -> None:
    check_validate(workspace / "runbooks", content, "phase-1.5.yaml")


@settings(FUZZ, max_examples=60)
@given(content=textual_mutants())
def test_textual_mutations_of_the_flagship(workspace: Path, content: str) -> None:
    check_validate(workspace / "runbooks", content, "phase-1.5.yaml")
