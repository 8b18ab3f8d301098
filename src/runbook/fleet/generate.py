"""A demo fleet for tests, benchmarks and the guide: N member workspaces served by ONE emulator.

Every member is the sample workspace taken from a **commit** of the project (`git archive REF`, so a
dirty working tree never leaks in), its own git repository, with a `member` target that points at
the fleet's shared emulator (`kind: azure`, `credential: emulator`; `runbook fleet run` starts the
emulator and gives each member its URLs and key). The fleet's `estate.yaml` holds every member's
deployment: a subscription (one per member unless `subscriptions` is given), a resource group
`rg-member-NN` with its own AI Foundry accounts and its own API Management service
`apim-member-NN`, reached at `{gateway}/apim-member-NN.azure-api.net`. Some members are broken by
design:

- `no-image-model`: its accounts have no image-generation deployment (discovery's `image-models` fails);
- `no-image-route`: its gateway has no image-generation operation (`apim-route` fails);
- `throttled`: its subscription (always its own) has a tiny ARM token bucket (3 reads, refilled one
  every 20 s), so discovery is answered 429 + Retry-After and gives up after its retries with
  "throttled by ARM (429) after N retries" (its fleet entry keeps the retry budget small).

Phase 1.6's backend services (Cosmos DB, Search, Log Analytics) stay in the single-lab estate: a
fleet estate carries what phase 1.5 needs.
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


#: The throttling subscription's ARM budget: 3 reads, then one every 20 s (Azure's is 250 / 25 per s).
THROTTLED_LIMITS = {"reads": {"burst": 3, "per_second": 0.05}}
#: The throttled member's client budget: 3 attempts, at most 0.5 s between them (Retry-After says 20 s).
THROTTLED_CLIENT = {"http_attempts": 3, "http_max_wait": 0.5}


def member_group(index: int, kind: str | None, template: Any) -> dict[str, Any]:
    """The lab's resource group renamed for member `index` (its accounts, its gateway), broken as `kind` says."""
    import copy

    group = copy.deepcopy(template)
    for backend_service in ("cosmos", "search", "workspaces"):
        group.pop(backend_service, None)
    group["name"] = f"rg-member-{index:02d}"
    renames = {}
    for account in group["accounts"]:
        new = account["name"].split("-")[0] + f"-member{index:02d}"
        renames[account["name"]] = new
        account["name"] = new
        if kind == "no-image-model":
            account["deployments"] = [d for d in account["deployments"] if "imageGenerations" not in (d.get("capabilities") or [])]
    for service in group["apim"]:
        service["name"] = f"apim-member-{index:02d}"
        service["subscription_keys"] = [f"member{index:02d}-apim-key-not-a-secret"]
        service["diagnostics"] = []
        for backend in service.get("backends") or []:
            if backend.get("account"):
                backend["account"] = renames.get(backend["account"], backend["account"])
        for api in service["apis"]:
            if api.get("backends"):
                api["backends"] = [renames.get(b, b) for b in api["backends"]]
            if kind == "no-image-route":
                api["operations"] = [o for o in api["operations"] if "images" not in o["url_template"]]
    return dict(group)


def fleet_estate(members: list[tuple[int, str | None, str]]) -> dict[str, Any]:
    """One estate for the whole fleet: for each (index, broken kind, subscription id), its resource group."""
    from ..azure.estate import default_estate_path

    data = _yaml().load(default_estate_path().read_text(encoding="utf-8"))
    template = data["subscriptions"][0]["resource_groups"][0]
    subscriptions: dict[str, dict[str, Any]] = {}
    for index, kind, sub_id in members:
        sub = subscriptions.setdefault(sub_id, {"id": sub_id, "name": f"fleet-{len(subscriptions) + 1:02d}", "resource_groups": []})
        if kind == "throttled":
            sub["name"] = f"fleet-throttled-{index:02d}"
            sub["rate_limits"] = THROTTLED_LIMITS
        sub["resource_groups"].append(member_group(index, kind, template))
    return {"tenant": data["tenant"], "client_ip": data["client_ip"], "subscriptions": list(subscriptions.values())}


def member_target() -> dict[str, Any]:
    """The `member` target every generated member gets: its deployment on the fleet's shared emulator."""
    return {
        "kind": "azure",
        "description": (
            "This member's deployment on the fleet's shared emulator. `runbook fleet run` starts the emulator "
            "and sets arm_url, gateway_url and api_key; alone, export FLEET_ARM_URL, FLEET_GATEWAY_URL and APIM_API_KEY."
        ),
        "settings": {"credential": "emulator", "inference_api_path": "inference"},
        "from_env": {"arm_url": "FLEET_ARM_URL", "gateway_url": "FLEET_GATEWAY_URL", "api_key": "APIM_API_KEY"},
        "secrets": ["api_key"],
        "env": {
            "APIM_GATEWAY_URL": "{{ gateway_url }}",
            "APIM_API_KEY": "{{ api_key }}",
            "INFERENCE_API_PATH": "{{ inference_api_path }}",
            "AZURE_SUBSCRIPTION_ID": "{{ subscription_id }}",
            "RESOURCE_GROUP": "{{ resource_group }}",
        },
    }


def generate_fleet(
    dest: Path,
    count: int = 12,
    *,
    source: Path,
    ref: str = "HEAD",
    broken: Mapping[int, str] | None = None,
    subscriptions: int | None = None,
    latency: float = 0.0,
    git: bool = True,
) -> Path:
    """Write `dest/fleet.yaml`, `dest/estate.yaml` and `dest/members/member-NN/` (1-based); returns the fleet file.

    `subscriptions`: how many subscriptions the members share, round-robin (default: one each); a
    throttled member always has its own. `latency`: seconds the shared emulator adds to each answer.
    """
    broken = DEFAULT_BROKEN if broken is None else broken
    for index, wrong in broken.items():
        if wrong not in BROKEN_KINDS:
            raise InputError(f"unknown broken kind {wrong!r} for member {index}", hint=f"use one of {', '.join(BROKEN_KINDS)}")
    if count < 1 or (subscriptions is not None and subscriptions < 1):
        raise InputError("a generated fleet needs at least one member and one subscription")
    if latency < 0:
        raise InputError(f"latency {latency} must not be negative")
    if (dest / "fleet.yaml").exists():
        raise InputError(f"{dest / 'fleet.yaml'} exists", hint="generate into an empty folder")
    template = sample_tree(source, ref, dest / ".sample")
    members = []
    placed: list[tuple[int, str | None, str]] = []
    for index in range(1, count + 1):
        name = f"member-{index:02d}"
        root = dest / "members" / name
        shutil.copytree(template, root)
        kind = broken.get(index)
        shared = subscriptions is not None and kind != "throttled"
        subscription = subscription_id((index - 1) % subscriptions + 1 if shared and subscriptions else 0x100 + index)
        placed.append((index, kind, subscription))
        config = _yaml().load((root / "runbook.yaml").read_text(encoding="utf-8"))
        target = member_target()
        target["settings"].update(subscription_id=subscription, resource_group=f"rg-{name}", apim_service=f"apim-{name}")
        config["targets"]["member"] = target
        config["default_target"] = "member"
        (root / "runbook.yaml").write_text(_dump(config), encoding="utf-8")
        if git:
            _commit_all(root, f"{name}: the lab before phase 1.5")
        entry: dict[str, Any] = {"name": name, "workspace": f"members/{name}", "subscription": subscription,
                                 "resource_group": f"rg-{name}", "apim_service": f"apim-{name}"}
        if kind == "throttled":
            entry["settings"] = "{" + ", ".join(f"{k}: {v}" for k, v in THROTTLED_CLIENT.items()) + "}"
        if kind:
            entry["broken"] = kind
        members.append(entry)
    shutil.rmtree(template)
    described = ", ".join(f"member-{i:02d} ({k})" for i, k in sorted(broken.items()) if i <= count) or "none"
    (dest / "estate.yaml").write_text(
        "# yaml-language-server: $schema=estate.schema.json\n"
        f"# The fleet's Azure estate, served by one emulator for every member (broken by design: {described})\n"
        + _dump(fleet_estate(placed)),
        encoding="utf-8",
    )
    lines = [
        "# yaml-language-server: $schema=fleet.schema.json",
        f"# A generated demo fleet of {count} members (runbook.fleet.generate); broken by design: {described}",
        "fleet: demo",
        "# `runbook fleet run` serves estate.yaml with one emulator on loopback while the fleet runs",
        "emulator:",
        "  estate: estate.yaml",
        *([f"  latency: {latency}"] if latency else []),
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
    from ..azure.estate import load_estate
    from .model import write_schema

    load_estate(dest / "estate.yaml")  # what was written is a valid estate (or this is a bug)
    write_schema(dest / "fleet.schema.json")
    shutil.copyfile(Path(__file__).parent.parent / "azure" / "estate.schema.json", dest / "estate.schema.json")
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
