"""Declared action outputs: the models, the strict contract check, `runbook actions`, the schema, and
the walk of the sample runbook's templates against the declared fields.

Every action family is run for real (processes, files, a real kernel, loopback HTTP to the emulator)
and its output checked against its declared model; a plug-in that returns an undeclared field fails
under RUNBOOK_CHECK_OUTPUTS and works without it; a plug-in without a declared output still works.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import Field

from conftest import REPO, invoke
from runbook import actions
from runbook.actions import ActionContext, ActionSpec, Params, Result, outputs
from runbook.actions.output_paths import PathProblem, undeclared_paths
from runbook.actions.outputs import CHECK_VARIABLE, Output, OutputContractError
from runbook.azure.emulator import Emulator
from runbook.azure.estate import load_estate
from runbook.errors import ActionError
from runbook.loader import load_runbook
from runbook.model import Step
from runbook.secrets import Redactor
from runbook.targets import TargetSession

SAMPLE_RUNBOOK = REPO / "runbooks" / "phase-1.5.yaml"


# ------------------------------------------------------------------------------------- helpers


def context(root: Path, settings: dict[str, Any] | None = None, **extra: Any) -> ActionContext:
    return ActionContext(
        workspace_root=root,
        step_id="step",
        stage="discovery",
        dry_run=False,
        redactor=Redactor(),
        target=TargetSession(name="t", kind="emulator", settings=settings or {}, env={}),
        timeout=None,
        stop=threading.Event(),
        **extra,
    )


def run(name: str, ctx: ActionContext, **params: Any) -> Any:
    """Run action `name` through the registry and check its output against the declaration."""
    spec = actions.get(name)
    assert spec.output is not None
    try:
        result = spec.func(spec.params.model_validate(params), ctx)
    finally:
        for value in ctx.run_state.values():
            value.close()
    outputs.check(name, spec.output, result.output)
    return result.output


def failure_output(name: str, ctx: ActionContext, **params: Any) -> Any:
    spec = actions.get(name)
    assert spec.output is not None
    with pytest.raises(ActionError) as caught:
        spec.func(spec.params.model_validate(params), ctx)
    outputs.check(name, spec.output, caught.value.output, failed=True)
    return caught.value.output


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(load_estate(None)) as running:
        yield running


def emulator_settings(emulator: Emulator) -> dict[str, Any]:
    env = emulator.env()
    return {
        "arm_url": emulator.arm_url,
        "gateway_url": emulator.gateway_url,
        "subscription_id": env["AZURE_SUBSCRIPTION_ID"],
        "resource_group": env["RESOURCE_GROUP"],
        "apim_service": env["APIM_SERVICE_NAME"],
        "api_key": emulator.subscription_key,
        "credential": "emulator",
        "http_backoff": 0.01,
    }


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plug-ins registered by a test disappear after it; deliberate violations are not kept."""
    actions.names()
    monkeypatch.setattr(actions, "_registry", dict(actions._registry))
    monkeypatch.setattr(outputs, "_violations", [])


class PluginParams(Params):
    extra: bool = Field(False, description="also return an undeclared field")
    fail: bool = Field(False, description="fail, with the output as the failure's output")


class PluginOutput(Output):
    answer: int = Field(description="the answer")


def plugin(params: PluginParams, _ctx: ActionContext) -> Result:
    output: dict[str, Any] = {"answer": 42}
    if params.extra:
        output["surprise"] = "undeclared"
    if params.fail:
        raise ActionError("failed on purpose", output=output)
    return Result(output=output)


# ------------------------------------------------------------------------------ the declarations


def test_every_builtin_action_declares_a_described_output() -> None:
    for spec in actions.all_specs():
        assert spec.output is not None, f"{spec.name} declares no output"
        assert issubclass(spec.output, Output)
        if spec.output.echoes_with:
            continue
        fields = actions.describe_outputs(spec.name)
        assert fields, spec.name
        for item in fields:
            assert item.description.strip(), f"{spec.name}: output field {item.path} has no description"
            assert item.type, f"{spec.name}: output field {item.path} has no type"


def test_nested_output_fields_are_described_with_paths() -> None:
    deployments = {f.path: f for f in actions.describe_outputs("azure.deployments")}
    for path in ("deployments[].name", "deployments[].model", "deployments[].account", "by_account.*[].name"):
        assert path in deployments, path
    assert deployments["deployments"].type == "list[object]"
    assert deployments["deployments[].image"].type == "bool"
    assert deployments["deployments[].model"].type == "str | None"
    cells = {f.path: f for f in actions.describe_outputs("notebook.cells")}
    assert cells["cells[].matches[].groups"].type == "list[str | None]"
    http = {f.path: f for f in actions.describe_outputs("http.request")}
    assert "json" in http and "json_" not in http  # the name a template uses, not the Python one
    assert http["json"].required is False and http["status"].required is True
    assert actions.describe_outputs("set") == []
    assert actions.output_note("set") == "Each key of `with` becomes a field of the output."
    assert actions.output_note("azure.deployments") is None


# ------------------------------------------------------------------------------ the contract


@pytest.mark.usefixtures("scratch_registry")
def test_undeclared_field_fails_only_when_checking(local_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actions.register(
        ActionSpec(name="plugin.answer", params=PluginParams, func=plugin, changes=False, summary="x", output=PluginOutput)
    )
    spec = actions.get("plugin.answer")
    ctx = context(local_workspace)
    monkeypatch.setenv(CHECK_VARIABLE, "1")
    assert spec.func(PluginParams(), ctx).output == {"answer": 42}
    with pytest.raises(OutputContractError, match=r"plugin.answer returned an output .*surprise: Extra inputs"):
        spec.func(PluginParams(extra=True), ctx)
    with pytest.raises(OutputContractError, match=r"failure output .*surprise"):
        spec.func(PluginParams(extra=True, fail=True), ctx)
    with pytest.raises(ActionError, match="failed on purpose"):  # a failure that keeps the contract
        spec.func(PluginParams(fail=True), ctx)
    assert len(outputs.contract_violations()) == 2
    monkeypatch.setenv(CHECK_VARIABLE, "0")
    assert spec.func(PluginParams(extra=True), ctx).output["surprise"] == "undeclared"


@pytest.mark.usefixtures("scratch_registry")
def test_undeclared_field_fails_the_run_of_a_real_runbook(local_workspace: Path) -> None:
    actions.register(
        ActionSpec(name="plugin.answer", params=PluginParams, func=plugin, changes=False, summary="x", output=PluginOutput)
    )
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: T\nverify:\n  - {id: ask, uses: plugin.answer, with: {extra: true}}\n', encoding="utf-8"
    )
    result = invoke(["run", "1.1", "--no-report"], cwd=local_workspace)
    assert result.exit_code != 0
    assert "surprise" in result.output


@pytest.mark.usefixtures("scratch_registry")
def test_plugin_without_declared_output_still_works(local_workspace: Path) -> None:
    actions.register(ActionSpec(name="plugin.free", params=PluginParams, func=plugin, changes=False, summary="Free form."))
    spec = actions.get("plugin.free")
    assert spec.func is plugin  # not wrapped: nothing to check against
    assert spec.func(PluginParams(extra=True), context(local_workspace)).output["surprise"] == "undeclared"
    assert actions.describe_outputs("plugin.free") == []
    assert actions.output_note("plugin.free") == "Output not declared."
    shown = invoke(["actions", "plugin.free"])
    assert shown.exit_code == 0 and "output: Output not declared." in shown.stdout
    listed = json.loads(invoke(["actions", "--json"]).stdout)
    free = next(item for item in listed if item["name"] == "plugin.free")
    assert free["output"] == [] and free["output_note"] == "Output not declared." and free["output_schema"] is None


# ------------------------------------------------------------------------- every family, for real


def test_core_actions_keep_their_contract(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    shell = run("shell", ctx, cmd=["python3", "-c", "print('{\"a\": 1}')"], parse="json")
    assert shell["json"] == {"a": 1} and shell["rc"] == 0
    failed = failure_output("shell", ctx, cmd=["python3", "-c", "import sys; sys.exit(3)"])
    assert failed["rc"] == 3
    dry = run("shell", _dry(tmp_path), cmd=["rm", "-rf", "x"])
    assert dry == {"argv": ["rm", "-rf", "x"], "dry_run": True}
    assert run("set", ctx, model="FLUX-1.1-pro", n=3) == {"model": "FLUX-1.1-pro", "n": 3}
    assert run("assert", ctx, that=[True, {"that": True, "message": "fine"}])["checked"][1]["message"] == "fine"
    assert failure_output("assert", ctx, that=[False])["checked"] == [{"passed": False, "message": None}]
    yes = context(tmp_path, assume_yes=True)
    assert run("manual", yes, instruction="restart the gateway")["confirmed"] == "--yes"
    assert run("manual", _dry(tmp_path), instruction="restart the gateway")["dry_run"] is True


def _dry(root: Path) -> ActionContext:
    ctx = context(root)
    ctx.dry_run = True
    return ctx


def test_file_actions_keep_their_contract(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    (tmp_path / "config.txt").write_text("model = dall-e-3\n", encoding="utf-8")
    edit = {"path": "config.txt", "replacements": [{"find": "dall-e-3", "replace": "FLUX-1.1-pro"}]}
    assert run("file.replace", ctx, **edit)["replacements"] == ["changed"]
    assert run("file.replace", ctx, **edit)["replacements"] == ["already"]
    env = run("env.set", ctx, values={"IMAGE_MODEL": "FLUX-1.1-pro", "APIM_API_KEY": "s3cret-value"})
    assert env["changed"] == ["IMAGE_MODEL", "APIM_API_KEY"]
    assert env["values"]["APIM_API_KEY"] != "s3cret-value"


def test_http_request_keeps_its_contract(emulator: Emulator, tmp_path: Path) -> None:
    ctx = context(tmp_path, emulator_settings(emulator))
    images = "/inference/openai/deployments/{}/images/generations"
    body = {"prompt": "a lighthouse", "response_format": "b64_json"}
    ok = run("http.request", ctx, method="POST", url=images.format("FLUX-1.1-pro"),
             params={"api-version": "2024-10-21"}, json=body)
    assert ok["status"] == 200 and "data[0].b64_json" in ok["json_paths"]
    missing = run("http.request", ctx, method="POST", url=images.format("dall-e-3"),
                  params={"api-version": "2024-10-21"}, json=body, check=False)
    assert missing["status"] == 404 and missing["ok"] is False
    failed = failure_output("http.request", ctx, method="POST", url=images.format("dall-e-3"),
                            params={"api-version": "2024-10-21"}, json=body)
    assert failed["status"] == 404


def test_azure_actions_keep_their_contract(emulator: Emulator, tmp_path: Path) -> None:
    ctx = context(tmp_path, emulator_settings(emulator))
    accounts = run("azure.accounts", ctx)
    assert accounts["count"] == len(accounts["accounts"]) > 0
    deployments = run("azure.deployments", ctx)
    assert deployments["image_deployments"]
    assert run("azure.deployments", ctx, image_only=True, model="FLUX*")["filters"] == {"model": "FLUX*", "image_only": True}
    apis = run("azure.apim.apis", ctx)
    operations = run("azure.apim.operations", ctx, api=apis["apis"][0]["name"], match="images")
    assert operations["operations"]
    resource = run("azure.resource", ctx, id=accounts["accounts"][0]["id"], api_version="2025-06-01")
    assert resource["name"] == accounts["accounts"][0]["name"]


def _notebook(path: Path, sources: list[str]) -> Path:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell_{i}", "metadata": {"tags": [f"t{i}"]},
         "outputs": [], "source": source}
        for i, source in enumerate(sources)
    ]
    doc = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
           "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def test_notebook_actions_keep_their_contract(tmp_path: Path) -> None:
    _notebook(tmp_path / "n.ipynb", ['MODEL = "dall-e-3"\nprint(MODEL)', "print(1 / 0)"])
    ctx = context(tmp_path)
    found = run("notebook.cells", ctx, path="n.ipynb", pattern=r'MODEL = "([^"]+)"')
    assert found["cells"][0]["matches"][0]["groups"] == ["dall-e-3"]
    edit = {"path": "n.ipynb", "cell": 1, "replacements": [{"find": "dall-e-3", "replace": "FLUX-1.1-pro"}]}
    assert run("notebook.edit", ctx, **edit)["status"] == "changed"
    assert run("notebook.edit", ctx, **edit)["status"] == "already"
    assert run("notebook.set_source", ctx, path="n.ipynb", cell=2, source="print(2)")["status"] == "changed"
    inserted = run("notebook.insert", ctx, path="n.ipynb", cell=2, source="print(3)")
    assert inserted["anchor"]["number"] == 2
    assert run("notebook.insert", ctx, path="n.ipynb", cell=2, source="print(3)")["status"] == "already"
    ran = run("notebook.run", ctx, path="n.ipynb", cells=[1, 2], timeout=60)
    assert ran["ok"] is True and ran["cells"][0]["output"].strip() == "FLUX-1.1-pro"
    run("notebook.set_source", ctx, path="n.ipynb", cell=2, source="raise KeyError('x')")
    broken = failure_output("notebook.run", ctx, path="n.ipynb", cells=[2], timeout=60)
    assert broken["cells"][0]["error"]["ename"] == "KeyError"


# ----------------------------------------------------------------------------- CLI and schema


def test_actions_command_lists_output_fields() -> None:
    shown = invoke(["actions", "azure.deployments"])
    assert shown.exit_code == 0
    lines = shown.stdout.splitlines()
    model_line = next(line for line in lines if line.strip().startswith("deployments[].model "))
    assert "str | None" in model_line and "the model deployed" in model_line
    assert any(line.strip().startswith("filters.model ") and line.endswith("[optional]") for line in lines)
    listed = json.loads(invoke(["actions", "--json"]).stdout)
    by_name = {item["name"]: item for item in listed}
    assert set(by_name) == set(actions.names())
    paths = {f["path"]: f for f in by_name["notebook.cells"]["output"]}
    assert paths["cells[].matches[].groups"]["description"]
    assert by_name["set"]["output_note"].startswith("Each key of `with`")
    schema = by_name["azure.deployments"]["output_schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False and "deployments" in schema["required"]


def test_schema_carries_outputs_and_stays_valid() -> None:
    committed = json.loads((REPO / "runbook.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(committed)
    defs = committed["$defs"]
    for spec in actions.all_specs():
        params = defs["Params_" + spec.name.replace(".", "_")]
        ref = params["x-runbook-output"]["$ref"]
        output = defs[ref.removeprefix("#/$defs/")]
        assert output["title"] == spec.output.__name__  # type: ignore[union-attr]
    assert "deployments[].model" in defs["Params_azure_deployments"]["description"]
    deployment_row = defs["DeploymentRow"]
    assert deployment_row["additionalProperties"] is False and "model" in deployment_row["properties"]
    # The schema still validates the sample runbook, and still rejects a typo in it.
    validator = jsonschema.Draft202012Validator(committed)
    document = yaml.safe_load(SAMPLE_RUNBOOK.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(document)) == []
    document["discovery"][0]["with"] = {"scop": "subscription"}
    assert list(validator.iter_errors(document))


# --------------------------------------------------------------------- templates vs declarations


def sample_steps() -> list[Step]:
    loaded = load_runbook(SAMPLE_RUNBOOK)
    return [step for _stage, step in loaded.runbook.all_steps()]


def test_sample_runbook_templates_read_only_declared_fields() -> None:
    problems = undeclared_paths(sample_steps())
    assert problems == [], "\n".join(map(str, problems))


def _changed(steps: list[Step], step_id: str, key: str, old: str, new: str) -> list[Step]:
    copies = [step.model_copy(deep=True) for step in steps]
    step = next(s for s in copies if s.id == step_id)
    assert old in step.with_[key], (step_id, key, old)
    step.with_[key] = step.with_[key].replace(old, new)
    return copies


@pytest.mark.parametrize(
    ("step_id", "key", "old", "new", "path", "missing", "source"),
    [
        # map(attribute=…) follows the list items of azure.deployments
        ("image-models", "model", "attribute='name'", "attribute='deployment'",
         "deployments.deployments[].deployment", "deployment", "step deployments (azure.deployments)"),
        # selectattr + first, then an attribute of the picked item
        ("image-account", "endpoint", ").endpoint", ").endpoint_url",
         "accounts.accounts[].endpoint_url", "endpoint_url", "step accounts (azure.accounts)"),
        # a `set` step's output is its `with` keys
        ("image-account", "endpoint", "image.account", "image.acount",
         "image.acount", "acount", "step image-models (set)"),
        # [0] follows list items, three levels deep
        ("gateway-probe", "url", "groups[0]", "group[0]",
         "configured.cells[0].matches[0].group", "group", "step notebook-image-route (notebook.cells)"),
        ("correct-url", "method", "operations[0].method", "operations[0].verb",
         "image_route.operations[0].verb", "verb", "step apim-route (azure.apim.operations)"),
    ],
)
def test_an_undeclared_field_in_the_sample_is_named(
    step_id: str, key: str, old: str, new: str, path: str, missing: str, source: str
) -> None:
    problems = undeclared_paths(_changed(sample_steps(), step_id, key, old, new))
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.step, problem.where, problem.path, problem.missing, problem.source) == (
        step_id, f"with.{key}", path, missing, source
    )
    assert new in problem.expression
    assert f"step {step_id}, with.{key}:" in str(problem) and f"declares no field {missing!r}" in str(problem)


def test_loops_output_steps_namespace_and_typed_set_keys() -> None:
    steps = sample_steps()
    extra = [
        Step.model_validate(
            {
                "id": "probe",
                "uses": "set",
                "with": {
                    "loop": "{% for d in deployments.deployments %}{{ d.modle }}{% endfor %}",
                    "via_steps": "{{ steps.deployments.output.count }} {{ steps.deployments.output.cnt }}",
                    "typed_set_key": "{{ image.all[0].nam }}",
                    "fine": "{{ deployments.by_account['any-account'][0].model }} {{ image.all | map(attribute='model') | list }}",
                },
                "expect": [{"that": "output.loop != '' and output.missing"}],
            }
        )
    ]
    found = {(p.where, p.path, p.missing) for p in undeclared_paths(steps + extra)}
    assert found == {
        ("with.loop", "deployments.deployments[].modle", "modle"),
        ("with.via_steps", "steps.deployments.output.cnt", "cnt"),
        ("with.typed_set_key", "image.all[0].nam", "nam"),
        ("expect[0]", "output.missing", "missing"),
    }


def test_problem_reads_like_a_sentence() -> None:
    problem = PathProblem("gateway-probe", "with.url", "{{ x.y }}", "x.y", "y", "step s (notebook.cells)")
    assert str(problem) == (
        "step gateway-probe, with.url: '{{ x.y }}' reads x.y, but step s (notebook.cells) declares no field 'y'"
    )
