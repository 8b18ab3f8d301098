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
event). Targets: <= 1 ms per set/assert step, <= 10 ms per shell step, >= 20x faster than ansible.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import Row, Section, median, peer_command, quiet_env, run_command, runbook_command, time_command

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


def make_workspace(root: Path, set_pairs: int, shell_steps: int) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "runbook.yaml").write_text(WORKSPACE_CONFIG, encoding="utf-8")
    runbooks = {
        "1.1": set_assert_runbook("1.1", set_pairs),
        "1.2": set_assert_runbook("1.2", 1),
        "1.3": shell_runbook("1.3", shell_steps),
        "1.4": shell_runbook("1.4", 1),
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
    """Medians of one command: wall seconds, CPU seconds (it and its children), executor seconds."""

    wall: float
    cpu: float
    executor: float | None = None


def measure_runbook(workspace: Path, phase: str, repeat: int) -> Timing:
    """Medians of `runbook run PHASE --no-report`, each run on a fresh `reports/`."""
    reports = workspace / "reports"

    def fresh() -> None:
        shutil.rmtree(reports, ignore_errors=True)
        reports.mkdir()

    argv = [*runbook_command(), "run", phase, "--no-report"]
    env = quiet_env()
    walls: list[float] = []
    cpus: list[float] = []
    inner: list[float] = []
    run_command(argv, cwd=workspace, env=env)  # warm-up: page cache, .pyc files
    for _ in range(repeat):
        fresh()
        walls += time_command(argv, repeat=1, warmup=0, cwd=workspace, env=env, cpu=cpus)
        inner.append(executor_seconds(workspace, phase))
    return Timing(median(walls), median(cpus), median(inner))


def measure_ansible(folder: Path, name: str, text: str, repeat: int) -> Timing | None:
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
    cpus: list[float] = []
    walls = time_command(argv, repeat=repeat, warmup=0, cwd=folder, env=env, timeout=900, cpu=cpus)
    return Timing(median(walls), median(cpus))


def per_step(big: Timing | None, small: Timing | None, steps: float, field: str = "wall") -> float | None:
    """Milliseconds per extra step between two runs of the same kind."""
    if big is None or small is None:
        return None
    return (getattr(big, field) - getattr(small, field)) / steps * 1000


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    import templating_equivalence

    total, direct, mismatches = templating_equivalence.run(1000 if quick else 5000)
    section.notes.append(
        f"expression fast path checked first: on {total:,} expressions ({direct:,} evaluated directly) the direct "
        f"evaluator and Jinja's compiler gave {'the same results' if not mismatches else f'{len(mismatches)} DIFFERENT results'} "
        "(bench/templating_equivalence.py)."
    )
    if mismatches:
        section.notes.extend(f"**mismatch**: {line}" for line in mismatches[:5])
    set_pairs, shell_steps = 250, 200
    repeat = 3 if quick else 7
    ansible_pairs, ansible_commands, ansible_repeat = (30, 10, 1) if quick else (50, 40, 3)

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        folder = Path(tmp)
        workspace = make_workspace(folder / "ws", set_pairs, shell_steps)
        steps_set = 2 * set_pairs
        many_set = measure_runbook(workspace, "1.1", repeat)
        one_pair = measure_runbook(workspace, "1.2", repeat)
        many_shell = measure_runbook(workspace, "1.3", repeat)
        one_shell = measure_runbook(workspace, "1.4", repeat)
        a_set = measure_ansible(folder, "set", set_assert_playbook(ansible_pairs), ansible_repeat)
        a_pair = measure_ansible(folder, "set-base", set_assert_playbook(1), ansible_repeat)
        a_cmd = measure_ansible(folder, "cmd", command_playbook(ansible_commands), ansible_repeat)
        a_one = measure_ansible(folder, "cmd-base", command_playbook(1), ansible_repeat)

    rb_set = per_step(many_set, one_pair, steps_set - 2)
    rb_shell = per_step(many_shell, one_shell, shell_steps - 1)
    an_set = per_step(a_set, a_pair, 2 * ansible_pairs - 2)
    an_cmd = per_step(a_cmd, a_one, ansible_commands - 1)
    assert rb_set is not None and rb_shell is not None
    assert many_set.executor is not None and many_shell.executor is not None

    def faster(peer: float | None, mine: float) -> bool:
        return peer is None or peer / mine >= 20

    section.add(Row(f"{steps_set} set/assert steps: whole `runbook run`", many_set.wall, unit="s"))
    section.add(
        Row(
            "per set/assert step, end to end",
            rb_set,
            peer="ansible set_fact/assert, per task",
            peer_value=an_set,
            target="<= 1 ms; >= 20x",
            met=rb_set <= 1.0 and faster(an_set, rb_set),
        )
    )
    section.add(
        Row(
            "per set/assert step, executor only",
            many_set.executor / steps_set * 1000,
            peer="ansible set_fact/assert, per task",
            peer_value=an_set,
            note="run record: first to last event",
        )
    )
    section.add(
        Row(
            "per set/assert step, CPU time",
            per_step(many_set, one_pair, steps_set - 2, "cpu") or 0.0,
            peer="ansible, CPU per task",
            peer_value=per_step(a_set, a_pair, 2 * ansible_pairs - 2, "cpu"),
            note="user + system of the process and its children",
        )
    )
    section.add(Row(f"{shell_steps} shell `true` steps: whole `runbook run`", many_shell.wall, unit="s"))
    section.add(
        Row(
            "per shell step, end to end",
            rb_shell,
            peer="ansible command: true, per task",
            peer_value=an_cmd,
            target="<= 10 ms; >= 20x",
            met=rb_shell <= 10.0 and faster(an_cmd, rb_shell),
        )
    )
    section.add(
        Row(
            "per shell step, executor only",
            many_shell.executor / shell_steps * 1000,
            peer="ansible command: true, per task",
            peer_value=an_cmd,
            note="run record: first to last event",
        )
    )
    section.add(
        Row(
            "per shell step, CPU time",
            per_step(many_shell, one_shell, shell_steps - 1, "cpu") or 0.0,
            peer="ansible, CPU per task",
            peer_value=per_step(a_cmd, a_one, ansible_commands - 1, "cpu"),
            note="user + system of the process and its children",
        )
    )
    section.add(
        Row(
            "start-up: 2-step set/assert run",
            one_pair.wall * 1000,
            peer="ansible 2-task playbook" if a_pair else None,
            peer_value=a_pair.wall * 1000 if a_pair else None,
        )
    )
    section.notes.append(
        f"ansible ran {2 * ansible_pairs} set_fact/assert and {ansible_commands} command tasks (it is slow), "
        "scaled per task; per-step figures subtract a 1-step (shell) or 2-step (set/assert) run of the same kind."
    )
    section.notes.append(
        "end to end minus executor only = loading and validating the runbook's YAML (ruamel round-trip "
        "parser, pydantic, a Jinja syntax check per templated string), paid once per step per run."
    )
    return section
