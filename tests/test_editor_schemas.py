"""The schemas in the editors people use: the real yaml-language-server (npm) reads the sample files'
modelines and reports nothing on them, and the expected diagnostics on a broken runbook; the
`check-jsonschema` CLI agrees on the sample files.

Outside CI (no `CI` variable) a missing yaml-language-server skips with the way to install it; in
CI (`.ci/run` installs it) a missing server fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_sample
from lsp_client import LspClient
from runbook import schemas

PACKAGED_ESTATE = REPO / "src" / "runbook" / "azure" / "default_estate.yaml"

BROKEN = """\
# yaml-language-server: $schema=../runbook.schema.json
phase: "1.9"
title: Broken on purpose
discovery:
  - id: cells
    uses: notebook.run
    with:
      path: notebooks/master-ai-gateway-fix-MCP.ipynb
      cells: [3]
      timeout: "{{ cell_timeout }}"
  - id: typo
    uses: shel
    with: {cmd: [echo]}
verify:
  - id: check
    uses: set
    with: {a: 1}
    expect:
      - tht: output.a == 1
    retries: many
"""


def language_server() -> str:
    found = shutil.which("yaml-language-server")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("yaml-language-server is not installed (CI installs it: npm install -g yaml-language-server)")
        pytest.skip("yaml-language-server is not installed; npm install -g yaml-language-server (CI fails instead)")
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = copy_sample(tmp_path / "lab")
    for kind in ("runbook", "config", "estate"):
        shutil.copy2(REPO / schemas.FILE_NAMES[kind], root / schemas.FILE_NAMES[kind])
    (root / "runbooks" / "phase-1.9.yaml").write_text(BROKEN, encoding="utf-8")
    estates = root / "estates"
    estates.mkdir()
    shutil.copy2(PACKAGED_ESTATE, estates / "lab.yaml")
    shutil.copy2(PACKAGED_ESTATE.with_name("estate.schema.json"), estates / "estate.schema.json")
    return root


def test_yaml_language_server_accepts_the_samples_and_flags_a_broken_runbook(workspace: Path) -> None:
    server = language_server()
    settings = {"yaml": {"validate": True, "hover": True, "completion": True, "schemaStore": {"enable": False}}}
    client = LspClient([server, "--stdio"], workspace, settings)
    try:
        clean = [
            workspace / "runbook.yaml",
            workspace / "runbooks" / "phase-1.5.yaml",
            workspace / "estates" / "lab.yaml",
        ]
        broken = workspace / "runbooks" / "phase-1.9.yaml"
        uris = [client.open(path) for path in [*clean, broken]]
        found = client.diagnostics_for(uris)
    finally:
        client.close()
    for path, uri in zip(clean, uris, strict=False):
        assert found[uri] == [], f"{path.name}: {found[uri]}"
    problems = sorted((d["range"]["start"]["line"] + 1, d["message"]) for d in found[uris[-1]])
    lines = [line for line, _ in problems]
    # The templated timeout (line 10) is accepted; the unknown action, the misspelt key and the
    # non-number retries are not.
    assert 10 not in lines, problems
    assert any(line == 12 for line in lines), problems
    assert any(line == 19 and "tht" in message for line, message in problems), problems
    assert any(line == 20 for line in lines), problems
    assert not any("Unable to load schema" in message for _, message in problems), problems


def test_check_jsonschema_accepts_the_sample_files(workspace: Path) -> None:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is in the test extra")
    cli = [sys.executable, "-m", "check_jsonschema"]
    for schema_file, files in (
        (workspace / "runbook.schema.json", [workspace / "runbooks" / "phase-1.5.yaml"]),
        (workspace / "config.schema.json", [workspace / "runbook.yaml"]),
        (workspace / "estate.schema.json", [workspace / "estates" / "lab.yaml"]),
    ):
        done = subprocess.run([*cli, "--schemafile", str(schema_file), *map(str, files)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    broken = subprocess.run(
        [*cli, "--schemafile", str(workspace / "runbook.schema.json"), str(workspace / "runbooks" / "phase-1.9.yaml")],
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 1 and "tht" in broken.stdout + broken.stderr
