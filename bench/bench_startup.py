"""Start-up: `runbook --help` and `runbook validate` against bare Python and `ansible-playbook --version`.

Each command runs in a fresh process (after one untimed warm-up run that fills the OS page cache).
`validate` runs in a temporary copy of the sample workspace (the repository root). The import check
runs `main(["--help"])` in a fresh interpreter and lists the heavy packages that got imported (the
same check as tests/test_startup.py), and `python -X importtime` names the slowest imports.
All commands run interleaved (python, --help, validate, ansible, then the reverse order), so a load
swing hits each alike. Targets: `runbook --help` within 60 ms of `python -c pass`, `runbook
validate` of the sample within 250 ms of it. Each command's imports are profiled once.
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
    """(total import time in ms, the slowest top-level or runbook imports) of `runbook ARGS`,
    from `python -X importtime` (the console script's own imports included)."""
    code = f"import sys\nfrom runbook.cli import main\ntry:\n    main({argv_tail!r})\nexcept SystemExit:\n    pass\n"
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


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 5 if quick else 15
    env = quiet_env()
    runbook = runbook_command()
    ansible = peer_command("ansible-playbook")

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        workspace = sample_copy(Path(tmp) / "lab")
        commands: dict[str, tuple[list[str], Path | None]] = {
            "python": ([sys.executable, "-c", "pass"], None),
            "help": ([*runbook, "--help"], None),
            "validate": ([*runbook, "validate"], workspace),
            "click": ([sys.executable, "-c", BARE_CLICK], None),
        }
        if ansible:
            commands["ansible"] = ([*ansible, "--version"], None)
        results = interleaved_commands(commands, repeat=repeat, env=env)
        count = (
            subprocess.run([*runbook, "validate"], cwd=workspace, env=env, capture_output=True, check=False)
            .stdout.decode()
            .strip()
        )
        profiles = {" ".join(argv): import_profile(argv, workspace) for argv in PROFILED}

    python_wall, python_cpu = results["python"]
    help_wall, help_cpu = results["help"]
    validate_wall, validate_cpu = results["validate"]
    click_wall, click_cpu = results["click"]
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
    help_extra = pair_difference(help_wall, python_wall) * ms
    section.add(
        Row(
            "runbook --help minus python -c pass",
            help_extra,
            cpu=pair_difference(help_cpu, python_cpu) * ms,
            target=f"<= {HELP_BUDGET_MS:.0f} ms",
            met=help_extra <= HELP_BUDGET_MS,
        )
    )
    section.add(
        Row(
            "bare click group (16 commands) --help minus python -c pass: the floor of a click CLI",
            pair_difference(click_wall, python_wall) * ms,
            cpu=pair_difference(click_cpu, python_cpu) * ms,
        )
    )
    section.add(
        Row(
            "runbook --help minus the bare click group's --help",
            pair_difference(help_wall, click_wall) * ms,
            cpu=pair_difference(help_cpu, click_cpu) * ms,
        )
    )
    section.add(
        Row(
            "runbook validate (sample workspace)",
            median(validate_wall) * ms,
            cpu=median(validate_cpu) * ms,
            peer="ansible-playbook --version" if ansible else None,
            peer_value=median(ansible_wall) * ms if ansible_wall else None,
            pair=pair_ratio(ansible_wall, validate_wall) if ansible_wall else None,
            note=count or None,
        )
    )
    validate_extra = pair_difference(validate_wall, python_wall) * ms
    section.add(
        Row(
            "runbook validate minus python -c pass",
            validate_extra,
            cpu=pair_difference(validate_cpu, python_cpu) * ms,
            target=f"<= {VALIDATE_BUDGET_MS:.0f} ms",
            met=validate_extra <= VALIDATE_BUDGET_MS,
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
    for command in ("validate", "status", "run 1.5 --dry-run"):
        slow = profiles[command][1]
        section.notes.append(
            f"slowest imports of `runbook {command}` (cumulative): " + ", ".join(f"{n} {t:.0f} ms" for n, t in slow)
        )
    section.notes.append(
        f"{repeat} interleaved rounds (python, --help, validate, bare click, ansible; order reversed every other "
        "round); "
        "the differences to `python -c pass` and the ratios are medians of the per-round figures. "
        f"Commands run as `{Path(runbook[0]).name}` from {Path(runbook[0]).parent} (the console script itself; "
        "a pyenv shim in front of it adds its own shell start-up)."
    )
    return section
