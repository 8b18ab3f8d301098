"""The workspace: its config file (`runbook.yaml`), the phase plan, targets, and where things live.

A workspace is a folder holding `runbook.yaml`, `runbooks/`, `templates/`, `reports/`, `mkdocs.yml`
and the files being repaired. This module finds it, validates its config (with `file:line:col`
errors), answers "which runbook is phase 1.5" and "what comes after 1.5", and edits the plan in place
(keeping comments) when `runbook new` adds a phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from .errors import Problem, UnknownPhase, ValidationFailed, WorkspaceNotFound, did_you_mean
from .loader import LoadedRunbook, YamlDocument, load_runbook, parse_model, read_yaml
from .model import PHASE_ID, Strict, normalise_phase, phase_group

CONFIG_NAME = "runbook.yaml"


class PlanPhase(Strict):
    """One phase of the plan; its runbook is `runbooks/phase-<id>.yaml`."""

    id: str = Field(description='the phase id, e.g. "1.5" (quote it: 1.10 is not 1.1)')
    title: str = Field(description="what the phase fixes, in a few words")
    cells: list[int | str] = Field(default_factory=list, description="cells the phase concerns")

    @field_validator("id", mode="before")
    @classmethod
    def _phase(cls, value: Any) -> str:
        text = normalise_phase(str(value))
        if not PHASE_ID.match(text):
            raise ValueError(f"{value!r} is not a phase id like 1.5")
        return text


class PlanGroup(Strict):
    """A group of phases ("1" holds 1.1, 1.2 ...); progress is counted per group."""

    group: str = Field(description='the group number, e.g. "1"')
    title: str | None = Field(None, description="what the group is about")
    phases: list[PlanPhase] = Field(default_factory=list, description="the group's phases, in order")

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> str:
        return str(value)


class TargetConfig(Strict):
    """An environment a run talks to: the embedded emulator, real Azure, or nothing (`local`)."""

    kind: Literal["emulator", "azure", "local"] = Field(
        description="emulator: the embedded Azure emulator on loopback; azure: real Azure; local: no cloud at all"
    )
    description: str | None = Field(None, description="what the target is, for people")
    settings: dict[str, Any] = Field(default_factory=dict, description="literal settings")
    from_env: dict[str, str] = Field(
        default_factory=dict, description="setting name -> environment variable (or .env key)"
    )
    secrets: list[str] = Field(default_factory=list, description="settings that hold secrets")
    estate: str | None = Field(None, description="emulator only: estate file (default: the lab)")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment for shell steps and kernels: NAME -> template over settings",
    )


class Paths(Strict):
    """Where the workspace keeps things, relative to its root."""

    runbooks: str = Field("runbooks", description="the runbooks folder (phase-<id>.yaml)")
    templates: str = Field("templates", description="report templates that override the packaged ones")
    reports: str = Field("reports", description="reports, run records and the timestamp log")
    docs: str = Field("docs", description="the docs folder mkdocs builds (generated pages are written here)")


class WorkspaceConfig(Strict):
    """The workspace config, `runbook.yaml` at the workspace root."""

    project: str = Field(description="the project's name (site title, reports)")
    description: str | None = Field(None, description="what is being repaired, for people")
    notebooks: list[str] = Field(default_factory=list, description="notebooks being repaired, relative to the root")
    env_file: str = Field(".env", description="the dotenv file targets and inputs read (never commit it)")
    paths: Paths = Field(default_factory=Paths, description="where runbooks, templates, reports and docs live")
    allowed_paths: list[str] = Field(
        default_factory=list, description="folders outside the workspace that file actions may touch"
    )
    plan: list[PlanGroup] = Field(default_factory=list, description="the phases, grouped, in order")
    default_target: str = Field("emulator", description="the target `runbook run` uses without --target")
    targets: dict[str, TargetConfig] = Field(default_factory=dict, description="target name -> how to reach it")


@dataclass
class Workspace:
    """A loaded workspace: its root, its validated config and derived paths."""

    root: Path
    config: WorkspaceConfig
    config_path: Path
    config_doc: YamlDocument | None = None

    @property
    def runbooks_dir(self) -> Path:
        return self.root / self.config.paths.runbooks

    @property
    def templates_dir(self) -> Path:
        return self.root / self.config.paths.templates

    @property
    def reports_dir(self) -> Path:
        return self.root / self.config.paths.reports

    @property
    def docs_dir(self) -> Path:
        return self.root / self.config.paths.docs

    @property
    def timestamp_log(self) -> Path:
        from .record import TIMESTAMP_LOG

        return self.reports_dir / TIMESTAMP_LOG

    @property
    def env_file(self) -> Path:
        return self.root / self.config.env_file

    @property
    def allowed_paths(self) -> tuple[Path, ...]:
        return tuple((self.root / p).resolve() for p in self.config.allowed_paths)

    # -- the plan

    @cached_property
    def phases(self) -> dict[str, tuple[PlanGroup, PlanPhase]]:
        return {p.id: (g, p) for g in self.config.plan for p in g.phases}

    def phase_ids(self) -> list[str]:
        """Phases of the plan, plus any runbook not (yet) in it."""
        ids = list(self.phases)
        ids.extend(p for p in self.runbook_files() if p not in self.phases)
        return ids

    def phase_title(self, phase: str) -> str:
        if phase in self.phases:
            return self.phases[phase][1].title
        return f"Phase {phase}"

    def group_of(self, phase: str) -> PlanGroup | None:
        entry = self.phases.get(phase)
        return entry[0] if entry else None

    def next_phase(self, phase: str) -> str | None:
        ids = [p.id for g in self.config.plan for p in g.phases]
        if phase in ids and ids.index(phase) + 1 < len(ids):
            return ids[ids.index(phase) + 1]
        return None

    # -- runbooks

    def runbook_files(self) -> dict[str, Path]:
        from .phase_ids import runbook_files_in

        return runbook_files_in(self.runbooks_dir)

    def runbook_path(self, phase: str) -> Path:
        phase_id = normalise_phase(phase)
        files = self.runbook_files()
        if phase_id in files:
            return files[phase_id]
        candidates = sorted(set(files) | set(self.phases))
        hint = did_you_mean(phase_id, candidates, quote=False)
        if phase_id in self.phases:
            raise UnknownPhase(
                f"phase {phase_id} is in the plan but has no runbook yet",
                hint=f"create it with `runbook new {phase_id}`",
            )
        raise UnknownPhase(
            f"no runbook for phase {phase!r} in {self.config.paths.runbooks}/",
            hint=f"{hint}known phases: {', '.join(candidates) or 'none'}; `runbook new {phase_id}` creates one",
        )

    def load_runbook(self, phase_or_path: str | Path) -> LoadedRunbook:
        path = Path(phase_or_path)
        if not (path.suffix in (".yaml", ".yml") and (path.exists() or (self.root / path).exists())):
            path = self.runbook_path(str(phase_or_path))
        elif not path.is_absolute() and not path.exists():
            path = self.root / path
        return load_runbook(path, root=self.root, known_phases=self.phase_ids())

    def read_env_file(self) -> dict[str, str]:
        """Keys of the workspace's .env file (missing file: none)."""
        from .actions.files import read_dotenv

        return read_dotenv(self.env_file) if self.env_file.exists() else {}


def find_root(start: Path | None = None) -> Path:
    if start is not None and not start.is_dir():
        what = "is not a folder" if start.exists() else "does not exist"
        raise WorkspaceNotFound(
            f"workspace folder {start} {what}",
            hint="pass an existing folder with --workspace (or RUNBOOK_WORKSPACE), or create one with `runbook init DIR`",
        )
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise WorkspaceNotFound(
        f"no {CONFIG_NAME} in {here} or any folder above it",
        hint="run inside a workspace, pass --workspace DIR, or create one with `runbook init`",
    )


def load_workspace(path: Path | str | None = None) -> Workspace:
    """Find and validate the workspace containing `path` (default: the current directory)."""
    root = find_root(Path(path) if path else None)
    config_path = root / CONFIG_NAME
    doc = read_yaml(config_path, root=Path.cwd())
    config, problems = parse_model(WorkspaceConfig, doc)
    if config is not None:
        problems.extend(_check_config(config, doc))
        problems.extend(_check_confinement(root, config, doc))
    if problems or config is None:
        raise ValidationFailed(problems)
    return Workspace(root=root, config=config, config_path=config_path, config_doc=doc)


def _config_paths(config: WorkspaceConfig) -> list[tuple[list[Any], str]]:
    """Every path the workspace config names, with its place in the file."""
    named: list[tuple[list[Any], str]] = [
        (["paths", key], value) for key, value in config.paths.model_dump().items()
    ]
    named.append((["env_file"], config.env_file))
    named.extend((["notebooks", i], value) for i, value in enumerate(config.notebooks))
    named.extend(
        (["targets", name, "estate"], target.estate) for name, target in config.targets.items() if target.estate
    )
    return named


def _check_confinement(root: Path, config: WorkspaceConfig, doc: Any) -> list[Problem]:
    """Paths in the config stay inside the workspace (symlinks followed) unless `allowed_paths` names them."""
    problems = []
    home = root.resolve()
    allowed = [(root / p).resolve() for p in config.allowed_paths if "\0" not in p]
    for place, value in _config_paths(config):
        if "\0" in value:
            problems.append(Problem(doc.location(place), "the path contains a NUL byte; write it without one"))
            continue
        target = (root / value).resolve()
        inside = [home, *allowed]
        if not any(target == base or base in target.parents for base in inside):
            problems.append(
                Problem(
                    doc.location(place),
                    f"{value!r} resolves to {target}, outside the workspace {home}; runbook reads and writes "
                    "only inside the workspace: use a path inside it, or list the folder under `allowed_paths:`",
                )
            )
    return problems


def _check_config(config: WorkspaceConfig, doc: Any) -> list[Problem]:
    problems = []
    if config.targets and config.default_target not in config.targets:
        hint = did_you_mean(config.default_target, config.targets)
        problems.append(
            Problem(
                doc.location(["default_target"]),
                f"default_target {config.default_target!r} is not a target: {hint}"
                f"targets: {', '.join(config.targets)}",
            )
        )
    seen: set[str] = set()
    for gi, group in enumerate(config.plan):
        for pi, phase in enumerate(group.phases):
            if phase.id in seen:
                problems.append(Problem(doc.location(["plan", gi, "phases", pi, "id"]), f"phase {phase.id} is listed twice"))
            seen.add(phase.id)
            if phase_group(phase.id) != group.group:
                problems.append(
                    Problem(
                        doc.location(["plan", gi, "phases", pi, "id"]),
                        f"phase {phase.id} is listed under group {group.group}; it belongs to group "
                        f"{phase_group(phase.id)}",
                    )
                )
    return problems


def add_phase_to_plan(workspace: Workspace, phase: str, title: str) -> bool:
    """Add `phase` to the plan in runbook.yaml, keeping the file's comments; False if present."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from .atomic import atomic_write_text

    if phase in workspace.phases:
        return False
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    tree = yaml.load(workspace.config_path.read_text(encoding="utf-8"))
    plan = tree.setdefault("plan", CommentedSeq())
    group_id = phase_group(phase)
    group = next((g for g in plan if str(g.get("group")) == group_id), None)
    if group is None:
        group = CommentedMap(group=group_id, title=f"Phase {group_id}", phases=CommentedSeq())
        plan.append(group)
    entry = CommentedMap(id=phase, title=title)
    phases = group.setdefault("phases", CommentedSeq())
    position = len(phases)
    key = [int(x) for x in phase.split(".")]
    for i, existing in enumerate(phases):
        if [int(x) for x in str(existing.get("id")).split(".")] > key:
            position = i
            break
    phases.insert(position, entry)
    buffer = io.StringIO()
    yaml.dump(tree, buffer)
    atomic_write_text(workspace.config_path, buffer.getvalue())
    return True

