"""History: `runbook status` and the generated docs pages on a workspace with a long history.

A generated workspace has 200 phases (20 groups of 10) and N runs per phase, written directly: a
`start` and a `complete`/`fail` line in the timestamp log per run, and a small run record per run
(run_started, three step_finished, run_finished). `runbook status` runs as a subprocess (what a user
waits for) and in-process (`status.workspace_status` + `render_status`) on N = 50 (10,000 runs);
`docs.generate_docs` (the pages only; mkdocs itself is excluded) runs on a fresh docs folder at
N = 10, 25 and 50 to show how it grows with the number of runs. `runbook status` runs interleaved with
`python -c pass` in five states: nothing changed (the remembered overview), the overview forgotten
with the status index fresh, one line appended since, runbook.yaml touched, and no index at all;
RUNBOOK_BENCH_BASELINE=/path/to/other/src runs the same states with that code in the same rounds.
Targets: status within 200 ms of `python -c pass` in the first three states; doc generation linear
in the number of runs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import (
    Row,
    Section,
    interleaved,
    median,
    pair_difference,
    pair_ratio,
    quiet_env,
    run_command,
    runbook_command,
    time_call,
)

NAME = "history"
TITLE = "History: status and docs"
GROUPS, PHASES_PER_GROUP = 20, 10
RUN_COUNTS = (10, 25, 50)
STATUS_BUDGET_MS = 200.0
LINEARITY_TOLERANCE = 0.2  # the middle point may sit this far (relative) from the line through the ends


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_workspace(root: Path, runs_per_phase: int) -> Path:
    """Write the config, the timestamp log and the run records of a long history."""
    root.mkdir(parents=True)
    (root / "runbooks").mkdir()
    plan = []
    for g in range(1, GROUPS + 1):
        phases = "\n".join(
            f'      - {{id: "{g}.{p}", title: "Phase {g}.{p} of the benchmark"}}'
            for p in range(1, PHASES_PER_GROUP + 1)
        )
        plan.append(f'  - group: "{g}"\n    title: Group {g}\n    phases:\n{phases}')
    (root / "runbook.yaml").write_text(
        "project: History benchmark\nplan:\n"
        + "\n".join(plan)
        + "\ndefault_target: local\ntargets:\n  local:\n    kind: local\n",
        encoding="utf-8",
    )
    log_lines: list[str] = []
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    for run in range(runs_per_phase):
        for g in range(1, GROUPS + 1):
            for p in range(1, PHASES_PER_GROUP + 1):
                phase = f"{g}.{p}"
                moment += timedelta(seconds=7)
                run_id = moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z-{run:06x}"
                finished = moment + timedelta(seconds=3)
                ok = (run + g + p) % 7 != 0
                status = "success" if ok else "failed"
                log_lines.append(
                    json.dumps(
                        {
                            "timestamp": _iso(moment),
                            "phase": phase,
                            "action": "start",
                            "description": f"Phase {phase}: run started",
                            "run_id": run_id,
                        }
                    )
                )
                log_lines.append(
                    json.dumps(
                        {
                            "timestamp": _iso(finished),
                            "phase": phase,
                            "action": "complete" if ok else "fail",
                            "description": f"Phase {phase}: {'resolved' if ok else 'failed at step verify'}",
                            "status": "SUCCESS" if ok else "FAILED",
                            "run_id": run_id,
                            "duration_s": 3.0,
                            **({"cells_fixed": [p, p + 10]} if ok else {}),
                        }
                    )
                )
                folder = root / "reports" / "runs" / phase
                folder.mkdir(parents=True, exist_ok=True)
                events = [
                    {
                        "event": "run_started",
                        "run_id": run_id,
                        "phase": phase,
                        "title": f"Phase {phase}",
                        "target": "local",
                        "time": _iso(moment),
                    },
                    *(
                        {
                            "event": "step_finished",
                            "stage": stage,
                            "step": f"{stage}-step",
                            "uses": "shell",
                            "status": "ok" if ok or stage != "verify" else "failed",
                            "started_at": _iso(moment),
                            "finished_at": _iso(finished),
                            "duration_s": 1.0,
                        }
                        for stage in ("discovery", "fix", "verify")
                    ),
                    {
                        "event": "run_finished",
                        "run_id": run_id,
                        "status": status,
                        "time": _iso(finished),
                        "duration_s": 3.0,
                        "counts": {"ok": 3} if ok else {"ok": 2, "failed": 1},
                        "failed_step": None if ok else "verify-step",
                    },
                ]
                (folder / f"{run_id}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    timestamps = root / "reports" / "timestamps"
    timestamps.mkdir(parents=True)
    (timestamps / "execution-log.jsonl").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    return root


BASELINE_VARIABLE = "RUNBOOK_BENCH_BASELINE"  # another runbook source tree (e.g. /work/main/src) to A/B against
STATES = {
    "fresh": "nothing changed (the remembered overview)",
    "recomputed": "index fresh, overview forgotten (computed from the remembered config)",
    "appended": "one line appended since (incremental update, remembered config)",
    "edited": "runbook.yaml touched (the config loaded and validated: pydantic, YAML)",
    "rebuilt": "no index (rebuilt from the whole log, the config loaded)",
}
TARGETED = ("fresh", "recomputed", "appended")


def time_status(root: Path, repeat: int, baseline: str | None = None) -> dict[str, list[tuple[float, float]]]:
    """Interleaved rounds of `python -c pass` and `runbook status` in each of STATES: (wall, CPU)
    each. With `baseline` (a source tree put first on PYTHONPATH), the same states run on a copy of
    the workspace with that code too, in the same rounds (`base-STATE`)."""
    import sys

    status = [*runbook_command(), "status"]
    roots = {"": root}
    if baseline:
        roots["base-"] = root.parent / f"{root.name}-baseline"
        shutil.copytree(root, roots["base-"], symlinks=True)
    counters = dict.fromkeys(roots, 0)

    def index_file(where: Path, name: str) -> Path:
        return where / "reports" / ".index" / name  # status.json: the index; overview.json: the screen

    def command(argv: list[str], env: dict[str, str], cwd: Path, before: Any = None) -> Any:
        def once() -> tuple[float, float]:
            if before is not None:
                before()
            cpu: list[float] = []
            elapsed, _result = run_command(argv, cwd=cwd, env=env, cpu=cpu)
            return elapsed, cpu[0]

        return once

    def append_line(prefix: str) -> None:
        counters[prefix] += 1  # both sides append the same lines, so their screens stay alike
        moment = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=counters[prefix])
        entry = {"timestamp": _iso(moment), "phase": "1.1", "action": "start", "description": "bench"}
        with (roots[prefix] / "reports" / "timestamps" / "execution-log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def forget_overview(prefix: str) -> None:
        index_file(roots[prefix], "overview.json").unlink(missing_ok=True)

    def touch_config(prefix: str) -> None:
        config = roots[prefix] / "runbook.yaml"
        stat = config.stat()
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    def forget_both(prefix: str) -> None:
        index_file(roots[prefix], "status.json").unlink(missing_ok=True)
        index_file(roots[prefix], "overview.json").unlink(missing_ok=True)

    befores = {"fresh": None, "recomputed": forget_overview, "appended": append_line, "edited": touch_config}
    befores["rebuilt"] = forget_both
    # Every side leaves the files current, so "fresh" always finds them.
    sides: dict[str, Any] = {"python": command([sys.executable, "-c", "pass"], quiet_env(), root)}
    for prefix, where in roots.items():
        env = quiet_env(PYTHONPATH=baseline) if prefix else quiet_env()
        for state in STATES:
            before = befores[state]
            sides[prefix + state] = command(
                status, env, where, (lambda b=before, p=prefix: b(p)) if before is not None else None
            )
        command(status, env, where)()  # warm-up, and the first index
    return interleaved(sides, repeat=repeat)


def time_status_in_process(root: Path, repeat: int) -> float:
    from runbook.status import render_status, workspace_status
    from runbook.workspace import load_workspace

    def in_process() -> None:
        render_status(workspace_status(load_workspace(root)))

    in_process()
    return median(time_call(in_process, repeat=repeat))


def time_docs(root: Path, repeat: int) -> float:
    from runbook.cli import command_reference
    from runbook.docs import generate_docs
    from runbook.workspace import load_workspace

    commands = command_reference()

    def fresh() -> None:
        shutil.rmtree(root / "docs", ignore_errors=True)

    def generate() -> None:
        generate_docs(load_workspace(root), commands=commands)

    fresh()
    generate()  # warm-up: imports, template compilation
    return median(time_call(generate, repeat=repeat, setup=fresh))


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 3 if quick else 7
    docs_s: dict[int, float] = {}
    # RUNBOOK_BENCH_SKIP_DOCS=1 measures status only (doc generation takes minutes on a loaded machine).
    skip_docs = os.environ.get("RUNBOOK_BENCH_SKIP_DOCS", "") not in ("", "0")
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        started = time.perf_counter()
        sizes = (max(RUN_COUNTS),) if skip_docs else RUN_COUNTS
        roots = {n: make_workspace(Path(tmp) / f"ws-{n}", n) for n in sizes}
        written = time.perf_counter() - started
        baseline = os.environ.get(BASELINE_VARIABLE) or None
        status_runs = time_status(roots[max(RUN_COUNTS)], repeat, baseline)
        status_in = time_status_in_process(roots[max(RUN_COUNTS)], repeat)
        if not skip_docs:
            for n, root in roots.items():
                docs_s[n] = time_docs(root, repeat)

    phases = GROUPS * PHASES_PER_GROUP
    most = max(RUN_COUNTS)
    python = [w for w, _ in status_runs["python"]]
    python_cpu = [c for _, c in status_runs["python"]]
    for key, label in STATES.items():
        walls = [w for w, _ in status_runs[key]]
        cpus = [c for _, c in status_runs[key]]
        extra = pair_difference(walls, python) * 1000
        extra_cpu = pair_difference(cpus, python_cpu) * 1000
        targeted = key in TARGETED
        row = Row(
            f"runbook status, {phases} phases x {most} runs, {label}: minus python -c pass",
            extra,
            cpu=extra_cpu,
            target=f"<= {STATUS_BUDGET_MS:.0f} ms" if targeted else None,
            # judged on CPU time too: on a loaded machine the wall time waits for a core
            met=min(extra, extra_cpu) <= STATUS_BUDGET_MS if targeted else None,
            note=f"whole process {median(walls) * 1000:,.0f} ms",
        )
        if baseline:
            base_cpus = [c for _, c in status_runs["base-" + key]]
            row.peer = "baseline code, CPU"
            row.peer_value = median(base_cpus) * 1000
            row.pair = pair_ratio(base_cpus, cpus)
            row.note += f"; baseline minus python: CPU {pair_difference(base_cpus, python_cpu) * 1000:,.0f} ms"
        section.add(row)
    section.add(Row("status, in-process (workspace_status + render_status, index fresh)", status_in * 1000))
    if skip_docs:
        section.notes.append(
            "generate_docs was not measured in this run (RUNBOOK_BENCH_SKIP_DOCS=1): status only; "
            f"writing the {phases * most:,}-record workspace took {written:.1f} s and is not counted."
        )
        section.notes.extend(_status_notes())
        return section
    for n in RUN_COUNTS:
        section.add(Row(f"generate_docs, {phases} phases x {n} runs ({phases * n:,} records)", docs_s[n], unit="s"))
    low, mid, high = RUN_COUNTS
    slope = (docs_s[high] - docs_s[low]) / (high - low)
    predicted = docs_s[low] + slope * (mid - low)
    deviation = abs(docs_s[mid] - predicted) / docs_s[mid]
    per_run_ms = slope / phases * 1000
    section.add(
        Row(
            "generate_docs: cost of one more run record",
            per_run_ms,
            target=f"linear (middle point within {LINEARITY_TOLERANCE:.0%} of the line)",
            met=deviation <= LINEARITY_TOLERANCE and slope > 0,
            note=f"fixed part {max(docs_s[low] - slope * low, 0):.2f} s; middle point off the line by {deviation:.0%}",
        )
    )
    section.notes.extend(_status_notes())
    section.notes.append(
        f"writing the three workspaces ({phases * sum(RUN_COUNTS):,} records, {2 * phases * sum(RUN_COUNTS):,} "
        f"log lines) took {written:.1f} s and is not counted. The overview reads only the timestamp log "
        f"({2 * phases * most:,} lines here) and directory listings; the docs read every run record."
    )
    return section


def _status_notes() -> list[str]:
    notes = [
        "`runbook status` sides, interleaved with `python -c pass` (order reversed every other round): "
        "nothing changed since the last status (reports/.index/overview.json current: no pydantic, YAML or "
        "model is imported); the overview forgotten with the status index fresh, and one log line appended "
        "(the index folds it): both computed from reports/.index/config.json, the part of runbook.yaml the "
        "overview reads, remembered from the last validated load (still no pydantic, YAML or model); "
        "runbook.yaml touched (its stamp changed: the config is loaded and validated, and remembered again); "
        "both index files deleted (the whole log is folded again). The target is judged on the smaller of "
        "the wall and CPU differences (a loaded machine makes a process wait for a core)."
    ]
    baseline = os.environ.get(BASELINE_VARIABLE)
    if baseline:
        notes.append(
            f"peer column: the same states with the code in {baseline} ({BASELINE_VARIABLE}) on a copy of the "
            "workspace, in the same rounds; ratio = median of per-round CPU ratios baseline / this code."
        )
    return notes
