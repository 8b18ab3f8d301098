"""Scaffolding: `runbook init` lays out a new workspace; `runbook new` adds a phase's runbook.

Neither overwrites a file that exists: `init` lists every file in the way and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_write_text
from .errors import InputError
from .model import normalise_phase, phase_group
from .workspace import CONFIG_NAME, Workspace, add_phase_to_plan

CONFIG = """\
# runbook workspace: https://github.com/ (see `runbook --help`)
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
phase: "{phase}"
title: {title}
summary: >-
  What is broken, in one or two sentences.
{next_line}vars: {{}}
inputs: {{}}
discovery:
  - id: look
    title: Discover what is really deployed
    uses: shell
    with:
      cmd: [echo, discovery goes here]
      changes: false
    register: found
fix:
  - id: fix-it
    title: Apply the fix
    uses: set
    with:
      fixed: true
verify:
  - id: check
    title: Verify the fix
    uses: assert
    with:
      that:
        - that: "{{{{ steps['fix-it'].output.fixed }}}}"
          message: the fix was applied
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
# Copy to .env (never commit .env). Needed only for `--target azure`.
AZURE_SUBSCRIPTION_ID=
RESOURCE_GROUP=
APIM_SERVICE_NAME=
APIM_GATEWAY_URL=
APIM_API_KEY=
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


def new_phase(workspace: Workspace, phase: str, title: str | None) -> tuple[Path, bool]:
    """Write `runbooks/phase-<id>.yaml` and add the phase to the plan if missing."""
    phase_id = normalise_phase(phase)
    from .model import PHASE_ID

    if not PHASE_ID.match(phase_id):
        raise InputError(f"{phase!r} is not a phase id like 1.6")
    path = workspace.runbooks_dir / f"phase-{phase_id}.yaml"
    if path.exists():
        raise InputError(f"{path} already exists", hint="edit it, or pick another phase number")
    known_title = workspace.phases[phase_id][1].title if phase_id in workspace.phases else None
    chosen = title or known_title
    if not chosen:
        raise InputError(f"phase {phase_id} is not in the plan yet", hint='give it a title: --title "Fix Backend Services"')
    added = add_phase_to_plan(workspace, phase_id, chosen)
    ids = [p.id for g in workspace.config.plan for p in g.phases]
    if added:
        ids.append(phase_id)
    ids.sort(key=lambda s: [int(x) for x in s.split(".")])
    following = [p for p in ids if phase_group(p) == phase_group(phase_id) and ids.index(p) > ids.index(phase_id)]
    next_line = f'next: "{following[0]}"\n' if following else ""
    atomic_write_text(path, RUNBOOK.format(phase=phase_id, title=_yaml_text(chosen), next_line=next_line))
    return path, added


def _yaml_text(text: str) -> str:
    import json

    return json.dumps(text) if any(c in text for c in ":#{}[]&*!|>'\"%@`") else text
