"""`http.request` over real loopback HTTP against the emulator's gateway and ARM servers.

Expectations that pass and fail (each unmet one listed with its actual value, the output still
recorded), base64 images summarised, keys redacted, clear-text refusal, retries on dropped
connections, Entra bearer auth, JSON paths, and both kinds of `expect` inside a real run.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook import actions
from runbook.actions import ActionContext, Result
from runbook.actions.http import (
    HttpExpectationFailed,
    bound_json,
    json_paths,
    parse_path,
    resolve_path,
    summarise_string,
)
from runbook.api import run_phase
from runbook.azure.emulator import Emulator, FaultPlan
from runbook.azure.estate import load_estate
from runbook.errors import ActionError, ExpectationFailed, SecurityViolation
from runbook.record import read_record
from runbook.secrets import Redactor
from runbook.targets import TargetSession

IMAGES = "/inference/openai/deployments/{}/images/generations"
API_VERSION = {"api-version": "2024-10-21"}
PNG_PREFIX = "iVBORw0KGgo"  # base64 of the PNG signature


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(load_estate(None)) as running:
        yield running


@pytest.fixture
def faulty_gateway() -> Iterator[Emulator]:
    plan = FaultPlan(rate=0.5, kinds=("drop",), servers=("gateway",))
    with Emulator(load_estate(None), faults=plan, seed=1) as running:
        yield running


def context(emulator: Emulator, **extra: Any) -> ActionContext:
    env = emulator.env()
    settings: dict[str, Any] = {
        "arm_url": emulator.arm_url,
        "gateway_url": emulator.gateway_url,
        "subscription_id": env["AZURE_SUBSCRIPTION_ID"],
        "api_key": emulator.subscription_key,
        "credential": "emulator",
        "http_backoff": 0.01,
        **extra,
    }
    redactor = Redactor([emulator.subscription_key])
    return ActionContext(
        workspace_root=Path.cwd(),
        step_id="step",
        stage="verify",
        dry_run=False,
        redactor=redactor,
        target=TargetSession(name="t", kind="emulator", settings=settings, env={}),
        timeout=None,
        stop=threading.Event(),
    )


def request(ctx: ActionContext, **params: Any) -> Result:
    spec = actions.get("http.request")
    try:
        return spec.func(spec.params.model_validate(params), ctx)
    finally:
        for value in ctx.run_state.values():
            value.close()


def image_call(emulator: Emulator, deployment: str = "FLUX-1.1-pro", **params: Any) -> Callable[[], Result]:
    ctx = context(emulator)
    body = {"prompt": "a lighthouse at dusk", "response_format": "b64_json"}
    return lambda: request(
        ctx, method="POST", url=IMAGES.format(deployment), params=API_VERSION, json=body, **params
    )


# ------------------------------------------------------------------------------ expectations


def test_expectations_pass_and_base64_image_is_summarised(emulator: Emulator) -> None:
    result = image_call(
        emulator,
        expect={
            "status": [200, 201],
            "json": {
                "data[0].b64_json": {"exists": True, "regex": f"^{PNG_PREFIX}"},
                "data[0].revised_prompt": "a lighthouse at dusk",
                "data[1]": {"exists": False},
                "data": {"min_length": 1},
            },
            "headers": {"content-type": "application/json.*", "x-ms-region": "uksouth"},
            "body_contains": "revised_prompt",
            "body_regex": r'"created":\s*\d+',
            "max_latency_ms": 60_000,
        },
    )()
    output = result.output
    assert output["status"] == 200 and output["ok"] is True and output["attempts"] == 1
    summary = output["json"]["data"][0]["b64_json"]
    assert summary.startswith("<base64 image/png ") and " chars, sha256 " in summary
    assert output["json_paths"]["data[0].b64_json"] == summary
    assert output["json_paths"]["data[0].revised_prompt"] == "a lighthouse at dusk"
    text = json.dumps(output)
    assert PNG_PREFIX not in text
    assert emulator.subscription_key not in text
    assert output["url"].startswith(emulator.gateway_url + "/inference/openai/deployments/FLUX-1.1-pro/")
    assert "date" not in output["headers"] and "x-ms-region" in output["headers"]


def test_failed_expectations_list_each_with_actual_value(emulator: Emulator) -> None:
    with pytest.raises(HttpExpectationFailed) as caught:
        image_call(
            emulator,
            expect={
                "status": 201,
                "json": {"data[0].url": {"exists": True}, "data[0].revised_prompt": "something else"},
                "headers": {"x-ms-region": "eastus"},
                "body_contains": "dall-e-3",
            },
        )()
    error = caught.value
    assert "5 expectations not met" in error.message
    assert "status is 200, expected 201" in error.message
    assert "json data[0].url is missing" in error.message
    assert "json data[0].revised_prompt is 'a lighthouse at dusk', expected 'something else'" in error.message
    assert "header x-ms-region is 'uksouth', expected 'eastus'" in error.message
    assert "body does not contain 'dall-e-3'" in error.message
    # the answer is still recorded, and each check says what it saw
    assert isinstance(error.output, dict) and error.output["status"] == 200
    checks = {c["that"]: c for c in error.expectations}
    assert checks["status == 201"] == {"that": "status == 201", "passed": False, "actual": 200}
    assert len(checks) == 5 and not any(c["passed"] for c in error.expectations)


def test_wrong_deployment_fails_with_hint(emulator: Emulator) -> None:
    with pytest.raises(ExpectationFailed) as caught:
        image_call(emulator, deployment="dall-e-3")()
    error = caught.value
    assert "status is 404 (DeploymentNotFound" in error.message
    assert error.hint is not None and "azure.deployments" in error.hint
    assert error.output["error"]["code"] == "DeploymentNotFound"  # type: ignore[index]


def test_expected_failure_status_passes(emulator: Emulator) -> None:
    result = image_call(emulator, deployment="dall-e-3", expect={"status": 404})()
    assert result.output["status"] == 404 and result.output["error"]["code"] == "DeploymentNotFound"


def test_missing_key_names_apim_api_key(emulator: Emulator) -> None:
    with pytest.raises(ExpectationFailed) as caught:
        image_call(emulator, auth="none")()
    assert "status is 401" in caught.value.message and "missing subscription key" in caught.value.message
    assert caught.value.hint == "the APIM subscription key is missing or wrong: set APIM_API_KEY"


def test_check_false_records_without_failing(emulator: Emulator) -> None:
    result = image_call(emulator, auth="none", check=False)()
    assert result.output["status"] == 401 and result.output["ok"] is False


def test_key_in_query_is_masked_in_url(emulator: Emulator) -> None:
    ctx = context(emulator)
    result = request(
        ctx,
        method="POST",
        url=IMAGES.format("FLUX-1.1-pro"),
        auth="none",
        params={**API_VERSION, "subscription-key": emulator.subscription_key},
        json={"prompt": "x"},
    )
    assert result.output["status"] == 200
    assert emulator.subscription_key not in result.output["url"]
    assert "subscription-key=%2A%2A%2A" in result.output["url"] or "subscription-key=***" in result.output["url"]


def test_a_query_in_the_url_is_kept_when_params_are_added(emulator: Emulator) -> None:
    """httpx 0.28 replaces a URL's query with `params`; the action merges them (same names replaced)."""
    ctx = context(emulator)
    result = request(
        ctx,
        method="POST",
        url=IMAGES.format("FLUX-1.1-pro") + "?api-version=2024-10-21&trace=a%2Fb",
        auth="none",
        params={"subscription-key": emulator.subscription_key, "trace": "c"},
        json={"prompt": "x"},
    )
    assert "api-version=2024-10-21" in result.output["url"], result.output["url"]
    assert "trace=c" in result.output["url"] and "trace=a" not in result.output["url"]
    assert result.output["status"] == 200


# -------------------------------------------------------------------------------- transport


def test_dropped_connections_are_retried(faulty_gateway: Emulator) -> None:
    result = image_call(faulty_gateway, retries=5)()
    assert result.output["status"] == 200
    assert result.output["attempts"] > 1
    assert any(r.fault == "drop" for r in faulty_gateway.requests)


def test_clear_text_key_to_remote_host_is_refused(emulator: Emulator) -> None:
    ctx = context(emulator)
    with pytest.raises(SecurityViolation, match=r"refusing to send api-key over plain http to example\.com"):
        request(ctx, url="http://example.com/inference", auth="apim-key")
    with pytest.raises(SecurityViolation, match="Authorization"):
        request(ctx, url="http://example.com/x", headers={"Authorization": "Bearer abcdefgh"})


def test_entra_bearer_token_reaches_arm(emulator: Emulator) -> None:
    ctx = context(emulator)
    sub = emulator.env()["AZURE_SUBSCRIPTION_ID"]
    result = request(
        ctx, url=f"{emulator.arm_url}/subscriptions/{sub}", params={"api-version": "2022-12-01"}, auth="entra"
    )
    assert result.output["json"]["subscriptionId"] == sub
    # without a token ARM says 401, and the answer is recorded with its ARM error
    denied = request(
        ctx, url=f"{emulator.arm_url}/subscriptions/{sub}", params={"api-version": "2022-12-01"}, expect={"status": 401}
    )
    assert denied.output["error"]["code"] == "AuthenticationFailed"


def test_relative_url_needs_a_gateway(emulator: Emulator) -> None:
    ctx = context(emulator, gateway_url=None)
    with pytest.raises(ActionError, match="needs the target's gateway_url"):
        request(ctx, url="/inference/openai")


def test_bad_params_are_rejected() -> None:
    spec = actions.get("http.request")
    with pytest.raises(ValueError, match="either `json` or `body`"):
        spec.params.model_validate({"url": "https://x", "json": {}, "body": "x"})
    with pytest.raises(ValueError, match="bad regex"):
        spec.params.model_validate({"url": "https://x", "expect": {"body_regex": "("}})
    with pytest.raises(ValueError, match="bad JSON path"):
        spec.params.model_validate({"url": "https://x", "expect": {"json": {"data[x": 1}}})


# -------------------------------------------------------------------------------- JSON shapes


def test_json_paths() -> None:
    doc = {"data": [{"b64_json": "x", "url": None}], "a.b": {"c": [1, 2, 3]}}
    assert parse_path("data[0].b64_json") == ["data", 0, "b64_json"]
    assert parse_path("['a.b'].c[-1]") == ["a.b", "c", -1]
    assert resolve_path(doc, "['a.b'].c[-1]") == (True, 3)
    assert resolve_path(doc, "data[0].url") == (True, None)
    assert resolve_path(doc, "data[1].url") == (False, None)
    paths = json_paths(doc)
    assert paths["data[0].b64_json"] == "x" and paths['["a.b"].c[2]'] == 3


def test_bounding_and_summaries() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(2000)).decode()
    assert summarise_string(f"data:image/png;base64,{png}").startswith("<base64 image/png ")
    assert summarise_string(png).startswith("<base64 image/png ")
    assert summarise_string("short", key="b64_json") == "short"
    assert summarise_string("word " * 1000, max_chars=20).endswith("…(+4980 chars)")
    bounded = bound_json({"embedding": list(range(3072))})
    assert len(bounded["embedding"]) == 51 and bounded["embedding"][-1] == "<+3022 more items>"


# --------------------------------------------------------------------------- through a real run

WORKSPACE = """\
project: Test
plan:
  - group: "1"
    phases:
      - {id: "1.5", title: Image Generation Deployment}
default_target: emulator
targets:
  emulator:
    kind: emulator
"""

RUNBOOK = """\
phase: "1.5"
title: Image Generation Deployment
reproduce: false
verify:
  - id: flux
    uses: http.request
    with:
      method: POST
      url: "/inference/openai/deployments/FLUX-1.1-pro/images/generations"
      params: {api-version: "2024-10-21"}
      json: {prompt: "a lighthouse", response_format: b64_json}
      expect:
        status: 200
        json: {"data[0].b64_json": {exists: true}}
    expect:
      - "output.status == 200"
      - that: "output.json_paths['data[0].b64_json'] is defined"
        message: the image came back as base64
  - id: dalle
    uses: http.request
    with:
      method: POST
      url: "/inference/openai/deployments/dall-e-3/images/generations"
      params: {api-version: "2024-10-21"}
      json: {prompt: "a lighthouse"}
      expect:
        status: 200
"""


def test_both_expect_kinds_in_a_run(local_workspace: Path) -> None:
    (local_workspace / "runbook.yaml").write_text(WORKSPACE, encoding="utf-8")
    (local_workspace / "runbooks" / "phase-1.5.yaml").write_text(RUNBOOK, encoding="utf-8")
    outputs = run_phase("1.5", workspace=local_workspace, report=False, environ={}, raise_on_failure=False)
    assert outputs.result.status == "failed"
    assert outputs.record_path is not None
    events = {
        e["step"]: e for e in read_record(outputs.record_path).events if e.get("event") == "step_finished"
    }
    flux, dalle = events["flux"], events["dalle"]
    assert flux["status"] == "ok" and [e["passed"] for e in flux["expectations"]] == [True, True]
    assert dalle["status"] == "failed"
    assert dalle["output"]["status"] == 404  # the answer is recorded even though the step failed
    assert dalle["error"]["type"] == "ExpectationFailed"
    assert "status is 404 (DeploymentNotFound" in dalle["error"]["message"]
    assert dalle["expectations"] == [{"that": "status == 200", "passed": False, "actual": 404}]
    text = outputs.record_path.read_text(encoding="utf-8")
    assert PNG_PREFIX not in text and "emulator-apim-key-0000-not-a-secret" not in text
