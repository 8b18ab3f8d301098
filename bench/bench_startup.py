"""Start-up: `runbook --help` and `runbook validate` against bare Python and `ansible-playbook --version`.

Each command runs in a fresh process (after one untimed warm-up run that fills the OS page cache).
`validate` runs in a temporary copy of the sample workspace (the repository root). The import check
runs `main(["--help"])` in a fresh interpreter and lists the heavy packages that got imported (the
same check as tests/test_startup.py), and `python -X importtime` names the slowest imports.
All commands run interleaved (python, --help, validate, ansible, then the reverse order), so a load
swing hits each alike. Targets: `runbook --help` within 60 ms of `python -c pass`, `runbook
validate` of the sample within 250 ms of it. Each command's imports are profiled once.

`validate` is measured three times: cold, in a copy where nothing can be remembered (its
`reports/.index` is a file, so runbook.validation_cache can neither read nor write) while the
installation's schema digests are remembered (runbook.schema_freshness, in a cache folder of the
bench's own); the first of an installation, with no cache folder either (what the first validate
after installing or editing runbook costs); and warm, in a copy whose last clean validation is
remembered (what a second `runbook validate` of an unchanged workspace costs). Beside them, the
libraries' floor: a process that only imports click, Jinja, ruamel.yaml and pydantic and builds one
model, which any validate of the sample needs, and runbook's own share above it. The copies hold the
committed schema files a clone has (`runbook.schema.json` ...), which validate checks.
The load cost per step (reading, validating and building the model of one `set`/`assert` step, what
`runbook run` pays before its first step) is `load_runbook` of 500- and 5,000-step runbooks minus a
2-step one, in fresh processes with the imports and the first model builds done before the timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    Row,
    Section,
    interleaved,
    interleaved_commands,
    median,
    pair_difference,
    pair_ratio,
    peer_command,
    quiet_env,
    runbook_command,
    sample_copy,
)

NAME = "startup"
TITLE = "Start-up"
HEAVY = ("httpx", "azure", "nbclient", "nbformat", "git", "jinja2", "ruamel", "pydantic")
HELP_BUDGET_MS = 60.0
VALIDATE_BUDGET_MS = 250.0
STEP_BUDGET_MS = 0.4  # the whole marginal cost of a `set` step (load and executor), bench_executor.py

# CPU milliseconds of `load_runbook(PATH)` in this process, after the imports and a 2-step warm-up.
_LOAD = """
import sys, time
from pathlib import Path
from runbook.loader import load_runbook
warm, path = Path(sys.argv[1]), Path(sys.argv[2])
load_runbook(warm, root=warm.parent)
started = time.process_time()
load_runbook(path, root=path.parent)
print((time.process_time() - started) * 1000)
"""


def load_costs(folder: Path, repeat: int) -> dict[int, float]:
    """Median marginal CPU ms per step of loading a runbook of N set/assert steps (N = 500, 5,000),
    measured against a 2-step runbook in interleaved fresh processes."""
    from bench_executor import set_assert_runbook

    folder.mkdir(parents=True, exist_ok=True)
    sizes = {2: 1, 500: 250, 5000: 2500}
    paths = {}
    for steps, pairs in sizes.items():
        paths[steps] = folder / f"phase-{steps}.yaml"
        paths[steps].write_text(set_assert_runbook("1.1", pairs), encoding="utf-8")

    def once(steps: int) -> float:
        out = subprocess.run(
            [sys.executable, "-c", _LOAD, str(paths[2]), str(paths[steps])],
            capture_output=True, check=True, timeout=300, env=quiet_env(),
        ).stdout
        return float(out.decode().strip())

    results = interleaved({str(steps): (lambda s=steps: once(s)) for steps in sizes}, repeat=repeat)
    return {
        steps: median([(big - small) / (steps - 2) for big, small in zip(results[str(steps)], results["2"], strict=True)])
        for steps in (500, 5000)
    }

_MODULES_AFTER_HELP = """
import contextlib, io, json, sys
from runbook.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def heavy_imports_of_help() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER_HELP], capture_output=True, check=True, timeout=60, env=quiet_env()
    ).stdout
    modules = json.loads(out)
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def import_profile(argv_tail: list[str], cwd: Path | None = None) -> tuple[float, list[tuple[str, float]]]:
    """(total import time in ms, the slowest top-level or runbook imports) of `runbook ARGS`, run as
    the console script runs it (runbook.__main__), from `python -X importtime`."""
    code = (
        f"import sys\nsys.argv = ['runbook', *{argv_tail!r}]\nfrom runbook.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, timeout=120, env=quiet_env(), cwd=cwd
    ).stderr.decode("utf-8", "replace")
    found: dict[str, float] = {}
    total = 0.0
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name_part = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue
        name = name_part.strip()
        indent = len(name_part) - len(name_part.lstrip())
        if indent <= 1:  # a top-level import: its cumulative time covers everything below it
            total += int(cumulative) / 1000
        if indent <= 3 or name.startswith("runbook"):
            found[name] = max(found.get(name, 0.0), int(cumulative.strip()) / 1000)
    return total, sorted(found.items(), key=lambda kv: -kv[1])[:4]


# The floor of a click command line: a bare click group with runbook's root options and 16 one-line
# commands, printing its --help (what `runbook --help` costs when runbook adds nothing to click).
BARE_CLICK = """
import click
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option("0.1.0", prog_name="runbook")
@click.option("-w", "--workspace", type=click.Path(file_okay=False), envvar="RUNBOOK_WORKSPACE", show_envvar=True,
              help="Workspace folder.")
@click.option("-q", "--quiet", is_flag=True, help="Print only problems, failures and the final result.")
def cli(workspace, quiet):
    'Declarative, recorded incident runbooks for notebooks and Azure AI gateways.'
for index in range(16):
    cli.add_command(click.Command(f"command{index}", help="A command with a one-line help of a typical length."))
cli.main(["--help"], prog_name="runbook", standalone_mode=False)
"""


# What any validate of the sample must import whatever runbook does (the CLI, templates, YAML, models),
# and pydantic's first model (its schema builder and plug-in loader load then).
LIBRARIES = "import click, jinja2, ruamel.yaml\nfrom pydantic import BaseModel\nclass Floor(BaseModel):\n    x: int = 0"


# Commands whose imports are profiled (run in a copy of the sample workspace).
PROFILED = (
    ["--help"],
    ["validate"],
    ["status"],
    ["actions"],
    ["report", "1.5"],
    ["changelog"],
    ["schema"],
    ["run", "1.5", "--dry-run"],
)


def with_schema_files(workspace: Path) -> Path:
    """The copy with the schema files a clone of the repository has at its root (the tests' sample omits them)."""
    import shutil

    repo = Path(__file__).resolve().parent.parent
    for path in sorted(repo.glob("*.schema.json")):
        shutil.copy(path, workspace / path.name)
    return workspace


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 5 if quick else 15
    env = quiet_env()
    runbook = runbook_command()
    ansible = peer_command("ansible-playbook")

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        workspace = with_schema_files(sample_copy(Path(tmp) / "lab"))
        cold = with_schema_files(sample_copy(Path(tmp) / "cold"))
        (cold / "reports" / ".index").write_text("a file: nothing is remembered in this copy\n", encoding="utf-8")
        # The per-installation cache (the schema digests) is the bench's own: filled by the warm-up
        # round, except for `first`, whose cache folder cannot be created (nothing remembered anywhere).
        env = {**env, "RUNBOOK_CACHE_DIR": str(Path(tmp) / "cache")}
        (Path(tmp) / "no-cache").write_text("a file: no cache folder can be made under it\n", encoding="utf-8")
        commands: dict[str, tuple[list[str], Path | None, dict[str, str]]] = {
            "python": ([sys.executable, "-c", "pass"], None, {}),
            "help": ([*runbook, "--help"], None, {}),
            "validate": ([*runbook, "validate"], cold, {}),
            "first": ([*runbook, "validate"], cold, {"RUNBOOK_CACHE_DIR": str(Path(tmp) / "no-cache" / "cache")}),
            "warm": ([*runbook, "validate"], workspace, {}),
            "click": ([sys.executable, "-c", BARE_CLICK], None, {}),
            "libraries": ([sys.executable, "-c", LIBRARIES], None, {}),
        }
        if ansible:
            commands["ansible"] = ([*ansible, "--version"], None, {})
        results = interleaved_commands(commands, repeat=repeat, env=env)
        count = (
            subprocess.run([*runbook, "validate"], cwd=workspace, env=env, capture_output=True, check=False)
            .stdout.decode()
            .strip()
        )
        remembered = (workspace / "reports" / ".index" / "validate.json").is_file()
        profiles = {" ".join(argv): import_profile(argv, cold) for argv in PROFILED}
        profiles["validate (remembered)"] = import_profile(["validate"], workspace)
        per_step = load_costs(Path(tmp) / "load", repeat=3 if quick else 7)

    python_wall, python_cpu = results["python"]
    help_wall, help_cpu = results["help"]
    validate_wall, validate_cpu = results["validate"]
    ansible_wall = results["ansible"][0] if ansible else None
    ms = 1000.0
    section.add(Row("python -c pass", median(python_wall) * ms, cpu=median(python_cpu) * ms))
    section.add(
        Row(
            "runbook --help",
            median(help_wall) * ms,
            cpu=median(help_cpu) * ms,
            peer="ansible-playbook --version" if ansible else None,
            peer_value=median(ansible_wall) * ms if ansible_wall else None,
            pair=pair_ratio(ansible_wall, help_wall) if ansible_wall else None,
        )
    )
    def difference(label: str, ours: str, base: str, budget: float | None = None, note: str | None = None) -> None:
        """A row of the per-round differences `ours` - `base` (wall and CPU), judged on `budget` when given."""
        wall = pair_difference(results[ours][0], results[base][0]) * ms
        cpu = pair_difference(results[ours][1], results[base][1]) * ms
        judged = {"target": f"<= {budget:.0f} ms", "met": wall <= budget} if budget is not None else {}
        section.add(Row(label, wall, cpu=cpu, note=note, **judged))

    difference("runbook --help minus python -c pass", "help", "python", HELP_BUDGET_MS)
    difference("bare click group (16 commands) --help minus python -c pass: the floor of a click CLI", "click", "python")
    difference("runbook --help minus the bare click group's --help", "help", "click")
    section.add(
        Row(
            "runbook validate (sample workspace, cold: nothing remembered)",
            median(validate_wall) * ms,
            cpu=median(validate_cpu) * ms,
            peer="ansible-playbook --version" if ansible else None,
            peer_value=median(ansible_wall) * ms if ansible_wall else None,
            pair=pair_ratio(ansible_wall, validate_wall) if ansible_wall else None,
            note=count or None,
        )
    )
    difference("runbook validate minus python -c pass", "validate", "python", VALIDATE_BUDGET_MS)
    difference(
        "runbook validate minus python -c pass, the first in an installation (no schema digests remembered)",
        "first", "python", VALIDATE_BUDGET_MS,
    )  # fmt: skip
    difference(
        "the libraries' floor: importing click, Jinja, ruamel.yaml, pydantic and building one model, minus python -c pass",
        "libraries", "python",
    )  # fmt: skip
    difference("runbook validate (cold) minus the libraries' floor: runbook's own share", "validate", "libraries")
    difference(
        "runbook validate minus python -c pass, warm (the last clean validation remembered)", "warm", "python",
        VALIDATE_BUDGET_MS, note=None if remembered else "nothing was remembered: this row measured a cold run",
    )  # fmt: skip
    for steps, cost in per_step.items():
        section.add(
            Row(
                f"load cost per set/assert step at {steps:,} steps (read, validate, model; CPU)",
                cost,
                cpu=cost,
                target=f"part of <= {STEP_BUDGET_MS} ms a step",
            )
        )
    for command, (total, _slowest) in profiles.items():
        section.add(Row(f"imports of `runbook {command}` (-X importtime, one run)", total))
    heavy = heavy_imports_of_help()
    section.notes.append(
        "`runbook --help` imports "
        + (f"these heavy packages: {', '.join(heavy)}" if heavy else f"none of {', '.join(HEAVY)}")
        + " (tests/test_startup.py asserts it, and that `validate` loads no kernel, HTTP or Azure SDK code "
        "and a run whose steps never talk to Azure starts no emulator)."
    )
    for command in ("validate", "validate (remembered)", "status", "run 1.5 --dry-run"):
        slow = profiles[command][1]
        section.notes.append(
            f"slowest imports of `runbook {command}` (cumulative): " + ", ".join(f"{n} {t:.0f} ms" for n, t in slow)
        )
    section.notes.append(
        f"{repeat} interleaved rounds (python, --help, validate cold, validate first in an installation, "
        "validate warm, bare click, the libraries' imports, ansible; order "
        "reversed every other round); "
        "the differences to `python -c pass` and the ratios are medians of the per-round figures. "
        f"Commands run as `{Path(runbook[0]).name}` from {Path(runbook[0]).parent} (the console script itself; "
        "a pyenv shim in front of it adds its own shell start-up)."
    )
    return section
