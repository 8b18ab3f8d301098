"""Faithful notebook read/edit/write, cell addressing, replacements and malformed-file errors."""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import git, git_init
from notebook_variants import VARIANT_NAMES, Cells, build, content, with_ids, writer_for
from runbook.errors import EXIT_INPUT, NotebookError
from runbook.notebooks import (
    CellAddress,
    Notebook,
    Replacement,
    cell_diff,
    replace_in_cell,
)

# -- fixtures --------------------------------------------------------------------------------


def write_variant(tmp_path: Path, name: str, edit: Callable[[Cells], None] | None = None) -> Path:
    path = tmp_path / f"{name}.ipynb"
    path.write_bytes(build(name, edit=edit))
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A JupyterLab-written 4.5 notebook with ids `cell_<index>_<hex>`."""
    return write_variant(tmp_path, "jupyterlab")


def diff_lines(before: bytes, after: bytes) -> tuple[list[str], list[str]]:
    """The removed and added lines, as `git diff` would show them."""
    removed, added = [], []
    old, new = before.decode("utf-8-sig").splitlines(), after.decode("utf-8-sig").splitlines()
    for line in difflib.unified_diff(old, new, lineterm="", n=0):
        if line.startswith("-") and not line.startswith("---"):
            removed.append(line[1:])
        elif line.startswith("+") and not line.startswith("+++"):
            added.append(line[1:])
    return removed, added


def first_code_cell(cells: Cells, minimum_lines: int = 2) -> int:
    return next(
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and c["source"].count("\n") >= minimum_lines - 1
    )


# -- faithful round trip and edits ---------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_read_then_dumps_is_byte_exact(tmp_path: Path, name: str) -> None:
    path = write_variant(tmp_path, name)
    original = path.read_bytes()
    notebook = Notebook.read(path)
    assert notebook.dumps().encode("utf-8") == original.removeprefix(b"\xef\xbb\xbf")
    before = path.stat().st_mtime_ns
    assert notebook.write() is False
    assert path.read_bytes() == original
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_editing_one_line_changes_only_that_line(tmp_path: Path, name: str) -> None:
    path = write_variant(tmp_path, name)
    original = path.read_bytes()
    cells = with_ids(content(name), writer_for(name))
    index = first_code_cell(cells)
    old_source = cells[index]["source"]
    first_line, rest = old_source.split("\n", 1)
    new_source = 'print("changed — ✅ 🚀 \\u00e9\\t")  # new' + "\n" + rest

    notebook = Notebook.read(path)
    assert notebook.set_source(index, new_source) is True
    assert notebook.write() is True

    def edit(content: Cells) -> None:
        content[index]["source"] = new_source

    # Byte for byte what the tool itself would have written after the same edit (a file that
    # escapes a few characters although it is raw UTF-8 gets new ones raw: no tool to copy there) ...
    if name != "escaped_in_raw":
        assert path.read_bytes() == build(name, edit=edit)
    # ... and `git diff` shows exactly one line out, one line in.
    removed, added = diff_lines(original, path.read_bytes())
    assert len(removed) == len(added) == 1
    if name != "minified":
        assert json.dumps(first_line, ensure_ascii=writer_for(name).ensure_ascii)[1:-1] in removed[0]
    assert Notebook.read(path).cells[index].source == new_source


@pytest.mark.parametrize(
    "name", [n for n in VARIANT_NAMES if n not in ("mixed_chunks", "crlf_ascii_4_4", "escaped_in_raw")]
)
def test_insert_matches_the_tool_and_respects_ids(tmp_path: Path, name: str) -> None:
    path = write_variant(tmp_path, name)
    notebook = Notebook.read(path)
    has_ids = notebook.has_cell_ids
    new_code = "x = 1\nprint(x, '✅')"
    first = notebook.insert(2, "code", new_code, id="new-cell_1" if has_ids else None)
    last = notebook.insert(len(notebook), "markdown", "## The end 🎉", id="new-cell_2" if has_ids else None)
    assert (first.number, last.number) == (3, len(notebook))
    notebook.write()

    def edit(content: Cells) -> None:
        code: dict[str, Any] = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
        code["source"] = new_code
        markdown: dict[str, Any] = {"cell_type": "markdown", "metadata": {}, "source": "## The end 🎉"}
        if has_ids:
            code["id"], markdown["id"] = "new-cell_1", "new-cell_2"
        content.insert(2, code)
        content.append(markdown)

    assert path.read_bytes() == build(name, edit=edit)


def test_insert_generates_valid_ids_in_4_5_and_never_in_4_4(tmp_path: Path) -> None:
    notebook = Notebook.read(write_variant(tmp_path, "jupyterlab"))
    cell = notebook.insert(0, "code", "print(1)")
    assert cell.id is not None and cell.id.startswith("cell_0_") and len(cell.id) == len("cell_0_") + 8
    assert notebook.insert(0, "code", "print(1)").id != cell.id

    old = Notebook.read(write_variant(tmp_path, "v4_4"))
    old.insert(1, "code", "print(1)")
    old.insert(len(old), "markdown", "end")
    old.write()
    reread = Notebook.read(old.path)
    assert (reread.nbformat, reread.nbformat_minor) == (4, 4)
    assert all(c.id is None for c in reread.cells)
    assert '"id"' not in reread.dumps()
    with pytest.raises(NotebookError, match=r"4\.4 notebooks have no cell ids"):
        old.insert(0, "code", "x", id="abc")


def test_insert_rejects_bad_or_taken_ids(lab: Path) -> None:
    notebook = Notebook.read(lab)
    with pytest.raises(NotebookError, match="invalid cell id"):
        notebook.insert(0, "code", "x", id="has space")
    with pytest.raises(NotebookError, match="already used"):
        notebook.insert(0, "code", "x", id=notebook.cells[0].id)


def test_partial_ids_notebook_keeps_cells_without_ids(tmp_path: Path) -> None:
    notebook = Notebook.read(write_variant(tmp_path, "partial_ids"))
    assert [c.id is None for c in notebook.cells[:4]] == [False, True, False, True]
    assert notebook.cells[1].label == "cell 2"
    assert notebook.cells[0].label.startswith("cell 1 (cell_0_")


def test_several_edits_are_applied_together(lab: Path) -> None:
    notebook = Notebook.read(lab)
    for index, text in [(1, "a = 1"), (4, "b = 2\nc = 3\n"), (1, "a = 10"), (29, "")]:
        notebook.set_source(index, text)
    notebook.insert(3, "raw", "raw text", id="raw-1")
    notebook.set_source(5, "b = 20")  # cell 4 moved to 5 by the insert
    notebook.write()

    def edit(content: Cells) -> None:
        content[1]["source"], content[4]["source"], content[29]["source"] = "a = 10", "b = 20", ""
        content.insert(3, {"cell_type": "raw", "id": "raw-1", "metadata": {}, "source": "raw text"})

    assert lab.read_bytes() == build("jupyterlab", edit=edit)


def test_source_representation_is_kept(tmp_path: Path) -> None:
    as_string = Notebook.read(write_variant(tmp_path, "string_sources"))
    as_string.set_source(1, "one\ntwo\n")
    as_lines = Notebook.read(write_variant(tmp_path, "jupyterlab"))
    as_lines.set_source(1, "one\ntwo\n")
    as_lines.set_source(2, "")
    assert json.loads(as_string.dumps())["cells"][1]["source"] == "one\ntwo\n"
    assert json.loads(as_lines.dumps())["cells"][1]["source"] == ["one\n", "two\n"]
    assert json.loads(as_lines.dumps())["cells"][2]["source"] == []


def test_no_op_edit_writes_nothing(lab: Path) -> None:
    os.utime(lab, ns=(1_000_000_000, 1_000_000_000))
    notebook = Notebook.read(lab)
    assert notebook.set_source(1, notebook.cells[1].source) is False
    assert notebook.changed is False
    assert notebook.write() is False
    assert lab.stat().st_mtime_ns == 1_000_000_000
    # Changing and changing back is also no change on disk.
    source = notebook.cells[1].source
    notebook.set_source(1, "other")
    notebook.set_source(1, source)
    assert notebook.write() is False
    assert lab.stat().st_mtime_ns == 1_000_000_000


def test_edit_cell_applies_replacements(lab: Path) -> None:
    notebook = Notebook.read(lab)
    outcome = notebook.edit_cell(5, [Replacement(find="os.getenv", replace="os.environ.get")])
    assert outcome.status == "changed"
    assert "-import os" not in outcome.diff and "+print(f" in outcome.diff
    assert "a/cell 6 (cell_5_" in outcome.diff
    assert notebook.edit_cell(5, [Replacement(find="os.getenv", replace="os.environ.get")]).status == "already"
    notebook.write()
    assert "os.environ.get" in Notebook.read(lab).cells[5].source


# -- the smallest unit: a one-line edit is a one-line `git diff` on every style ------------------


def git_numstat(tmp_path: Path, before: bytes, after: bytes) -> tuple[int, int]:
    """`git diff --numstat` of a notebook changed from `before` to `after`, in a real repository."""
    repo = tmp_path / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    git_init(repo)
    (repo / "n.ipynb").write_bytes(before)
    git(repo, "add", "n.ipynb")
    git(repo, "commit", "-qm", "before")
    (repo / "n.ipynb").write_bytes(after)
    stat = git(repo, "diff", "--numstat", "--", "n.ipynb").split()
    return (int(stat[0]), int(stat[1])) if stat else (0, 0)


def multi_line_code_cells(notebook: Notebook, minimum: int = 3) -> list[int]:
    return [c.index for c in notebook.cells if c.cell_type == "code" and c.source.count("\n") >= minimum - 1]


def edit_line(source: str, line: int, new: str) -> str:
    lines = source.split("\n")
    lines[line] = new
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_one_line_edit_is_a_one_line_git_diff(tmp_path: Path, name: str, where: str) -> None:
    original = build(name)
    notebook = Notebook.parse(original)
    edited = 0
    for index in multi_line_code_cells(notebook):
        source = notebook.cells[index].source
        lines = source.split("\n")
        line = {"first": 0, "middle": len(lines) // 2, "last": len(lines) - 1}[where]
        if not lines[line]:
            continue
        notebook = Notebook.parse(original)
        after = edit_line(source, line, lines[line] + "  # fixed: é ✅ / 🚀")
        assert notebook.set_source(index, after) is True
        written = (b"\xef\xbb\xbf" if original.startswith(b"\xef\xbb\xbf") else b"") + notebook.dumps().encode()
        assert git_numstat(tmp_path / f"c{index}", original, written) == (1, 1), (index, where)
        node = nbformat.reads(written.decode("utf-8-sig"), as_version=nbformat.NO_CONVERT)
        assert "".join(node.cells[index].source) == after
        assert (
            json.loads(written)["cells"][index]["source"].__class__
            is json.loads(original)["cells"][index]["source"].__class__
        )
        edited += 1
    assert edited >= 2


def test_unchanged_lines_keep_their_own_escaping(tmp_path: Path) -> None:
    original = build("escapes_upper")
    notebook = Notebook.parse(original)
    (index,) = [c.index for c in notebook.cells if "slashes" in c.source]
    source = notebook.cells[index].source
    notebook.set_source(index, source.replace("print(url, name)", "print(url, name, 'é', '/')"))
    written = notebook.dumps()
    removed, added = diff_lines(original, written.encode())
    assert len(removed) == len(added) == 1
    # the new characters in the file's own style: "\/" and uppercase hex, like the lines around them
    assert added[0].strip() == r'"print(url, name, \u0027\u00E9\u0027, \u0027\/\u0027)\n"'.replace(r"\u0027", "'")
    assert r'"url = \"http:\/\/127.0.0.1\/inference\/openai\/deployments\"  # slashes\n",' in written
    assert r"caf\u00E9 \u2014 \u2705 \uD83D\uDE80" in written
    assert git_numstat(tmp_path, original, written.encode()) == (1, 1)


def test_a_one_element_list_stays_one_element_and_keeps_its_escapes(tmp_path: Path) -> None:
    original = build("escaped_in_raw").replace(b'"source": [\n', b'"source": [\n', 1)
    notebook = Notebook.parse(original)
    (index,) = [c.index for c in notebook.cells if "slashes" in c.source]
    big = "".join(f"line_{n} = {n}  # ✅ café\n" for n in range(112))
    notebook.set_source(index, big)
    notebook = Notebook.parse(notebook.dumps())
    base = notebook.dumps().encode()
    # a one-element list holding all 112 lines (written by hand here: the variant writes lines)
    doc = json.loads(base)
    doc["cells"][index]["source"] = [big]
    base = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).replace("✅", "\\u2705")
    base = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", base).encode()
    notebook = Notebook.parse(base)
    assert notebook.set_source(index, big.replace("line_50 = 50", "line_50 = 5000")) is True
    written = notebook.dumps().encode()
    assert git_numstat(tmp_path, base, written) == (1, 1)
    value = json.loads(written)["cells"][index]["source"]
    assert len(value) == 1 and value[0] == big.replace("line_50 = 50", "line_50 = 5000")
    assert written.count(b"\\u2705") == base.count(b"\\u2705")  # unchanged lines keep the escape


@pytest.mark.parametrize("name", ["one_item_lists", "mixed_chunks", "crlf_ascii_4_4"])
def test_chunking_is_kept(tmp_path: Path, name: str) -> None:
    original = build(name)
    doc = json.loads(original)
    notebook = Notebook.parse(original)
    changed = []
    for index in multi_line_code_cells(notebook, 2):
        items = doc["cells"][index]["source"]
        source = "".join(items)
        last_item = items[-1]
        if notebook.set_source(index, source[: len(source) - len(last_item)] + last_item.replace("print", "show", 1)):
            changed.append(index)
    written = json.loads(notebook.dumps())
    assert len(changed) >= 3
    for index in changed:
        old, new = doc["cells"][index]["source"], written["cells"][index]["source"]
        assert len(old) == len(new)
        assert old[:-1] == new[:-1]  # items before the change: untouched
    assert git_numstat(tmp_path, original, notebook.dumps().encode()) == (len(changed), len(changed))


def test_mid_line_split_and_form_feed_items_are_kept(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "metadata": {},
                    "outputs": [],
                    "source": ["a = ", "1\n", "b = 2\f", "c = 3\n", "print(a)"],
                },
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 4,
        },
        indent=1,
    )
    for old, new, items in [
        ("1\n", "2\n", ["a = ", "2\n", "b = 2\f", "c = 3\n", "print(a)"]),
        ("c = 3", "c = 4", ["a = ", "1\n", "b = 2\f", "c = 4\n", "print(a)"]),
        ("print(a)", "print(a, b)", ["a = ", "1\n", "b = 2\f", "c = 3\n", "print(a, b)"]),
        ("a = 1", "a = 7", ["a = ", "7\n", "b = 2\f", "c = 3\n", "print(a)"]),
        ("a = 1", "b = 7", ["b = 7\n", "b = 2\f", "c = 3\n", "print(a)"]),  # across the split: merged
    ]:
        notebook = Notebook.parse(text)
        notebook.set_source(0, notebook.cells[0].source.replace(old, new))
        assert json.loads(notebook.dumps())["cells"][0]["source"] == items, (old, new)
        added = git_numstat(tmp_path / new.strip().replace(" ", ""), text.encode(), notebook.dumps().encode())
        assert added == ((1, 2) if new == "b = 7" else (1, 1))


def test_lines_added_and_removed_in_a_per_line_list(tmp_path: Path) -> None:
    original = build("crlf_tabs")
    notebook = Notebook.parse(original)
    index = multi_line_code_cells(notebook)[0]
    source = notebook.cells[index].source
    first, rest = source.split("\n", 1)
    notebook.set_source(index, first + "\nnew_line = 1\n" + rest)
    assert git_numstat(tmp_path / "add", original, notebook.dumps().encode()) == (1, 0)
    notebook = Notebook.parse(original)
    notebook.set_source(index, rest)
    assert git_numstat(tmp_path / "remove", original, notebook.dumps().encode()) == (0, 1)
    assert b"\r\n" in notebook.dumps().encode() and b"\n" not in notebook.dumps().encode().replace(b"\r\n", b"")


@pytest.mark.parametrize("name", ["escapes_upper", "escaped_in_raw", "one_item_lists", "mixed_chunks"])
def test_lone_surrogates_stay_escapes(tmp_path: Path, name: str) -> None:
    original = build(name)
    notebook = Notebook.parse(original)
    (index,) = [c.index for c in notebook.cells if "lone high surrogate" in c.source]
    source = notebook.cells[index].source
    notebook.set_source(index, source.replace("print(len(broken))", "print(len(broken), '\udfff')"))
    path = tmp_path / "n.ipynb"
    path.write_bytes(original)
    reread = Notebook.read(path)
    reread.set_source(index, notebook.cells[index].source)
    assert reread.write() is True
    written = path.read_bytes()
    assert Notebook.read(path).cells[index].source == notebook.cells[index].source
    assert b"\\udfff" in written.lower() and (b"\\ud83d" in written.lower())
    assert git_numstat(tmp_path, original, written) == (1, 1)


# -- writing safely ------------------------------------------------------------------------------


def test_write_is_atomic_keeps_mode_and_leaves_no_temp_files(lab: Path) -> None:
    lab.chmod(0o640)
    notebook = Notebook.read(lab)
    notebook.set_source(1, "print('x')")
    assert notebook.write() is True
    assert sorted(p.name for p in lab.parent.iterdir()) == [lab.name]
    assert stat.S_IMODE(lab.stat().st_mode) == 0o640


def test_failed_write_leaves_the_old_file_and_no_temp_file(lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = lab.read_bytes()
    notebook = Notebook.read(lab)
    notebook.set_source(1, "print('x')")

    def crash(_src: str, _dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(NotebookError, match="cannot write the notebook: No space left"):
        notebook.write()
    assert lab.read_bytes() == original
    assert sorted(p.name for p in lab.parent.iterdir()) == [lab.name]


def test_write_refuses_when_the_file_changed_on_disk(lab: Path) -> None:
    notebook = Notebook.read(lab)
    lab.write_bytes(lab.read_bytes() + b"\n")
    assert notebook.write() is False  # nothing to save: no complaint either
    notebook.set_source(1, "print('mine')")
    lab.write_bytes(lab.read_bytes() + b"\n\n")
    with pytest.raises(NotebookError, match="changed on disk") as caught:
        notebook.write()
    assert caught.value.hint and "Jupyter" in caught.value.hint


def test_write_goes_through_a_symlink(lab: Path) -> None:
    link = lab.with_name("link.ipynb")
    link.symlink_to(lab.name)
    notebook = Notebook.read(link)
    notebook.set_source(1, "print('via link')")
    notebook.write()
    assert link.is_symlink()
    assert "via link" in Notebook.read(lab).cells[1].source


# -- cells and addressing --------------------------------------------------------------------------


def test_cells_carry_number_id_tags_and_outputs(lab: Path) -> None:
    notebook = Notebook.read(lab)
    cell = notebook.cells[1]
    assert (cell.index, cell.number, cell.cell_type) == (1, 2, "code")
    assert cell.id is not None and cell.id.startswith("cell_1_")
    assert cell.tags == ["image-test"]
    assert cell.outputs and cell.outputs[0]["output_type"] == "stream"
    assert cell.summary() == {
        "index": 1,
        "number": 2,
        "id": cell.id,
        "cell_type": "code",
        "tags": ["image-test"],
        "fingerprint": cell.fingerprint,
    }
    assert len(notebook) == 30 and (notebook.nbformat, notebook.nbformat_minor) == (4, 5)


def test_address_by_id_number_tag_and_pattern(lab: Path) -> None:
    notebook = Notebook.read(lab)
    target = notebook.cells[2]
    assert notebook.address(CellAddress(id=target.id)) == target
    assert notebook.address(CellAddress(number=3)) == target
    assert notebook.find(pattern=r"^def step_2\(") == [target]
    assert [c.number for c in notebook.find(tag="image-test", all=True)] == [2, 12]
    markdown = notebook.find(pattern="gateway", cell_type="markdown", all=True)
    assert markdown and all(c.cell_type == "markdown" for c in markdown)


def test_address_errors_say_what_matched(lab: Path) -> None:
    notebook = Notebook.read(lab)
    with pytest.raises(NotebookError, match="pattern 'nothing here' matches no cell"):
        notebook.find(pattern="nothing here")
    with pytest.raises(NotebookError) as caught:
        notebook.find(tag="image-test")
    message = str(caught.value)
    assert "matches 2 cells: cell 2 (cell_1_" in message and ", cell 12 (cell_11_" in message
    assert "all: true" in message
    with pytest.raises(NotebookError, match="matches 2 cells"):
        notebook.address(CellAddress(tag="image-test", all=True))
    with pytest.raises(NotebookError, match="there is no cell number 31: the notebook has 30 cells"):
        notebook.find(number=31)


def test_unknown_id_suggests_near_ids(lab: Path) -> None:
    notebook = Notebook.read(lab)
    real = notebook.cells[7].id
    assert real is not None
    with pytest.raises(NotebookError) as caught:
        notebook.find(id=real[:-1] + "z")
    assert f"no cell has id {real[:-1] + 'z'!r}" in str(caught.value)
    assert caught.value.hint and f"{real!r} (cell 8)" in caught.value.hint


def test_cell_address_needs_exactly_one_selector() -> None:
    with pytest.raises(ValidationError, match="exactly one of id, number, tag, pattern"):
        CellAddress()
    with pytest.raises(ValidationError, match=r"got id, number"):
        CellAddress(id="a", number=2)
    with pytest.raises(ValidationError, match="`all` goes with tag or pattern"):
        CellAddress(id="a", all=True)
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        CellAddress(pattern="(")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CellAddress.model_validate({"id": "a", "index": 3})
    with pytest.raises(ValidationError):
        CellAddress(number=0)


# -- replacements ------------------------------------------------------------------------------------

CONFIG = (
    'image_model = os.getenv("DALL_E_DEPLOYMENT", "gpt-image-1") or "gpt-image-1"\n'
    "res = generate_image(TEST_PROMPT, size='512x512')\n"
    "other = generate_image(OTHER)"
)


def test_replace_in_cell_changes_then_reports_already_applied() -> None:
    fixes = [
        Replacement(find='"gpt-image-1"', replace='"FLUX-1.1-pro"', count=2),
        Replacement(find="generate_image(", replace="generate_image(image_model, "),
    ]
    first = replace_in_cell(CONFIG, fixes, label="cell 109 (cell_108_e274080d)")
    assert first.status == "changed"
    assert first.after.count("generate_image(image_model, ") == 2
    assert first.diff.startswith("--- a/cell 109 (cell_108_e274080d)\n+++ b/cell 109 (cell_108_e274080d)\n")
    assert '+image_model = os.getenv("DALL_E_DEPLOYMENT", "FLUX-1.1-pro") or "FLUX-1.1-pro"' in first.diff
    second = replace_in_cell(first.after, fixes)
    assert second.status == "already" and second.after == first.after and second.diff == ""
    assert [r.status for r in second.results] == ["already", "already"]


def test_replace_in_cell_count_mismatch_and_missing_text_fail_without_changes() -> None:
    outcome = replace_in_cell(
        CONFIG,
        [
            Replacement(find="image_model", replace="model"),
            Replacement(find="generate_image(", replace="g(", count=1),
        ],
    )
    assert outcome.status == "failed" and outcome.after == CONFIG and outcome.diff == ""
    assert "expected 1 occurrence of 'generate_image(', found 2" in outcome.message
    missing = replace_in_cell(CONFIG, [Replacement(find="dall-e-3", replace="FLUX-1.1-pro")])
    assert missing.status == "failed"
    assert "text not found: 'dall-e-3'" in missing.message
    assert missing.to_dict()["results"][0]["status"] == "failed"


def test_replace_in_cell_with_regex() -> None:
    fix = Replacement(
        find=r"generate_image\((\w+), size='(\d+x\d+)'\)", replace=r"generate_image(m, \1, '\2')", regex=True
    )
    outcome = replace_in_cell(CONFIG, [fix])
    assert outcome.status == "changed" and "generate_image(m, TEST_PROMPT, '512x512')" in outcome.after
    assert replace_in_cell(CONFIG, [fix.model_copy(update={"count": 2})]).status == "failed"
    literal = Replacement(find=r"DALL_E_\w+", replace="IMAGE_MODEL_DEPLOYMENT", regex=True)
    changed = replace_in_cell(CONFIG, [literal]).after
    assert replace_in_cell(changed, [literal]).status == "already"
    grouped = Replacement(find=r"nothing(\d)", replace=r"x\1", regex=True)
    assert "cannot be told" in replace_in_cell(CONFIG, [grouped]).message


def test_cell_diff_is_empty_for_equal_text() -> None:
    assert cell_diff("a\nb", "a\nb", "cell 1") == ""
    assert cell_diff("a\nb", "a\nc", "cell 1").splitlines()[-2:] == ["-b", "+c"]


# -- malformed notebooks -------------------------------------------------------------------------------


def test_truncated_json_reports_line_and_column(lab: Path) -> None:
    text = lab.read_text(encoding="utf-8")
    lab.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text[: len(text) // 2])
    with pytest.raises(NotebookError) as caught:
        Notebook.read(lab)
    error = caught.value
    assert error.exit_code == EXIT_INPUT
    assert error.location is not None
    assert (error.location.line, error.location.column) == (expected.value.lineno, expected.value.colno)
    assert str(error).startswith(
        f"{error.location.path}:{expected.value.lineno}:{expected.value.colno}: not valid JSON"
    )
    assert "Traceback" not in str(error)


def test_merge_conflict_markers_get_their_own_hint(lab: Path) -> None:
    lines = lab.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[10:10] = ["<<<<<<< HEAD\n", "=======\n", ">>>>>>> branch\n"]
    lab.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(NotebookError) as caught:
        Notebook.read(lab)
    assert caught.value.location is not None and caught.value.location.line == 11
    assert caught.value.hint and "merge-conflict" in caught.value.hint


@pytest.mark.parametrize(
    ("major", "message"),
    [(3, "nbformat 3 notebooks are not supported"), (5, "nbformat 5 is newer than runbook understands")],
)
def test_unknown_nbformat_versions_are_clear_errors(lab: Path, major: int, message: str) -> None:
    text = lab.read_text(encoding="utf-8").replace('"nbformat": 4,', f'"nbformat": {major},')
    lab.write_text(text, encoding="utf-8")
    with pytest.raises(NotebookError, match=message) as caught:
        Notebook.read(lab)
    assert caught.value.location is not None
    assert caught.value.location.line == text.splitlines().index(f' "nbformat": {major},') + 1


def test_duplicate_ids_are_an_error_at_the_second_cell(tmp_path: Path) -> None:
    def duplicate(cells: Cells) -> None:
        cells[5]["id"] = cells[2]["id"]

    path = write_variant(tmp_path, "jupyterlab", edit=duplicate)
    with pytest.raises(NotebookError, match=r"duplicate cell id 'cell_2_\w+': cells 3 and 6") as caught:
        Notebook.read(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert caught.value.location is not None and caught.value.location.line is not None
    assert lines[caught.value.location.line - 1] == "  {"
    first_id = Notebook.parse(build("jupyterlab")).cells[2].id
    assert f'   "id": "{first_id}",' in lines[caught.value.location.line : caught.value.location.line + 4]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the notebook file is empty"),
        (b"[1, 2]", "a notebook is a JSON object"),
        (b'{"cells": []}', "no `nbformat` field"),
        (b'{"cells": {}, "nbformat": 4, "nbformat_minor": 5}', "no `cells` list"),
        (
            b'{"cells": [{"cell_type": "code"}, {"cell_type": "sql"}], "nbformat": 4, "nbformat_minor": 5}',
            "cell 2 has unknown cell_type 'sql'",
        ),
        (
            b'{"cells": [{"cell_type": "code", "source": 5}], "nbformat": 4, "nbformat_minor": 5}',
            "neither a string nor a list",
        ),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
)
def test_other_malformed_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError, match=message):
        Notebook.read(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="notebook not found"):
        Notebook.read(tmp_path / "nope.ipynb")


# -- execution copy ----------------------------------------------------------------------------------


def test_as_nbformat_is_a_valid_independent_copy(lab: Path) -> None:
    notebook = Notebook.read(lab)
    node = notebook.as_nbformat()
    nbformat.validate(node)
    assert node.cells[1].source == notebook.cells[1].source
    node.cells[1].source = "changed"
    node.cells[1].outputs.clear()
    assert notebook.cells[1].source != "changed" and notebook.cells[1].outputs
    assert notebook.write() is False


# -- property: any text survives set_source + write + read --------------------------------------------

PROPERTY_VARIANTS = [
    "jupyterlab",
    "ascii_escaped",
    "string_sources",
    "crlf_tabs",
    "minified",
    "odd_spacing",
    "one_item_lists",
    "mixed_chunks",
    "escapes_upper",
    "escaped_in_raw",
]
_BASES = {name: build(name) for name in PROPERTY_VARIANTS}


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    name=st.sampled_from(PROPERTY_VARIANTS),
    index=st.integers(min_value=0, max_value=29),
    text=st.text(st.characters(codec="utf-8"), max_size=60),
)
def test_any_source_round_trips(tmp_path_factory: pytest.TempPathFactory, name: str, index: int, text: str) -> None:
    path = tmp_path_factory.mktemp("prop") / "n.ipynb"
    path.write_bytes(_BASES[name])
    notebook = Notebook.read(path)
    notebook.set_source(index, text)
    notebook.write()
    reread = Notebook.read(path)
    assert reread.cells[index].source == text
    written, expected = json.loads(path.read_bytes()), json.loads(_BASES[name])
    old_source, new_source = expected["cells"][index]["source"], written["cells"][index]["source"]
    assert type(new_source) is type(old_source)  # a list of lines stays a list, a string a string
    expected["cells"][index]["source"] = new_source
    assert written == expected  # and nothing else changed


# -- the one-pass reader agrees with json.loads ------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_one_pass_scan_gives_what_json_loads_gives(name: str) -> None:
    from runbook.notebooks.layout import scan_document

    data = build(name).decode("utf-8-sig")
    doc, layout = scan_document(data, 0)
    assert doc == json.loads(data) and layout is not None and len(layout.cells) == len(doc["cells"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"cells": [], "nbformat": 4, "nbformat_minor": 5} trailing', "Extra data"),
        ('{"cells" [], "nbformat": 4}', "Expecting ':' delimiter"),
        ('{"cells": [{"cell_type": "code",}], "nbformat": 4}', "Expecting property name"),
        ('{"cells": [1 2], "nbformat": 4}', "Expecting ',' delimiter"),
    ],
)
def test_malformed_json_errors_come_from_json_itself(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(NotebookError, match=message) as caught:
        Notebook.read(path)
    assert caught.value.location is not None and caught.value.location.column == expected.value.colno
