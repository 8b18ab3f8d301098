"""The emulator as the official SDKs see it: HTTPS on loopback with a throwaway CA (default client
settings: no `enforce_https=False`, no `verify=False`), `$filter` on APIM lists, and the Azure OpenAI
answers the SDKs rely on (tool calls, JSON mode, content filters, request-id and rate-limit headers,
the v1 routes with images.edit, real embedding sizes, images of the requested size)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runbook.azure.emulator import Emulator
from runbook.azure.estate import load_estate
from runbook.azure.png import read_png_header, render_png

RG = "lab-master-lab"
FOUNDRY1 = "foundry1-pavavy6pu5hpa"
DATA_VERSION = "2024-10-21"


class _StaticCredential:
    """A TokenCredential for the emulator, which accepts any bearer token."""

    def get_token(self, *_scopes: str, **_kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("emulator-token", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def tls_emu() -> Iterator[Emulator]:
    pytest.importorskip("trustme", reason="trustme is in the test extra")
    with Emulator(load_estate(None), page_size=2, https=True) as emulator:
        yield emulator


@pytest.fixture
def trusted(tls_emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The emulator's environment, exported as a notebook kernel gets it (it names the CA bundle)."""
    env = tls_emu.env()
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, env[name])
    return env


@pytest.fixture(scope="module")
def plain_emu() -> Iterator[Emulator]:
    with Emulator(load_estate(None)) as emulator:
        yield emulator


@pytest.fixture
def gateway(plain_emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=plain_emu.gateway_url, headers={"api-key": plain_emu.subscription_key}) as client:
        yield client


# ------------------------------------------------------------------------------------------ https


def test_https_urls_and_a_ca_only_this_emulator_uses(tls_emu: Emulator) -> None:
    assert tls_emu.arm_url.startswith("https://127.0.0.1:") and tls_emu.gateway_url.startswith("https://")
    assert tls_emu.ca_file is not None and tls_emu.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(httpx.ConnectError):  # the system trust store does not know the throwaway CA
        httpx.get(f"{tls_emu.arm_url}/subscriptions?api-version=2022-12-01")


def test_cognitive_services_sdk_with_default_settings(trusted: dict[str, str], tls_emu: Emulator) -> None:
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    client = CognitiveServicesManagementClient(_StaticCredential(), trusted["AZURE_SUBSCRIPTION_ID"], base_url=tls_emu.arm_url)
    deployments = list(client.deployments.list(RG, FOUNDRY1))  # no enforce_https=False
    assert len(deployments) == 10 and deployments[0].name == "gpt-4o-mini"


def test_apim_sdk_with_default_settings_honours_filter(trusted: dict[str, str], tls_emu: Emulator) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.apimanagement import ApiManagementClient

    client = ApiManagementClient(_StaticCredential(), trusted["AZURE_SUBSCRIPTION_ID"], base_url=tls_emu.arm_url)
    service = trusted["APIM_SERVICE_NAME"]
    everything = list(client.api_operation.list_by_api(RG, service, "inference-api"))
    assert len(everything) == 3
    images = list(client.api_operation.list_by_api(RG, service, "inference-api", filter="contains(urlTemplate,'images')"))
    assert [op.name for op in images] == ["ImageGenerations_Create"]
    named = list(client.api_operation.list_by_api(RG, service, "inference-api", filter="name eq 'embeddings_create'"))
    assert [op.name for op in named] == ["embeddings_create"]
    posts = list(client.api_operation.list_by_api(RG, service, "inference-api", filter="method eq 'POST' and startswith(name,'Chat')"))
    assert [op.name for op in posts] == ["ChatCompletions_Create"]
    with pytest.raises(HttpResponseError) as refused:
        list(client.api_operation.list_by_api(RG, service, "inference-api", filter="colour eq 'blue'"))
    assert refused.value.status_code == 400 and "Supported fields" in str(refused.value)


def test_openai_sdk_with_default_settings(trusted: dict[str, str]) -> None:
    import openai

    client = openai.AzureOpenAI(
        azure_endpoint=f"{trusted['APIM_GATEWAY_URL']}/{trusted['INFERENCE_API_PATH']}",
        api_key=trusted["APIM_API_KEY"],
        api_version=DATA_VERSION,
        max_retries=0,
    )
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content


# --------------------------------------------------------------------------------- chat features


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    }
]


def openai_client(emu: Emulator) -> Any:
    import openai

    env = emu.env()
    return openai.AzureOpenAI(
        azure_endpoint=f"{env['APIM_GATEWAY_URL']}/{env['INFERENCE_API_PATH']}",
        api_key=env["APIM_API_KEY"],
        api_version=DATA_VERSION,
        max_retries=0,
    )


def test_tool_choice_required_returns_tool_calls(plain_emu: Emulator) -> None:
    client = openai_client(plain_emu)
    messages: Any = [{"role": "user", "content": "weather in Paris?"}]
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS, tool_choice="required")
    choice = chat.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "emulated", "unit": "c"}
    named = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    assert named.choices[0].message.tool_calls
    auto = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    assert auto.choices[0].message.content and not auto.choices[0].message.tool_calls


def test_json_mode_returns_json_and_content_filter_fields(gateway: httpx.Client) -> None:
    response = gateway.post(
        "/inference/openai/deployments/gpt-4o-mini/chat/completions",
        params={"api-version": DATA_VERSION},
        json={"messages": [{"role": "user", "content": "as JSON"}], "response_format": {"type": "json_object"}},
    )
    body = response.json()
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)
    assert body["prompt_filter_results"][0]["content_filter_results"]["hate"] == {"filtered": False, "severity": "safe"}
    assert body["choices"][0]["content_filter_results"]["violence"]["severity"] == "safe"
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}}
    structured = gateway.post(
        "/inference/openai/deployments/gpt-4o-mini/chat/completions",
        params={"api-version": DATA_VERSION},
        json={
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        },
    ).json()
    assert json.loads(structured["choices"][0]["message"]["content"]) == {"answer": 0, "tags": ["emulated"]}
    # request id and rate-limit headers, limits from the deployment's capacity (100 units)
    assert response.headers["x-request-id"]
    assert response.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) == 100000 - body["usage"]["total_tokens"]
    assert response.headers["x-ratelimit-remaining-requests"] == "599"


# --------------------------------------------------------------------------- embeddings and images


@pytest.mark.parametrize(("deployment", "size"), [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072)])
def test_embeddings_have_the_models_dimensions(plain_emu: Emulator, deployment: str, size: int) -> None:
    client = openai_client(plain_emu)
    result = client.embeddings.create(model=deployment, input=["a", "b"])
    assert [len(item.embedding) for item in result.data] == [size, size]
    short = client.embeddings.create(model=deployment, input="a", dimensions=256)
    assert len(short.data[0].embedding) == 256


def test_images_have_the_requested_size(plain_emu: Emulator) -> None:
    client = openai_client(plain_emu)
    images = client.images.generate(model="FLUX-1.1-pro", prompt="city", size="1024x1792", response_format="b64_json")
    header = read_png_header(base64.b64decode(images.data[0].b64_json or ""))
    assert (header.width, header.height) == (1024, 1792)


def test_v1_routes_chat_images_and_edit(plain_emu: Emulator) -> None:
    import openai

    env = plain_emu.env()
    client = openai.OpenAI(base_url=f"{env['APIM_GATEWAY_URL']}/{env['INFERENCE_API_PATH']}/openai/v1/", api_key=env["APIM_API_KEY"], max_retries=0)
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-4o-mini" in (chat.choices[0].message.content or "")
    generated = client.images.generate(model="FLUX.1-Kontext-pro", prompt="a lighthouse", size="512x512", response_format="b64_json")
    assert read_png_header(base64.b64decode(generated.data[0].b64_json or "")).width == 512
    edited = client.images.edit(
        model="FLUX.1-Kontext-pro",
        image=("in.png", render_png("source", width=32, height=32), "image/png"),
        prompt="make it night",
        size="256x256",
        response_format="b64_json",
    )
    assert read_png_header(base64.b64decode(edited.data[0].b64_json or "")).height == 256
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-deployment", messages=[{"role": "user", "content": "hi"}])
    unauthorised = openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        unauthorised.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
