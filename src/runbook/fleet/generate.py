"""A demo fleet for tests, benchmarks and the guide: N member workspaces, each its own git repository.

Every member is the sample workspace taken from a **commit** of the project (`git archive REF`, so a
dirty working tree never leaks in) with its own emulator estate (`estate.yaml`: its own subscription,
resource group, accounts and API Management service) and a `member` target that serves it. Some
members are broken by design:

- `no-image-model`: the estate has no image-generation deployment (discovery's `image-models` fails);
- `no-image-route`: the gateway has no image-generation operation (`apim-route` fails);
- `throttled`: the member's subscription answers every ARM request with 429 + Retry-After (the
  emulator's fault settings), so `accounts` gives up after its retries.

`fleet.yaml` lists the members with their subscription and resource group, so `--per-subscription`
has something to hold. One emulator per member: the estate format lets one emulator serve many
subscriptions, but its fault settings apply to a whole emulator, not to one subscription.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError

BROKEN_KINDS = ("no-image-model", "no-image-route", "throttled")
#: The default: 12 members, three broken (2, 5 and 8 in file order: early enough for --max-errors to bite).
DEFAULT_BROKEN = {2: "no-image-model", 5: "throttled", 8: "no-image-route"}
SAMPLE_ITEMS = ("runbook.yaml", "runbooks", "templates", "notebooks", "mkdocs.yml", "docs", ".gitignore", ".env.example")


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 200
    return yaml


def _dump(data: Any) -> str:
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    return buffer.getvalue()


def sample_tree(source: Path, ref: str, dest: Path) -> Path:
    """The sample workspace files of commit `ref` of the repository at `source`, extracted into `dest`."""
    from git import Repo
    from git.exc import GitCommandError, InvalidGitRepositoryError, NoSuchPathError

    try:
        repo = Repo(source, search_parent_directories=True)
    except (InvalidGitRepositoryError, NoSuchPathError):
        raise InputError(f"{source} is not inside a git repository", hint="generate from a clone of the project") from None
    try:
        tracked = set(repo.git.ls_tree("--name-only", ref).splitlines())
        items = [item for item in SAMPLE_ITEMS if item in tracked]
        buffer = io.BytesIO()
        repo.archive(buffer, ref, format="tar", path=items)
    except GitCommandError as exc:
        raise InputError(f"cannot read {ref} of {source}: {' '.join(str(exc.stderr).split())}") from None
    finally:
        repo.close()
    buffer.seek(0)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=buffer) as archive:
        archive.extractall(dest, filter="data")
    (dest / "reports").mkdir(exist_ok=True)
    return dest


def subscription_id(index: int) -> str:
    return f"5f3c{index:04x}-0000-4000-8000-00000000f1ee"


def member_estate(index: int, kind: str | None, *, subscription: str, resource_group: str) -> dict[str, Any]:
    """The default estate renamed for member `index`, broken as `kind` says."""
    from ..azure.estate import default_estate_path

    data = _yaml().load(default_estate_path().read_text(encoding="utf-8"))
    sub = data["subscriptions"][0]
    sub["id"] = subscription
    sub["name"] = f"fleet-{index:02d}"
    group = sub["resource_groups"][0]
    group["name"] = resource_group
    renames = {}
    for account in group["accounts"]:
        new = account["name"].split("-")[0] + f"-member{index:02d}"
        renames[account["name"]] = new
        account["name"] = new
        if kind == "no-image-model":
            account["deployments"] = [d for d in account["deployments"] if "imageGenerations" not in (d.get("capabilities") or [])]
    for service in group["apim"]:
        service["name"] = f"apim-member{index:02d}"
        service["subscription_keys"] = [f"member{index:02d}-apim-key-not-a-secret"]
        for backend in service.get("backends") or []:
            if backend.get("account"):
                backend["account"] = renames.get(backend["account"], backend["account"])
        for api in service["apis"]:
            if api.get("backends"):
                api["backends"] = [renames.get(b, b) for b in api["backends"]]
            if kind == "no-image-route":
                api["operations"] = [o for o in api["operations"] if "images" not in o["url_template"]]
    return dict(data)


def _member_target(latency: float, kind: str | None) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if latency:
        settings["latency"] = latency
    if kind == "throttled":
        settings.update(fault_rate=1.0, fault_kinds=["429"], fault_servers=["arm"], fault_retry_after=0.05,
                        http_attempts=3, http_max_wait=0.1)
    target: dict[str, Any] = {
        "kind": "emulator",
        "description": "This member's own emulator, serving its estate.yaml",
        "estate": "estate.yaml",
    }
    if settings:
        target["settings"] = settings
    return target


def generate_fleet(
    dest: Path,
    count: int = 12,
    *,
    source: Path,
    ref: str = "HEAD",
    broken: Mapping[int, str] | None = None,
    subscriptions: int = 4,
    latency: float = 0.0,
    git: bool = True,
) -> Path:
    """Write `dest/fleet.yaml` and `dest/members/member-NN/` (1-based); returns the fleet file."""
    broken = DEFAULT_BROKEN if broken is None else broken
    for index, wrong in broken.items():
        if wrong not in BROKEN_KINDS:
            raise InputError(f"unknown broken kind {wrong!r} for member {index}", hint=f"use one of {', '.join(BROKEN_KINDS)}")
    if count < 1 or subscriptions < 1:
        raise InputError("a generated fleet needs at least one member and one subscription")
    if (dest / "fleet.yaml").exists():
        raise InputError(f"{dest / 'fleet.yaml'} exists", hint="generate into an empty folder")
    template = sample_tree(source, ref, dest / ".sample")
    members = []
    for index in range(1, count + 1):
        name = f"member-{index:02d}"
        root = dest / "members" / name
        shutil.copytree(template, root)
        kind = broken.get(index)
        subscription = subscription_id((index - 1) % subscriptions + 1)
        resource_group = f"rg-{name}"
        estate = member_estate(index, kind, subscription=subscription, resource_group=resource_group)
        (root / "estate.yaml").write_text(
            f"# {name}'s Azure estate for the emulator" + (f" (broken by design: {kind})" if kind else "") + "\n" + _dump(estate),
            encoding="utf-8",
        )
        config = _yaml().load((root / "runbook.yaml").read_text(encoding="utf-8"))
        config["targets"]["member"] = _member_target(latency, kind)
        config["default_target"] = "member"
        (root / "runbook.yaml").write_text(_dump(config), encoding="utf-8")
        if git:
            _commit_all(root, f"{name}: the lab before phase 1.5")
        entry: dict[str, Any] = {"name": name, "workspace": f"members/{name}", "subscription": subscription, "resource_group": resource_group}
        if kind:
            entry["broken"] = kind
        members.append(entry)
    shutil.rmtree(template)
    lines = [
        "# yaml-language-server: $schema=fleet.schema.json",
        f"# A generated demo fleet of {count} members (runbook.fleet.generate); broken by design: "
        + (", ".join(f"member-{i:02d} ({k})" for i, k in sorted(broken.items()) if i <= count) or "none"),
        "fleet: demo",
        "defaults:",
        "  target: member",
        "rate:",
        "  max_concurrency: 2",
        "members:",
    ]
    for entry in members:
        comment = f"  # {entry.pop('broken')}" if "broken" in entry else ""
        fields = ", ".join(f"{k}: {v}" for k, v in entry.items())
        lines.append(f"  - {{{fields}}}{comment}")
    fleet_file = dest / "fleet.yaml"
    fleet_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from .model import write_schema

    write_schema(dest / "fleet.schema.json")
    return fleet_file


def _commit_all(root: Path, message: str) -> None:
    from git import Repo

    repo = Repo.init(root, initial_branch="main")
    try:
        with repo.config_writer() as config:
            config.set_value("user", "name", "runbook fleet")
            config.set_value("user", "email", "fleet@example.invalid")
            config.set_value("commit", "gpgsign", "false")
        repo.git.add("-A")
        repo.git.commit("-q", "--no-verify", "-m", message)
    finally:
        repo.close()
