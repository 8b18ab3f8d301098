"""Scaffolding: `runbook init` lays out a new workspace; `runbook new` adds a phase's runbook.

Neither overwrites a file that exists: `init` lists every file in the way and writes nothing.
`runbook new PHASE --from-scan reports/scan/X.json` writes a runbook whose verify steps run exactly
the cells the scan found failing (with the earlier cells they need as setup), with expectations
that fail now; the fix steps are left for the person to write.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import InputError
from .model import normalise_phase, phase_group
from .schemas import scaffold_schemas, write_schemas
from .workspace import CONFIG_NAME, Workspace, add_phase_to_plan

CONFIG = """\
# yaml-language-server: $schema=config.schema.json
# The workspace config: the phase plan and the targets runs talk to (`runbook --help`).
project: {project}
notebooks: []
paths:
  runbooks: runbooks
  templates: templates
  reports: reports
  docs: docs
plan:
  - group: "1"
    title: Phase 1
    phases:
      - id: "1.1"
        title: First phase
default_target: emulator
targets:
  emulator:
    kind: emulator
    description: the embedded Azure emulator on loopback (no account needed)
"""

RUNBOOK = """\
# yaml-language-server: $schema=../runbook.schema.json
# An example to replace: service.conf must say `retries = 3`. Verify is a real check, so
# `runbook run` first sees it fail (the fault reproduced), then fixes the file and sees it pass.
phase: "{phase}"
title: {title}
summary: >-
  service.conf sets retries to 0, so one dropped request fails the whole job.
{next_line}vars:
  config_file: service.conf
  wanted: retries = 3
inputs: {{}}
discovery:
  - id: read-config
    title: Read what the config file really says
    uses: shell
    with:
      cmd: [cat, "{{{{ config_file }}}}"]
      changes: false
    register: config
fix:
  - id: set-retries
    title: Set retries to 3
    uses: file.replace
    with:
      path: "{{{{ config_file }}}}"
      replacements:
        - find: retries = 0
          replace: "{{{{ wanted }}}}"
verify:
  - id: config-has-retries
    title: The config file holds the wanted line
    uses: shell
    with:
      cmd: [cat, "{{{{ config_file }}}}"]
      changes: false
    expect:
      - that: wanted in output.stdout.splitlines()
        message: "service.conf must contain the line `retries = 3`"
report:
  root_causes: []
  lessons: []
  changelog:
    fixed: []
"""

MKDOCS = """\
site_name: {project}
docs_dir: docs
# Works offline and from file://: no Google Fonts (font: false), no CDN (see `runbook docs build`).
theme:
  name: material
  font: false
plugins:
  - search
  - offline
extra:
  polyfills:
    - assets/iframe-worker-shim.js
markdown_extensions:
  - tables
  - admonition
  - attr_list
  - md_in_html
  - pymdownx.details
  - pymdownx.highlight
  - pymdownx.superfences
  - pymdownx.emoji:
      emoji_index: !!python/name:material.extensions.emoji.twemoji
      emoji_generator: !!python/name:runbook.docs.emoji.to_svg
validation:
  nav:
    omitted_files: warn
    not_found: warn
  links:
    not_found: warn
"""

GITIGNORE = """\
.env
.runbook.lock
site/
__pycache__/
"""

ENV_EXAMPLE = """\
# Copy to .env (never commit .env). Runs and kernels read these keys from it; the `emulator`
# target needs none of them. Add a target of kind `azure` (with `from_env:`) to use real Azure.
"""

EXAMPLE_FILE = """\
# The file the example runbook repairs (runbooks/phase-1.1.yaml).
endpoint = http://127.0.0.1:8080
retries = 0
"""


def init_workspace(folder: Path, *, project: str | None = None) -> list[Path]:
    """Create a workspace in `folder`; refuse (writing nothing) if any file would be overwritten."""
    name = project or folder.resolve().name
    files = {
        CONFIG_NAME: CONFIG.format(project=name),
        "runbooks/phase-1.1.yaml": RUNBOOK.format(phase="1.1", title="First phase", next_line=""),
        "templates/README.md": "Templates here override the packaged defaults by file name.\n",
        "reports/README.md": "Generated reports, run records and the timestamp log.\n",
        "docs/index.md": f"# {name}\n\nRun `runbook docs build` to generate these pages.\n",
        "mkdocs.yml": MKDOCS.format(project=name),
        ".gitignore": GITIGNORE,
        ".env.example": ENV_EXAMPLE,
        "service.conf": EXAMPLE_FILE,
        **scaffold_schemas(),
    }
    existing = [folder / rel for rel in files if (folder / rel).exists()]
    if existing:
        raise InputError(
            "refusing to overwrite existing files: " + ", ".join(str(p) for p in existing),
            hint="choose an empty folder, or move these files away",
        )
    written = []
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        written.append(path)
    return written


def new_phase(
    workspace: Workspace, phase: str, title: str | None, *, from_scan: Path | None = None
) -> tuple[Path, bool]:
    """Write `runbooks/phase-<id>.yaml` and add the phase to the plan if missing (`from_scan`: a
    scan's JSON; the runbook then verifies the cells the scan found failing)."""
    phase_id = normalise_phase(phase)
    from .model import PHASE_ID

    if not PHASE_ID.match(phase_id):
        raise InputError(f"{phase!r} is not a phase id like 1.6")
    path = workspace.runbooks_dir / f"phase-{phase_id}.yaml"
    if path.exists():
        raise InputError(f"{path} already exists", hint="edit it, or pick another phase number")
    known_title = workspace.phases[phase_id][1].title if phase_id in workspace.phases else None
    scaffold = None
    if from_scan is not None:
        scaffold = runbook_from_scan(workspace, from_scan)
    chosen = title or known_title or (scaffold.title if scaffold else None)
    if not chosen:
        raise InputError(
            f"phase {phase_id} is not in the plan yet", hint='give it a title: --title "Fix Backend Services"'
        )
    added = add_phase_to_plan(workspace, phase_id, chosen)
    ids = [p.id for g in workspace.config.plan for p in g.phases]
    if added:
        ids.append(phase_id)
    ids.sort(key=lambda s: [int(x) for x in s.split(".")])
    following = [p for p in ids if phase_group(p) == phase_group(phase_id) and ids.index(p) > ids.index(phase_id)]
    next_line = f'next: "{following[0]}"\n' if following else ""
    if scaffold is not None:
        atomic_write_text(path, scaffold.render(phase_id, _yaml_text(chosen), next_line))
    else:
        atomic_write_text(path, RUNBOOK.format(phase=phase_id, title=_yaml_text(chosen), next_line=next_line))
    write_schemas(workspace.root, ["runbook"])  # what the new file's modeline points at
    return path, added


def _yaml_text(text: str) -> str:
    return json.dumps(text) if any(c in text for c in ":#{}[]&*!|>'\"%@`") else text


# ---------------------------------------------------------------------------------------------
# a runbook from a scan


@dataclass
class _ScanRunbook:
    """What `runbook new --from-scan` writes: vars, verify steps and their expected failure signatures."""

    title: str
    notebook: str
    summary: str
    steps: list[str]

    def render(self, phase: str, title: str, next_line: str) -> str:
        return (
            "# yaml-language-server: $schema=../runbook.schema.json\n"
            f"# Scaffolded from a scan of {self.notebook}: the verify steps run exactly the cells the scan\n"
            "# found failing (with the earlier cells they need as setup) and fail until the fix works.\n"
            f'phase: "{phase}"\n'
            f"title: {title}\n"
            f"summary: {json.dumps(self.summary, ensure_ascii=False)}\n"
            f"{next_line}"
            f"vars:\n  notebook: {json.dumps(self.notebook)}\n"
            "discovery: []\n"
            "fix:\n"
            "  # One step per change, for example:\n"
            "  # - id: fix-config\n"
            "  #   uses: notebook.edit\n"
            '  #   with:\n  #     path: "{{ notebook }}"\n'
            "  #     cell: {pattern: '^# IMAGE GENERATION CONFIG'}\n"
            '  #     replacements:\n  #       - {find: "dall-e-3", replace: "FLUX-1.1-pro"}\n'
            "  []\n"
            "verify:\n" + "".join(self.steps)
        )


def _cell_ref(cell: Any, code_cells: list[Any]) -> str:
    """A pattern on the cell's first line when that names it alone, else its number."""
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    if first:
        pattern = "^" + _REGEX_SPECIAL.sub(r"\\\g<0>", first.rstrip())
        regex = re.compile(pattern, re.MULTILINE)
        if sum(1 for c in code_cells if regex.search(c.source)) == 1:
            return "{pattern: " + json.dumps(pattern, ensure_ascii=False) + "}"
    return str(cell.number)


_REGEX_SPECIAL = re.compile(r"[.^$*+?{}\[\]\\|()]")
_PRINTED_FAILURE = re.compile(r"\b(?:failed|error)\b\W{0,3}[45]\d\d\b", re.IGNORECASE)


def runbook_from_scan(workspace: Workspace, scan_path: Path) -> _ScanRunbook:
    """The runbook for the failing cells of the scan at `scan_path` (checked against the notebook)."""
    from .notebooks import Notebook
    from .scan import definers, free_names, load_scan, preview

    data = load_scan(scan_path)
    notebook_rel = str(data["notebook"])
    nb = Notebook.read(workspace.root / notebook_rel)
    scanned = {int(c["number"]): c for c in data["cells"] if isinstance(c, dict) and "number" in c}
    for number, item in scanned.items():
        same = number <= len(nb) and nb.cells[number - 1].cell_type == "code"
        if not same or item.get("preview") not in (None, preview(nb.cells[number - 1].source)):
            raise InputError(
                f"{scan_path}: cell {number} of the scan is not the same cell of {notebook_rel} any more",
                hint="the notebook changed since the scan: run `runbook scan` again",
            )
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    phases = [p for p in data.get("phases", []) if isinstance(p, dict) and p.get("cells")]
    if not phases:
        raise InputError(f"{scan_path}: the scan found no failing cells", hint="nothing to scaffold a runbook for")
    steps = []
    for number, group in enumerate(phases, start=1):
        cells = [nb.cells[int(n) - 1] for n in group["cells"]]
        # Setup: the earlier cells that ran fine in the scan and define what these cells read.
        earlier = [
            c for c in code_cells if c.number < cells[0].number and scanned.get(c.number, {}).get("status") == "ok"
        ]
        defined = definers(earlier)
        wanted: set[int] = set()
        todo = set().union(*(free_names(c.source) for c in cells))
        while todo:
            name = todo.pop()
            definer = defined.get(name)
            if definer is not None and definer not in wanted:
                wanted.add(definer)
                todo |= free_names(nb.cells[definer - 1].source)
        setup = [nb.cells[n - 1] for n in sorted(wanted)]
        step_id = re.sub(r"[^a-z0-9]+", "-", str(group.get("cause") or "cells").lower()).strip("-")
        lines = [
            f"  - id: verify-{number}-{step_id}",
            f"    title: {json.dumps(str(group.get('title') or 'Failing cells'), ensure_ascii=False)}",
            "    uses: notebook.run",
            "    with:",
            '      path: "{{ notebook }}"',
        ]
        if setup:
            lines.append("      setup: [" + ", ".join(_cell_ref(c, code_cells) for c in setup) + "]")
        lines.append("      cells: [" + ", ".join(_cell_ref(c, code_cells) for c in cells) + "]")
        lines.append("      expect:")
        signature = []
        for cell in cells:
            item = scanned.get(cell.number, {})
            cause = item.get("cause") or {}
            lines.append(f"        - cell: {_cell_ref(cell, code_cells)}")
            printed = _PRINTED_FAILURE.search(str(item.get("excerpt") or ""))
            if str(cause.get("kind", "")).startswith("caught-") and printed:
                lines.append(f"          output_not_contains: [{json.dumps(printed.group(), ensure_ascii=False)}]")
            token = cause.get("code") or cause.get("http_status") or item.get("error_name")
            if token:
                seen = cause.get("summary") or item.get("status")
                expression = json.dumps(f"'{token}' in (output | to_json)")
                signature.append(
                    f"        - that: {expression}\n          message: {json.dumps(f'cell {cell.number}: {seen}')}"
                )
        if signature:
            lines.append(
                "    # The failure the scan saw: before the fix, the fault counts as reproduced only if it looks so.\n"
                "    reproduce:\n      expect:\n" + "\n".join(signature)
            )
        steps.append("\n".join(lines) + "\n")
    first = phases[0]
    summary = "; ".join(f"{p.get('title')} (cells {', '.join(str(n) for n in p['cells'])})" for p in phases)
    return _ScanRunbook(
        str(first.get("title") or "Failing cells"), notebook_rel, "Failing in the scan: " + summary, steps
    )
