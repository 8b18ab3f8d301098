"""The notebook.* actions through real runs: discovery, edits, drift warnings, inserts, kernel execution."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import invoke
from runbook.record import read_record, record_paths


def make_notebook(path: Path, sources: list[str], *, minor: int = 5, ids: bool = True) -> Path:
    cells = []
    for i, source in enumerate(sources):
        cell: dict = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
        if ids and minor >= 5:
            cell = {"cell_type": "code", "execution_count": None, "id": f"cell_{i}_{i:08x}", "metadata": {}, "outputs": [], "source": source}
        cells.append(cell)
    doc = {
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": minor,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def runbook(root: Path, text: str) -> None:
    (root / "runbooks" / "phase-1.1.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def last_steps(root: Path) -> dict[str, dict]:
    record = read_record(record_paths(root / "reports", "1.1")[-1])
    return {f"{e['stage']}:{e['step']}": e for e in record.step_results()}


def test_cells_discovery_and_edit_by_id_number_and_pattern(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["x = 'dall-e-3'\n", "print('ok')\n", "y = 'dall-e-3'  # 🎨\n"])
    before = nb.read_text(encoding="utf-8")
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        discovery:
          - {id: find, uses: notebook.cells, with: {path: nb.ipynb, pattern: "'(dall-e-\\\\d)'"}, register: found}
        fix:
          - id: by-number
            uses: notebook.edit
            with: {path: nb.ipynb, cell: 1, replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]}
          - id: by-id
            uses: notebook.edit
            with: {path: nb.ipynb, cell: cell_2_00000002, replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    steps = last_steps(local_workspace)
    found = steps["discovery:find"]["output"]
    assert found["numbers"] == [1, 3] and found["cells"][0]["matches"][0]["groups"] == ["dall-e-3"]
    assert steps["fix:by-number"]["output"]["cell"] == {"number": 1, "id": "cell_0_00000000", "type": "code"}
    assert steps["fix:by-id"]["changes"][0]["number"] == 3
    after = nb.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert len(changed) == 2 and all("FLUX-1.1-pro" in b for _, b in changed)
    assert "🎨" in after  # raw UTF-8 stays raw
    # Idempotent: the second run reports already applied and writes nothing.
    mtime = nb.stat().st_mtime_ns
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    assert nb.stat().st_mtime_ns == mtime
    assert last_steps(local_workspace)["fix:by-number"]["status"] == "ok"


def test_edit_fails_naming_cell_and_missing_text(local_workspace: Path) -> None:
    make_notebook(local_workspace / "nb.ipynb", ["a = 1\n"])
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: e, uses: notebook.edit, with: {path: nb.ipynb, cell: 1, replacements: [{find: dall-e-3, replace: x}]}}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1
    assert "cell 1 (cell_0_00000000)" in result.stdout and "dall-e-3" in result.stdout


def test_number_addressing_warns_when_cells_moved(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["a = 'old'\n", "b = 2\n"])
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: e, uses: notebook.edit, with: {path: nb.ipynb, cell: 1, replacements: [{find: old, replace: new}]}}
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    # Someone inserts a cell at the top: cell 1 is now another cell (the find text is there too).
    make_notebook(nb, ["z = 'old'\n", "a = 'new'\n", "b = 2\n"])
    doc = json.loads(nb.read_text())
    doc["cells"][0]["id"] = "inserted-cell"
    nb.write_text(json.dumps(doc, indent=1) + "\n")
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert "warning: e: cell 1 is now inserted-cell; last run it was cell_0_00000000" in result.stdout


def test_insert_and_set_source_keep_4_4_notebooks_without_ids(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["import os\n", "print(1)\n"], minor=4, ids=False)
    (local_workspace / "helper.py").write_text("def helper():\n    return 42\n")
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: ins, uses: notebook.insert, with: {path: nb.ipynb, cell: 1, position: after, source: "HELPER = True"}}
          - {id: src, uses: notebook.set_source, with: {path: nb.ipynb, cell: 3, source_file: helper.py}}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    doc = json.loads(nb.read_text())
    assert doc["nbformat_minor"] == 4
    assert all("id" not in cell for cell in doc["cells"])
    assert ["".join(c["source"]) for c in doc["cells"]] == ["import os\n", "HELPER = True", "def helper():\n    return 42\n"]
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    steps = last_steps(local_workspace)
    assert steps["fix:ins"]["status"] == "ok" and steps["fix:src"]["status"] == "ok"
    assert len(json.loads(nb.read_text())["cells"]) == 3


def test_dry_run_prints_the_cell_diff_and_writes_nothing(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["model = 'dall-e-3'\n"])
    before = nb.read_bytes()
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: e, uses: notebook.edit, with: {path: nb.ipynb, cell: 1, replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]}}
        """,
    )
    result = invoke(["run", "1.1", "--dry-run"], cwd=local_workspace)
    assert result.exit_code == 0
    assert "-model = 'dall-e-3'" in result.stdout and "+model = 'FLUX-1.1-pro'" in result.stdout
    assert nb.read_bytes() == before


@pytest.mark.kernel
def test_run_cells_in_a_kernel_pass_fail_and_timeout(local_workspace: Path) -> None:
    make_notebook(
        local_workspace / "nb.ipynb",
        [
            "import os\nVALUE = os.environ['LAB_VALUE']\n",
            "print('value is', VALUE)\n",
            "1 / 0\n",
            "import time\ntime.sleep(60)\n",
            "print('after the timeout')\n",
        ],
    )
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        verify:
          - id: good
            uses: notebook.run
            with:
              path: nb.ipynb
              setup: [1]
              cells: [2]
              env: {LAB_VALUE: forty-two}
              expect: [{cell: 2, output_contains: [value is forty-two]}]
          - id: bad
            uses: notebook.run
            continue_on_error: true
            with: {path: nb.ipynb, setup: [1], cells: [3, 4, 5], timeout: 2, env: {LAB_VALUE: x}}
        """,
    )
    result = invoke(["run", "1.1", "--no-reproduce"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    steps = last_steps(local_workspace)
    good = steps["verify:good"]
    assert good["status"] == "ok"
    cells = {c["number"]: c for c in good["output"]["cells"]}
    assert cells[2]["status"] == "ok" and cells[2]["started_at"].endswith("Z")
    bad = steps["verify:bad"]
    assert bad["status"] == "failed"
    statuses = {c["number"]: c["status"] for c in bad["output"]["cells"]}
    assert statuses == {1: "ok", 3: "failed", 4: "timeout", 5: "ok"}
    assert "ZeroDivisionError" in bad["error"]["message"]


# -- a real-style notebook, end to end -------------------------------------------------------------

IMAGE_FIX = """\
phase: "1.1"
title: Image generation on a real-style notebook
vars:
  notebook: notebooks/lab.ipynb
  model: FLUX-1.1-pro
discovery:
  - id: image-cells
    uses: notebook.cells
    with: {{path: "{{{{ notebook }}}}", cell_type: code, pattern: 'dall-e|gpt-image|generate_image\\('}}
    register: image_cells
fix:
  - id: fix-config
    uses: notebook.edit
    with:
      path: "{{{{ notebook }}}}"
      cell: {{pattern: '^# IMAGE GENERATION CONFIG'}}
      replacements:
        - find: 'os.getenv("DALL_E_DEPLOYMENT", "gpt-image-1") or "gpt-image-1"'
          replace: 'os.getenv("IMAGE_MODEL_DEPLOYMENT", "{{{{ model }}}}") or "{{{{ model }}}}"'
        - find: '/openai/images/generations?'
          replace: '/openai/deployments/{{image_model}}/images/generations?'
  - id: fix-tests
    uses: notebook.edit
    with:
      path: "{{{{ notebook }}}}"
      cell: {tests}
      replacements:
        - {{find: /openai/deployments/dall-e-3/images/generations, replace: "/openai/deployments/{{{{ model }}}}/images/generations"}}
  - id: fix-minimal
    uses: notebook.edit
    with:
      path: "{{{{ notebook }}}}"
      cell: {{number: {minimal}}}
      replacements:
        - find: 'print(f"[test] Attempting generation with model={{IMAGE_MODEL}} source={{SOURCE}}")'
          replace: 'print(f"[test] Attempting generation with model={{image_model}}")'
verify:
  - id: run-image-cells
    uses: notebook.run
    with:
      path: "{{{{ notebook }}}}"
      setup: [{{pattern: '^# ENVIRONMENT LOADER'}}]
      cells: [{{pattern: '^# DEPLOYMENT DISCOVERY'}}, {{pattern: '^# IMAGE GENERATION CONFIG'}}, {tests}, {minimal}]
      timeout: 60
      expect:
        - cell: {{pattern: '^# IMAGE GENERATION CONFIG'}}
          output_contains: ["[image] Primary image generated"]
        - cell: {tests}
          output_matches: ['3/3 images generated']
        - cell: {minimal}
"""


@pytest.mark.kernel
def test_a_phase_on_a_real_style_notebook_changes_only_the_fixed_lines(tmp_path: Path) -> None:
    import nbformat

    from conftest import copy_sample, git, git_init
    from realstyle import build_realstyle

    root = copy_sample(tmp_path / "lab")
    real = build_realstyle()
    nb = real.write(root / "notebooks" / "lab.ipynb")
    tests, minimal = real.number("# IMAGE TESTS"), real.number("# MINIMAL IMAGE TEST")
    (root / "runbooks" / "phase-1.1.yaml").write_text(IMAGE_FIX.format(tests=tests, minimal=minimal))
    git_init(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "before")

    result = invoke(["run", "1.1"], cwd=root)
    assert result.exit_code == 0, result.output
    record = read_record(record_paths(root / "reports", "1.1")[-1])
    steps = {f"{e['stage']}:{e['step']}": e for e in record.step_results()}
    found = set(steps["discovery:image-cells"]["output"]["numbers"])
    assert {real.number("# IMAGE GENERATION CONFIG"), tests, minimal} <= found
    assert steps["fix:fix-tests"]["output"]["cell"]["number"] == tests
    assert steps["verify:run-image-cells"]["status"] == "ok"
    # The config cell is a one-element list: both of its fixed lines sit in one JSON line.
    assert git(root, "diff", "--numstat", "--", "notebooks/lab.ipynb").split()[:2] == ["3", "3"]
    after = nb.read_bytes()
    assert after.endswith(b"}") and b"\n" not in after.replace(b"\r\n", b"") and after.isascii()
    node = nbformat.reads(after.decode(), as_version=nbformat.NO_CONVERT)
    assert "FLUX-1.1-pro" in "".join(node.cells[tests - 1].source)
