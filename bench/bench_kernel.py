"""Phase 1.5's verify stage: `runbook run 1.5 --only verify` against papermill and `jupyter execute`
running the same notebook cells.

A temporary copy of the sample workspace is fixed first (one full `runbook run 1.5`), so the verify
cells pass. runbook's side is the whole process, `runbook run 1.5 --only verify --no-report` (target
emulator: it starts the embedded emulator in its own process). The peers run a notebook made of the
same cells, in the same order (env-loader, image-discovery, image-config, image-test,
image-test-minimal), from the fixed notebook, in the notebook's folder, against an emulator serving
the same estate in a process of its own (its variables in their environment, as runbook gives its
kernel): `papermill IN OUT` and `jupyter execute IN`. All three run interleaved.

runbook's wall time is split in a separate, instrumented run of the same command (the kernel
module's start, cell and shutdown functions timed, HTTP from the `gateway-probe` step's record):
kernel start, cells, kernel shutdown, HTTP, and the rest (start-up, imports, YAML, emulator, record).
Target: runbook's whole process <= papermill running the same cells.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    Row,
    Section,
    interleaved_commands,
    median,
    pair_ratio,
    peer_command,
    quiet_env,
    run_command,
    runbook_command,
    sample_copy,
)

NAME = "kernel"
TITLE = "Phase 1.5 verify: kernel, cells, HTTP"
NOTEBOOK = "notebooks/master-ai-gateway-fix-MCP.ipynb"
TAGS = ("env-loader", "image-discovery", "image-config", "image-test", "image-test-minimal")

# Runs `runbook run 1.5 --only verify --no-report` with the kernel module's phases timed.
_SPLIT = """
import json, sys, time
began = time.perf_counter()
import runbook.kernel as kernel
spent = {"start": 0.0, "wait": 0.0, "cells": 0.0, "shutdown": 0.0, "adopted": 0, "launched_at": None}

def timed(name, func):
    async def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            result = await func(*args, **kwargs)
            if name == "wait" and result is not None:
                spent["adopted"] += 1
            return result
        finally:
            spent[name] += time.perf_counter() - started
    return wrapper

kernel._start = timed("start", kernel._start)  # a kernel the step starts itself
kernel.StartedKernel._start = timed("start", kernel.StartedKernel._start)  # one started ahead
launch = kernel._launch

async def launched(*args, **kwargs):
    await launch(*args, **kwargs)
    spent["launched_at"] = time.perf_counter() - began

kernel._launch = launched
kernel._run_plan = timed("cells", kernel._run_plan)
kernel._shutdown = timed("shutdown", kernel._shutdown)
kernel.StartedKernel.adopt = timed("wait", kernel.StartedKernel.adopt)
from runbook.cli import main
started = time.perf_counter()
try:
    main(["run", "1.5", "--only", "verify", "--no-report"])
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
spent["total_in_process"] = time.perf_counter() - started
print(json.dumps(spent))
"""

_EMULATOR = """
import json, sys
from runbook.azure.emulator import Emulator
from runbook.azure.estate import load_estate
emulator = Emulator(load_estate(None)).start()
print(json.dumps(emulator.env()), flush=True)
sys.stdin.read()
emulator.stop()
"""


def cells_notebook(workspace: Path) -> Path:
    """The fixed notebook's verify cells, in the order the runbook runs them, as a notebook of their own."""
    source = workspace / NOTEBOOK
    nb = json.loads(source.read_text(encoding="utf-8"))
    by_tag = {}
    for cell in nb["cells"]:
        for tag in cell.get("metadata", {}).get("tags", []):
            by_tag.setdefault(tag, cell)
    nb["cells"] = [by_tag[tag] for tag in TAGS]
    for cell in nb["cells"]:
        cell["outputs"], cell["execution_count"] = [], None
    path = source.parent / "verify-cells.ipynb"
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def gateway_probe_seconds(workspace: Path) -> float | None:
    records = sorted((workspace / "reports" / "runs" / "1.5").glob("*.jsonl"))
    if not records:
        return None
    for line in records[-1].read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") == "step_finished" and event.get("step") == "gateway-probe":
            value = event.get("duration_s")
            return float(value) if value is not None else None
    return None


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 3 if quick else 5
    env = quiet_env()
    runbook = runbook_command()
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        workspace = sample_copy(Path(tmp) / "lab")
        run_command([*runbook, "run", "1.5", "--no-report"], cwd=workspace, env=env, timeout=900)  # the fix
        verify_cells = cells_notebook(workspace)
        emulator = subprocess.Popen(
            [sys.executable, "-c", _EMULATOR], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        try:
            assert emulator.stdout is not None
            peer_env = {**env, **json.loads(emulator.stdout.readline())}
            commands: dict[str, tuple[list[str], Path | None]] = {
                "runbook": ([*runbook, "run", "1.5", "--only", "verify", "--no-report"], workspace),
            }
            papermill = peer_command("papermill")
            if papermill:
                commands["papermill"] = (
                    [*papermill, "--no-progress-bar", str(verify_cells), str(verify_cells.with_suffix(".out.ipynb"))],
                    verify_cells.parent,
                )
            execute = peer_command("jupyter-execute")
            if execute:
                commands["jupyter execute"] = ([*execute, str(verify_cells)], verify_cells.parent)
            # the peers need the emulator's variables; runbook's target gives them to its own kernel
            results: dict[str, tuple[list[float], list[float]]] = {}
            rb = interleaved_commands({"runbook": commands.pop("runbook")}, repeat=1, env=env)
            results.update(rb)
            both = interleaved_commands(
                {"runbook": ([*runbook, "run", "1.5", "--only", "verify", "--no-report"], workspace), **commands},
                repeat=repeat,
                env=peer_env,
            )
            results.update(both)
            split_runs = []
            for _ in range(2 if quick else 3):
                _wall, done = run_command([sys.executable, "-c", _SPLIT], cwd=workspace, env=env, timeout=900)
                split: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
                split["http"] = gateway_probe_seconds(workspace) or 0.0
                split_runs.append(split)
        finally:
            if emulator.stdin is not None:
                emulator.stdin.close()
            emulator.wait(10)

    rb_wall, rb_cpu = results["runbook"]
    pm = results.get("papermill")
    section.add(
        Row(
            "runbook run 1.5 --only verify, whole process",
            median(rb_wall),
            unit="s",
            cpu=median(rb_cpu),
            peer="papermill, the same cells" if pm else None,
            peer_value=median(pm[0]) if pm else None,
            pair=pair_ratio(pm[0], rb_wall) if pm else None,
            target="<= papermill (ratio >= 1x)",
            met=pair_ratio(pm[0], rb_wall) >= 1 if pm else None,
        )
    )
    if pm:
        section.add(Row("papermill, the same cells", median(pm[0]), unit="s", cpu=median(pm[1])))
    je = results.get("jupyter execute")
    if je:
        section.add(
            Row(
                "jupyter execute, the same cells",
                median(je[0]),
                unit="s",
                cpu=median(je[1]),
                peer="runbook / this",
                peer_value=median(rb_wall),
            )
        )
    total = median([s["total_in_process"] for s in split_runs])
    names = ("start", "wait", "cells", "shutdown", "http")
    parts = {name: median([s[name] for s in split_runs]) for name in names}
    adopted = all(s["adopted"] for s in split_runs)
    # Started ahead, the kernel's start overlaps the steps before it: the step only waits for the rest.
    kernel_cost = parts["wait"] if adopted else parts["start"]
    section.add(Row("split (instrumented run): main() in process", total, unit="s"))
    section.add(
        Row(
            "  kernel start (started ahead, in parallel with the steps before it)" if adopted else "  kernel start",
            parts["start"],
            unit="s",
        )
    )
    if adopted:
        section.add(Row("    of which the notebook.run step waited", parts["wait"], unit="s"))
    launched_at = [s["launched_at"] for s in split_runs if s.get("launched_at") is not None]
    if launched_at:
        section.add(
            Row(
                "    the kernel's process launched, from runbook's start (imports, YAML, emulator)",
                median(launched_at),
                unit="s",
            )
        )
    section.add(Row("  cells", parts["cells"], unit="s"))
    section.add(Row("  kernel shutdown", parts["shutdown"], unit="s"))
    section.add(Row("  HTTP (gateway-probe step)", parts["http"], unit="s"))
    rest = total - kernel_cost - parts["cells"] - parts["shutdown"] - parts["http"]
    section.add(Row("  the rest (start-up, YAML, steps, emulator, record)", rest, unit="s"))
    section.notes.append(
        f"{repeat} interleaved rounds of runbook, papermill and jupyter execute; the ratio is the median of the "
        "per-round ratios. The peers' emulator runs in a process of its own and is not in their time; "
        "runbook starts and stops its own (part of 'the rest'). The split is from separate instrumented "
        "runs; the whole-process figure also holds Python's start and the imports. The verify kernel is "
        "started ahead (its process is launched before notebook-image-route and gateway-probe run, and boots "
        "while they do) and adopted by run-image-cells"
        + ("" if adopted else " (**not adopted in these runs**)")
        + "; 'the rest' subtracts only the time that step waited for it."
    )
    return section
