"""The notebook.* actions through real runs: discovery, edits, drift warnings, inserts, kernel execution."""

from __future__ import annotations

import json
import re
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


@pytest.mark.parametrize("ids", [True, False])
def test_a_number_that_now_names_another_cell_fails_the_step(local_workspace: Path, ids: bool) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["a = 'old'\n", "b = 2\n"], minor=5 if ids else 4, ids=ids)
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
    first = last_steps(local_workspace)["fix:e"]["output"]["addressed"][0]
    assert first["ref"] == "cell number 1" and first["fingerprint"] != first["fingerprint_after"]
    # The edited cell as it was left is the same cell: a second run is fine (already applied).
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    # Someone inserts a cell at the top: cell 1 is now another cell (the find text is there too).
    make_notebook(nb, ["z = 'old'\n", "a = 'new'\n", "b = 2\n"], minor=5 if ids else 4, ids=False)
    before = nb.read_bytes()
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1
    assert "cell number 1 now names another cell than last run: it was \"a = 'new'\"" in result.stdout
    assert "now it is \"z = 'old'\"; that cell is now cell 2" in result.stdout
    assert "address the cell by pattern" in result.stdout
    assert nb.read_bytes() == before  # the wrong cell was not edited


def test_a_cell_changed_by_hand_only_warns(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["a = 'old'\n", "b = 2\n"], minor=4, ids=False)
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
    make_notebook(nb, ["a = 'old'  # edited by hand\n", "b = 2\n"], minor=4, ids=False)
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0
    assert "cell 1 changed since the last run" in result.stdout


def test_edit_with_all_edits_every_match(local_workspace: Path) -> None:
    nb = make_notebook(
        local_workspace / "nb.ipynb",
        ["m = 'dall-e-3'\n", "print(1)\n", "n = 'dall-e-3'\nk = 'dall-e-3'\n"],
        minor=4,
        ids=False,
    )
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - id: e
            uses: notebook.edit
            with:
              path: nb.ipynb
              cell: {pattern: dall-e-3, all: true}
              replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    step = last_steps(local_workspace)["fix:e"]
    assert [(c["number"], c["id"], c["status"]) for c in step["output"]["cells"]] == [
        (1, None, "changed"),
        (3, None, "changed"),
    ]
    assert [c["number"] for c in step["changes"]] == [1, 3]
    assert "dall-e-3" not in nb.read_text()
    # Second run: the pattern matches nothing now, and the step says so (the fix text is there).
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - id: e
            uses: notebook.edit
            with:
              path: nb.ipynb
              cell: {pattern: "FLUX|dall-e-3", all: true}
              replacements: [{find: dall-e-3, replace: FLUX-1.1-pro}]
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    assert last_steps(local_workspace)["fix:e"]["status"] == "ok"


def test_edit_with_all_writes_nothing_when_one_cell_fails(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["x = 'a'  # fixme\n", "y = 'b'  # fixme\n"])
    before = nb.read_bytes()
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - id: e
            uses: notebook.edit
            with: {path: nb.ipynb, cell: {pattern: fixme, all: true}, replacements: [{find: "'a'", replace: "'A'"}]}
        """,
    )
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 1
    assert "cell 2 (cell_1_00000001): text not found" in result.stdout
    assert nb.read_bytes() == before


@pytest.mark.parametrize(
    ("anchor", "position"),
    [("2", "before"), ("2", "after"), ("{pattern: '^print'}", "before"), ("{pattern: '^print'}", "after"),
     ("cell_1_00000001", "before"), ("{pattern: 'HELPER|print'}", "after")],
)
def test_insert_is_idempotent_for_every_anchor_form(local_workspace: Path, anchor: str, position: str) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["import os\n", "print(1)\n", "x = 3\n"])
    runbook(
        local_workspace,
        f"""\
        phase: "1.1"
        title: t
        fix:
          - {{id: ins, uses: notebook.insert, with: {{path: nb.ipynb, cell: {anchor}, position: {position}, source: "HELPER = True"}}}}
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    after_first = nb.read_bytes()
    sources = ["".join(c["source"]) for c in json.loads(after_first)["cells"]]
    assert sources.count("HELPER = True") == 1
    assert sources.index("HELPER = True") == (1 if position == "before" else 2)
    result = invoke(["run", "1.1"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert last_steps(local_workspace)["fix:ins"]["status"] == "ok"
    assert nb.read_bytes() == after_first


def test_insert_into_a_4_4_notebook_that_carries_ids_gives_an_id(local_workspace: Path) -> None:
    nb = make_notebook(local_workspace / "nb.ipynb", ["import os\n", "print(1)\n"], minor=4, ids=False)
    doc = json.loads(nb.read_text())
    doc["cells"][0]["id"] = "0f3a9c2e-1b7d-4c55-9a0e-3d2f6b8e1a4c"
    nb.write_text(json.dumps(doc, indent=1) + "\n")
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        fix:
          - {id: ins, uses: notebook.insert, with: {path: nb.ipynb, cell: 1, source: "HELPER = True"}}
        """,
    )
    assert invoke(["run", "1.1"], cwd=local_workspace).exit_code == 0
    inserted = json.loads(nb.read_text())["cells"][1]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", inserted["id"])
    assert last_steps(local_workspace)["fix:ins"]["output"]["cell"]["id"] == inserted["id"]


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


@pytest.mark.kernel
def test_run_with_setup_code_not_contains_and_excerpts(local_workspace: Path) -> None:
    nb = make_notebook(
        local_workspace / "nb.ipynb",
        [
            "print('[image]', MODEL, 'ok')\n",
            "try:\n    raise RuntimeError('404')\nexcept RuntimeError as e:\n    print(f'[image] gpt-image-1 failed: {e}')\n",
        ],
        minor=4,
        ids=False,
    )
    before = nb.read_bytes()
    (local_workspace / "shim.py").write_text("MODEL = 'FLUX-1.1-pro'\n")
    runbook(
        local_workspace,
        """\
        phase: "1.1"
        title: t
        verify:
          - id: inline
            uses: notebook.run
            with:
              path: nb.ipynb
              setup_code: "MODEL = 'inline-model'"
              cells: [1]
              expect: [{cell: 1, output_contains: [inline-model], output_not_contains: ["failed:"]}]
          - id: from-file
            uses: notebook.run
            continue_on_error: true
            with:
              path: nb.ipynb
              setup_code: {file: shim.py}
              cells: [1, 2]
              expect:
                - {cell: 1, output_contains: [FLUX-1.1-pro]}
                - {cell: 2, output_not_matches: ['failed: \\d{3}']}
        """,
    )
    result = invoke(["run", "1.1", "--no-reproduce"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    steps = last_steps(local_workspace)
    assert steps["verify:inline"]["status"] == "ok"
    assert [c["index"] for c in steps["verify:inline"]["output"]["cells"]] == [-1, 0]
    checked = steps["verify:from-file"]["output"]["expectations"]
    assert checked[0] == {
        "cell": 1, "id": None, "passed": True, "failed": [], "status": "ok", "excerpt": "[image] FLUX-1.1-pro ok"
    }
    assert checked[1]["passed"] is False and checked[1]["status"] == "ok"
    assert checked[1]["excerpt"] == "[image] gpt-image-1 failed: 404"
    assert "output matches 'failed: \\\\d{3}': '[image] gpt-image-1 failed: 404'" in steps["verify:from-file"]["error"]["message"]
    assert nb.read_bytes() == before  # setup code never touches the notebook


CONVENTION_CELL = """\
import json, os, urllib.request, urllib.error
path = os.environ.get("INFERENCE_API_PATH", "inference/openai").strip("/")
url = f"{os.environ['APIM_GATEWAY_URL']}/{path}/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
request = urllib.request.Request(url, data=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
                                 headers={"Content-Type": "application/json", "api-key": os.environ["APIM_API_KEY"]})
try:
    status = urllib.request.urlopen(request, timeout=30).status
except urllib.error.HTTPError as error:
    status = error.code
print("path", path, "status", status)
"""


def test_kernel_env_follows_the_notebook_convention_unless_the_target_overrides_it() -> None:
    from runbook.targets import TargetSession

    session = TargetSession("emulator", "emulator", {}, {"INFERENCE_API_PATH": "inference", "X": "1"})
    session.inference_paths = ("inference/openai", "inference")
    assert session.kernel_env([CONVENTION_CELL])["INFERENCE_API_PATH"] == "inference/openai"
    assert session.kernel_env(['p = os.getenv("INFERENCE_API_PATH", "inference")'])["INFERENCE_API_PATH"] == "inference"
    assert session.kernel_env(["url = f'{gw}/{inference_api_path}/openai/deployments'"])["INFERENCE_API_PATH"] == "inference"
    assert session.kernel_env(["print(1)"]) == {"INFERENCE_API_PATH": "inference", "X": "1"}
    session.env_overrides.add("INFERENCE_API_PATH")
    assert session.kernel_env([CONVENTION_CELL])["INFERENCE_API_PATH"] == "inference"


@pytest.mark.kernel
def test_a_notebook_defaulting_to_inference_openai_reaches_the_emulator_gateway(tmp_path: Path) -> None:
    from conftest import copy_sample

    root = copy_sample(tmp_path / "lab")
    make_notebook(root / "notebooks" / "convention.ipynb", [CONVENTION_CELL], minor=4, ids=False)
    (root / "runbooks" / "phase-1.1.yaml").write_text(
        textwrap.dedent(
            """\
            phase: "1.1"
            title: t
            verify:
              - id: call
                uses: notebook.run
                with:
                  path: notebooks/convention.ipynb
                  cells: [1]
                  expect: [{cell: 1, output_contains: ["path inference/openai status 200"]}]
            """
        )
    )
    result = invoke(["run", "1.1", "--no-reproduce"], cwd=root)
    assert result.exit_code == 0, result.output
    # A target `env:` override wins over the notebook's convention.
    config = (root / "runbook.yaml").read_text()
    config = config.replace(
        "    kind: emulator\n", "    kind: emulator\n    env:\n      INFERENCE_API_PATH: inference\n", 1
    )
    (root / "runbook.yaml").write_text(config)
    result = invoke(["run", "1.1", "--no-reproduce"], cwd=root)
    assert result.exit_code == 1
    assert "path inference status 404" in json.dumps(last_steps(root)["verify:call"]["output"])
