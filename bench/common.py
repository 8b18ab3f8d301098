"""Shared plumbing of the benchmarks: timing, the commands under test, results and their table.

Every benchmark module exposes `NAME`, `TITLE` and `run(quick: bool) -> Section`. A `Section` holds
rows of figures (runbook's median, the peer's median measured in the same run, their ratio, the
target and whether it is met) and free-text notes; `bench/run.py` prints them and writes them into
BENCHMARKS.md. Nothing here asserts a wall-clock limit: benchmarks print figures, tests never time.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
BIN = Path(sys.executable).parent


def runbook_command() -> list[str]:
    """The `runbook` console script next to this interpreter (not a pyenv/asdf shim, which adds its
    own ~60 ms of shell start-up that is not runbook's); `python -m runbook.cli` as a fallback."""
    script = BIN / "runbook"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "runbook.cli"]


def peer_command(name: str) -> list[str] | None:
    """A peer's console script (ansible-playbook…): next to this interpreter, else on PATH."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else None


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for commands under test: no colour, no pager, nothing from the caller's RUNBOOK_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update(NO_COLOR="1", **extra)
    return env


# ---------------------------------------------------------------- timing


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def time_call(func: Callable[[], Any], *, repeat: int, setup: Callable[[], Any] | None = None) -> list[float]:
    """Wall time of `func()` `repeat` times; `setup()` runs before each, untimed."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return times


def interleaved(runs: dict[str, Callable[[], Any]], *, repeat: int) -> dict[str, list[Any]]:
    """Each of `runs` called `repeat` times in rounds (A B C, A B C, ...), so a swing of the machine's
    load hits every side alike; the results of each, in round order."""
    results: dict[str, list[Any]] = {name: [] for name in runs}
    for round_index in range(repeat):
        # alternate the order too (A B, B A): the first of a round may find colder caches
        names = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        for name in names:
            results[name].append(runs[name]())
    return results


def pair_ratio(peer: Sequence[float], ours: Sequence[float]) -> float:
    """Median of the per-round ratios peer / ours (the rounds of `interleaved`)."""
    return median([p / o for p, o in zip(peer, ours, strict=False) if o])


def cpu_now() -> float:
    """CPU seconds (user + system) of this process and every child waited for so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + children_cpu()


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cpu: list[float] | None = None,
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run a command to completion; (wall seconds, result). A failing command is an error.

    With `cpu`, the CPU seconds of the command and every process it waited for are appended to it:
    unlike the wall time, that figure barely moves when other work shares the machine.
    """
    cpu_before = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - started
    if cpu is not None:
        cpu.append(children_cpu() - cpu_before)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv)} exited with {result.returncode}:\n{tail}")
    return elapsed, result


def interleaved_commands(
    commands: dict[str, tuple[Sequence[str], Path | None]] | dict[str, tuple[Sequence[str], Path | None, dict[str, str]]],
    *,
    repeat: int,
    env: dict[str, str] | None = None,
    warmup: int = 1,
    timeout: float = 600,
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU seconds of each command (argv, cwd[, variables added to `env`]), run in
    interleaved rounds after `warmup` untimed rounds: {name: (walls, cpus)}, in round order (pair
    them with `pair_ratio`)."""
    prepared = {
        name: (spec[0], spec[1], {**(env if env is not None else os.environ), **spec[2]} if len(spec) > 2 else env)
        for name, spec in commands.items()
    }
    for _ in range(warmup):
        for argv, cwd, command_env in prepared.values():
            run_command(argv, cwd=cwd, env=command_env, timeout=timeout)

    def timed(argv: Sequence[str], cwd: Path | None, command_env: dict[str, str] | None) -> Callable[[], tuple[float, float]]:
        def once() -> tuple[float, float]:
            cpu: list[float] = []
            elapsed, _result = run_command(argv, cwd=cwd, env=command_env, timeout=timeout, cpu=cpu)
            return elapsed, cpu[0]

        return once

    rounds = interleaved({name: timed(*spec) for name, spec in prepared.items()}, repeat=repeat)
    return {name: ([w for w, _ in runs], [c for _, c in runs]) for name, runs in rounds.items()}


def pair_difference(ours: Sequence[float], base: Sequence[float]) -> float:
    """Median of the per-round differences ours - base (the rounds of `interleaved`)."""
    return median([o - b for o, b in zip(ours, base, strict=False)])


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def time_command(
    argv: Sequence[str],
    *,
    repeat: int,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    setup: Callable[[], Any] | None = None,
    warmup: int = 1,
    timeout: float = 600,
    cpu: list[float] | None = None,
) -> list[float]:
    """Wall times of `repeat` runs of a command (after `warmup` untimed runs that fill the OS caches);
    their CPU times go to `cpu` when given."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        run_command(argv, cwd=cwd, env=env, timeout=timeout)
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        elapsed, _result = run_command(argv, cwd=cwd, env=env, timeout=timeout, cpu=cpu)
        times.append(elapsed)
    return times


# ---------------------------------------------------------------- results


@dataclass
class Row:
    """One measured figure, and (when there is one) the peer's figure measured in the same run."""

    what: str
    value: float
    unit: str = "ms"
    peer: str | None = None
    peer_value: float | None = None
    # "lower is better" figures: ratio = peer / runbook (how many times faster runbook is)
    target: str | None = None
    met: bool | None = None
    note: str | None = None
    # the median of per-round ratios when both sides ran interleaved (else peer_value / value)
    pair: float | None = None
    cpu: float | None = None  # CPU time beside the wall time (same unit)

    @property
    def ratio(self) -> float | None:
        if self.pair is not None:
            return self.pair
        if self.peer_value is None or not self.value:
            return None
        return self.peer_value / self.value


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    load: str = "?"  # load average when the benchmark ended

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row


def fmt(value: float | None, unit: str = "ms") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if unit == "ms":
        return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MB":
        return f"{value:,.1f} MB"
    if unit == "x":
        return f"{value:,.2f}x"
    return f"{value:,.3g} {unit}".strip()


def table(section: Section) -> list[str]:
    """Markdown table of a section: | measurement | runbook | peer | peer | ratio | target | met |"""
    lines = [
        "| measurement | runbook | peer | peer value | peer / runbook | target | met |",
        "|---|--:|---|--:|--:|---|:-:|",
    ]
    for row in section.rows:
        ratio = row.ratio
        met = "-" if row.met is None else ("yes" if row.met else "**no**")
        what = row.what + (f" ({row.note})" if row.note else "")
        value = fmt(row.value, row.unit) + (f" (CPU {fmt(row.cpu, row.unit)})" if row.cpu is not None else "")
        lines.append(
            f"| {what} | {value} | {row.peer or '-'} | "
            f"{fmt(row.peer_value, row.unit) if row.peer_value is not None else '-'} | "
            f"{f'{ratio:,.1f}x' if ratio is not None else '-'} | {row.target or '-'} | {met} |"
        )
    return lines


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import platform

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    try:  # Linux PSI: the share of time some task waited for a CPU
        cpu_wait = Path("/proc/pressure/cpu").read_text(encoding="ascii").split()[2].split("=")[1] + "%"
    except (OSError, IndexError):
        cpu_wait = "?"
    return {
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": load,
        "cpu_wait": cpu_wait,
    }


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def sample_copy(dest: Path) -> Path:
    """A copy of the sample workspace (the repository root), made by the tests' own helper."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from conftest import copy_sample  # type: ignore[import-not-found]

    result: Path = copy_sample(dest)
    return result
