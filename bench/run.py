"""Run every benchmark (or `--only NAME`), print a table of medians and ratios, update BENCHMARKS.md.

    python3 bench/run.py            # all benchmarks, default repetitions
    python3 bench/run.py --quick    # fewer repetitions and smaller peer runs (well under 10 minutes)
    python3 bench/run.py --only executor --only history

Each benchmark measures runbook and its peer in the same run, on the same machine, so the ratios
hold even when absolute figures move with the machine's load. BENCHMARKS.md keeps its hand-written
analysis; only the generated block of each benchmark that ran (between its `bench:NAME` markers)
and the machine header are replaced.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Section, load_average, machine, package_version, table

BENCHMARKS = {
    "startup": "bench_startup",
    "executor": "bench_executor",
    "discovery": "bench_discovery",
    "notebooks": "bench_notebooks",
    "history": "bench_history",
    "memory": "bench_memory",
    "kernel": "bench_kernel",
}
REPORT = REPO / "BENCHMARKS.md"
PEERS = (
    "ansible-core", "httpx", "jinja2", "ruamel.yaml", "ruamel.yaml.clib", "pydantic", "click", "nbformat",
    "papermill", "nbconvert", "orjson",
)


def header(quick: bool) -> list[str]:
    info = machine()
    peers = ", ".join(f"{name} {package_version(name) or 'not installed'}" for name in PEERS)
    return [
        f"Last run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}: `python3 bench/run.py"
        f"{' --quick' if quick else ''}` (each block below says when it was measured).",
        "",
        f"- machine: {info['cores']} cores, Python {info['python']}, {info['platform']}; bytecode compiled first"
        " (`python -m compileall -q src`) and PYTHONDONTWRITEBYTECODE unset for the runs",
        f"- load average when the run started: {info['load']}; tasks waiting for a CPU over the last minute:"
        f" {info['cpu_wait']} of the time (other work on the machine moves absolute figures; ratios are"
        " measured side by side, and CPU-time rows barely move)",
        f"- versions: incident-runbook {package_version('incident-runbook')}, {peers}",
    ]


def render(section: Section, quick: bool) -> list[str]:
    lines = [
        f"<!-- bench:{section.name} -->",
        f"_{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {'--quick' if quick else 'default'} mode, "
        f"{section.seconds:.0f} s, load average at its end {section.load}_",
        "",
    ]
    if section.error:
        lines += [f"**not measured**: {section.error}", ""]
    if section.rows:
        lines += [*table(section), ""]
    lines += [f"- {note}" for note in section.notes]
    lines.append(f"<!-- /bench:{section.name} -->")
    return lines


def update_report(sections: list[Section], quick: bool) -> None:
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else "# Benchmarks\n"
    head = "\n".join(header(quick))
    block = re.compile(r"<!-- bench:header -->.*?<!-- /bench:header -->", re.DOTALL)
    wrapped = f"<!-- bench:header -->\n{head}\n<!-- /bench:header -->"
    text = block.sub(lambda _m: wrapped, text) if block.search(text) else text.rstrip() + "\n\n" + wrapped + "\n"
    for section in sections:
        body = "\n".join(render(section, quick))
        pattern = re.compile(rf"<!-- bench:{section.name} -->.*?<!-- /bench:{section.name} -->", re.DOTALL)
        if pattern.search(text):
            text = pattern.sub(lambda _m, body=body: body, text)
        else:
            text = text.rstrip() + f"\n\n## {section.title}\n\n{body}\n"
    REPORT.write_text(text.rstrip() + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller peer runs")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run this benchmark (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    # Measure with compiled bytecode: a shell that sets PYTHONDONTWRITEBYTECODE=1 makes every
    # process recompile the (editable) source, ~80 ms per command that is not runbook's.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")], check=False)
    print("\n".join(header(args.quick)), flush=True)
    sections: list[Section] = []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        print(f"\n## {module.TITLE} ({name})", flush=True)
        started = time.perf_counter()
        try:
            section = module.run(args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            section = Section(name, module.TITLE, error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        section.seconds = time.perf_counter() - started
        section.load = load_average()
        sections.append(section)
        print("\n".join(render(section, args.quick)[2:-1]), flush=True)
    if not args.no_write:
        update_report(sections, args.quick)
        print(f"\nwrote {REPORT.relative_to(REPO)}")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
