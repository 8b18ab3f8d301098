"""--dry-run changes nothing: every built-in action run under it sends no changing request and writes nothing."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import nbformat
import pytest

from conftest import invoke
from runbook import actions

# Actions that need the Azure emulator's ARM: read-only by declaration (checked below), so the
# executor runs them under --dry-run as discovery does; they are exercised in the azure tests.
ARM_READS = {
    "azure.accounts", "azure.apim.apis", "azure.apim.operations", "azure.deployments", "azure.resource", "azure.list"
}
# ARM writes show their JSON diff under --dry-run and send only GETs: tests/test_azure_writes.py runs them
# against the emulator and checks its request log.
ARM_WRITES = {"azure.update", "azure.create"}


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def _answer(self) -> None:
        type(self).seen.append((self.command, self.path))
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Recorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".runbook.lock" not in p.name
    }


RUNBOOK = """\
phase: "1.1"
title: every action under dry-run
discovery:
  - {{id: read-cells, uses: notebook.cells, with: {{path: lab.ipynb, pattern: "open"}}}}
  - {{id: probe-get, uses: http.request, with: {{url: "{url}/status"}}}}
fix:
  - {{id: sh, uses: shell, with: {{cmd: [touch, shell-wrote.txt]}}}}
  - {{id: s, uses: set, register: s, with: {{x: 1}}}}
  - {{id: a, uses: assert, with: {{that: ["{{{{ s.x == 1 }}}}"]}}}}
  - {{id: m, uses: manual, with: {{instruction: "restart the gateway"}}}}
  - {{id: fr, uses: file.replace, with: {{path: app.txt, replacements: [{{find: old, replace: new}}]}}}}
  - {{id: env, uses: env.set, with: {{path: .env, values: {{MODEL: FLUX}}}}}}
  - {{id: delete, uses: http.request, with: {{method: DELETE, url: "{url}/deployments/dall-e-3"}}}}
  - {{id: post, uses: http.request, with: {{method: post, url: "{url}/deployments", json: {{name: x}}}}}}
  - {{id: edit, uses: notebook.edit, with: {{path: lab.ipynb, cell: {{number: 1}}, replacements: [{{find: lab, replace: LAB}}]}}}}
  - {{id: setsrc, uses: notebook.set_source, with: {{path: lab.ipynb, cell: {{number: 2}}, source: "print(2)"}}}}
  - {{id: ins, uses: notebook.insert, with: {{path: lab.ipynb, cell: {{number: 2}}, source: "print(3)"}}}}
  - {{id: run-cells, uses: notebook.run, with: {{path: lab.ipynb, cells: [{{number: 1}}]}}}}
verify:
  - {{id: check, uses: assert, with: {{that: [true]}}}}
"""


def test_every_built_in_action_under_dry_run_sends_no_change_and_writes_nothing(
    local_workspace: Path, server: str
) -> None:
    (local_workspace / "app.txt").write_text("old\n")
    (local_workspace / ".env").write_text("MODEL=dall-e-3\n")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("open('master-lab.env', 'w').write('written by the lab cell')"),
            nbformat.v4.new_code_cell("print(1)"),
        ]
    )
    nbformat.write(nb, local_workspace / "lab.ipynb")
    text = RUNBOOK.format(url=server)
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(text)
    covered = {line.split("uses: ")[1].split(",")[0] for line in text.splitlines() if "uses: " in line}
    assert covered | ARM_READS | ARM_WRITES >= set(actions.names()), "a built-in action has no dry-run case"

    before = _snapshot(local_workspace)
    result = invoke(["run", "1.1", "--dry-run"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert _snapshot(local_workspace) == before  # not a byte written: no record, no report, no cell output
    assert [m for m, _ in _Recorder.seen if m not in ("GET", "HEAD", "OPTIONS")] == []
    assert ("GET", "/status") in _Recorder.seen  # read-only discovery still runs
    assert "would run http.request: DELETE " + server + "/deployments/dall-e-3" in result.output
    assert "would run notebook.run" in result.output
    assert not (local_workspace / "master-lab.env").exists()


def test_arm_reads_are_declared_read_only_and_writes_support_dry_run() -> None:
    for name in ARM_READS:
        spec = actions.get(name)
        assert not spec.changes and spec.changes_when is None, name
    for name in ARM_WRITES:
        spec = actions.get(name)
        assert spec.changes and spec.supports_dry_run, name


def test_a_step_may_declare_that_it_only_reads(local_workspace: Path) -> None:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('reads only')")]), local_workspace / "lab.ipynb")
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: t\ndiscovery:\n'
        "  - {id: look, uses: notebook.run, changes: false, with: {path: lab.ipynb, cells: [{number: 1}]}}\n"
    )
    result = invoke(["run", "1.1", "--dry-run", "--json"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    assert '"step": "look"' in result.stdout and '"status": "ok"' in result.stdout
