"""The embedded Azure emulator over real loopback HTTP: ARM and gateway shapes, errors, paging,
faults, the request log, estate file errors, and the official Azure/OpenAI clients parsing it all."""

from __future__ import annotations

import base64
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import invoke
from runbook.azure.emulator import Emulator, FaultPlan
from runbook.azure.estate import generate_estate, load_estate, parse_estate
from runbook.azure.png import PNG_SIGNATURE, read_png_header, render_png
from runbook.errors import InputError, ValidationFailed

API_VERSION = "2025-06-01"
APIM_VERSION = "2024-05-01"
DATA_VERSION = "2024-10-21"
RG = "lab-master-lab"
FOUNDRY1 = "foundry1-pavavy6pu5hpa"
SEED_TABLE = [  # the phase 1.5 report's discovery table for foundry1, in order
    ("gpt-4o-mini", "gpt-4o-mini", "2024-07-18"),
    ("gpt-4.1-mini", "gpt-4.1-mini", "2025-04-14"),
    ("gpt-4.1", "gpt-4.1", "2025-04-14"),
    ("gpt-4o", "gpt-4o", "2024-08-06"),
    ("gpt-4", "gpt-4.1", "2025-04-14"),
    ("text-embedding-3-small", "text-embedding-3-small", "1"),
    ("text-embedding-3-large", "text-embedding-3-large", "1"),
    ("FLUX.1-Kontext-pro", "FLUX.1-Kontext-pro", "1"),
    ("FLUX-1.1-pro", "FLUX-1.1-pro", "1"),
    ("o3", "o3", "2025-04-16"),
]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    # page_size=2 makes every list longer than two items page, for the SDKs too
    with Emulator(load_estate(None), page_size=2) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def arm(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.arm_url, headers={"Authorization": "Bearer test"}) as client:
        yield client


@pytest.fixture(scope="module")
def gateway(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.gateway_url, headers={"api-key": emu.subscription_key}) as client:
        yield client


def rg_path(emu: Emulator) -> str:
    return f"/subscriptions/{emu.env()['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{RG}"


def collect(client: httpx.Client, url: str, params: dict[str, str] | None = None) -> tuple[list[Any], int]:
    """Follow nextLink to the end; return the items and the number of pages."""
    response = client.get(url, params=params)
    pages = 1
    assert response.status_code == 200, response.text
    body = response.json()
    items = list(body["value"])
    while body.get("nextLink"):
        response = client.get(body["nextLink"])
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        pages += 1
    return items, pages


def image_url(deployment: str) -> str:
    return f"/inference/openai/deployments/{deployment}/images/generations"


# ------------------------------------------------------------------------------------------ the estate


def test_default_estate_is_the_seed_lab() -> None:
    estate = load_estate(None)
    accounts = {account.name: account for _, _, account in estate.accounts()}
    assert list(accounts) == [FOUNDRY1, "foundry2-pavavy6pu5hpa", "foundry3-pavavy6pu5hpa"]
    foundry1 = accounts[FOUNDRY1]
    assert foundry1.location == "uksouth"
    assert [(d.name, d.model, d.version) for d in foundry1.deployments] == SEED_TABLE
    flux = [d for d in foundry1.deployments if d.model.startswith("FLUX")]
    assert {d.format for d in flux} == {"Black Forest Labs"}
    for name in ("foundry2-pavavy6pu5hpa", "foundry3-pavavy6pu5hpa"):
        capabilities = {c for d in accounts[name].deployments for c in d.effective_capabilities()}
        assert "imageGenerations" not in capabilities
    (_, group, service), *_ = estate.apim_services()
    assert (group.name, service.name) == (RG, "apim-pavavy6pu5hpa")
    api, lb_api = service.apis  # phase 1.6 added the load-balanced API
    assert (lb_api.id, lb_api.backend) == ("lb-api", "lb-pool")
    assert (api.id, api.path) == ("inference-api", "inference/openai")
    image_templates = [op.url_template for op in api.operations if "images" in op.url_template]
    assert image_templates == ["/deployments/{deployment-id}/images/generations?api-version={api-version}"]


def test_env_has_what_a_notebook_needs(emu: Emulator) -> None:
    env = emu.env()
    assert env["APIM_GATEWAY_URL"] == emu.gateway_url
    assert env["ARM_BASE_URL"] == emu.arm_url
    assert env["APIM_API_KEY"] == emu.subscription_key
    assert env["INFERENCE_API_PATH"] == "inference"
    assert env["RESOURCE_GROUP"] == RG
    assert env["APIM_SERVICE_NAME"] == "apim-pavavy6pu5hpa"
    assert len(env["AZURE_SUBSCRIPTION_ID"]) == 36
    for url in (emu.arm_url, emu.gateway_url):
        assert url.startswith("http://127.0.0.1:")
    assert emu.arm_url != emu.gateway_url


# ---------------------------------------------------------------------------------------------- ARM


def test_arm_deployment_shape(emu: Emulator, arm: httpx.Client) -> None:
    account = f"{rg_path(emu)}/providers/Microsoft.CognitiveServices/accounts/{FOUNDRY1}"
    response = arm.get(f"{account}/deployments/FLUX-1.1-pro", params={"api-version": API_VERSION})
    assert response.status_code == 200
    item = response.json()
    assert item["id"] == f"{account}/deployments/FLUX-1.1-pro"
    assert item["name"] == "FLUX-1.1-pro"
    assert item["type"] == "Microsoft.CognitiveServices/accounts/deployments"
    assert item["sku"] == {"name": "GlobalStandard", "capacity": 1}
    assert item["etag"].startswith('"') and item["etag"].endswith('"')
    props = item["properties"]
    assert props["model"] == {"format": "Black Forest Labs", "name": "FLUX-1.1-pro", "version": "1"}
    assert props["provisioningState"] == "Succeeded"
    assert props["capabilities"] == {"imageGenerations": "true"}
    assert set(item["systemData"]) >= {"createdAt", "createdBy", "lastModifiedAt"}


def test_arm_account_shape(emu: Emulator, arm: httpx.Client) -> None:
    url = f"{rg_path(emu)}/providers/Microsoft.CognitiveServices/accounts/{FOUNDRY1}"
    item = arm.get(url, params={"api-version": API_VERSION}).json()
    assert item["id"] == url
    assert item["type"] == "Microsoft.CognitiveServices/accounts"
    assert (item["kind"], item["location"], item["sku"]) == ("AIServices", "uksouth", {"name": "S0"})
    assert item["properties"]["endpoint"] == f"https://{FOUNDRY1}.cognitiveservices.azure.com/"
    assert item["properties"]["provisioningState"] == "Succeeded"
    assert isinstance(item["tags"], dict)


def test_arm_apim_shapes(emu: Emulator, arm: httpx.Client) -> None:
    service = f"{rg_path(emu)}/providers/Microsoft.ApiManagement/service/apim-pavavy6pu5hpa"
    api = arm.get(f"{service}/apis/inference-api", params={"api-version": APIM_VERSION}).json()
    props = api["properties"]
    assert api["type"] == "Microsoft.ApiManagement/service/apis"
    assert props["path"] == "inference/openai"
    assert props["protocols"] == ["https"]
    assert props["isCurrent"] is True
    assert props["apiRevision"] == "1"
    assert props["subscriptionKeyParameterNames"] == {"header": "api-key", "query": "subscription-key"}
    operation = arm.get(
        f"{service}/apis/inference-api/operations/ImageGenerations_Create",
        params={"api-version": APIM_VERSION},
    ).json()
    assert operation["properties"]["method"] == "POST"
    assert operation["properties"]["urlTemplate"] == (
        "/deployments/{deployment-id}/images/generations?api-version={api-version}"
    )
    assert operation["properties"]["templateParameters"][0] == {
        "name": "deployment-id",
        "type": "string",
        "required": True,
        "values": [],
    }
    gateway = arm.get(service, params={"api-version": APIM_VERSION}).json()
    assert gateway["properties"]["gatewayUrl"] == emu.gateway_url


def test_paging_collects_every_item(emu: Emulator, arm: httpx.Client) -> None:
    url = f"{rg_path(emu)}/providers/Microsoft.CognitiveServices/accounts/{FOUNDRY1}/deployments"
    first = arm.get(url, params={"api-version": API_VERSION}).json()
    assert len(first["value"]) == 2
    assert first["nextLink"].startswith(emu.arm_url)
    items, pages = collect(arm, url, {"api-version": API_VERSION})
    assert [item["name"] for item in items] == [name for name, _, _ in SEED_TABLE]
    assert pages == 5
    accounts, _ = collect(
        arm,
        f"/subscriptions/{emu.env()['AZURE_SUBSCRIPTION_ID']}/providers/Microsoft.CognitiveServices/accounts",
        {"api-version": API_VERSION},
    )
    assert len(accounts) == 3
    operations = arm.get(
        f"{rg_path(emu)}/providers/Microsoft.ApiManagement/service/apim-pavavy6pu5hpa/apis/inference-api/operations",
        params={"api-version": APIM_VERSION},
    ).json()
    assert operations["count"] == 3 and "nextLink" in operations


def test_paths_are_case_insensitive_like_arm(emu: Emulator, arm: httpx.Client) -> None:
    sub = emu.env()["AZURE_SUBSCRIPTION_ID"]
    url = f"/subscriptions/{sub}/resourcegroups/LAB-MASTER-LAB/providers/microsoft.cognitiveservices/ACCOUNTS"
    response = arm.get(url, params={"api-version": API_VERSION})
    assert response.status_code == 200
    assert len(response.json()["value"]) == 2


def test_arm_needs_a_bearer_token(emu: Emulator) -> None:
    url = f"{emu.arm_url}{rg_path(emu)}"
    missing = httpx.get(url, params={"api-version": API_VERSION})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    assert "WWW-Authenticate" in missing.headers
    malformed = httpx.get(url, params={"api-version": API_VERSION}, headers={"Authorization": "Basic x"})
    assert malformed.status_code == 401


def test_arm_needs_an_api_version(emu: Emulator, arm: httpx.Client) -> None:
    response = arm.get(rg_path(emu))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


@pytest.mark.parametrize(
    ("suffix", "code"),
    [
        ("/providers/Microsoft.CognitiveServices/accounts/nope", "ResourceNotFound"),
        ("/providers/Microsoft.CognitiveServices/accounts/nope/deployments", "ResourceNotFound"),
        (f"/providers/Microsoft.CognitiveServices/accounts/{FOUNDRY1}/deployments/dall-e-3", "ResourceNotFound"),
        ("/providers/Microsoft.ApiManagement/service/apim-pavavy6pu5hpa/apis/nope", "ResourceNotFound"),
        ("/providers/Microsoft.Web/sites", "InvalidResourceType"),
    ],
)
def test_arm_not_found_bodies(emu: Emulator, arm: httpx.Client, suffix: str, code: str) -> None:
    response = arm.get(rg_path(emu) + suffix, params={"api-version": API_VERSION})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_arm_unknown_group_and_subscription(emu: Emulator, arm: httpx.Client) -> None:
    sub = emu.env()["AZURE_SUBSCRIPTION_ID"]
    group = arm.get(
        f"/subscriptions/{sub}/resourceGroups/other/providers/Microsoft.CognitiveServices/accounts",
        params={"api-version": API_VERSION},
    )
    assert (group.status_code, group.json()["error"]["code"]) == (404, "ResourceGroupNotFound")
    unknown = arm.get("/subscriptions/00000000-0000-0000-0000-000000000000", params={"api-version": API_VERSION})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "SubscriptionNotFound")


def test_arm_refuses_a_bad_skip_token(emu: Emulator, arm: httpx.Client) -> None:
    url = f"{rg_path(emu)}/providers/Microsoft.CognitiveServices/accounts"
    response = arm.get(url, params={"api-version": API_VERSION, "$skipToken": "page-two"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "InvalidSkipToken",
        "message": "The skip token 'page-two' is not valid.",
    }
    assert emu.requests[-1].operation == "Accounts_ListByResourceGroup"


def test_arm_is_read_only(emu: Emulator, arm: httpx.Client) -> None:
    url = f"{rg_path(emu)}/providers/Microsoft.CognitiveServices/accounts/{FOUNDRY1}/deployments/dall-e-3"
    response = arm.put(url, params={"api-version": API_VERSION}, json={})
    assert response.status_code == 405


# ------------------------------------------------------------------------------------------ gateway


def test_model_name_image_route_is_not_found(gateway: httpx.Client) -> None:
    response = gateway.post(
        "/inference/openai/images/generations", params={"api-version": DATA_VERSION}, json={"prompt": "x"}
    )
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Resource not found"}


def test_dall_e_3_is_not_deployed(gateway: httpx.Client) -> None:
    response = gateway.post(image_url("dall-e-3"), params={"api-version": DATA_VERSION}, json={"prompt": "x"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "DeploymentNotFound"
    assert error["message"].startswith("The API deployment for this resource does not exist.")


def test_flux_generates_a_real_png(gateway: httpx.Client) -> None:
    response = gateway.post(
        image_url("FLUX-1.1-pro"),
        params={"api-version": DATA_VERSION},
        json={"prompt": "A futuristic city", "n": 2, "size": "1024x1024", "response_format": "b64_json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["created"], int)
    assert len(body["data"]) == 2
    png = base64.b64decode(body["data"][0]["b64_json"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height, depth, color = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth, color) == (64, 64, 8, 2)
    assert zlib.crc32(png[12:29]) == struct.unpack(">I", png[29:33])[0]
    idat = png.index(b"IDAT")
    (idat_length,) = struct.unpack(">I", png[idat - 4 : idat])
    assert len(zlib.decompress(png[idat + 4 : idat + 4 + idat_length])) == height * (1 + width * 3)
    assert body["data"][0]["revised_prompt"] == "A futuristic city"
    assert body["data"][0]["b64_json"] != body["data"][1]["b64_json"]


def test_image_url_format_serves_the_png(gateway: httpx.Client) -> None:
    response = gateway.post(
        image_url("FLUX.1-Kontext-pro"), params={"api-version": DATA_VERSION}, json={"prompt": "mountains"}
    )
    url = response.json()["data"][0]["url"]
    image = httpx.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(PNG_SIGNATURE)


def test_gateway_needs_the_subscription_key(emu: Emulator) -> None:
    url = emu.gateway_url + image_url("FLUX-1.1-pro")
    missing = httpx.post(url, params={"api-version": DATA_VERSION}, json={"prompt": "x"})
    assert missing.status_code == 401
    assert missing.json()["message"].startswith("Access denied due to missing subscription key.")
    wrong = httpx.post(url, params={"api-version": DATA_VERSION}, json={"prompt": "x"}, headers={"api-key": "no"})
    assert wrong.status_code == 401
    assert "invalid subscription key" in wrong.json()["message"]
    by_query = httpx.post(
        url, params={"api-version": DATA_VERSION, "subscription-key": emu.subscription_key}, json={"prompt": "x"}
    )
    assert by_query.status_code == 200


def test_gateway_routes_need_the_templates_api_version(gateway: httpx.Client) -> None:
    response = gateway.post(image_url("FLUX-1.1-pro"), json={"prompt": "x"})
    assert response.status_code == 404


def test_images_on_a_chat_model_are_not_supported(gateway: httpx.Client) -> None:
    response = gateway.post(image_url("gpt-4o"), params={"api-version": DATA_VERSION}, json={"prompt": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "OperationNotSupported"


def test_chunked_request_bodies_are_read(gateway: httpx.Client) -> None:
    def body() -> Iterator[bytes]:  # an iterator makes httpx send Transfer-Encoding: chunked
        yield b'{"messages": [{"role": "user", '
        yield b'"content": "sent in chunks"}]}'

    response = gateway.post(
        "/inference/openai/deployments/gpt-4o-mini/chat/completions",
        params={"api-version": DATA_VERSION},
        content=body(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].endswith(": sent in chunks")


def test_chat_and_embeddings_shapes(gateway: httpx.Client) -> None:
    chat = gateway.post(
        "/inference/openai/deployments/gpt-4o-mini/chat/completions",
        params={"api-version": DATA_VERSION},
        json={"messages": [{"role": "user", "content": "hello"}]},
    ).json()
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert "hello" in chat["choices"][0]["message"]["content"]
    assert chat["usage"]["total_tokens"] == chat["usage"]["prompt_tokens"] + chat["usage"]["completion_tokens"]
    again = gateway.post(
        "/inference/openai/deployments/gpt-4o-mini/chat/completions",
        params={"api-version": DATA_VERSION},
        json={"messages": [{"role": "user", "content": "hello"}]},
    ).json()
    assert again == chat  # deterministic
    embeddings = gateway.post(
        "/inference/openai/deployments/text-embedding-3-small/embeddings",
        params={"api-version": DATA_VERSION},
        json={"input": ["a", "b"]},
    ).json()
    assert embeddings["object"] == "list"
    assert [item["index"] for item in embeddings["data"]] == [0, 1]
    assert all(isinstance(v, float) for v in embeddings["data"][0]["embedding"])


def test_request_log_keeps_no_keys(emu: Emulator, gateway: httpx.Client) -> None:
    emu.clear_requests()
    gateway.post(image_url("dall-e-3"), params={"api-version": DATA_VERSION}, json={"prompt": "x"})
    httpx.post(
        emu.gateway_url + image_url("dall-e-3"),
        params={"api-version": DATA_VERSION, "subscription-key": emu.subscription_key},
        json={"prompt": "x"},
    )
    log = emu.requests
    assert [(e.server, e.method, e.status, e.operation) for e in log] == [
        ("gateway", "POST", 404, "ImageGenerations_Create"),
        ("gateway", "POST", 404, "ImageGenerations_Create"),
    ]
    assert log[0].path == image_url("dall-e-3")
    assert log[0].query == f"api-version={DATA_VERSION}"
    assert "subscription-key=***" in log[1].query
    assert emu.subscription_key not in repr(log)
    assert log[0].iso_time.endswith("Z")


# ------------------------------------------------------------------------------- faults and latency


def test_fault_429_carries_retry_after() -> None:
    plan = FaultPlan(rate=1.0, kinds=("429",), retry_after=0.05)
    with Emulator(load_estate(None), faults=plan) as emulator:
        arm = httpx.get(f"{emulator.arm_url}/subscriptions", headers={"Authorization": "Bearer x"})
        assert arm.status_code == 429
        assert arm.headers["Retry-After"] == "0.05"
        assert arm.json()["error"]["code"] == "SubscriptionRequestsThrottled"
        gateway = httpx.post(emulator.gateway_url + image_url("FLUX-1.1-pro"))
        assert gateway.status_code == 429
        assert gateway.json()["statusCode"] == 429
        assert [entry.fault for entry in emulator.requests] == ["429", "429"]


def test_fault_503_and_drop() -> None:
    with Emulator(load_estate(None), faults=FaultPlan(rate=1.0, kinds=("503",))) as emulator:
        response = httpx.get(emulator.gateway_url + "/anything")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
    with Emulator(load_estate(None), faults=FaultPlan(rate=1.0, kinds=("drop",))) as emulator:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(emulator.arm_url + "/subscriptions")
        (entry,) = emulator.requests
        assert (entry.status, entry.fault) == (None, "drop")


def test_faults_can_spare_a_server_and_are_seeded() -> None:
    plan = FaultPlan(rate=0.5, kinds=("429", "503"), servers=("gateway",))
    outcomes = []
    for _ in range(2):
        with Emulator(load_estate(None), faults=plan, seed=7) as emulator, httpx.Client() as client:
            arm = client.get(
                f"{emulator.arm_url}/subscriptions", params={"api-version": "x"}, headers={"Authorization": "Bearer x"}
            )
            assert arm.status_code == 200
            outcomes.append([client.get(emulator.gateway_url + "/x").status_code for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert {429, 503} & set(outcomes[0]) and 404 in outcomes[0]


def test_fault_plan_rejects_unknown_kinds() -> None:
    with pytest.raises(InputError, match="unknown fault kind '502'"):
        FaultPlan(rate=0.1, kinds=("502",))
    with pytest.raises(InputError, match=r"outside 0\.\.1"):
        FaultPlan(rate=2)


def test_latency_is_added() -> None:
    with Emulator(load_estate(None), latency=0.1) as emulator:
        started = time.perf_counter()
        httpx.get(emulator.gateway_url + "/x")
        assert time.perf_counter() - started >= 0.1
        assert emulator.requests[0].duration >= 0.1


def test_only_loopback_hosts() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):
        with pytest.raises(InputError, match=r"loopback|not an IP"):
            Emulator(load_estate(None), host=host).start()


def test_generated_estate_for_benchmarks() -> None:
    estate = generate_estate(50, 60)
    with Emulator(estate) as emulator, httpx.Client(headers={"Authorization": "Bearer x"}) as client:
        sub = emulator.env()["AZURE_SUBSCRIPTION_ID"]
        base = f"{emulator.arm_url}/subscriptions/{sub}/resourceGroups/{emulator.env()['RESOURCE_GROUP']}"
        accounts, _ = collect(
            client, f"{base}/providers/Microsoft.CognitiveServices/accounts", {"api-version": API_VERSION}
        )
        assert len(accounts) == 50
        deployments, pages = collect(
            client,
            f"{base}/providers/Microsoft.CognitiveServices/accounts/foundry50-bench/deployments",
            {"api-version": API_VERSION},
        )
        assert (len(deployments), pages) == (60, 1)


# ------------------------------------------------------------------------------------ estate errors


def test_unknown_key_has_location_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "estate.yaml"
    path.write_text(
        "subscriptions:\n"
        "  - id: 00000000-0000-0000-0000-00000000000a\n"
        "    resource_groups:\n"
        "      - name: rg\n"
        "        location: uksouth\n"
        "        acounts: []\n"
    )
    with pytest.raises(ValidationFailed) as caught:
        load_estate(path)
    (problem,) = caught.value.problems
    assert (problem.location.line, problem.location.column) == (6, 9)
    assert problem.message == "unknown key 'acounts'; did you mean 'accounts'?"
    assert str(caught.value).startswith(f"{path}:6:9: unknown key")


def test_estate_value_and_reference_errors() -> None:
    text = (
        "subscriptions:\n"
        "  - id: not-a-guid\n"
        "    resource_groups:\n"
        "      - name: rg\n"
        "        location: uksouth\n"
        "        accounts:\n"
        "          - name: a1\n"
        "            deployments:\n"
        "              - {name: d, model: m, version: 1, capacity: lots}\n"
    )
    with pytest.raises(ValidationFailed) as caught:
        parse_estate(text, source="e.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("e.yaml:2:9: id: 'not-a-guid' is not a GUID")
    assert lines[1].startswith("e.yaml:9:59: capacity: input should be a valid integer")
    fixed = text.replace("not-a-guid", "00000000-0000-0000-0000-00000000000a").replace("lots", "1")
    broken = fixed + (
        "        apim:\n"
        "          - name: apim\n"
        "            subscription_keys: [k]\n"
        "            apis:\n"
        "              - {id: x, path: p, backends: [a2], operations: []}\n"
    )
    with pytest.raises(ValidationFailed, match=r"e.yaml:14:45: backend 'a2' is not an account"):
        parse_estate(broken, source="e.yaml")
    with pytest.raises(ValidationFailed, match=r"capabilities\b|did you mean 'imageGenerations'"):
        parse_estate(fixed.replace("capacity: 1", "capabilities: [imageGeneration]"), source="e.yaml")


def test_estate_yaml_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"e.yaml:3:1: invalid YAML: .*from line 2 column 5"):
        parse_estate("subscriptions:\n  - [unclosed\n", source="e.yaml")
    with pytest.raises(ValidationFailed, match=r"e.yaml:1:1: an estate file must be a mapping"):
        parse_estate("- just a list\n", source="e.yaml")
    with pytest.raises(InputError, match="estate file not found"):
        load_estate(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------- official clients


class _StaticCredential:
    """A TokenCredential for the emulator, which accepts any bearer token."""

    def get_token(self, *_scopes: str, **_kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("emulator-token", int(time.time()) + 3600)


def test_cognitive_services_sdk_lists_deployments(emu: Emulator) -> None:
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    env = emu.env()
    client = CognitiveServicesManagementClient(
        _StaticCredential(),
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=emu.arm_url,
    )
    # azure-core's bearer policy refuses plain http unless the call says enforce_https=False
    deployments: list[Any] = list(client.deployments.list(RG, FOUNDRY1, enforce_https=False))
    assert [(d.name, d.properties.model.name, d.properties.model.version) for d in deployments] == SEED_TABLE
    assert deployments[8].properties.capabilities == {"imageGenerations": "true"}
    assert deployments[8].sku.name == "GlobalStandard"


def test_apim_sdk_lists_operations(emu: Emulator) -> None:
    from azure.mgmt.apimanagement import ApiManagementClient

    env = emu.env()
    client = ApiManagementClient(
        _StaticCredential(),
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=emu.arm_url,
    )
    operations: list[Any] = list(
        client.api_operation.list_by_api(RG, env["APIM_SERVICE_NAME"], "inference-api", enforce_https=False)
    )
    by_name = {op.name: op for op in operations}
    assert set(by_name) == {"ChatCompletions_Create", "ImageGenerations_Create", "embeddings_create"}
    image = by_name["ImageGenerations_Create"]
    assert image.method == "POST"
    assert image.url_template.startswith("/deployments/{deployment-id}/images/generations")
    assert [p.name for p in image.template_parameters] == ["deployment-id", "api-version"]


def test_openai_client_generates_images_and_chats(emu: Emulator) -> None:
    import openai

    env = emu.env()
    # AzureOpenAI appends /openai/deployments/{model}/..., so the endpoint is the API path minus "openai"
    client = openai.AzureOpenAI(
        azure_endpoint=f"{env['APIM_GATEWAY_URL']}/{env['INFERENCE_API_PATH']}",
        api_key=env["APIM_API_KEY"],
        api_version=DATA_VERSION,
        max_retries=0,
    )
    images = client.images.generate(model="FLUX-1.1-pro", prompt="A futuristic city", response_format="b64_json")
    assert images.data is not None
    assert read_png_header(base64.b64decode(images.data[0].b64_json or "")).width == 64
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content
    assert chat.usage is not None and chat.usage.total_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="dall-e-3", prompt="A futuristic city")


# ---------------------------------------------------------------------------------------- plumbing


def test_png_is_deterministic_and_checked() -> None:
    assert render_png("x") == render_png("x")
    assert render_png("x") != render_png("y")
    header = read_png_header(render_png("x", width=16, height=9))
    assert (header.width, header.height) == (16, 9)
    with pytest.raises(ValueError, match="not a PNG"):
        read_png_header(b"GIF89a" + bytes(40))


def test_serve_forever_prints_urls_and_stops() -> None:
    from runbook.azure.emulator import serve_forever

    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=serve_forever, kwargs={"echo": lines.append, "stop": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        text = "\n".join(lines)
        assert "emulator-apim-key-0000-not-a-secret" in text
        gateway = next(line.split()[-1] for line in text.splitlines() if line.strip().startswith("gateway"))
        assert httpx.get(gateway + "/nowhere").status_code == 404
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


# ------------------------------------------------------------------------------ the `runbook emulator` command


@contextmanager
def cli_emulator(*args: str) -> Iterator[dict[str, str]]:
    """`runbook emulator ARGS` in a child process (the real entry point); yields its printed URLs."""
    child = subprocess.Popen(
        [sys.executable, "-c", "from runbook.cli import main; main()", "emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        urls: dict[str, str] = {}
        for line in child.stdout:
            words = line.split()
            if len(words) == 2 and words[0] in ("ARM", "gateway"):
                urls[words[0]] = words[1]
            if line.startswith("press Ctrl-C"):
                break
        assert set(urls) == {"ARM", "gateway"}, child.stderr.read() if child.stderr else ""
        yield urls
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def test_cli_refuses_a_non_loopback_host() -> None:
    result = invoke(["emulator", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "error: the emulator listens on loopback only, not on '0.0.0.0'" in result.stderr
    assert "hint: use 127.0.0.1 (or ::1)" in result.stderr
    assert "Traceback" not in result.output
    assert "ARM" not in result.stdout  # refused before anything was served


def test_cli_fault_options_need_a_rate_and_known_kinds() -> None:
    without_rate = invoke(["emulator", "--fault-kinds", "500"])
    assert without_rate.exit_code == 2
    assert "--fault-kinds needs --fault-rate" in without_rate.stderr
    unknown = invoke(["emulator", "--fault-rate", "1", "--fault-kinds", "502"])
    assert unknown.exit_code == 2
    assert "unknown fault kind '502'" in unknown.stderr
    assert "did you mean '503'?" in unknown.stderr


def test_cli_fault_kinds_reach_the_server() -> None:
    with cli_emulator("--fault-rate", "1", "--fault-kinds", "500") as urls:
        response = httpx.get(f"{urls['ARM']}/subscriptions", headers={"Authorization": "Bearer x"})
        assert response.status_code == 500
        assert response.headers["x-runbook-fault"] == "500"
        assert response.json()["error"]["code"] == "InternalServerError"
        assert httpx.get(f"{urls['gateway']}/x").status_code == 500


def _gateway_statuses(gateway_url: str) -> list[int]:
    with httpx.Client() as client:
        return [client.get(gateway_url + "/x").status_code for _ in range(16)]


def test_cli_seed_reaches_the_server() -> None:
    plan = FaultPlan(rate=0.5, kinds=("429", "503"))
    expected = {}
    for seed in (0, 7):  # 0 is the default seed: the CLI must not give its sequence for --seed 7
        with Emulator(load_estate(None), faults=plan, seed=seed) as emulator:
            expected[seed] = _gateway_statuses(emulator.gateway_url)
    assert expected[0] != expected[7]
    assert {429, 503} <= set(expected[7]) and 404 in expected[7]
    with cli_emulator("--fault-rate", "0.5", "--fault-kinds", "429,503", "--seed", "7") as urls:
        assert _gateway_statuses(urls["gateway"]) == expected[7]
