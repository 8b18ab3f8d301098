"""The Azure client and the `azure.*` actions, over real loopback HTTP against the emulator.

Paging, retries honouring Retry-After, bounded failure on persistent faults, dropped connections,
ARM error bodies and role hints, the phase 1.5 image-model discovery, fan-out concurrency, the
credential error, prompt stop, and the actions inside a real `run_phase` on an emulator target.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import copy_sample
from runbook import actions
from runbook.actions import ActionContext, Result
from runbook.api import RunOptions, run_phase
from runbook.azure import client as client_module
from runbook.azure.client import ArmClient, AzureClient, RetryPolicy, display_url, retry_after, run_sync
from runbook.azure.credentials import ARM_SCOPE, TokenProvider
from runbook.azure.emulator import Emulator, FaultPlan
from runbook.azure.estate import load_estate
from runbook.azure.estate_generator import generate_estate
from runbook.errors import ActionError, AzureError, CredentialError, InputError, SecurityViolation
from runbook.record import read_record
from runbook.secrets import Redactor
from runbook.targets import TargetSession

FAST = {"http_backoff": 0.01}


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(estate: Any = None, **options: Any) -> Emulator:
        emulator = Emulator(estate or load_estate(None), **options).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


def emulator_settings(emulator: Emulator, **extra: Any) -> dict[str, Any]:
    env = emulator.env()
    settings: dict[str, Any] = {
        "arm_url": emulator.arm_url,
        "gateway_url": emulator.gateway_url,
        "subscription_id": env["AZURE_SUBSCRIPTION_ID"],
        "resource_group": env["RESOURCE_GROUP"],
        "apim_service": env.get("APIM_SERVICE_NAME"),
        "api_key": emulator.subscription_key,
        "credential": "emulator",
    }
    settings.update(extra)
    return settings


def context(settings: dict[str, Any], *, stop: threading.Event | None = None) -> ActionContext:
    target = TargetSession(name="t", kind="emulator", settings=settings, env={})
    return ActionContext(
        workspace_root=Path.cwd(),
        step_id="step",
        stage="discovery",
        dry_run=False,
        redactor=Redactor(),
        target=target,
        timeout=None,
        stop=stop or threading.Event(),
    )


def run_action(name: str, ctx: ActionContext, **params: Any) -> Result:
    spec = actions.get(name)
    try:
        return spec.func(spec.params.model_validate(params), ctx)
    finally:
        for value in ctx.run_state.values():
            value.close()


class ScriptedServer:
    """A tiny real HTTP server on loopback answering scripted JSON per path (for shapes the emulator
    does not produce: 403s, empty-string nextLinks, links to other hosts)."""

    def __init__(self, routes: dict[str, tuple[int, Any]]) -> None:
        self.routes = routes
        self.seen: list[str] = []
        self.headers: list[dict[str, str]] = []  # the headers of each request, names lower-cased
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.seen.append(self.path)
                server.headers.append({name.lower(): value for name, value in self.headers.items()})
                path = self.path.split("?", 1)[0]
                status, body = server.routes.get(path, (404, {"error": {"code": "NotScripted", "message": path}}))
                data = json.dumps(body).replace("{base}", server.url).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[dict[str, tuple[int, Any]]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(routes: dict[str, tuple[int, Any]]) -> ScriptedServer:
        server = ScriptedServer(routes)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


SUB = "00000000-0000-0000-0000-0000000000aa"
ACCOUNTS_PATH = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts"


def scripted_settings(server: ScriptedServer) -> dict[str, Any]:
    return {"arm_url": server.url, "subscription_id": SUB, "resource_group": "rg", "credential": "emulator", **FAST}


# --------------------------------------------------------------------------------------- paging


def test_paging_follows_next_link_across_many_pages(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(page_size=2)
    result = run_action(
        "azure.deployments", context(emulator_settings(emulator)), accounts=["foundry1-pavavy6pu5hpa"]
    )
    assert result.output["count"] == 10
    assert result.output["total"] == 10
    names = [d["name"] for d in result.output["deployments"]]
    assert len(set(names)) == 10 and "o3" in names and "gpt-4o-mini" in names
    pages = [r for r in emulator.requests if r.operation == "Deployments_List"]
    assert len(pages) == 5
    assert sum("skipToken" in r.query for r in pages) == 4


def test_paging_edge_cases_empty_pages_and_empty_next_link(scripted: Callable[..., ScriptedServer]) -> None:
    account = {"id": f"{ACCOUNTS_PATH}/a1", "name": "a1", "kind": "AIServices", "location": "uksouth", "properties": {}}
    server = scripted(
        {
            ACCOUNTS_PATH: (200, {"value": [], "nextLink": "{base}/page2?api-version=x"}),  # zero items + link
            "/page2": (200, {"value": [account], "nextLink": "{base}/page3?api-version=x"}),
            "/page3": (200, {"value": [], "nextLink": ""}),  # APIM style: empty string ends it
        }
    )
    result = run_action("azure.accounts", context(scripted_settings(server)))
    assert result.output["names"] == ["a1"]
    assert len(server.seen) == 3


def test_next_link_to_another_host_is_refused(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted({ACCOUNTS_PATH: (200, {"value": [], "nextLink": "https://evil.example/steal?api-version=x"})})
    with pytest.raises(SecurityViolation, match="refusing to send the ARM token"):
        run_action("azure.accounts", context(scripted_settings(server)))


# -------------------------------------------------------------------------------------- retries


def test_retry_waits_as_long_as_retry_after_says(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(faults=FaultPlan(rate=0.5, kinds=("429",), retry_after=0.6, servers=("arm",)), seed=3)
    result = run_action("azure.accounts", context(emulator_settings(emulator, **FAST)))
    assert result.output["count"] == 3
    log = emulator.requests
    assert any(r.status == 429 for r in log), "the seed should inject at least one 429"
    assert log[-1].status == 200
    for earlier, later in itertools.pairwise(log):
        if earlier.status == 429:
            # the backoff alone would be ~0.01 s: the gap comes from Retry-After
            assert later.time - earlier.time >= 0.6


def test_persistent_faults_fail_with_endpoint_and_status_after_bounded_attempts(
    start_emulator: Callable[..., Emulator],
) -> None:
    emulator = start_emulator(faults=FaultPlan(rate=1.0, kinds=("503",), retry_after=0.01))
    with pytest.raises(AzureError) as caught:
        run_action("azure.accounts", context(emulator_settings(emulator, **FAST)))
    message = str(caught.value)
    assert f"GET {emulator.arm_url}/subscriptions/" in message
    assert "Microsoft.CognitiveServices/accounts" in message
    assert "failed after 5 attempts" in message and "503 ServiceUnavailable" in message
    assert "Traceback" not in message
    assert len(emulator.requests) == 5


def test_dropped_connections_are_retried(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(faults=FaultPlan(rate=0.5, kinds=("drop",), servers=("arm",)), seed=1)
    result = run_action("azure.deployments", context(emulator_settings(emulator, **FAST)))
    assert result.output["total"] == 16
    assert any(r.fault == "drop" for r in emulator.requests)


def test_persistent_drops_say_no_answer(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(faults=FaultPlan(rate=1.0, kinds=("drop",)))
    with pytest.raises(AzureError, match=r"failed after 3 attempts: last status: no answer \(RemoteProtocolError"):
        run_action("azure.accounts", context(emulator_settings(emulator, http_attempts=3, **FAST)))
    assert len(emulator.requests) == 3


def test_retry_after_parsing() -> None:
    assert retry_after({"Retry-After": "0.25"}) == 0.25
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after({}) is None
    policy = RetryPolicy(max_wait=30)
    assert policy.delay(1, 3600) == 30  # capped
    assert 0 < policy.delay(3, None) <= policy.backoff_cap


def test_display_url_masks_query_secrets() -> None:
    shown = display_url("https://x/a?api-version=1&subscription-key=abcd1234&sig=zz&$skipToken=4")
    assert "abcd1234" not in shown and "zz" not in shown
    assert "api-version=1" in shown and "skipToken=4" in shown


# ------------------------------------------------------------------------------ errors and hints


def test_arm_error_body_surfaces_code_and_message(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator()
    with pytest.raises(AzureError) as caught:
        run_action("azure.accounts", context(emulator_settings(emulator)), resource_group="no-such-rg")
    error = caught.value
    assert "404 ResourceGroupNotFound" in error.message
    assert "Resource group 'no-such-rg' could not be found." in error.message
    assert error.hint is not None and "RESOURCE_GROUP" in error.hint


def test_403_names_the_missing_role(scripted: Callable[..., ScriptedServer]) -> None:
    body = {
        "error": {
            "code": "AuthorizationFailed",
            "message": "The client 'x' does not have authorization to perform action "
            "'Microsoft.CognitiveServices/accounts/read' over scope '/subscriptions/…'.",
        }
    }
    server = scripted({ACCOUNTS_PATH: (403, body)})
    with pytest.raises(AzureError) as caught:
        run_action("azure.accounts", context(scripted_settings(server)))
    error = caught.value
    assert "403 AuthorizationFailed" in error.message and "does not have authorization" in error.message
    assert error.hint is not None
    assert "needs the Reader role on the resource group (or Cognitive Services Contributor)" in error.hint
    assert len(server.seen) == 1  # a 403 is not retried


def test_unknown_account_name_suggests(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator()
    with pytest.raises(AzureError, match="did you mean 'foundry1-pavavy6pu5hpa'"):
        run_action("azure.deployments", context(emulator_settings(emulator)), accounts="foundry1-pavavy6pu5hp")


def test_missing_setting_is_named() -> None:
    ctx = context({"credential": "emulator", "arm_url": "http://127.0.0.1:9"})
    with pytest.raises(ActionError, match=r"needs subscription_id: .*AZURE_SUBSCRIPTION_ID"):
        run_action("azure.accounts", ctx)


# ---------------------------------------------------------------------------------- discovery


def test_image_models_only_on_foundry1(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator()
    ctx = context(emulator_settings(emulator))
    output = run_action("azure.deployments", ctx, image_only=True).output
    assert {(d["account"], d["name"]) for d in output["deployments"]} == {
        ("foundry1-pavavy6pu5hpa", "FLUX-1.1-pro"),
        ("foundry1-pavavy6pu5hpa", "FLUX.1-Kontext-pro"),
    }
    assert output["accounts_without_match"] == ["foundry2-pavavy6pu5hpa", "foundry3-pavavy6pu5hpa"]
    assert output["by_account"]["foundry2-pavavy6pu5hpa"] == []
    assert all(d["image"] and d["location"] == "uksouth" for d in output["deployments"])
    # the same answer through a model glob, a model regex and the capability
    for params in ({"model": "flux*"}, {"model": "re:^FLUX"}, {"capability": "imageGenerations"}):
        again = run_action("azure.deployments", context(emulator_settings(emulator)), **params).output
        assert {d["name"] for d in again["deployments"]} == {"FLUX-1.1-pro", "FLUX.1-Kontext-pro"}, params
    # all deployments: image ones marked, the gpt-4 deployment runs model gpt-4.1
    every = run_action("azure.deployments", context(emulator_settings(emulator))).output
    assert every["count"] == 16 and every["accounts_without_match"] == []
    gpt4 = next(d for d in every["deployments"] if d["name"] == "gpt-4")
    assert gpt4["model"] == "gpt-4.1" and gpt4["image"] is False and gpt4["capabilities"] == ["chatCompletion"]


def test_accounts_and_apim(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator()
    settings = emulator_settings(emulator)
    accounts = run_action("azure.accounts", context(settings)).output
    assert accounts["names"] == ["foundry1-pavavy6pu5hpa", "foundry2-pavavy6pu5hpa", "foundry3-pavavy6pu5hpa"]
    first = accounts["accounts"][0]
    assert first["kind"] == "AIServices" and first["location"] == "uksouth"
    assert first["endpoint"] == "https://foundry1-pavavy6pu5hpa.cognitiveservices.azure.com/"
    assert first["provisioning_state"] == "Succeeded" and first["id"].endswith("/accounts/foundry1-pavavy6pu5hpa")
    whole = run_action("azure.accounts", context(settings), scope="subscription").output
    assert whole["count"] == 3 and whole["resource_group"] is None

    apis = run_action("azure.apim.apis", context(settings)).output
    assert [(a["name"], a["path"]) for a in apis["apis"]] == [("inference-api", "inference/openai"), ("lb-api", "lb/openai")]
    ops = run_action("azure.apim.operations", context(settings), api="inference-api", match="images/generations")
    (op,) = ops.output["operations"]
    assert op["name"] == "ImageGenerations_Create" and op["method"] == "POST"
    assert op["url_template"] == "/deployments/{deployment-id}/images/generations?api-version={api-version}"

    resource = run_action("azure.resource", context(settings), id=first["id"], api_version="2025-06-01").output
    assert resource["name"] == "foundry1-pavavy6pu5hpa"
    assert resource["json"]["properties"]["provisioningState"] == "Succeeded"


def test_fan_out_requests_overlap(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(generate_estate(20, 2), latency=0.2)
    settings = emulator_settings(emulator)
    output = run_action("azure.deployments", context(settings)).output
    assert len(output["accounts"]) == 20 and output["count"] == 40
    calls = [r for r in emulator.requests if r.operation == "Deployments_List"]
    assert len(calls) == 20
    # structural fact: some deployment listing started before another one had finished
    overlapping = sum(
        1 for a in calls for b in calls if a is not b and a.time <= b.time < a.time + a.duration
    )
    assert overlapping > 0


def test_stop_cancels_promptly(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(latency=3.0)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(ActionError, match="stopped"):
        run_action("azure.accounts", context(emulator_settings(emulator), stop=stop))


# ---------------------------------------------------------------------------------- credentials


@pytest.fixture
def no_azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("AZURE_", "IDENTITY_", "MSI_")):
            monkeypatch.delenv(name)
    # keep DefaultAzureCredential offline and fast: only the environment credential is tried
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "EnvironmentCredential")


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("no_azure_env")
def test_credential_error_without_credentials(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator()
    ctx = context(emulator_settings(emulator, credential="default"))
    with pytest.raises(CredentialError) as caught:
        run_action("azure.accounts", ctx)
    assert caught.value.message == (
        "no Azure credential: run `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET"
    )
    assert emulator.requests == []  # nothing was sent without a token
    with pytest.raises(CredentialError):
        TokenProvider("environment").token(ARM_SCOPE)


def test_emulator_token_is_redacted() -> None:
    redactor = Redactor()
    token = TokenProvider("emulator", redactor=redactor).token(ARM_SCOPE)
    assert redactor(f"Bearer {token}") == "Bearer ***"


def test_unknown_credential_kind() -> None:
    with pytest.raises(InputError, match="did you mean 'managed_identity'"):
        TokenProvider("managed-identity")


# ------------------------------------------------------------------------- through a real run


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
    settings:
      page_size: 2
"""

RUNBOOK = """\
phase: "1.5"
title: Image Generation Deployment
reproduce: false
discovery:
  - id: accounts
    uses: azure.accounts
    register: found_accounts
    expect: "output.count == 3"
  - id: deployments
    uses: azure.deployments
    with:
      image_only: true
    register: images
    expect:
      - "output.accounts_without_match == ['foundry2-pavavy6pu5hpa', 'foundry3-pavavy6pu5hpa']"
  - id: apis
    uses: azure.apim.apis
  - id: operations
    uses: azure.apim.operations
    with:
      api: inference-api
      match: images
  - id: account
    uses: azure.resource
    with:
      id: "{{ found_accounts.accounts[0].id }}"
      api_version: "2025-06-01"
verify:
  - id: image
    uses: http.request
    with:
      method: POST
      url: "{{ target.gateway_url }}/{{ target.inference_api_path }}/openai/deployments/{{ images.deployments[0].name }}/images/generations"
      params: {api-version: "2024-10-21"}
      json: {prompt: "a lighthouse", response_format: b64_json}
      expect:
        status: 200
        json: {"data[0].b64_json": {exists: true}}
    expect: "output.json_paths['data[0].b64_json'].startswith('<base64 image/png')"
"""


def test_actions_in_a_run_on_the_emulator_target(local_workspace: Path) -> None:
    (local_workspace / "runbook.yaml").write_text(WORKSPACE, encoding="utf-8")
    (local_workspace / "runbooks" / "phase-1.5.yaml").write_text(RUNBOOK, encoding="utf-8")
    outputs = run_phase("1.5", workspace=local_workspace, report=False, environ={})
    result = outputs.result
    assert result.ok, [(o.step.id, o.error) for o in result.outcomes]
    by_id = {o.step.id: o.output for o in result.outcomes}
    assert {d["name"] for d in by_id["deployments"]["deployments"]} == {"FLUX-1.1-pro", "FLUX.1-Kontext-pro"}
    assert by_id["operations"]["operations"][0]["name"] == "ImageGenerations_Create"
    assert by_id["account"]["name"] == "foundry1-pavavy6pu5hpa"
    assert by_id["image"]["status"] == 200
    assert outputs.record_path is not None
    text = outputs.record_path.read_text(encoding="utf-8")
    assert "emulator-apim-key-0000-not-a-secret" not in text  # the key is redacted
    assert "iVBORw0KGgo" not in text  # PNG base64 is summarised, not stored
    events = [e for e in read_record(outputs.record_path).events if e.get("event") == "step_finished"]
    assert [e["status"] for e in events] == ["ok"] * 6


def test_target_azure_fails_before_any_step_listing_missing_variables(tmp_path: Path) -> None:
    workspace = copy_sample(tmp_path / "lab")
    runbook = workspace / "runbooks" / "phase-1.5.yaml"
    if not runbook.exists():
        shutil.rmtree(workspace / "runbooks", ignore_errors=True)
        runbook.parent.mkdir(parents=True, exist_ok=True)
        runbook.write_text(
            'phase: "1.5"\ntitle: Image Generation Deployment\ndiscovery:\n'
            "  - {id: accounts, uses: azure.accounts}\n",
            encoding="utf-8",
        )
    with pytest.raises(InputError) as caught:
        run_phase("1.5", workspace=workspace, options=RunOptions(target="azure"), environ={}, report=False)
    message = str(caught.value)
    for variable in ("AZURE_SUBSCRIPTION_ID", "RESOURCE_GROUP", "APIM_GATEWAY_URL", "APIM_API_KEY"):
        assert variable in message
    runs = workspace / "reports" / "runs"
    assert not runs.exists() or not any(runs.rglob("*.jsonl"))  # no step ran, no record


# ------------------------------------------------------------------- the aiohttp wire of wide fan-outs

WIDE = client_module.WIRE_FAN_OUT_MIN


def test_a_wide_fan_out_sends_what_httpx_sends_and_gets_the_same_answer(
    scripted: Callable[..., ScriptedServer],
) -> None:
    path = f"/subscriptions/{SUB}/resourceGroups/rg"
    server = scripted({path: (200, {"name": "rg", "tags": {"ünï": "cødé"}, "n": [1, 2.5, None, True]})})
    headers = {"Authorization": "Bearer token", "Accept": "application/json"}

    async def work(client: AzureClient) -> tuple[Any, list[Any]]:
        def get(_item: int) -> Any:
            return client.send("GET", server.url + path, plane="arm", headers=headers, params={"api-version": "1"})

        alone = await get(0)
        return alone, await client.fan_out(list(range(WIDE)), get)

    alone, fanned = run_sync(work)
    assert alone.wire == "httpx" and {e.wire for e in fanned} == {"aiohttp"}
    for exchange in fanned:
        assert exchange.url == alone.url == f"{server.url}{path}?api-version=1"
        assert exchange.response.status_code == 200
        assert exchange.response.json() == alone.response.json()
        assert exchange.response.headers["content-type"] == "application/json"
        assert str(exchange.response.request.url) == str(alone.response.request.url)
    first, *others = server.headers
    assert all(seen == first for seen in others)  # the same headers on the wire, by name and value
    assert first["user-agent"] == client_module.USER_AGENT and first["authorization"] == "Bearer token"
    assert set(server.seen) == {f"{path}?api-version=1"}


def test_a_wide_fan_out_goes_through_the_proxy_httpx_uses(
    scripted: Callable[..., ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"http://arm.example.invalid/subscriptions/{SUB}/resourceGroups/rg"
    proxy = scripted({target: (200, {"name": "rg"})})  # a proxy sees the absolute URL
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    async def work(client: AzureClient) -> tuple[Any, list[Any]]:
        def get(_item: int) -> Any:
            return client.send("GET", target, plane="arm", params={"api-version": "1"})

        return await get(0), await client.fan_out(list(range(WIDE)), get)

    alone, fanned = run_sync(work)
    assert alone.wire == "httpx" and {e.wire for e in fanned} == {"aiohttp"}
    assert {e.response.json()["name"] for e in [alone, *fanned]} == {"rg"}
    assert set(proxy.seen) == {f"{target}?api-version=1"}


def test_a_wide_fan_out_survives_drops_and_honours_retry_after(start_emulator: Callable[..., Emulator]) -> None:
    plan = FaultPlan(rate=0.2, kinds=("drop", "429", "503"), retry_after=0.3, servers=("arm",))
    emulator = start_emulator(generate_estate(WIDE + 4, 5), page_size=2, faults=plan, seed=5)
    warnings: list[str] = []
    ctx = context(emulator_settings(emulator, http_attempts=10, **FAST))
    ctx.warn = warnings.append
    output = run_action("azure.deployments", ctx).output
    assert output["total"] == (WIDE + 4) * 5
    log = [r for r in emulator.requests if r.path.endswith("/deployments")]
    assert {"drop", "429"} <= {r.fault for r in log}
    for index, entry in enumerate(log):
        if entry.status == 429:  # the next try of the same page came after the Retry-After it was told
            retry = next(r for r in log[index + 1 :] if (r.path, r.query) == (entry.path, entry.query))
            assert retry.time - entry.time >= 0.3
    assert any(": 429; retrying in 0.30s" in w and "/deployments?api-version=" in w for w in warnings)
    assert any("no answer" not in w and "RemoteProtocolError" in w for w in warnings)


def test_a_wide_fan_out_fails_as_httpx_does(start_emulator: Callable[..., Emulator]) -> None:
    """Persistent failures over the aiohttp wire: the same messages (endpoint, attempts, last status,
    httpx's exception names) as the same GET over httpx."""
    dropping = start_emulator(faults=FaultPlan(rate=1.0, kinds=("drop",), servers=("arm",)))
    failing = start_emulator(faults=FaultPlan(rate=1.0, kinds=("503",), retry_after=0.01, servers=("arm",)))
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    refused = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()  # nothing listens there now

    def messages(base: str) -> tuple[str, str]:
        policy = RetryPolicy(attempts=2, backoff=0.01)
        url = f"{base}/subscriptions/{SUB}/resourceGroups/rg"

        async def once(client: AzureClient, wide: bool) -> None:
            arm = ArmClient(client, base, "token")
            if wide:
                await client.fan_out(list(range(WIDE)), lambda _i: arm.get(url, "2025-06-01"))
            else:
                await arm.get(url, "2025-06-01")

        found = []
        for wide in (False, True):
            with pytest.raises(AzureError) as caught:
                run_sync(lambda client, wide=wide: once(client, wide), policy=policy)
            found.append(str(caught.value))
        return found[0], found[1]

    for base, expected in (
        (dropping.arm_url, "no answer (RemoteProtocolError: Server disconnected without sending a response.)"),
        (failing.arm_url, "last status 503 ServiceUnavailable"),
        (refused, "no answer (ConnectError: All connection attempts failed)"),
    ):
        alone, wide = messages(base)
        assert alone == wide
        assert f"GET {base}/subscriptions/{SUB}/resourceGroups/rg?api-version=2025-06-01 failed after 2 attempts" in wide
        assert expected in wide



# ------------------------------------------------------------------------- the estate's fast path

BROKEN_ESTATES = [
    "subscriptions: []\n",
    "subscriptions:\n  - id: not-a-guid\n    name: x\n",
    "- just\n- a list\n",
    "subscriptions: [\n",
    "subscriptions:\n  - id: 00000000-0000-0000-0000-0000000000aa\n    name: s\n    resource_groups:\n"
    "      - name: rg\n        location: westeurope\n        accounts:\n"
    "          - {name: a, kind: AIServices, location: westeurope}\n"
    "          - {name: a, kind: AIServices, location: westeurope}\n",
]


def test_the_estate_reads_the_same_through_the_c_path() -> None:
    """A good estate read by the C path is the estate the round-trip loader reads; a bad one fails
    with the same located problems as before (it is read again by the round-trip loader)."""
    from runbook.azure.estate import _parse_located, default_estate_path, parse_estate
    from runbook.errors import RunbookError

    default = default_estate_path().read_text(encoding="utf-8")
    assert parse_estate(default).model_dump() == _parse_located(default, "<estate>").model_dump()
    for text in BROKEN_ESTATES:
        with pytest.raises(RunbookError) as fast:
            parse_estate(text, source="e.yaml")
        with pytest.raises(RunbookError) as located:
            _parse_located(text, "e.yaml")
        assert str(fast.value) == str(located.value) and "e.yaml:" in str(fast.value)



def test_the_client_imports_httpcore_without_trio() -> None:
    """httpcore imports trio when installed (~170 ms); the client hides it for that import only."""
    import subprocess
    import sys

    code = """
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from runbook.azure.client import run_sync

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/"
exchange = run_sync(lambda client: client.send("GET", url, plane="data"))
hidden = "trio" not in sys.modules
try:
    import trio  # noqa: F401
    later = "imported"
except ImportError:
    later = "not installed"
print(json.dumps([exchange.response.status_code, hidden, later, "httpcore" in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    status, hidden, later, httpcore_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert (status, hidden, httpcore_loaded) == (200, True, True)
    import importlib.util

    assert later == ("imported" if importlib.util.find_spec("trio") else "not installed")
