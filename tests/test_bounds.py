"""Hostile sizes stay bounded: YAML alias bombs, slow or huge HTTP answers, escaping templates, NUL paths."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke
from runbook.azure.estate import parse_estate
from runbook.errors import InputError, ValidationFailed
from runbook.loader import check_alias_expansion

CONFIG = """\
project: t
plan:
  - group: "1"
    phases: [{id: "1.1", title: t}]
targets:
  local: {kind: local}
default_target: local
"""

# Nine levels of nine: 9**9 (387 million) strings from a few hundred bytes.
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def _workspace(root: Path, runbook: str, config: str = CONFIG) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "runbook.yaml").write_text(config)
    (root / "runbooks" / "phase-1.1.yaml").write_text(runbook)
    return root


def _indented(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


def test_an_alias_bomb_in_vars_is_a_located_error(tmp_path: Path) -> None:
    runbook = 'phase: "1.1"\ntitle: t\nvars:\n' + _indented(BOMB) + "fix:\n  - {id: a, uses: set, with: {x: 1}}\n"
    root = _workspace(tmp_path / "ws", runbook)
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2, result.output
    assert "YAML aliases expand to more than 100,000 nodes" in result.stderr
    # 9 + 81 + 729 + 6,561 + 59,049 (e) + ... : the bound falls inside `f:` (line 9 of the file)
    assert "phase-1.1.yaml:9:" in result.stderr and "Traceback" not in result.output


def test_an_alias_bomb_in_the_workspace_config_is_a_located_error(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n',
                      CONFIG + "x-bomb:\n" + _indented(BOMB))
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2, result.output
    assert "runbook.yaml:" in result.stderr and "YAML aliases expand to more than" in result.stderr


def test_an_alias_bomb_in_an_estate_is_a_located_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_estate("subscriptions: []\nx:\n" + _indented(BOMB), source="estate.yaml")
    assert "YAML aliases expand to more than" in str(caught.value)


def test_the_alias_crossing_the_bound_is_the_one_located() -> None:
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\nc: [*a, *a, *a]\n"
    check_alias_expansion(text, "f.yaml", limit=100)  # 30 nodes expanded: well under
    with pytest.raises(InputError) as caught:
        check_alias_expansion(text, "f.yaml", limit=20)
    # map 1, a 1 + [1,2,3] 4, b 1 + seq 1 + 4 + 4 = 16, c 1 + seq 1 + first *a 4 = 22 > 20
    assert str(caught.value.location) == "f.yaml:3:5"


def test_ordinary_aliases_still_load(tmp_path: Path) -> None:
    runbook = (
        'phase: "1.1"\ntitle: t\nvars:\n  base: &base {a: 1, b: [1, 2]}\n  copy: *base\n'
        "fix:\n  - {id: a, uses: set, with: {x: 1}}\n"
    )
    root = _workspace(tmp_path / "ws", runbook)
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------------ bounded HTTP

TRICKLE_SERVER = """
import socket, sys, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
print(server.getsockname()[1], flush=True)
def serve(conn):
    try:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 60\\r\\n\\r\\n")
        for _ in range(60):
            conn.sendall(b"x")
            time.sleep(1)
    except OSError:
        pass
    finally:
        conn.close()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

HUGE = 200 * 1024 * 1024

# A loopback server answering 200 MB of zeros, and a runbook process that fetches it and reports its
# peak memory: the body must be counted past the bound, not held.
HUGE_FETCH = """
import resource, socket, sys, threading
from pathlib import Path
from runbook import actions
from runbook.actions import ActionContext
from runbook.secrets import Redactor
from runbook.targets import TargetSession

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(2)
SIZE = int(sys.argv[1])
def serve():
    conn, _ = server.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\n\\r\\n" % SIZE)
    block = b"0" * (1024 * 1024)
    for _ in range(SIZE // len(block)):
        conn.sendall(block)
    conn.close()
threading.Thread(target=serve, daemon=True).start()
ctx = ActionContext(workspace_root=Path.cwd(), step_id="big", stage="verify", dry_run=False,
    redactor=Redactor([]), target=TargetSession(name="t", kind="local", settings={}, env={}),
    timeout=None, stop=threading.Event())
spec = actions.get("http.request")
result = spec.func(spec.params.model_validate(
    {"url": f"http://127.0.0.1:{server.getsockname()[1]}/big", "timeout": 120, "auth": "none"}), ctx)
out = result.output
print(out["body_bytes"], out.get("dropped_bytes", 0), len(out["text"]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _action_context(timeout: float | None = None) -> Any:
    from runbook.actions import ActionContext
    from runbook.secrets import Redactor
    from runbook.targets import TargetSession

    return ActionContext(
        workspace_root=Path.cwd(),
        step_id="slow",
        stage="verify",
        dry_run=False,
        redactor=Redactor([]),
        target=TargetSession(name="t", kind="local", settings={}, env={}),
        timeout=timeout,
        stop=threading.Event(),
    )


def test_a_trickling_server_cannot_keep_a_step_past_its_timeout() -> None:
    from runbook import actions
    from runbook.errors import RunbookError

    server = subprocess.Popen([sys.executable, "-c", TRICKLE_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        spec = actions.get("http.request")
        params = spec.params.model_validate(
            {"url": f"http://127.0.0.1:{port}/slow", "timeout": 3, "retries": 0, "auth": "none"}
        )
        # Each read gets a byte within a second, so a per-read timeout never fires; the whole
        # 60-byte answer takes a minute. The attempt's deadline refuses it.
        with pytest.raises(RunbookError) as caught:
            spec.func(params, _action_context())
        assert "deadline" in str(caught.value)
    finally:
        server.kill()
        server.wait()


def test_a_huge_answer_is_counted_not_held(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-c", HUGE_FETCH, str(HUGE)], capture_output=True, text=True, env=env, cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts, peak = done.stdout.split("\n")[:2]
    body_bytes, dropped, text_chars = map(int, counts.split())
    from runbook.actions.http import BODY_BYTES, BODY_CHARS

    assert body_bytes == HUGE
    assert dropped == HUGE - BODY_BYTES
    assert text_chars < BODY_CHARS + 100
    assert int(peak) < 400, f"peak RSS {peak} MB for a {HUGE >> 20} MB answer"


# ------------------------------------------------------------------------ templates stay inside


def _template_workspace(root: Path) -> Any:
    from runbook.workspace import load_workspace

    _workspace(root, 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    (root / "templates").mkdir()
    return load_workspace(root)


def test_a_template_symlinked_out_of_the_workspace_is_refused(tmp_path: Path) -> None:
    from runbook.reports.environment import render_template

    (tmp_path / "outside.md").write_text("stolen {{ 1 + 1 }}\n")
    ws = _template_workspace(tmp_path / "ws")
    (ws.templates_dir / "mine.md").symlink_to(tmp_path / "outside.md")
    with pytest.raises(InputError) as caught:
        render_template(ws, "mine.md", {})
    assert "outside the workspace" in caught.value.message and "allowed_paths" in (caught.value.hint or "")


def test_a_symlink_to_an_allowed_folder_is_followed(tmp_path: Path) -> None:
    from runbook.reports.environment import render_template

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "t.md").write_text("shared {{ 1 + 1 }}\n")
    root = tmp_path / "ws"
    _workspace(root, 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n',
               CONFIG + "allowed_paths: [../shared]\n")
    (root / "templates").mkdir()
    (root / "templates" / "mine.md").symlink_to(tmp_path / "shared" / "t.md")
    from runbook.workspace import load_workspace

    assert render_template(load_workspace(root), "mine.md", {}) == "shared 2\n"


@pytest.mark.parametrize("name", ["../outside.md", "sub/../../outside.md"])
def test_an_include_climbing_out_is_refused(tmp_path: Path, name: str) -> None:
    from runbook.reports.environment import render_template

    (tmp_path / "outside.md").write_text("stolen\n")
    ws = _template_workspace(tmp_path / "ws")
    (ws.templates_dir / "mine.md").write_text(f'{{% include "{name}" %}}\n')
    with pytest.raises(InputError) as caught:
        render_template(ws, "mine.md", {})
    assert "stay inside templates/" in caught.value.message


def test_an_include_of_a_missing_template_is_a_clear_error(tmp_path: Path) -> None:
    from runbook.reports.environment import render_template

    ws = _template_workspace(tmp_path / "ws")
    (ws.templates_dir / "mine.md").write_text('{% include "nope.md" %}\n')
    with pytest.raises(InputError) as caught:
        render_template(ws, "mine.md", {})
    assert "'nope.md'" in caught.value.message


# ------------------------------------------------------------------------------ NUL bytes in paths


@pytest.mark.parametrize(
    "step",
    [
        '{id: a, uses: file.replace, with: {path: "a\\0b", replacements: [{find: x, replace: y}]}}',
        '{id: a, uses: notebook.cells, with: {path: "lab\\0.ipynb"}}',
        '{id: a, uses: notebook.edit, with: {path: "lab\\0.ipynb", cell: 1, replacements: [{find: x, replace: y}]}}',
    ],
    ids=["file.replace", "notebook.cells", "notebook.edit"],
)
def test_a_nul_byte_in_a_step_path_is_a_clear_step_error(tmp_path: Path, step: str) -> None:
    root = _workspace(tmp_path / "ws", f'phase: "1.1"\ntitle: t\nfix:\n  - {step}\n')
    result = invoke(["run", "1.1"], cwd=root)
    assert result.exit_code in (1, 2), result.output
    assert "contains a NUL byte" in result.output
    assert "crashed" not in result.output and "internal error" not in result.output
