"""Memory: peak RSS of the runbook process during `runbook run phase-1.5` on the sample workspace.

The run happens in a fresh temporary copy of the sample workspace (`copy_sample` from
tests/conftest.py), target `emulator`, report included. A small wrapper runs `runbook.cli.main` in a
child process and, when it returns, prints its own peak resident set, `VmHWM` from
/proc/self/status: that is runbook's process alone, with the embedded emulator's threads in it.
(`getrusage(RUSAGE_SELF).ru_maxrss` is not used: Linux carries the parent's peak across fork + exec,
so it reports the benchmark process's own size.) The Jupyter kernel and the shell steps are processes
of their own, children of that process, and do not count; `RUSAGE_CHILDREN` gives an upper bound of
the largest (for the same reason it is at least runbook's size when it forked). For scale, the same
figure for `python -c pass` and `runbook --help`. Target: <= 100 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Row, Section, median, quiet_env, sample_copy

NAME = "memory"
TITLE = "Memory"
BUDGET_MB = 100.0

_WRAPPER = """
import json, resource, sys
args = json.loads(sys.argv[1])
code = 0
if args:
    from runbook.cli import main
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
hwm = None
with open("/proc/self/status", encoding="ascii") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("@@memory@@" + json.dumps({"code": code, "hwm_kb": hwm, "self_kb": me, "children_kb": children}), file=sys.stderr)
"""


def measure(args: list[str], cwd: Path) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", _WRAPPER, json.dumps(args)],
        cwd=cwd,
        env=quiet_env(),
        capture_output=True,
        timeout=600,
        check=False,
    )
    err = result.stderr.decode("utf-8", "replace")
    marker = next((line for line in err.splitlines() if line.startswith("@@memory@@")), None)
    if marker is None:
        raise RuntimeError(f"runbook {' '.join(args)} printed no memory line:\n{err[-2000:]}")
    figures: dict[str, int] = json.loads(marker[len("@@memory@@") :])
    if figures["code"] != 0:
        out = result.stdout.decode("utf-8", "replace")
        raise RuntimeError(f"runbook {' '.join(args)} exited with {figures['code']}:\n{(out + err)[-2000:]}")
    return figures


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 1 if quick else 3
    runs: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        base = Path(tmp)
        python = measure([], base)
        helped = measure(["--help"], base)
        for i in range(repeat):
            workspace = sample_copy(base / f"lab-{i}")
            if not (workspace / "runbooks" / "phase-1.5.yaml").exists():
                section.error = "runbooks/phase-1.5.yaml does not exist yet"
                return section
            runs.append(measure(["run", "phase-1.5", "--yes"], workspace))

    def mb(kb: float) -> float:
        return kb / 1024

    peak = median([mb(r["hwm_kb"] or r["self_kb"]) for r in runs])
    children = median([mb(r["children_kb"]) for r in runs])
    section.add(
        Row(
            "runbook run phase-1.5: peak RSS of the runbook process",
            peak,
            unit="MB",
            target=f"< {BUDGET_MB:.0f} MB",
            met=peak < BUDGET_MB,
        )
    )
    section.add(Row("  largest child (the Jupyter kernel), not counted: an upper bound", children, unit="MB"))
    section.add(Row("runbook --help: peak RSS", mb(helped["hwm_kb"] or helped["self_kb"]), unit="MB"))
    section.add(Row("python -c pass: peak RSS", mb(python["hwm_kb"] or python["self_kb"]), unit="MB"))
    rusage = median([mb(r["self_kb"]) for r in runs])
    section.notes.append(
        f"the runbook process's VmHWM is {peak:.1f} MB; its ru_maxrss says {rusage:.1f} MB because Linux keeps "
        "the benchmark process's peak (the parent it was forked from) across fork + exec. A process's own "
        "VmHWM never includes its children: the kernel, started by nbclient, is not in it."
    )
    return section
