"""Running chosen cells in a real Jupyter kernel, and the sample notebook's phase 1.5 fix end to end."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from conftest import committed_bytes
from notebook_variants import build
from runbook.errors import NotebookError
from runbook.kernel import CellRun, run_cells
from runbook.notebooks import CellAddress, Notebook, Replacement

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "notebooks" / "master-ai-gateway-fix-MCP.ipynb"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def notebook(*sources: str) -> nbformat.NotebookNode:
    cells = [
        nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s) for s in sources
    ]
    node: nbformat.NotebookNode = nbformat.v4.new_notebook(cells=cells)
    return node


def kernels_alive() -> list[str]:
    """Kernel processes started by this test process (other test runs may have their own)."""
    found = subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-f", "ipykernel_launcher"], capture_output=True, text=True
    )
    return found.stdout.split()


@pytest.fixture(autouse=True)
def no_kernel_left_behind() -> Iterator[None]:
    before = set(kernels_alive())
    yield
    assert set(kernels_alive()) <= before, "a kernel process outlived run_cells"


# -- run_cells ---------------------------------------------------------------------------------------


def test_cells_run_in_order_in_one_kernel_with_env_and_cwd(tmp_path: Path) -> None:
    nb = notebook(
        "import os\nvalue = os.environ['RUNBOOK_TEST_VALUE']\nprint('cwd', os.getcwd())",
        "md:# not code",
        "print('value', value, '✅')\nvalue * 2",
        "import sys\nprint('to stderr', file=sys.stderr)",
        "from IPython.display import Image, display\n"
        "display(Image(data=bytes.fromhex('89504e470d0a1a0a') + bytes(92)))",
    )
    runs = run_cells(nb, [0, 1, 2, 3, 4], env={"RUNBOOK_TEST_VALUE": "abc"}, cwd=tmp_path, timeout=30)
    assert [r.status for r in runs] == ["ok", "skipped", "ok", "ok", "ok"]
    first, _, second, third, fourth = runs
    assert first.stdout == f"cwd {tmp_path}\n"
    assert second.stdout == "value abc ✅\n" and second.text == "'abcabc'"
    assert third.stderr == "to stderr\n"
    assert fourth.text == "<IPython.core.display.Image object>\n<image/png 100 bytes>"
    assert first.started_at and ISO_MS.match(first.started_at)
    assert first.finished_at and ISO_MS.match(first.finished_at)
    assert first.duration_s is not None and 0 <= first.duration_s < 30
    data = second.to_dict()
    assert data["number"] == 3 and data["status"] == "ok" and data["error"] is None


def test_setup_cells_run_first_and_failures_do_not_stop_the_run() -> None:
    nb = notebook("x = 41", "print(x + 1)", "1/0", "print('after the error')")
    runs = run_cells(nb, [1, 2, 3], setup=[0], timeout=30)
    assert [(r.index, r.setup, r.status) for r in runs] == [
        (0, True, "ok"),
        (1, False, "ok"),
        (2, False, "failed"),
        (3, False, "ok"),
    ]
    failed = runs[2]
    assert failed.error is not None
    assert (failed.error.ename, failed.error.evalue) == ("ZeroDivisionError", "division by zero")
    assert "\x1b[" not in failed.error.traceback and "----> 1 1/0" in failed.error.traceback
    assert failed.message.startswith("cell 3 (") and "ZeroDivisionError: division by zero" in failed.message
    assert runs[3].stdout == "after the error\n"


def test_a_timed_out_cell_is_interrupted_and_later_cells_run() -> None:
    nb = notebook("import time\nprint('start', flush=True)\ntime.sleep(30)", "print('next')")
    runs = run_cells(nb, [0, 1], timeout=2)
    assert [r.status for r in runs] == ["timeout", "ok"]
    slow = runs[0]
    assert slow.stdout == "start\n"
    assert slow.duration_s is not None and 1.9 < slow.duration_s < 10
    assert slow.error is not None and slow.error.ename == "TimeoutError"
    assert "timed out after 2 s; the kernel was interrupted" in slow.message
    assert runs[1].stdout == "next\n"


def test_a_dead_kernel_is_reported_and_the_rest_is_not_run() -> None:
    nb = notebook("print('alive')", "import os\nos._exit(3)", "print('never')")
    runs = run_cells(nb, [0, 1, 2], timeout=30)
    assert [r.status for r in runs] == ["ok", "dead", "not_run"]
    assert "the kernel died while running cell 2" in runs[1].message and "exit code 3" in runs[1].message
    assert runs[2].message.startswith("not run: the kernel died in cell 2")
    assert runs[2].started_at is None


def test_stop_interrupts_the_running_cell_and_ends_the_run(tmp_path: Path) -> None:
    stop = threading.Event()
    started = tmp_path / "started"
    nb = notebook(
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\nfor _ in range(300):\n    time.sleep(0.1)",
        "print('never')",
    )

    def press_ctrl_c_once_running() -> None:
        while not started.exists():
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()

    threading.Thread(target=press_ctrl_c_once_running, daemon=True).start()
    runs = run_cells(nb, [0, 1], timeout=60, stop=stop)
    assert [r.status for r in runs] == ["interrupted", "not_run"]
    assert runs[0].duration_s is not None and runs[0].duration_s < 10
    assert runs[0].error is not None and runs[0].error.ename == "KeyboardInterrupt"
    assert runs[1].message == "the run was stopped before this cell"


def test_a_stop_set_before_the_run_starts_no_kernel() -> None:
    stop = threading.Event()
    stop.set()
    runs = run_cells(notebook("print(1)"), [0], stop=stop)
    assert [r.status for r in runs] == ["not_run"]


def test_bad_cell_index_and_unknown_kernel_are_clear_errors() -> None:
    with pytest.raises(NotebookError, match="there is no cell 5 to run: the notebook has 1 cells"):
        run_cells(notebook("1"), [4])
    with pytest.raises(NotebookError, match="no Jupyter kernel named 'no-such-kernel'") as caught:
        run_cells(notebook("1"), [0], kernel_name="no-such-kernel")
    assert caught.value.hint and "jupyter kernelspec list" in caught.value.hint


def test_python3_falls_back_to_this_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    def nothing_registered(_self: KernelSpecManager, kernel_name: str) -> None:
        raise NoSuchKernel(kernel_name)

    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", nothing_registered)
    runs = run_cells(notebook("import sys\nprint(sys.executable)"), [0])
    assert runs[0].stdout.strip() == sys.executable


@pytest.mark.filterwarnings("error::nbformat.warnings.MissingIDFieldWarning")
def test_a_4_4_notebook_without_ids_runs_as_read() -> None:
    nb = Notebook.parse(build("v4_4")).as_nbformat()
    runs = run_cells(nb, [1, 2, 3])
    assert [(r.status, r.id) for r in runs] == [("ok", None), ("ok", None), ("skipped", None)]
    assert runs[0].text == "0" and runs[2].message == "not a code cell"


def test_setup_code_runs_first_without_being_a_cell() -> None:
    nb = notebook("print(SHIM * 2)\n")
    progress: list[str] = []
    runs = run_cells(
        nb, [0], setup_code=["SHIM = 21\n", "import os\n"], on_cell=lambda run: progress.append(run.label)
    )
    assert [(r.label, r.index, r.setup, r.status) for r in runs] == [
        ("setup code", -1, True, "ok"),
        ("setup code 2", -2, True, "ok"),
        (runs[2].label, 0, False, "ok"),
    ]
    assert runs[2].label.startswith("cell 1") and runs[-1].stdout == "42\n"
    assert progress == [r.label for r in runs]
    assert len(nb.cells) == 1


def test_long_output_is_bounded() -> None:
    runs = run_cells(notebook("print('x' * 50_000)"), [0], output_limit=1000)
    assert len(runs[0].stdout) < 1100 and "characters omitted" in runs[0].stdout


# -- the sample notebook: phase 1.5 pre-fix fails with 404, the fix makes it pass ----------------------


class StandInGateway(BaseHTTPRequestHandler):
    """The APIM gateway as the emulator plays it, reduced to what the image cells call."""

    key = "stand-in-key"
    image_deployments = ("FLUX-1.1-pro", "FLUX.1-Kontext-pro")
    png = base64.b64encode(bytes.fromhex("89504e470d0a1a0a") + bytes(200)).decode()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("api-key") != self.key:
            self.answer(401, {"statusCode": 401, "message": "Access denied due to missing subscription key."})
            return
        path = self.path.split("?", 1)[0]
        found = re.fullmatch(r"/inference/openai/deployments/([^/]+)/(images/generations|chat/completions)", path)
        if found is None:
            self.answer(404, {"statusCode": 404, "message": "Resource not found"})
        elif found[2] == "images/generations" and found[1] in self.image_deployments:
            self.answer(200, {"created": 1763093700, "data": [{"b64_json": self.png}]})
        else:
            self.answer(404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment ..."}})


@pytest.fixture
def gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


MODEL = "FLUX-1.1-pro"
#: The phase 1.5 fix, per cell tag (the runbook fills the model in from discovery).
FIXES: dict[str, list[Replacement]] = {
    "image-config": [
        Replacement(
            find='os.getenv("DALL_E_DEPLOYMENT", "gpt-image-1") or "gpt-image-1"',
            replace=f'os.getenv("IMAGE_MODEL_DEPLOYMENT", "{MODEL}") or "{MODEL}"',
        ),
        Replacement(
            find='IMAGE_GEN_URL = f"{apim_gateway_url}/{inference_api_path}/openai/images/generations'
            '?api-version={image_api_version}"',
            replace='IMAGE_GEN_URL = f"{apim_gateway_url}/{inference_api_path}/openai/deployments/{image_model}'
            '/images/generations?api-version={image_api_version}"',
        ),
        Replacement(
            find='def generate_image(prompt, size="1024x1024"):',
            replace='def generate_image(model_name, prompt, size="1024x1024"):',
        ),
        Replacement(
            find="    image_gen_url = IMAGE_GEN_URL",
            replace='    image_gen_url = f"{apim_gateway_url}/{inference_api_path}/openai/deployments/{model_name}'
            '/images/generations?api-version={image_api_version}"',
        ),
        Replacement(
            find='b64_image = generate_image("A lighthouse',
            replace='b64_image = generate_image(image_model, "A lighthouse',
        ),
    ],
    "image-test": [
        Replacement(
            find="/openai/deployments/dall-e-3/images/generations",
            replace=f"/openai/deployments/{MODEL}/images/generations",
        )
    ],
    "image-test-minimal": [
        Replacement(
            find='print(f"[test] Attempting generation with model={IMAGE_MODEL} source={SOURCE}")',
            replace='print(f"[test] Attempting generation with model={image_model}")',
        ),
        Replacement(
            find="res = generate_image(TEST_PROMPT, size='512x512')",
            replace="b64_result = generate_image(image_model, TEST_PROMPT, '512x512')",
        ),
    ],
}
VERIFY_TAGS = ("image-discovery", "image-config", "image-test", "image-test-minimal")


def verify(path: Path, gateway: str) -> list[CellRun]:
    nb = Notebook.read(path)
    setup = [nb.address(CellAddress(tag="env-loader")).index]
    cells = [nb.address(CellAddress(tag=tag)).index for tag in VERIFY_TAGS]
    env = {"APIM_GATEWAY_URL": gateway, "APIM_API_KEY": StandInGateway.key, "INFERENCE_API_PATH": "inference"}
    return run_cells(nb.as_nbformat(), cells, setup=setup, env=env, cwd=path.parent, timeout=60)


def test_sample_notebook_fails_before_the_fix_and_passes_after(tmp_path: Path, gateway: str) -> None:
    path = tmp_path / SAMPLE.name
    path.write_bytes(committed_bytes(SAMPLE.relative_to(REPO).as_posix()))  # not a demo-fixed checkout
    original = path.read_bytes()

    before = verify(path, gateway)
    assert [r.status for r in before] == ["ok", "ok", "failed", "failed", "failed"]
    assert all("HTTP 404" in (r.error.evalue if r.error else "") for r in before[2:])
    assert "Resource not found" in (before[2].error.evalue if before[2].error else "")
    assert "DeploymentNotFound" in (before[3].error.evalue if before[3].error else "")

    nb = Notebook.read(path)
    labels = []
    for tag, replacements in FIXES.items():
        cell = nb.address(CellAddress(tag=tag))
        outcome = nb.edit_cell(cell.index, replacements)
        assert outcome.status == "changed", outcome.message
        labels.append(cell.label)
    assert nb.write() is True
    assert labels == ["cell 15 (cell_14_f21837aa)", "cell 17 (cell_16_7c6d3839)", "cell 19 (cell_18_0dfde023)"]
    removed = [line for line in _diff(original, path.read_bytes()) if line.startswith("-")]
    assert len(removed) == 8  # only the edited source lines changed in the file

    after = verify(path, gateway)
    assert [r.status for r in after] == ["ok"] * 5, [r.message for r in after]
    assert f"[image] Primary image generated from '{MODEL}'" in after[2].stdout
    assert after[3].stdout.count("✅") == 3 and "3/3 images generated" in after[3].stdout
    assert f"[test] Attempting generation with model={MODEL}" in after[4].stdout

    again = Notebook.read(path)
    statuses = [again.edit_cell(again.address(CellAddress(tag=t)).index, r).status for t, r in FIXES.items()]
    assert statuses == ["already"] * 3 and again.write() is False


def _diff(before: bytes, after: bytes) -> list[str]:
    import difflib

    return [
        line
        for line in difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
