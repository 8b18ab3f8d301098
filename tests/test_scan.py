"""`runbook scan`: real kernel runs of whole notebooks against the emulator, failure causes, the
triage report, and `runbook new --from-scan` scaffolding a runbook that goes green once fixed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import copy_sample, invoke
from realstyle import build_realstyle
from runbook.errors import InputError
from runbook.notebooks import Notebook
from runbook.scan import classify, free_names, select_cells

SAMPLE = "notebooks/master-ai-gateway-fix-MCP.ipynb"


# -- causes (no kernel) ------------------------------------------------------------------------------


def failed(ename: str, evalue: str, stdout: str = "", traceback: str = "") -> dict[str, object]:
    return {"status": "failed", "stdout": stdout, "error": {"ename": ename, "evalue": evalue, "traceback": traceback}}


@pytest.mark.parametrize(
    ("item", "kind", "status", "code"),
    [
        (
            failed("AssertionError", "mountain: HTTP 404 {'error': {'code': 'DeploymentNotFound', 'message': 'x'}}"),
            "deployment-not-found",
            404,
            "DeploymentNotFound",
        ),
        (
            failed("RuntimeError", 'HTTP 404 {"statusCode":404,"message":"Resource not found"}'),
            "resource-not-found",
            404,
            None,
        ),
        (
            failed("HTTPError", "HTTP Error 401: Access denied due to invalid subscription key"),
            "unauthorized",
            401,
            None,
        ),
        (
            failed("RuntimeError", "HTTP 403: Public access is disabled; the request was blocked by the firewall"),
            "forbidden-firewall",
            403,
            None,
        ),
        (failed("HTTPError", "HTTP Error 429: Too Many Requests"), "http-429", 429, None),
        (failed("ModuleNotFoundError", "No module named 'openai'"), "import-error", None, None),
        (failed("ValueError", "bad value"), "exception", None, None),
        (
            {"status": "ok", "stdout": "[image] gpt-image-1 failed: 404 DeploymentNotFound\n[image] done\n"},
            "caught-deployment-not-found",
            404,
            "DeploymentNotFound",
        ),
        ({"status": "ok", "stdout": "[image] request failed: 500\n"}, "caught-http-500", 500, None),
        (
            {"status": "timeout", "error": {"ename": "TimeoutError", "evalue": "cell did not finish within 2 s"}},
            "timeout",
            None,
            None,
        ),
    ],
)
def test_causes(item: dict[str, object], kind: str, status: int | None, code: str | None) -> None:
    cause = classify(item)
    assert cause is not None
    assert (cause.kind, cause.http_status, cause.code) == (kind, status, code)


def test_a_passing_cell_has_no_cause_and_name_errors_say_which_cell_defines_the_name() -> None:
    assert classify({"status": "ok", "stdout": "404 bytes written, no error\n"}) is None
    assert classify({"status": "ok", "stdout": "3/3 images generated\n"}) is None
    cause = classify(failed("NameError", "name 'generate_image' is not defined"), {"generate_image": 15})
    assert cause is not None and cause.kind == "name-error"
    assert cause.hint == "`generate_image` is defined by cell 15, which must run first (or failed)"
    orphan = classify(failed("NameError", "name 'IMAGE_MODEL' is not defined"), {})
    assert orphan is not None and orphan.hint and "no earlier cell defines `IMAGE_MODEL`" in orphan.hint


def test_free_names_ignore_what_functions_bind_locally() -> None:
    source = (
        "def f(prompt):\n    body = prompt * 2\n    return body + SUFFIX\n\nvalue = f(PREFIX)\nprint(value, os.sep)\n"
    )
    assert free_names(source) == {"SUFFIX", "PREFIX", "os"}
    assert free_names("%pip install x\n") == set()


def test_cell_selection_by_range_and_section() -> None:
    nb = Notebook.read(Path(__file__).resolve().parents[1] / SAMPLE)
    assert [c.number for c in select_cells(nb, "3-13")] == [3, 5, 7, 9, 11, 13]
    assert [c.number for c in select_cells(nb, section="1.5")] == [13, 15, 17, 19]
    assert [c.number for c in select_cells(nb, "1-16", "1.5")] == [13, 15]
    with pytest.raises(InputError, match="outside cells 1-33"):
        select_cells(nb, "30-40")
    with pytest.raises(InputError, match="not a number or a range"):
        select_cells(nb, "3..5")
    with pytest.raises(InputError, match=r"no cells under a section '9\.9'") as caught:
        select_cells(nb, section="9.9")
    assert caught.value.hint and "1.5 Image generation" in caught.value.hint


# -- real scans ----------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_scan_of_the_sample_finds_the_image_cells_and_their_cause(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    before = (root / SAMPLE).read_bytes()
    result = invoke(["scan", SAMPLE], cwd=root)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[ 1/18] cell 3 ") and " ok " in lines[0]
    assert re.search(r"\[ 8/18\] cell 17 +failed +\d+\.\d\d s  HTTP 404 DeploymentNotFound", result.stdout)
    assert "18 cells scanned, 7 failing" in result.stdout  # 1.5's three image cells and 1.6's backends
    data = json.loads((root / "reports" / "scan" / "master-ai-gateway-fix-MCP.json").read_text())
    failing = {c["number"]: c for c in data["cells"] if c["cause"]}
    assert sorted(failing) == [15, 17, 19, 24, 25, 26, 28]
    assert failing[17]["cause"]["kind"] == "deployment-not-found" and failing[17]["cause"]["http_status"] == 404
    assert failing[17]["error_name"] == "AssertionError" and "DeploymentNotFound" in failing[17]["excerpt"]
    assert failing[15]["cause"]["summary"] == "HTTP 404 Resource not found"
    assert all(failing[n]["section"] == "1.5 Image generation" for n in (15, 17, 19))
    assert failing[25]["cause"]["kind"] == "forbidden-firewall" and failing[25]["section"] == "1.6 Backend services"
    assert failing[15]["heading"] == "Image generation config"
    assert [(p["phase"], p["cause"], p["cells"]) for p in data["phases"]] == [
        ("1.5", "resource-not-found", [15, 19]),
        ("1.5", "deployment-not-found", [17]),
        ("1.6", "exception", [24, 28]),
        ("1.6", "forbidden-firewall", [25]),
        ("1.6", "http-404", [26]),
    ]
    report = (root / "reports" / "scan" / "master-ai-gateway-fix-MCP.md").read_text()
    assert "| 17 (`cell_16_7c6d3839`) | 1.5 Image generation | failed | HTTP 404 DeploymentNotFound |" in report
    assert "runbook new PHASE --from-scan reports/scan/master-ai-gateway-fix-MCP.json" in report
    assert data["summary"] == {"scanned": 18, "failing": 7, "ok": 11, "failed": 7}
    assert "sk-" not in json.dumps(data) and (root / SAMPLE).read_bytes() == before  # never written back


@pytest.mark.kernel
def test_scan_json_a_section_and_a_timeout(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    doc = json.loads((root / SAMPLE).read_text())
    doc["cells"][12]["source"] = ["import time\n", "time.sleep(30)\n"]  # the image discovery cell hangs
    (root / SAMPLE).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    result = invoke(["scan", SAMPLE, "--section", "1.5", "--timeout", "1", "--json"], cwd=root)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    statuses = {c["number"]: (c["status"], (c["cause"] or {}).get("kind")) for c in data["cells"]}
    assert statuses[13] == ("timeout", "timeout")
    # Without the loader cell (not in section 1.5) the others fail on names it defines.
    assert statuses[17] == ("failed", "name-error")
    assert "[1/4] cell 13" in result.stderr


@pytest.mark.kernel
def test_scan_of_the_real_style_notebook(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    real = build_realstyle()
    real.write(root / "notebooks" / "lab.ipynb")
    result = invoke(["scan", "notebooks/lab.ipynb", "--json"], cwd=root)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["scanned"] > 120
    failing = {c["number"]: c["cause"]["kind"] for c in data["cells"] if c["cause"]}
    assert failing == {
        real.number("# IMAGE GENERATION CONFIG"): "resource-not-found",
        real.number("# IMAGE TESTS"): "deployment-not-found",
        real.number("# MINIMAL IMAGE TEST"): "resource-not-found",
        real.number("# IMAGE MODEL PROBE"): "caught-deployment-not-found",
        # phase 1.6's backend-service cells, as the sample has them
        real.number("# LOAD BALANCING"): "exception",
        real.number("# COSMOS DB"): "forbidden-firewall",
        real.number("# AZURE AI SEARCH"): "http-404",
        real.number("# LOG ANALYTICS"): "exception",
    }
    probe = next(c for c in data["cells"] if c["number"] == real.number("# IMAGE MODEL PROBE"))
    assert probe["status"] == "ok" and "gpt-image-1 failed: 404 DeploymentNotFound" in probe["excerpt"]
    assert (root / "notebooks" / "lab.ipynb").read_bytes() == real.data


FIX_STEPS = """\
fix:
  - id: fix-config
    uses: notebook.edit
    with:
      path: "{{ notebook }}"
      cell: {pattern: '^# IMAGE GENERATION CONFIG'}
      replacements:
        - find: 'os.getenv("DALL_E_DEPLOYMENT", "gpt-image-1") or "gpt-image-1"'
          replace: 'os.getenv("IMAGE_MODEL_DEPLOYMENT", "FLUX-1.1-pro") or "FLUX-1.1-pro"'
        - find: '/openai/images/generations?'
          replace: '/openai/deployments/{image_model}/images/generations?'
  - id: fix-tests
    uses: notebook.edit
    with:
      path: "{{ notebook }}"
      cell: {pattern: '^# IMAGE TESTS'}
      replacements: [{find: /deployments/dall-e-3/, replace: /deployments/FLUX-1.1-pro/}]
  - id: fix-probe
    uses: notebook.edit
    with:
      path: "{{ notebook }}"
      cell: {pattern: '^# IMAGE MODEL PROBE'}
      replacements: [{find: '["gpt-image-1", "dall-e-3"]', replace: '["FLUX-1.1-pro"]'}]
"""


@pytest.mark.kernel
def test_new_from_scan_scaffolds_a_runbook_that_goes_green_once_fixed(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    real = build_realstyle()
    real.write(root / "notebooks" / "lab.ipynb")
    assert invoke(["scan", "notebooks/lab.ipynb"], cwd=root).exit_code == 0
    # Scaffold the image phase only (the fix steps below repair the image cells, not phase 1.6's backends).
    scanned = root / "reports" / "scan" / "lab.json"
    data = json.loads(scanned.read_text())
    data["phases"] = [p for p in data["phases"] if p["phase"] == "1.5"]
    scanned.write_text(json.dumps(data))
    made = invoke(["new", "1.9", "--title", "Image cells", "--from-scan", "reports/scan/lab.json"], cwd=root)
    assert made.exit_code == 0, made.output
    path = root / "runbooks" / "phase-1.9.yaml"
    text = path.read_text()
    assert invoke(["validate", str(path)], cwd=root).exit_code == 0
    assert 'output_not_contains: ["failed: 404"]' in text
    # The failure the scan saw is the expected failure signature of the reproduce run.
    assert "    reproduce:\n      expect:\n" in text and "\"'DeploymentNotFound' in (output | to_json)\"" in text
    assert 'setup: [{pattern: "^# ENVIRONMENT LOADER' in text
    # As scaffolded (no fix yet) the verify steps fail: they reproduce what the scan saw.
    assert invoke(["run", "1.9", "--no-report"], cwd=root).exit_code == 1
    # The person writes the fix steps; then the same verify steps pass.
    fixed = re.sub(r"fix:\n(?:  #.*\n)*  \[\]\n", FIX_STEPS, text)
    assert fixed != text
    path.write_text(fixed)
    result = invoke(["run", "1.9", "--no-report", "--json"], cwd=root)
    assert result.exit_code == 0, result.output
    # Reproduce ran first and the failures matched what the scan saw: the fault is proven, then fixed.
    assert '"reproduced": true' in result.stdout and '"matched": true' in result.stdout
    # A second scaffold of the same phase refuses to overwrite it.
    again = invoke(["new", "1.9", "--from-scan", "reports/scan/lab.json"], cwd=root)
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_new_from_scan_rejects_a_scan_of_another_notebook_state(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    scan = root / "reports" / "scan" / "x.json"
    scan.parent.mkdir(parents=True)
    scan.write_text(json.dumps({"notebook": SAMPLE, "cells": [{"number": 1, "preview": "x"}], "phases": []}))
    result = invoke(["new", "1.9", "--title", "t", "--from-scan", str(scan)], cwd=root)
    assert result.exit_code == 2 and "not the same cell" in result.stderr
    scan.write_text("{not json")
    result = invoke(["new", "1.9", "--title", "t", "--from-scan", str(scan)], cwd=root)
    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    assert not (root / "runbooks" / "phase-1.9.yaml").exists()
