"""Start-up: `runbook --help` and `runbook validate` against bare Python and `ansible-playbook --version`.

Each command runs in a fresh process (after one untimed warm-up run that fills the OS page cache).
`validate` runs in a temporary copy of the sample workspace (the repository root). The import check
runs `main(["--help"])` in a fresh interpreter and lists the heavy packages that got imported (the
same check as tests/test_startup.py), and `python -X importtime` names the slowest imports.
Target: `runbook --help` within 150 ms of `python -c pass`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Row, Section, median, peer_command, quiet_env, runbook_command, sample_copy, time_command

NAME = "startup"
TITLE = "Start-up"
HEAVY = ("httpx", "azure", "nbclient", "nbformat", "git", "jinja2", "ruamel", "pydantic")
HELP_BUDGET_MS = 150.0

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


def slowest_imports(argv_tail: list[str], top: int = 5) -> list[tuple[str, float]]:
    """Cumulative import time (ms) of the top-level-ish modules imported by `runbook ARGS`."""
    code = f"import sys\nfrom runbook.cli import main\ntry:\n    main({argv_tail!r})\nexcept SystemExit:\n    pass\n"
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, timeout=120, env=quiet_env()
    ).stderr.decode("utf-8", "replace")
    found: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|", 2))
        if not cumulative.isdigit():
            continue
        # direct imports of the entry point and of runbook's own modules
        indent = len(line.split("|", 2)[2]) - len(line.split("|", 2)[2].lstrip())
        if indent <= 3 or name.startswith("runbook"):
            found[name] = max(found.get(name, 0.0), int(cumulative) / 1000)
    return sorted(found.items(), key=lambda kv: -kv[1])[:top]


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 5 if quick else 15
    env = quiet_env()
    runbook = runbook_command()

    python_cpu: list[float] = []
    help_cpu: list[float] = []
    python = median(time_command([sys.executable, "-c", "pass"], repeat=repeat, env=env, cpu=python_cpu)) * 1000
    help_ms = median(time_command([*runbook, "--help"], repeat=repeat, env=env, cpu=help_cpu)) * 1000
    ansible = peer_command("ansible-playbook")
    ansible_ms = median(time_command([*ansible, "--version"], repeat=repeat, env=env)) * 1000 if ansible else None

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        workspace = sample_copy(Path(tmp) / "lab")
        validate_ms = median(time_command([*runbook, "validate"], repeat=repeat, env=env, cwd=workspace)) * 1000
        count = (
            subprocess.run([*runbook, "validate"], cwd=workspace, env=env, capture_output=True, check=False)
            .stdout.decode()
            .strip()
        )

    section.add(Row("python -c pass", python))
    section.add(
        Row(
            "runbook --help",
            help_ms,
            peer="ansible-playbook --version" if ansible else None,
            peer_value=ansible_ms,
        )
    )
    section.add(
        Row(
            "runbook --help minus python -c pass",
            help_ms - python,
            target=f"<= {HELP_BUDGET_MS:.0f} ms",
            met=help_ms - python <= HELP_BUDGET_MS,
        )
    )
    section.add(
        Row(
            "  the same in CPU time (user + system)",
            (median(help_cpu) - median(python_cpu)) * 1000,
            note="barely moves with the machine's load",
        )
    )
    section.add(
        Row(
            "runbook validate (sample workspace)",
            validate_ms,
            peer="ansible-playbook --version" if ansible else None,
            peer_value=ansible_ms,
            note=count or None,
        )
    )
    heavy = heavy_imports_of_help()
    section.notes.append(
        "`runbook --help` imports "
        + (f"these heavy packages: {', '.join(heavy)}" if heavy else f"none of {', '.join(HEAVY)}")
        + " (tests/test_startup.py asserts it)."
    )
    slow = slowest_imports(["validate"])
    section.notes.append(
        "slowest imports of `runbook validate` (cumulative, `python -X importtime`): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in slow)
    )
    section.notes.append(
        f"commands run as `{Path(runbook[0]).name}` from {Path(runbook[0]).parent} (the console script itself; "
        "a pyenv shim in front of it adds its own shell start-up)."
    )
    return section
