"""The workspace config reference page (`reference/config.md`), generated from the config models.

Every key of `runbook.yaml` comes from `WorkspaceConfig` and the models it nests; the target kinds
section from `TargetConfig` and the settings models of `runbook.checks`, so the page cannot drift from
what `runbook validate` accepts.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from ..checks import EmulatorSettings, TargetSettings
from ..text import code
from ..workspace import Paths, PlanGroup, PlanPhase, TargetConfig, WorkspaceConfig
from .layout import GENERATED_NOTE
from .markdown import md_text, table
from .reference import type_text


def _model_table(model: type[BaseModel]) -> str:
    """One row per key: name, type, default (a nested mapping: "see below"), description."""
    rows = []
    for name, info in model.model_fields.items():
        if info.is_required():
            default = "required"
        elif info.default_factory is not None:
            value = info.default_factory()  # type: ignore[call-arg]
            default = "see below" if isinstance(value, BaseModel) else code(json.dumps(value))
        else:
            default = code(json.dumps(info.default))
        rows.append([code(info.alias or name), code(type_text(info.annotation)), default, md_text(info.description or "", table=True)])
    return table(["Key", "Type", "Default", "Description"], rows)

#: What the emulator target puts in the environment of shell steps and kernels (lifecycle.Emulator.env).
EMULATOR_ENV = (
    ("ARM_BASE_URL", "the emulator's ARM URL"),
    ("AZURE_SUBSCRIPTION_ID", "the estate's subscription"),
    ("RESOURCE_GROUP", "the resource group of its API Management service"),
    ("APIM_SERVICE_NAME", "the API Management service"),
    ("APIM_GATEWAY_URL", "the gateway URL"),
    ("APIM_API_KEY", "the gateway key (masked in records and reports)"),
    ("INFERENCE_API_PATH", "the path of the inference API"),
)


def config_reference() -> str:
    """The page: top-level keys, the nested mappings, then each target kind with its settings and env."""
    out = [GENERATED_NOTE, "# Workspace config (`runbook.yaml`)\n"]
    out.append(
        "`runbook.yaml` sits at the workspace root. It names the project, the notebooks being repaired, "
        "where things live, the phase plan and the targets runs talk to. Unknown keys are errors with a "
        "\"did you mean\" (`runbook validate` shows them as file:line:col). Editors get completion and "
        "hover text from `config.schema.json` (`runbook schema --kind config`). The file's first line "
        "points at it: `# yaml-language-server: $schema=config.schema.json`. This page is generated "
        "from the same models.\n"
    )
    out.append(_model_table(WorkspaceConfig))
    for title, model in (
        ("`paths:`", Paths),
        ("`plan:` groups", PlanGroup),
        ("`phases:` of a group", PlanPhase),
        ("`targets:` (each target)", TargetConfig),
    ):
        out.append(f"## {title}\n")
        out.append(f"{model.__doc__ or ''}\n".lstrip())
        out.append(_model_table(model))
    out.append("## Target kinds\n")
    out.append(
        "`kind:` chooses how a run reaches Azure. `settings:` hold literal values, `from_env:` fills "
        "settings from environment variables (or the workspace `.env`), and `secrets:` names the settings "
        "that are masked everywhere output leaves the process. `env:` sets environment variables for shell "
        "steps and kernels: NAME -> a template over the settings (`\"{{ gateway_url }}\"`).\n"
    )
    out.append("### `emulator`\n")
    out.append(
        "The embedded Azure emulator on 127.0.0.1, serving the estate file named by `estate:` (default: "
        "the packaged lab). No account is needed. Its `settings:` are typed: a misspelt name is an error.\n"
    )
    out.append(_model_table(EmulatorSettings))
    out.append("Environment variables the emulator gives to shell steps and kernels (before `env:`):\n")
    out.append("| Variable | Value |\n| --- | --- |\n" + "".join(f"| {code(n)} | {d} |\n" for n, d in EMULATOR_ENV))
    out.append("### `azure`\n")
    out.append(
        "Real Azure. A run fails before any step and lists what is missing when a `from_env:` variable "
        "is unset. Plain `http://` is refused for hosts that are not loopback. The built-in actions read these "
        "settings. Other names are allowed, and templates read them as `target.NAME`:\n"
    )
    out.append(_model_table(TargetSettings))
    out.append("### `local`\n")
    out.append(
        "No cloud at all: notebook, file and shell steps only. `settings:` and `env:` work as for "
        "`azure`.\n"
    )
    return "\n".join(out)
