"""Static checks `validate` runs beyond the schema: what would only fail later, found before anything runs.

- template names: every `{{ name }}` in a runbook must be something the run defines (a var, an input,
  a registered output, `steps`, `target`, ...), found with jinja2's `meta.find_undeclared_variables`;
- notebook paths: `path` of notebook steps and the config's `notebooks:` must exist;
- report material: names in `report:` text and claims, and its cell addresses (here, not in
  `reports.authored`, so validating imports none of the report renderers or the run record);
- targets: emulator `settings:` are typed (`page_sise` gets a did-you-mean), `secrets:` name settings,
  `estate:` files exist and load;
- `--var` names: `run` refuses a name the runbook neither declares in `vars:` nor `inputs:`.

Each check returns located `Problem`s; none of them runs a step or opens a target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from .errors import InputError, Location, NotebookError, Problem, TemplateError, ValidationFailed, did_you_mean
from .loader import YamlDocument, strings_in
from .model import Runbook, Strict
from .notebooks.cells import CellAddress, CellRef, to_address
from .schema_errors import schema_problems

#: Names every template can use, whatever the runbook declares (see `Executor.context`).
RUN_NAMES = ("vars", "secrets", "env", "target", "target_name", "phase", "run", "steps")
#: Names only `expect` and `until` can use: the step's own output.
OUTPUT_NAMES = ("output",)
#: Names authored report text may use besides vars, inputs and registered names.
REPORT_NAMES = ("vars", "steps", "phase", "run", "target", "target_name")
#: The parts of `report:` that are rendered (every string inside them, at any depth).
TEMPLATED = (
    "summary",
    "root_causes",
    "lessons",
    "cells",
    "cells_detail",
    "expected_fix",
    "success_criteria",
    "notes",
    "trigger",
    "impact",
    "detection",
    "action_items",
    "changelog",
)
NOT_TEXT = {"expect", "cell", "id", "step", "done", "that"}  # keys whose strings are not prose


class TargetSettings(Strict):
    """The settings the built-in actions read (any target kind); templates see them as `target.NAME`."""

    arm_url: str | None = Field(None, description="the ARM endpoint, e.g. https://management.azure.com")
    gateway_url: str | None = Field(None, description="the API Management gateway URL")
    subscription_id: str | None = Field(None, description="the subscription the azure.* actions list")
    resource_group: str | None = Field(None, description="the resource group the azure.* actions list")
    apim_service: str | None = Field(None, description="the API Management service name")
    inference_api_path: str | None = Field(None, description="the gateway path of the inference API")
    api_key: str | None = Field(None, description="the gateway subscription key (list it under `secrets:`)")
    credential: str | None = Field(None, description='how to get an Entra token; "emulator" on the emulator')
    http_timeout: float | None = Field(None, gt=0, description="seconds per HTTP request of the azure.* actions")
    http_attempts: int | None = Field(None, ge=1, description="attempts per request (retries on 429/5xx/drops)")
    http_backoff: float | None = Field(None, ge=0, description="the first backoff between attempts, in seconds")
    http_max_wait: float | None = Field(None, ge=0, description="the longest single wait between attempts")
    concurrency: int | None = Field(None, ge=1, description="requests the azure.* actions run at once")


class EmulatorSettings(TargetSettings):
    """`settings:` of an `emulator` target: how the embedded emulator behaves (all optional).

    The emulator fills the TargetSettings itself (its URLs, the estate's names and key); a value
    given here overrides it.
    """

    page_size: int | None = Field(None, ge=1, description="items per ARM page (small values force paging)")
    latency: float | None = Field(None, ge=0, description="seconds added to every answer")
    seed: int | None = Field(None, description="seed for generated content and faults (repeatable runs)")
    fault_rate: float | None = Field(None, ge=0, le=1, description="share of requests answered 429/503 or dropped")
    fault_kinds: list[str] | str | None = Field(None, description="which faults to inject (default: all kinds)")
    fault_servers: list[str] | str | None = Field(None, description='which servers misbehave: "arm", "gateway"')
    fault_retry_after: float | None = Field(None, ge=0, description="the Retry-After seconds of injected 429s")
    state_file: str | None = Field(
        None, description="JSON file (in the workspace) that keeps ARM writes between runs: the world runs share"
    )


# ------------------------------------------------------------------------------ template names


def template_names(text: str) -> set[str]:
    """Top-level names a template reads (loop and `set` names excluded); empty on a syntax error."""
    from jinja2 import TemplateSyntaxError, meta

    from .templating import parsed_template

    if "{{" not in text and "{%" not in text:
        return set()
    tree = parsed_template(text)
    if tree is None:
        return set()  # reported by the syntax check
    names = _expression_template_names(tree)
    if names is not None:
        return names
    try:
        return set(meta.find_undeclared_variables(tree))
    except TemplateSyntaxError:  # an unknown filter or test: reported by the syntax check
        return set()


_PLAIN_NODES: tuple[type, ...] = ()
_SCOPED_NAMES = frozenset({"self", "super", "caller", "loop", "varargs", "kwargs"})


def _expression_template_names(tree: Any) -> set[str] | None:
    """What `meta.find_undeclared_variables` gives for a template of text and `{{ expression }}`s
    only, read off the parse tree (the code generator it runs costs ~1 ms a template), or None for
    anything else: a block, a special name, a filter or test the compiler would refuse.

    Without statements nothing is assigned, so every name loaded is looked up from the context;
    the code generator leaves out the environment's globals, as here.
    """
    global _PLAIN_NODES
    from jinja2 import nodes

    if not _PLAIN_NODES:
        _PLAIN_NODES = (
            nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr,
            nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.CondExpr, nodes.BinExpr,
            nodes.UnaryExpr, nodes.Compare, nodes.Operand, nodes.Concat, nodes.Call, nodes.Keyword,
            nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair,
        )  # fmt: skip
    env = tree.environment
    names: set[str] = set()
    for node in tree.find_all(nodes.Node):
        if type(node) not in _PLAIN_NODES and not isinstance(node, nodes.BinExpr | nodes.UnaryExpr):
            return None
        if isinstance(node, nodes.Name):
            if node.ctx != "load" or node.name in _SCOPED_NAMES:
                return None
            if node.name not in env.globals:
                names.add(node.name)
        elif isinstance(node, nodes.Filter | nodes.Test):
            known = env.filters if isinstance(node, nodes.Filter) else env.tests
            if node.name not in known or node.node is None:
                return None  # the code generator refuses an unknown one (or it is a filter block)
    return names


def _expression_names(text: str) -> set[str]:
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        stripped = "{{ " + stripped + " }}"
    return template_names(stripped)


def undefined_names(doc: YamlDocument, runbook: Runbook) -> list[Problem]:
    """Every template in the runbook that reads a name the run will not define, with a did-you-mean."""
    from .templating import environment

    known = set(RUN_NAMES) | set(runbook.vars) | set(runbook.inputs) | set(environment().globals)
    known |= {step.register_ for _stage, step in runbook.all_steps() if step.register_}
    data = doc.data if isinstance(doc.data, dict) else {}
    problems: list[Problem] = []

    def check(loc: list[str | int], names: set[str], extra: Iterable[str] = ()) -> None:
        allowed = known | set(extra)
        for name in sorted(names - allowed):
            hint = did_you_mean(name, sorted(allowed))
            problems.append(
                Problem(
                    doc.location(loc),
                    f"undefined name {name!r} in a template: {hint}declare it under `vars:` or `inputs:`, "
                    "register it from an earlier step, or use steps.<id>.output",
                )
            )

    for stage in ("discovery", "fix", "verify"):
        for index, raw in enumerate(data.get(stage) or []):
            if not isinstance(raw, dict):
                continue
            prefix: list[str | int] = [stage, index]
            for loc, text in strings_in(raw.get("with", {}), [*prefix, "with"]):
                check(loc, template_names(text))
            if isinstance(raw.get("when"), str):
                check([*prefix, "when"], _expression_names(raw["when"]))
            if isinstance(raw.get("until"), str):
                check([*prefix, "until"], _expression_names(raw["until"]), OUTPUT_NAMES)
            expect = raw.get("expect")
            items = [expect] if isinstance(expect, str | dict) else expect if isinstance(expect, list) else []
            for i, item in enumerate(items):
                that: Any = item.get("that") if isinstance(item, dict) else item
                if isinstance(that, str):
                    check([*prefix, "expect", i], _expression_names(that), OUTPUT_NAMES)
    for name, value in runbook.vars.items():
        for loc, text in strings_in(value, ["vars", name]):
            check(loc, template_names(text))
    return problems


def report_names(doc: YamlDocument, runbook: Runbook) -> list[Problem]:
    """Names in `report:` text and claims (`expect:`) the report will not have, with a did-you-mean."""
    from .templating import check_expression, check_syntax, environment

    data = doc.data.get("report") if isinstance(doc.data, dict) else None
    if not isinstance(data, dict):
        return []
    # Secret inputs are not among them: a record never holds their values, and a report never shows one.
    secret = {name for name, spec in runbook.inputs.items() if spec.secret}
    allowed = set(REPORT_NAMES) | set(runbook.vars) | (set(runbook.inputs) - secret) | set(environment().globals)
    allowed |= {step.register_ for _stage, step in runbook.all_steps() if step.register_}
    problems: list[Problem] = []
    for key in TEMPLATED:
        for loc, text in strings_in(data.get(key), ["report", key]):
            claim = "expect" in loc[2:] and loc[-1] != "message"
            if not claim and any(part in NOT_TEXT for part in loc[2:] if isinstance(part, str)):
                continue
            message = check_expression(text) if claim else check_syntax(text)
            if message:
                problems.append(Problem(doc.location(loc), message))
                continue
            for name in sorted((_expression_names(text) if claim else template_names(text)) - allowed):
                if name in secret:
                    problems.append(
                        Problem(
                            doc.location(loc),
                            f"{name!r} is a secret input: report text cannot show it (reports never hold secrets); "
                            "describe it in words instead",
                        )
                    )
                    continue
                hint = did_you_mean(name, sorted(allowed))
                problems.append(
                    Problem(
                        doc.location(loc),
                        f"undefined name {name!r} in report text: {hint}reports see vars, inputs, registered "
                        "names, steps, phase, run, target and target_name",
                    )
                )
    return problems


def runbook_problems(doc: YamlDocument, root: Path) -> list[Problem]:
    """The static checks of one runbook that passed the schema: template names, notebook paths."""
    runbook = Runbook.model_validate(doc.data)
    problems = undefined_names(doc, runbook) + notebook_paths(doc, runbook, root)
    problems += report_problems(doc, runbook, root)
    problems.sort(key=lambda p: (p.location.line or 0, p.location.column or 0))
    return problems


def report_problems(doc: YamlDocument, runbook: Runbook, root: Path) -> list[Problem]:
    """The report material's problems (names, claims, cell addresses): `runbook run` checks these
    before any step, since the report renders only after the fix was applied."""
    problems = report_names(doc, runbook) + cell_problems(doc, runbook, root)
    return sorted(problems, key=lambda p: (p.location.line or 0, p.location.column or 0))


# ------------------------------------------------------------------- report cell addresses


def cell_problems(doc: YamlDocument, runbook: Runbook, root: Path) -> list[Problem]:
    """Addresses in `report.cells`/`cells_detail` that name no cell (or several) of the notebook."""
    addresses: list[tuple[str, int, CellRef]] = [("cells", i, note.cell) for i, note in enumerate(runbook.report.cells)]
    addresses += [("cells_detail", i, detail.cell) for i, detail in enumerate(runbook.report.cells_detail)]
    declared = declared_notebook(runbook) if addresses else None  # no address: the notebook is not read
    notebook = read_notebook(root / declared) if declared else None
    if notebook is None:
        return []
    problems: list[Problem] = []
    for key, index, ref in addresses:
        address = to_address(ref)
        if address.pattern is not None:
            continue  # a pattern may name text the fix writes: checked when the report renders
        message = _address_problem(notebook, address)
        if message:
            problems.append(Problem(doc.location(["report", key, index, "cell"]), message))
    return problems


def _address_problem(notebook: Any, address: CellAddress) -> str | None:
    try:
        notebook.address(address)
    except NotebookError as exc:
        hint = exc.hint
        if address.id is not None:
            tagged = [c for c in notebook.cells if address.id in c.tags]
            if tagged:
                hint = f"did you mean {{tag: {address.id}}}? (a bare name is a cell id, as in steps)"
        return f"{exc.message}" + (f"; {hint}" if hint else "")
    return None


def declared_notebook(runbook: Runbook) -> str | None:
    """The notebook path the runbook's first notebook step names, rendered with its vars (or None)."""
    from .templating import render_string

    for _stage, step in runbook.all_steps():
        path = step.with_.get("path") if step.uses.startswith("notebook.") else None
        if isinstance(path, str):
            try:
                rendered = render_string(path, {**runbook.vars, "vars": runbook.vars})
            except TemplateError:
                continue
            if isinstance(rendered, str) and rendered:
                return rendered
    return None


def read_notebook(path: Path | None) -> Any:
    """The notebook at `path`, parsed, or None when it is missing or unreadable."""
    from .notebooks import Notebook

    if path is None or not path.is_file():
        return None
    try:
        return Notebook.read(path)
    except (NotebookError, OSError):
        return None


# ----------------------------------------------------------------------------- notebook paths


def notebook_paths(doc: YamlDocument, runbook: Runbook, root: Path) -> list[Problem]:
    """`path` of notebook steps that names no file (templated paths are checked when they run)."""
    problems = []
    for stage, steps in runbook.stages():
        for index, step in enumerate(steps):
            if not step.uses.startswith("notebook."):
                continue
            path = step.with_.get("path")
            if not isinstance(path, str) or "{{" in path or "{%" in path:
                continue
            if not (root / path).is_file():
                problems.append(
                    Problem(
                        doc.location([stage, index, "with", "path"]),
                        f"notebook {path!r} does not exist (paths are relative to the workspace {root})",
                    )
                )
    return problems


# ------------------------------------------------------------------------------- workspace config


def workspace_problems(workspace: Any) -> list[Problem]:
    """Problems of the workspace config beyond its schema: notebooks, target settings, estates."""
    from .loader import read_yaml

    doc: YamlDocument = workspace.config_doc or read_yaml(workspace.config_path, root=Path.cwd())
    config = workspace.config
    problems: list[Problem] = []
    for index, notebook in enumerate(config.notebooks):
        if not (workspace.root / notebook).is_file():
            problems.append(Problem(doc.location(["notebooks", index]), f"notebook {notebook!r} does not exist"))
    for name, target in config.targets.items():
        prefix: list[str | int] = ["targets", name]
        known_settings = set(target.settings) | set(target.from_env)
        if target.kind == "emulator":
            problems.extend(emulator_settings_problems(doc, target.settings, [*prefix, "settings"]))
            known_settings |= set(EmulatorSettings.model_fields)
        for i, secret in enumerate(target.secrets):
            if secret not in known_settings:
                hint = did_you_mean(secret, sorted(known_settings))
                problems.append(
                    Problem(
                        doc.location([*prefix, "secrets", i]),
                        f"secret {secret!r} is not a setting of target {name!r}: {hint}"
                        f"settings: {', '.join(sorted(known_settings)) or 'none'}",
                    )
                )
        if target.estate is not None:
            problems.extend(_estate_problems(doc, workspace.root, target.estate, [*prefix, "estate"]))
    return problems


def emulator_settings_problems(doc: YamlDocument, settings: Mapping[str, Any], prefix: list[str | int]) -> list[Problem]:
    try:
        EmulatorSettings.model_validate(dict(settings))
    except ValidationError as exc:
        return schema_problems(exc, doc, prefix, model=EmulatorSettings)
    return []


def _estate_problems(doc: YamlDocument, root: Path, estate: str, loc: list[str | int]) -> list[Problem]:
    from .azure.estate import load_estate

    path = root / estate
    if not path.is_file():
        return [Problem(doc.location(loc), f"estate file {estate!r} does not exist")]
    try:
        load_estate(path)
    except ValidationFailed as exc:
        return list(exc.problems)
    except InputError as exc:
        return [Problem(exc.location or Location(estate), exc.message)]
    return []


# -------------------------------------------------------------------------------------- --var


def check_vars(runbook: Runbook, given: Mapping[str, Any], display: str) -> None:
    """Refuse `--var` names the runbook does not declare (a typo would otherwise be ignored)."""
    declared = sorted(set(runbook.vars) | set(runbook.inputs))
    unknown = [name for name in given if name not in declared]
    if not unknown:
        return
    name = unknown[0]
    hint = did_you_mean(name, declared)
    raise InputError(
        f"--var {name}: {display} declares no variable or input {name!r}"
        + (f" (nor {', '.join(repr(n) for n in unknown[1:])})" if len(unknown) > 1 else ""),
        hint=f"{hint}declared: {', '.join(declared) or 'none'}; add it under `vars:` or `inputs:` to set it",
    )
