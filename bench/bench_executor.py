"""Executor overhead: many cheap steps through `runbook run` against the same tasks in ansible-playbook.

Two generated runbooks run in a temporary workspace with a `local` target, through the CLI in a
subprocess (`runbook run 1.1 --no-report`), each time on a fresh `reports/` (no earlier records to
read): 500 `set`/`assert` steps (250 pairs: `set` renders `{{ base + i }}` and registers it, `assert`
checks it) and 200 `shell` steps running `true`. The peer is ansible-playbook on localhost
(`connection: local`, `gather_facts: false`) with the same tasks as `set_fact`/`assert` and
`command: true`; ansible runs fewer tasks (it is slow) and its figure is scaled per task.

Per-step overhead = (wall time of the N-step run - wall time of the same runbook cut to 1 or 2
steps) / the difference in steps: process start-up, imports, workspace and target set-up cancel out,
while parsing and validating each step's YAML stays in (it is paid per step). The executor's own
share comes from the run record (`run_finished.duration_s`, the time between the first and the last
event). Every run is interleaved with the others and with ansible's (rounds A B C .., then reversed).
Targets: 500 set steps whole process >= 20x ansible's 500 set_fact; marginal cost per set step
<= 0.4 ms at 500 and at 5,000 steps (linear); shell steps >= 50x ansible's `command: true`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import Row, Section, interleaved, median, pair_ratio, peer_command, quiet_env, runbook_command, time_command

NAME = "executor"
TITLE = "Executor overhead"

WORKSPACE_CONFIG = """\
project: Executor benchmark
plan:
  - group: "1"
    phases:
      - {id: "1.1", title: Set and assert}
      - {id: "1.2", title: Set and assert (one pair)}
      - {id: "1.3", title: Shell}
      - {id: "1.4", title: Shell (one step)}
      - {id: "1.5", title: Set and assert (5000 steps)}
default_target: local
targets:
  local:
    kind: local
"""


def set_assert_runbook(phase: str, pairs: int) -> str:
    lines = [f'phase: "{phase}"', "title: Set and assert", "vars:", "  base: 7", "fix:"]
    for i in range(pairs):
        lines += [
            f"  - id: set_{i}",
            "    uses: set",
            "    with:",
            f'      value: "{{{{ base + {i} }}}}"',
            f'      label: "step {i}"',
            f"    register: r{i}",
            f"  - id: check_{i}",
            "    uses: assert",
            "    with:",
            f'      that: "{{{{ r{i}.value == base + {i} }}}}"',
        ]
    return "\n".join(lines) + "\n"


def shell_runbook(phase: str, steps: int) -> str:
    lines = [f'phase: "{phase}"', "title: Shell", "fix:"]
    for i in range(steps):
        lines += [f"  - id: true_{i}", "    uses: shell", "    with:", '      cmd: ["true"]']
    return "\n".join(lines) + "\n"


def set_assert_playbook(pairs: int) -> str:
    tasks = []
    for i in range(pairs):
        tasks.append(
            f"    - name: set_{i}\n      set_fact:\n"
            f'        r{i}: {{value: "{{{{ base + {i} }}}}", label: "step {i}"}}\n'
        )
        tasks.append(
            f"    - name: check_{i}\n      assert:\n        that: ['r{i}.value | int == base + {i}']\n        quiet: true\n"
        )
    return _play("".join(tasks))


def command_playbook(steps: int) -> str:
    return _play(
        "".join(f'    - name: true_{i}\n      command: "true"\n      changed_when: false\n' for i in range(steps))
    )


def _play(tasks: str) -> str:
    return "- hosts: localhost\n  connection: local\n  gather_facts: false\n  vars:\n    base: 7\n  tasks:\n" + tasks


def make_workspace(root: Path, set_pairs: int, shell_steps: int, big_pairs: int) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "runbook.yaml").write_text(WORKSPACE_CONFIG, encoding="utf-8")
    runbooks = {
        "1.1": set_assert_runbook("1.1", set_pairs),
        "1.2": set_assert_runbook("1.2", 1),
        "1.3": shell_runbook("1.3", shell_steps),
        "1.4": shell_runbook("1.4", 1),
        "1.5": set_assert_runbook("1.5", big_pairs),
    }
    for phase, text in runbooks.items():
        (root / "runbooks" / f"phase-{phase}.yaml").write_text(text, encoding="utf-8")
    return root


def executor_seconds(workspace: Path, phase: str) -> float:
    """`run_finished.duration_s` of the one record of `phase` (first event to last)."""
    records = list((workspace / "reports" / "runs" / phase).glob("*.jsonl"))
    if len(records) != 1:
        raise RuntimeError(f"expected one run record of {phase}, found {len(records)}")
    last = json.loads(records[0].read_text(encoding="utf-8").splitlines()[-1])
    if last.get("event") != "run_finished" or last.get("status") != "success":
        raise RuntimeError(f"run of {phase} did not succeed: {last}")
    return float(last["duration_s"])


@dataclass
class Timing:
    """One run of a command: wall seconds, CPU seconds (it and its children), executor seconds."""

    wall: float
    cpu: float
    executor: float | None = None


def runbook_once(workspace: Path, phase: str) -> Callable[[], Timing]:
    """A function doing one `runbook run PHASE --no-report` on a fresh `reports/`."""
    reports = workspace / "reports"
    argv = [*runbook_command(), "run", phase, "--no-report"]
    env = quiet_env()

    def once() -> Timing:
        shutil.rmtree(reports, ignore_errors=True)
        reports.mkdir()
        cpus: list[float] = []
        wall = time_command(argv, repeat=1, warmup=0, cwd=workspace, env=env, cpu=cpus)[0]
        return Timing(wall, cpus[0], executor_seconds(workspace, phase))

    return once


def ansible_once(folder: Path, name: str, text: str) -> Callable[[], Timing] | None:
    command = peer_command("ansible-playbook")
    if command is None:
        return None
    playbook = folder / f"{name}.yml"
    playbook.write_text(text, encoding="utf-8")
    home = folder / "ansible-home"
    env = quiet_env(
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_REMOTE_TMP=str(home / "remote-tmp"),
    )
    argv = [*command, "-i", "localhost,", str(playbook)]

    def once() -> Timing:
        cpus: list[float] = []
        wall = time_command(argv, repeat=1, warmup=0, cwd=folder, env=env, timeout=900, cpu=cpus)[0]
        return Timing(wall, cpus[0])

    return once


def per_step(big: list[Timing], small: list[Timing], steps: float, field: str = "wall") -> list[float]:
    """Milliseconds per extra step between two runs of the same kind, per round."""
    return [(getattr(b, field) - getattr(s, field)) / steps * 1000 for b, s in zip(big, small, strict=False)]


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    import templating_equivalence

    total, direct, mismatches = templating_equivalence.run(1000 if quick else 5000)
    section.notes.append(
        f"expression fast path checked first: on {total:,} expressions ({direct:,} evaluated directly) and "
        f"{len(templating_equivalence.TEMPLATES)} templates, runbook's evaluation (context read in place) and "
        f"Jinja's own calls gave {'the same results' if not mismatches else f'{len(mismatches)} DIFFERENT results'} "
        "(bench/templating_equivalence.py)."
    )
    if mismatches:
        section.notes.extend(f"**mismatch**: {line}" for line in mismatches[:5])
    set_pairs, big_pairs, shell_steps = 250, 2500, 200
    repeat = 3 if quick else 5
    ansible_pairs, ansible_commands = (30, 10) if quick else (50, 40)

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        folder = Path(tmp)
        workspace = make_workspace(folder / "ws", set_pairs, shell_steps, big_pairs)
        sides: dict[str, Callable[[], Timing]] = {
            "set": runbook_once(workspace, "1.1"),
            "pair": runbook_once(workspace, "1.2"),
            "shell": runbook_once(workspace, "1.3"),
            "one_shell": runbook_once(workspace, "1.4"),
            "big": runbook_once(workspace, "1.5"),
        }
        peers = {
            "a_set": ansible_once(folder, "set", set_assert_playbook(ansible_pairs)),
            "a_pair": ansible_once(folder, "set-base", set_assert_playbook(1)),
            "a_cmd": ansible_once(folder, "cmd", command_playbook(ansible_commands)),
            "a_one": ansible_once(folder, "cmd-base", command_playbook(1)),
        }
        sides.update({name: once for name, once in peers.items() if once is not None})
        for once in sides.values():  # warm-up: page cache, .pyc files
            once()
        r = interleaved(sides, repeat=repeat)

    steps_set, steps_big = 2 * set_pairs, 2 * big_pairs
    has_ansible = "a_set" in r
    rb_set = per_step(r["set"], r["pair"], steps_set - 2)
    rb_big = per_step(r["big"], r["pair"], steps_big - 2)
    rb_set_cpu = per_step(r["set"], r["pair"], steps_set - 2, "cpu")
    rb_big_cpu = per_step(r["big"], r["pair"], steps_big - 2, "cpu")
    rb_shell = per_step(r["shell"], r["one_shell"], shell_steps - 1)
    an_set = per_step(r["a_set"], r["a_pair"], 2 * ansible_pairs - 2) if has_ansible else []
    an_cmd = per_step(r["a_cmd"], r["a_one"], ansible_commands - 1) if has_ansible else []
    # ansible's 500-task run, whole process: its 2-task run plus 498 of its per-task cost (per round)
    an_500 = [p.wall + t / 1000 * (steps_set - 2) for p, t in zip(r.get("a_pair", []), an_set, strict=False)]
    rb_500 = [t.wall for t in r["set"]]

    section.add(
        Row(
            f"{steps_set} set/assert steps: whole `runbook run`",
            median(rb_500),
            unit="s",
            cpu=median([t.cpu for t in r["set"]]),
            peer=f"ansible, {steps_set} set_fact/assert (extrapolated)" if has_ansible else None,
            peer_value=median(an_500) if has_ansible else None,
            pair=pair_ratio(an_500, rb_500) if has_ansible else None,
            target=">= 20x",
            met=pair_ratio(an_500, rb_500) >= 20 if has_ansible else None,
        )
    )
    section.add(
        Row(
            f"marginal cost per set/assert step, at {steps_set} steps",
            median(rb_set),
            cpu=median(rb_set_cpu),
            peer="ansible set_fact/assert, per task",
            peer_value=median(an_set) if has_ansible else None,
            pair=pair_ratio(an_set, rb_set) if has_ansible else None,
            target="<= 0.4 ms",
            met=median(rb_set) <= 0.4,
        )
    )
    section.add(
        Row(
            f"marginal cost per set/assert step, at {steps_big:,} steps",
            median(rb_big),
            cpu=median(rb_big_cpu),
            target="<= 0.4 ms (linear)",
            met=median(rb_big) <= 0.4,
        )
    )
    section.add(
        Row(
            f"per set/assert step, executor only, at {steps_set} steps",
            median([t.executor or 0.0 for t in r["set"]]) / steps_set * 1000,
            note="run record: first to last event",
        )
    )
    section.add(
        Row(
            f"per set/assert step, executor only, at {steps_big:,} steps",
            median([t.executor or 0.0 for t in r["big"]]) / steps_big * 1000,
            note="run record: first to last event",
        )
    )
    section.add(
        Row(
            f"per set/assert step, the rest (loading, validating, exit), at {steps_big:,} steps",
            median(
                [
                    (b.wall - s.wall) / (steps_big - 2) * 1000 - (b.executor or 0.0) / steps_big * 1000
                    for b, s in zip(r["big"], r["pair"], strict=False)
                ]
            ),
            note="end to end minus executor only",
        )
    )
    section.add(
        Row(
            f"{shell_steps} shell `true` steps: whole `runbook run`",
            median([t.wall for t in r["shell"]]),
            unit="s",
            cpu=median([t.cpu for t in r["shell"]]),
        )
    )
    section.add(
        Row(
            "per shell step, end to end",
            median(rb_shell),
            cpu=median(per_step(r["shell"], r["one_shell"], shell_steps - 1, "cpu")),
            peer="ansible command: true, per task",
            peer_value=median(an_cmd) if has_ansible else None,
            pair=pair_ratio(an_cmd, rb_shell) if has_ansible else None,
            target=">= 50x",
            met=pair_ratio(an_cmd, rb_shell) >= 50 if has_ansible else None,
        )
    )
    section.add(
        Row(
            "start-up: 2-step set/assert run",
            median([t.wall for t in r["pair"]]) * 1000,
            cpu=median([t.cpu for t in r["pair"]]) * 1000,
            peer="ansible 2-task playbook" if has_ansible else None,
            peer_value=median([t.wall for t in r["a_pair"]]) * 1000 if has_ansible else None,
            pair=pair_ratio([t.wall for t in r["a_pair"]], [t.wall for t in r["pair"]]) if has_ansible else None,
        )
    )
    section.notes.append(
        f"{repeat} interleaved rounds of every run (runbook's 500-, 2-, 5,000-step, 200- and 1-step shell runs and "
        "ansible's, order reversed every other round); ratios are medians of the per-round ratios. ansible ran "
        f"{2 * ansible_pairs} set_fact/assert and {ansible_commands} command tasks (it is slow), scaled per task; "
        "per-step figures subtract a 2-step (set/assert) or 1-step (shell) run of the same kind."
    )
    section.notes.append(
        "end to end minus executor only = loading and validating the runbook's YAML (ruamel's C parser with "
        "positions, pydantic, a Jinja syntax check per templated string) and writing no report (--no-report)."
    )
    return section
