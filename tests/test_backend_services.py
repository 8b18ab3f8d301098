"""The emulator's backend world of phase 1.6, over real loopback HTTP: Cosmos DB behind its firewall,
AI Search absent, Log Analytics fed by APIM diagnostic settings, backend pools and region-header
policies, account listKeys and models; read through the official SDKs where one exists."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runbook.azure.emulator import Emulator
from runbook.azure.estate import ValidationFailed, load_estate, parse_estate

RG = "lab-master-lab"
APIM = "apim-pavavy6pu5hpa"
COSMOS = "cosmos-pavavy6pu5hpa"
CUSTOMER_ID = "7c1d3f2a-5b6e-4a8f-9d0c-1e2f3a4b5c6d"
BEARER = {"Authorization": "Bearer emulator-token"}


class _Credential:
    def get_token(self, *_scopes: str, **_kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("emulator-token", int(time.time()) + 3600)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(load_estate()) as emulator:
        yield emulator


def _group(emu: Emulator) -> str:
    return f"{emu.arm_url}/subscriptions/{emu.env()['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{RG}"


def _cosmos_query(emu: Emulator) -> httpx.Response:
    url = emu.env()["COSMOS_ENDPOINT"] + "dbs/labdb/colls/conversations/docs"
    return httpx.post(url, json={"query": "SELECT * FROM c"}, headers={"authorization": "type=master&sig=x"})


def _lb_chat(emu: Emulator, deployment: str = "gpt-4o-mini") -> httpx.Response:
    url = f"{emu.gateway_url}/lb/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21"
    return httpx.post(
        url, json={"messages": [{"role": "user", "content": "hi"}]}, headers={"api-key": emu.subscription_key}
    )


def test_cosmos_firewall_blocks_the_lab_ip_until_an_ip_rule_allows_it(emu: Emulator) -> None:
    from azure.mgmt.cosmosdb import CosmosDBManagementClient
    from azure.mgmt.cosmosdb.models import DatabaseAccountUpdateParameters, IpAddressOrRange

    blocked = _cosmos_query(emu)
    assert blocked.status_code == 403 and blocked.json()["code"] == "Forbidden"
    assert blocked.json()["message"].startswith(
        "Request originated from IP 79.97.178.198 through public internet. This is blocked by your Cosmos DB "
        "account firewall settings."
    )
    client = CosmosDBManagementClient(_Credential(), emu.env()["AZURE_SUBSCRIPTION_ID"], base_url=emu.arm_url)
    account = client.database_accounts.get(RG, COSMOS, enforce_https=False)
    assert [r.ip_address_or_range for r in account.ip_rules] == ["203.0.113.0/24"]
    assert account.public_network_access == "Enabled"
    rules = [*account.ip_rules, IpAddressOrRange(ip_address_or_range="79.97.178.198")]
    poller = client.database_accounts.begin_update(
        RG, COSMOS, DatabaseAccountUpdateParameters(ip_rules=rules), enforce_https=False, polling_interval=0
    )
    updated = poller.result()  # the SDK polls Azure-AsyncOperation until Succeeded
    assert updated.provisioning_state == "Succeeded"
    assert [r.ip_address_or_range for r in updated.ip_rules] == ["203.0.113.0/24", "79.97.178.198"]
    allowed = _cosmos_query(emu)
    assert allowed.status_code == 200 and allowed.json()["_count"] == 2
    keys = client.database_accounts.list_keys(RG, COSMOS, enforce_https=False)
    assert keys.primary_master_key == "emulator-cosmos-key1-not-a-secret"


def test_search_absent_answers_404_in_arm_and_on_the_data_plane(emu: Emulator) -> None:
    env = emu.env()
    assert (
        httpx.get(
            env["AZURE_SEARCH_ENDPOINT"] + "/indexes?api-version=2024-07-01", headers={"api-key": "k"}
        ).status_code
        == 404
    )
    got = httpx.get(
        f"{_group(emu)}/providers/Microsoft.Search/searchServices/search-pavavy6pu5hpa?api-version=2023-11-01",
        headers=BEARER,
    )
    assert got.status_code == 404 and got.json()["error"]["code"] == "ResourceNotFound"


def test_log_analytics_path_not_found_then_rows_once_diagnostics_send(emu: Emulator) -> None:
    env = emu.env()
    base = env["LOG_ANALYTICS_ENDPOINT"] + "/v1/workspaces"
    wrong = httpx.post(f"{base}/{env['LOG_ANALYTICS_WORKSPACE']}/query", json={"query": "ApiManagementGatewayLogs"})
    assert wrong.status_code == 404
    assert wrong.json() == {"error": {"code": "PathNotFoundError", "message": "The requested path does not exist"}}
    count = {"query": "ApiManagementGatewayLogs | count"}
    assert _lb_chat(emu).status_code == 200
    assert httpx.post(f"{base}/{CUSTOMER_ID}/query", json=count).json()["tables"][0]["rows"] == [[0]]
    workspace = f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/log-pavavy6pu5hpa"
    setting = f"{_group(emu)}/providers/Microsoft.ApiManagement/service/{APIM}/providers/Microsoft.Insights/diagnosticSettings/to-logs?api-version=2021-05-01-preview"
    body = {"properties": {"workspaceId": workspace, "logs": [{"categoryGroup": "allLogs", "enabled": True}]}}
    assert httpx.put(setting, json=body, headers=BEARER).status_code == 201
    assert _lb_chat(emu).status_code == 200
    table = httpx.post(f"{base}/{CUSTOMER_ID}/query", json={"query": "ApiManagementGatewayLogs"}).json()["tables"][0]
    assert [c["name"] for c in table["columns"]][:2] == ["TimeGenerated", "OperationId"]
    assert len(table["rows"]) == 1 and table["rows"][0][1] == "ChatCompletions_Create"


def test_pool_balances_and_headers_come_only_from_the_policy(emu: Emulator) -> None:
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.mgmt.apimanagement.models import PolicyContract

    first = [_lb_chat(emu) for _ in range(3)]
    assert all(r.status_code == 200 for r in first)
    assert all("x-ms-region" not in r.headers and "x-ms-backend-id" not in r.headers for r in first)
    client = ApiManagementClient(_Credential(), emu.env()["AZURE_SUBSCRIPTION_ID"], base_url=emu.arm_url)
    backends = {b.name: b for b in client.backend.list_by_service(RG, APIM, enforce_https=False)}
    assert backends["foundry4-backend"].url == "https://foundry4-pavavy6pu5hpa.openai.azure.com/openai"
    xml = (
        "<policies><inbound><base /></inbound><backend><base /></backend><outbound><base />"
        '<set-header name="x-ms-region" exists-action="override"><value>@(context.Deployment.Region)</value></set-header>'
        '<set-header name="x-ms-backend-id" exists-action="override"><value>@(context.Backend.Id)</value></set-header>'
        "</outbound><on-error><base /></on-error></policies>"
    )
    client.api_policy.create_or_update(
        RG, APIM, "lb-api", "policy", PolicyContract(format="rawxml", value=xml), enforce_https=False
    )
    assert "x-ms-region" in client.api_policy.get(RG, APIM, "lb-api", "policy", enforce_https=False).value
    answers = [_lb_chat(emu) for _ in range(3)]
    assert {r.headers["x-ms-region"] for r in answers} == {"uksouth", "eastus", "swedencentral"}
    assert {r.headers["x-ms-backend-id"] for r in answers} == {
        "foundry1-backend",
        "foundry2-backend",
        "foundry3-backend",
    }
    missing = _lb_chat(emu, "gpt-4-turbo")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "DeploymentNotFound"
    assert "x-ms-backend-id" in missing.headers


def test_a_pool_member_pointing_nowhere_answers_404(emu: Emulator) -> None:
    backend = f"{_group(emu)}/providers/Microsoft.ApiManagement/service/{APIM}/backends/lb-pool?api-version=2024-05-01"
    pool = httpx.get(backend, headers=BEARER).json()
    standby = [m for m in pool["properties"]["pool"]["services"] if m["priority"] == 2]
    patched = httpx.patch(backend, json={"properties": {"pool": {"services": standby}}}, headers=BEARER)
    assert patched.status_code == 200
    assert _lb_chat(emu).status_code == 404


def test_account_keys_and_models_with_deprecation(emu: Emulator) -> None:
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    client = CognitiveServicesManagementClient(_Credential(), emu.env()["AZURE_SUBSCRIPTION_ID"], base_url=emu.arm_url)
    keys = client.accounts.list_keys(RG, "foundry1-pavavy6pu5hpa", enforce_https=False)
    assert keys.key1 == "emulator-account-key1-not-a-secret"
    url = f"{_group(emu)}/providers/Microsoft.CognitiveServices/accounts/foundry2-pavavy6pu5hpa/models?api-version=2025-06-01"
    models = httpx.get(url, headers=BEARER).json()["value"]
    retiring = [m for m in models if m["lifecycleStatus"] == "Deprecating"]
    assert [(m["name"], m["version"], m["deprecation"]["inference"]) for m in retiring] == [
        ("gpt-4o", "2024-05-13", "2025-12-15T00:00:00Z")
    ]


def test_resources_list_filters_and_unknown_routes_keep_invalid_resource_type(emu: Emulator) -> None:
    url = f"{_group(emu)}/resources"
    got = httpx.get(
        url,
        params={"api-version": "2021-04-01", "$filter": "resourceType eq 'Microsoft.OperationalInsights/workspaces'"},
        headers=BEARER,
    )
    assert [r["name"] for r in got.json()["value"]] == ["log-pavavy6pu5hpa"]
    bad = httpx.get(url, params={"api-version": "2021-04-01", "$filter": "location eq 'x'"}, headers=BEARER)
    assert bad.status_code == 400
    unknown = httpx.get(f"{_group(emu)}/providers/Microsoft.Foo/bars?api-version=1", headers=BEARER)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "InvalidResourceType"


def test_estate_errors_point_at_the_line_with_a_suggestion() -> None:
    text = """subscriptions:
  - id: 5f3c1e2d-0b4a-4c6e-9d8f-7a1b2c3d4e5f
    resource_groups:
      - name: rg
        location: uksouth
        cosmos:
          - name: c1
            ip_rule: [1.2.3.4]
"""
    with pytest.raises(ValidationFailed, match=r"e.yaml:8:13: unknown key 'ip_rule'; did you mean 'ip_rules'"):
        parse_estate(text, source="e.yaml")
    with pytest.raises(ValidationFailed, match=r"not an IP address or CIDR range"):
        parse_estate(text.replace("ip_rule:", "ip_rules:").replace("1.2.3.4", "1.2.3.400"), source="e.yaml")
