"""Editor schemas: the JSON Schemas of every file a workspace holds, as editors want them.

`runbook schema --kind runbook|config|estate` (and `fleet` when `runbook.fleet` provides one) prints
them; `runbook init` / `runbook new` write the ones their files' modelines
(`# yaml-language-server: $schema=...`) point at; `runbook validate` warns when a committed schema file
is older than the models. On top of the pydantic export this module adds what editors use: a
description on every property (`missing_descriptions` finds the gaps; a test keeps it empty), a
templated-string alternative wherever an action parameter may be a Jinja template, per-action
descriptions on `uses`, and a snippet for a new step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MODELINE = "# yaml-language-server: $schema="

#: The committed file of each kind, at the workspace root (runbooks point at `../runbook.schema.json`).
FILE_NAMES = {
    "runbook": "runbook.schema.json",
    "config": "config.schema.json",
    "estate": "estate.schema.json",
    "fleet": "fleet.schema.json",
}

TEMPLATE_DEF = "Template"
TEMPLATE = {
    "type": "string",
    "pattern": r"\{\{[\s\S]*\}\}|\{%[\s\S]*%\}",
    "description": "A Jinja template (`{{ ... }}`), rendered when the step runs; its value is checked then.",
}


def kinds() -> list[str]:
    """The schema kinds this installation can produce (`fleet` only when `runbook.fleet` has one)."""
    found = ["runbook", "config", "estate"]
    if _fleet_schema() is not None:
        found.append("fleet")
    return found


def schema(kind: str = "runbook") -> dict[str, Any]:
    """The JSON Schema of one kind of file."""
    from .errors import InputError, did_you_mean

    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "runbook": runbook_schema,
        "config": config_schema,
        "estate": estate_schema,
    }
    fleet = _fleet_schema()
    if fleet is not None:
        builders["fleet"] = fleet
    if kind not in builders:
        raise InputError(f"unknown schema kind {kind!r}: {did_you_mean(kind, builders)}kinds: {', '.join(builders)}")
    return builders[kind]()


def schema_text(kind: str = "runbook") -> str:
    """The schema as its committed file holds it (2-space JSON, one trailing newline)."""
    return json.dumps(schema(kind), indent=2, ensure_ascii=False) + "\n"


def _fleet_schema() -> Callable[[], dict[str, Any]] | None:
    try:
        from . import fleet  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    builder = getattr(fleet, "fleet_schema", None)
    return builder if callable(builder) else None


# ------------------------------------------------------------------------------------- the kinds


def runbook_schema() -> dict[str, Any]:
    """The runbook format, with action parameters bound to `uses`, templates allowed and snippets."""
    from . import actions
    from .model import json_schema

    result = json_schema()
    defs = result["$defs"]
    defs[TEMPLATE_DEF] = dict(TEMPLATE)
    # Parameters are rendered before they are checked: any of them may be a template.
    params = [name for name in defs if name.startswith("Params_")]
    for name in _reachable(defs, params):
        _allow_templates(defs[name])
    step = defs["Step"]
    uses = step["properties"]["uses"]
    uses.pop("enum", None)
    uses.pop("type", None)
    # One `const` per action, each with its summary: editors show it in completion and on hover.
    uses["anyOf"] = [
        {"const": spec.name, "description": spec.summary + ("" if spec.changes else " (read-only)")}
        for spec in actions.all_specs()
    ]
    step["defaultSnippets"] = [
        {
            "label": "new step",
            "description": "A step: an id, a title, the action it uses and its parameters.",
            "body": {"id": "${1:step-id}", "title": "${2:What this step does}", "uses": "${3:shell}", "with": {}},
        },
    ]
    _discriminate_unions(result, defs)
    for stage in ("discovery", "fix", "verify"):
        items = result["properties"][stage]
        items["defaultSnippets"] = [
            {
                "label": f"new {stage} step",
                "body": [{"id": "${1:step-id}", "title": "${2:What this step does}", "uses": "${3:shell}", "with": {}}],
            }
        ]
    return result


def config_schema() -> dict[str, Any]:
    """The workspace config (`runbook.yaml`)."""
    from .checks import EmulatorSettings
    from .workspace import WorkspaceConfig

    result = WorkspaceConfig.model_json_schema(by_alias=True)
    result["$schema"] = DRAFT
    result["title"] = "runbook workspace config (runbook.yaml)"
    defs = result["$defs"]
    defs["EmulatorSettings"] = EmulatorSettings.model_json_schema(by_alias=True)
    # An emulator target's settings are typed; azure and local settings are free names templates read.
    defs["TargetConfig"]["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": "emulator"}}, "required": ["kind"]},
            "then": {"properties": {"settings": {"$ref": "#/$defs/EmulatorSettings"}}},
        }
    ]
    defs["TargetConfig"]["defaultSnippets"] = [
        {"label": "emulator target", "body": {"kind": "emulator", "description": "${1:the embedded emulator}"}},
        {
            "label": "azure target",
            "body": {
                "kind": "azure",
                "from_env": {"subscription_id": "AZURE_SUBSCRIPTION_ID", "api_key": "APIM_API_KEY"},
                "secrets": ["api_key"],
            },
        },
    ]
    return result


def estate_schema() -> dict[str, Any]:
    """An estate file: the Azure world the emulator serves."""
    from .azure.estate import Estate

    result = Estate.model_json_schema(by_alias=True)
    result["$schema"] = DRAFT
    result["title"] = "runbook emulator estate"
    result["description"] = (
        "The Azure world the emulator serves: subscriptions, resource groups, AI Foundry accounts with "
        "their model deployments, and API Management services with their APIs and operations."
    )
    return result


# ---------------------------------------------------------------------------------- the helpers


def _reachable(defs: dict[str, Any], roots: list[str]) -> list[str]:
    """Names of `roots` and every definition they reference, transitively."""
    seen: list[str] = []
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.append(name)
        for ref in _refs(defs[name]):
            todo.append(ref.removeprefix("#/$defs/"))
    return seen


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key != "x-runbook-output":  # an annotation: outputs are not parameters
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _accepts_string(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return "enum" not in node and "const" not in node and "pattern" not in node
    if not kind and not any(k in node for k in ("anyOf", "oneOf", "allOf", "$ref", "enum", "const")):
        return True  # any value at all
    return any(_accepts_string(branch) for branch in node.get("anyOf", []) if isinstance(branch, dict))


def _allow_templates(model: dict[str, Any]) -> None:
    """Let every property (and list item) of an object schema be a template instead."""
    for name, prop in list(model.get("properties", {}).items()):
        model["properties"][name] = _templated(prop)
    extra = model.get("additionalProperties")
    if isinstance(extra, dict):
        model["additionalProperties"] = _templated(extra)


def _templated(prop: dict[str, Any]) -> dict[str, Any]:
    if _accepts_string(prop):
        return prop
    annotations: dict[str, Any] = {k: prop[k] for k in ("title", "description", "default") if k in prop}
    body = {k: v for k, v in prop.items() if k not in annotations}
    if body.get("type") == "array" and isinstance(body.get("items"), dict):
        body["items"] = _templated(body["items"])
    if "anyOf" in body and len(body) == 1:
        branches = [b if not (isinstance(b, dict) and b.get("type") == "array") else _templated(b) for b in body["anyOf"]]
        return {**annotations, "anyOf": [*branches, {"$ref": f"#/$defs/{TEMPLATE_DEF}"}]}
    return {**annotations, "anyOf": [body, {"$ref": f"#/$defs/{TEMPLATE_DEF}"}]}


def _discriminate_unions(node: Any, defs: dict[str, Any]) -> None:
    """`anyOf: [string, Model]` -> `if: object then: Model else: string`, everywhere in `node`.

    Same meaning; but editors then judge a mapping by the model alone ("Property tht is not allowed")
    instead of reporting the closest scalar member ("Incorrect type. Expected string").
    """
    if isinstance(node, list):
        for item in node:
            _discriminate_unions(item, defs)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _discriminate_unions(value, defs)
    branches = node.get("anyOf")
    if not isinstance(branches, list):
        return
    models = [
        b
        for b in branches
        if isinstance(b, dict) and isinstance(b.get("$ref"), str)
        and defs.get(b["$ref"].removeprefix("#/$defs/"), {}).get("type") == "object"
    ]
    others = [b for b in branches if b not in models]
    if len(models) != 1 or not others or any(isinstance(b, dict) and b.get("type") == "object" for b in others):
        return
    del node["anyOf"]
    node["if"] = {"type": "object"}
    node["then"] = models[0]
    node["else"] = others[0] if len(others) == 1 else {"anyOf": others}


def missing_descriptions(document: dict[str, Any]) -> list[str]:
    """JSON pointers of properties without a description (directly or on what they reference)."""
    defs = document.get("$defs", {})
    missing: list[str] = []

    def described(prop: Any) -> bool:
        if not isinstance(prop, dict):
            return True
        if prop.get("description"):
            return True
        ref = prop.get("$ref")
        if isinstance(ref, str):
            return bool(defs.get(ref.removeprefix("#/$defs/"), {}).get("description"))
        return False

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if not described(prop):
                    missing.append(f"{pointer}/properties/{name}")
            for key, value in node.items():
                if key not in ("if", "x-runbook-output"):  # conditions and annotations hold no fields
                    walk(value, f"{pointer}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    walk(document, "#")
    return missing


# ------------------------------------------------------------------------------- files on disk


def modeline(kind: str, file: Path, root: Path) -> str:
    """The first line of a YAML file at `file` pointing at the workspace's schema of `kind`."""
    target = Path(os.path.relpath(root / FILE_NAMES[kind], file.parent)).as_posix()
    return f"{MODELINE}{target}"


def scaffold_schemas() -> dict[str, str]:
    """The schema files `runbook init` writes at the workspace root: file name -> text."""
    return {FILE_NAMES[kind]: schema_text(kind) for kind in ("runbook", "config", "estate")}


def write_schemas(root: Path, kinds_wanted: list[str] | None = None, *, overwrite: bool = True) -> list[Path]:
    """Write the schema files into the workspace `root`; returns the files written (changed or new)."""
    from .atomic import atomic_write_text

    written = []
    for kind in kinds_wanted or ["runbook", "config", "estate"]:
        path = root / FILE_NAMES[kind]
        text = schema_text(kind)
        if path.exists() and (not overwrite or path.read_text(encoding="utf-8") == text):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        written.append(path)
    return written


def stale_schemas(root: Path) -> list[str]:
    """Warnings for committed schema files at `root` that no longer match the models."""
    warnings = []
    for kind in kinds():
        path = root / FILE_NAMES[kind]
        if not path.is_file():
            continue
        try:
            committed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            committed = None
        if committed != json.loads(schema_text(kind)):
            warnings.append(
                f"{FILE_NAMES[kind]} is out of date (editors check against an older format): "
                f"run `runbook schema --kind {kind} -o {FILE_NAMES[kind]}`"
            )
    return warnings
