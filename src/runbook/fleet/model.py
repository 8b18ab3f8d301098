"""The fleet file (`fleet.yaml`): its typed model, its JSON Schema, and loading it into members.

A fleet lists the deployments one phase is rolled across. Each member is a workspace (a folder, or a
git repository URL + ref cloned into the fleet's work folder) plus the target its run uses, with
per-member settings layered over that target (subscription, resource group, gateway, names of the
environment variables that hold secrets, vars). `generate:` entries list members from a pattern over
a range (`member-{n:02d}` for n in 1..12). Loading goes through the project's YAML loader, so every
problem is reported as `file:line:col` with a "did you mean" for unknown keys, all at once.

`fleet_schema()` is the JSON Schema of the format; `write_schema(Path("fleet.schema.json"))`
rewrites the committed schema file from it (tests/test_fleet.py checks that the two agree).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from ..errors import InputError, Location, Problem, ValidationFailed
from ..loader import YamlDocument, parse_model, read_yaml
from ..model import Strict

FLEET_FILE = "fleet.yaml"
SCHEMA_FILE = "fleet.schema.json"
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `{n}` or `{n:02d}` (any width, zero-padded or not): the only placeholder a generator knows.
_PLACEHOLDER = re.compile(r"\{n(?::(0?[0-9]{0,2})d?)?\}")


class MemberFields(Strict):
    """What a member (or a generator's pattern) may say; every string may use `{n}` in a generator."""

    workspace: str | None = Field(None, description="the member's workspace folder, relative to the fleet file")
    repo: str | None = Field(None, description="a git repository URL (or path) to clone into the fleet's work folder")
    ref: str | None = Field(None, description="with repo: the branch, tag or commit to check out (default: the remote's HEAD)")
    path: str | None = Field(None, description="with repo: the workspace folder inside the repository (default: its root)")
    target: str | None = Field(None, description="target of the member's runbook.yaml (default: its default_target)")
    subscription: str | None = Field(None, description="Azure subscription id (setting subscription_id); also the key of --per-subscription")
    resource_group: str | None = Field(None, description="resource group (setting resource_group)")
    gateway: str | None = Field(None, description="API Management gateway URL (setting gateway_url)")
    apim_service: str | None = Field(None, description="API Management service name (setting apim_service)")
    settings: dict[str, Any] = Field(default_factory=dict, description="more target settings (literal values)")
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="secret setting -> name of the environment variable (or .env key) holding it; values never leave the member's process",
    )
    vars: dict[str, str] = Field(default_factory=dict, description="variables and inputs for the run (like --var)")

    @field_validator("secrets")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for setting, name in value.items():
            if not ENV_NAME.match(name) and not _PLACEHOLDER.search(name):
                raise ValueError(f"{setting}: {name!r} is not an environment variable name (write the name, never the value)")
        return value

    @field_validator("vars", mode="before")
    @classmethod
    def _text_vars(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in value.items()}
        return value


class Member(MemberFields):
    """One deployment: a name, and a workspace folder or a repository."""

    name: str = Field(description="unique member name (letters, digits, '.', '_', '-'); --members globs match it")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not MEMBER_NAME.match(value):
            raise ValueError(f"{value!r} is not a member name: use letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Member:
        if (self.workspace is None) == (self.repo is None):
            raise ValueError("a member needs exactly one of 'workspace' (a folder) or 'repo' (a git URL)")
        if self.repo is None and (self.ref is not None or self.path is not None):
            raise ValueError("'ref' and 'path' go with 'repo'")
        return self


class Generator(MemberFields):
    """Members from a pattern: `name` (and every other string) uses `{n}` / `{n:02d}` for n in `range`."""

    name: str = Field(description="name pattern, e.g. member-{n:02d}")
    range: tuple[int, int] = Field(description="[first, last] values of n, both included")

    @field_validator("range")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        first, last = value
        if last < first:
            raise ValueError(f"range [{first}, {last}] is empty: write [first, last] with first <= last")
        if last - first >= 10_000:
            raise ValueError("a generator lists at most 10000 members")
        return value

    @field_validator("name")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if not _PLACEHOLDER.search(value):
            raise ValueError(f"{value!r} has no {{n}} placeholder: every generated member needs its own name")
        return value


class RateControl(Strict):
    """Defaults for `fleet run`; the command-line options override them."""

    max_concurrency: int | str = Field(4, description="members running at once: N, or P% of the selected members")
    max_errors: int | str | None = Field(
        None, description="once more members than this failed (N or P%), no new member starts; running ones finish"
    )
    per_subscription: int | None = Field(None, ge=1, description="members running at once in one subscription")


class FleetEmulator(Strict):
    """One emulator for the whole fleet: `runbook fleet run` serves `estate` on loopback while it runs.

    Each member then gets the emulator's `arm_url`, its gateway's URL (from `apim_service`) and that
    gateway's key, over the settings of its own target.
    """

    estate: str = Field(description="the estate file the emulator serves, relative to the fleet file")
    latency: float = Field(0.0, ge=0, description="seconds the emulator adds to every answer")
    seed: int = Field(0, description="seed for generated content (repeatable runs)")
    page_size: int = Field(100, ge=1, description="items per ARM page")


class Fleet(Strict):
    """A fleet file: the members one phase is rolled across, and how fast."""

    fleet: str = Field(description="the fleet's name")
    description: str | None = Field(None, description="what the fleet is, for people")
    work_dir: str = Field(".fleet/work", description="where repository members are cloned, relative to the fleet file")
    reports: str = Field("reports", description="where fleet records and reports go (reports/fleet/<phase>/)")
    defaults: MemberFields = Field(default_factory=MemberFields, description="fields every member gets unless it sets its own")
    rate: RateControl = Field(default_factory=RateControl)
    emulator: FleetEmulator | None = Field(None, description="serve the members' Azure with one shared emulator")
    members: list[Member] = Field(default_factory=list, description="the members, each a workspace or repository")
    generate: list[Generator] = Field(default_factory=list, description="members listed from patterns")


# ---------------------------------------------------------------- resolved members


@dataclass(frozen=True)
class MemberSpec:
    """One member resolved from the file: defaults applied, generator patterns filled in, paths absolute."""

    name: str
    workspace: Path | None
    repo: str | None
    ref: str | None
    path: str | None
    target: str | None
    subscription: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    location: str = ""

    def source(self) -> str:
        """Where the member's workspace comes from, for listings."""
        if self.repo is not None:
            return f"{self.repo}@{self.ref or 'HEAD'}" + (f":{self.path}" if self.path else "")
        return str(self.workspace)


@dataclass
class LoadedFleet:
    """A validated fleet file and its members in file order."""

    path: Path
    config: Fleet
    members: list[MemberSpec]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def work_dir(self) -> Path:
        return (self.root / self.config.work_dir).resolve()

    @property
    def reports_dir(self) -> Path:
        return (self.root / self.config.reports).resolve()

    @property
    def estate_path(self) -> Path | None:
        """The shared emulator's estate file, when the fleet has one."""
        return (self.root / self.config.emulator.estate).resolve() if self.config.emulator is not None else None

    def select(self, patterns: Iterable[str] = ()) -> list[MemberSpec]:
        """Members whose name matches any of the globs (all members when none is given)."""
        wanted = [p for p in patterns if p]
        if not wanted:
            return list(self.members)
        chosen = [m for m in self.members if any(fnmatch.fnmatchcase(m.name, p) for p in wanted)]
        if not chosen:
            from ..errors import did_you_mean

            names = [m.name for m in self.members]
            hint = did_you_mean(wanted[0], names)
            raise InputError(
                f"--members {' '.join(wanted)} matches no member of fleet {self.config.fleet!r}",
                hint=f"{hint}members: {', '.join(names[:12])}{' …' if len(names) > 12 else ''}",
            )
        return chosen


def _fill(text: str, n: int) -> str:
    def one(match: re.Match[str]) -> str:
        spec = match.group(1)
        return format(n, f"{spec}d") if spec else str(n)

    return _PLACEHOLDER.sub(one, text)


def _filled(value: Any, n: int | None) -> Any:
    if n is None:
        return value
    if isinstance(value, str):
        return _fill(value, n)
    if isinstance(value, dict):
        return {k: _filled(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, n) for v in value]
    return value


def _resolve(root: Path, defaults: MemberFields, entry: MemberFields, name: str, n: int | None, where: str) -> MemberSpec:
    def pick(key: str) -> Any:
        own = getattr(entry, key)
        return _filled(own if own is not None else getattr(defaults, key), n)

    settings = {**defaults.settings, **_filled(entry.settings, n)}
    for key, setting in (("subscription", "subscription_id"), ("resource_group", "resource_group"),
                         ("gateway", "gateway_url"), ("apim_service", "apim_service")):
        value = pick(key)
        if value is not None:
            settings[setting] = value
    workspace = pick("workspace")
    repo = pick("repo")
    if repo is not None and "://" not in repo and not repo.startswith("git@") and not Path(repo).is_absolute():
        repo = str((root / repo).resolve())  # a local repository path is relative to the fleet file
    if workspace is not None and entry.repo is not None:
        workspace = None  # the member's own repo wins over a default folder
    if repo is not None and entry.workspace is not None:
        repo = None
    return MemberSpec(
        name=name,
        workspace=(root / workspace).resolve() if workspace is not None else None,
        repo=repo,
        ref=pick("ref"),
        path=pick("path"),
        target=pick("target"),
        subscription=pick("subscription"),
        settings=settings,
        secrets={**defaults.secrets, **_filled(entry.secrets, n)},
        vars={**defaults.vars, **_filled(entry.vars, n)},
        location=where,
    )


def load_fleet(path: Path | str | None = None) -> LoadedFleet:
    """Read and validate a fleet file (default: ./fleet.yaml); raise ValidationFailed listing every problem."""
    fleet_path = Path(path) if path is not None else Path.cwd() / FLEET_FILE
    if fleet_path.is_dir():
        fleet_path = fleet_path / FLEET_FILE
    if not fleet_path.exists():
        raise InputError(
            f"no fleet file {fleet_path}",
            hint="pass --file FLEET.yaml, or create one (see docs/guide/fleets.md; `runbook fleet generate` writes a demo fleet)",
        )
    doc = read_yaml(fleet_path, root=Path.cwd())
    config, problems = parse_model(Fleet, doc)
    if config is None:
        raise ValidationFailed(problems)
    members, problems = _members(fleet_path.parent.resolve(), config, doc)
    if problems:
        raise ValidationFailed(problems)
    return LoadedFleet(path=fleet_path.resolve(), config=config, members=members)


def _members(root: Path, config: Fleet, doc: YamlDocument) -> tuple[list[MemberSpec], list[Problem]]:
    problems: list[Problem] = []
    members: list[MemberSpec] = []
    seen: dict[str, Location] = {}

    def add(spec: MemberSpec, where: Location) -> None:
        if spec.name in seen:
            problems.append(Problem(where, f"member {spec.name!r} is listed twice (first at line {seen[spec.name].line})"))
            return
        seen[spec.name] = where
        if spec.workspace is None and spec.repo is None:
            problems.append(Problem(where, f"member {spec.name!r} has neither 'workspace' nor 'repo'"))
            return
        members.append(spec)

    for index, member in enumerate(config.members):
        where = doc.location(["members", index, "name"])
        add(_resolve(root, config.defaults, member, member.name, None, str(where)), where)
    for index, generator in enumerate(config.generate):
        where = doc.location(["generate", index, "name"])
        if generator.workspace is None and generator.repo is None and config.defaults.workspace is None and config.defaults.repo is None:
            problems.append(Problem(where, "a generator needs 'workspace' or 'repo' (a pattern with {n})"))
            continue
        first, last = generator.range
        for n in range(first, last + 1):
            name = _fill(generator.name, n)
            if not MEMBER_NAME.match(name):
                problems.append(Problem(where, f"generated name {name!r} is not a member name"))
                break
            add(_resolve(root, config.defaults, generator, name, n, str(where)), where)
    if not members and not problems:
        problems.append(Problem(doc.location(), "the fleet has no members: add 'members:' or 'generate:'"))
    return members, problems


# ---------------------------------------------------------------- schema


def fleet_schema() -> dict[str, Any]:
    """JSON Schema of the fleet file format (for yaml-language-server and editors)."""
    schema = Fleet.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "runbook fleet"
    return schema


def schema_text() -> str:
    return json.dumps(fleet_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path) -> bool:
    """Write the schema file; True when it changed."""
    from ..atomic import write_if_changed

    return write_if_changed(path, schema_text())

