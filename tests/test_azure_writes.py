"""ARM writes in the emulator (etags, 412, 409, async operations, the state file) and the write actions
(azure.update / azure.create / azure.list): idempotence, dry-run sending nothing, fix-only writes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from runbook import actions
from runbook.actions import ActionContext, Result
from runbook.azure.emulator import Emulator
from runbook.azure.estate import load_estate
from runbook.errors import ActionError
from runbook.secrets import Redactor
from runbook.targets import TargetSession

RG = "lab-master-lab"
BEARER = {"Authorization": "Bearer emulator-token"}
COSMOS_VERSION = "2024-11-15"


def _cosmos_id(emu: Emulator) -> str:
    sub = emu.env()["AZURE_SUBSCRIPTION_ID"]
    return (
        f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-pavavy6pu5hpa"
    )


def _url(emu: Emulator, resource_id: str, version: str = COSMOS_VERSION) -> str:
    return f"{emu.arm_url}{resource_id}?api-version={version}"


def _context(emu: Emulator, *, stage: str = "fix", dry_run: bool = False) -> ActionContext:
    env = emu.env()
    settings = {
        "arm_url": emu.arm_url,
        "gateway_url": emu.gateway_url,
        "subscription_id": env["AZURE_SUBSCRIPTION_ID"],
        "resource_group": env["RESOURCE_GROUP"],
        "apim_service": env["APIM_SERVICE_NAME"],
        "credential": "emulator",
    }
    return ActionContext(
        workspace_root=Path.cwd(),
        step_id="step",
        stage=stage,
        dry_run=dry_run,
        redactor=Redactor(),
        target=TargetSession(name="t", kind="emulator", settings=settings, env={}),
        timeout=None,
        stop=threading.Event(),
    )


def _run(name: str, ctx: ActionContext, **params: Any) -> Result:
    spec = actions.get(name)
    return spec.func(spec.params.model_validate(params), ctx)


def test_put_patch_delete_with_etags_412_409_and_polling() -> None:
    with Emulator(load_estate(), lro_polls=2) as emu:
        url = _url(emu, _cosmos_id(emu))
        etag = httpx.get(url, headers=BEARER).json()["etag"]
        stale = httpx.patch(url, json={"tags": {"a": "1"}}, headers={**BEARER, "If-Match": '"stale"'})
        assert stale.status_code == 412 and stale.json()["error"]["code"] == "PreconditionFailed"
        first = httpx.patch(url, json={"tags": {"a": "1"}}, headers={**BEARER, "If-Match": etag})
        assert first.status_code == 200 and first.json()["properties"]["provisioningState"] == "Updating"
        assert first.json()["etag"] != etag and first.headers["etag"] == first.json()["etag"]
        busy = httpx.patch(url, json={"tags": {"b": "2"}}, headers=BEARER)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "AnotherOperationInProgress"
        status_url = first.headers["azure-asyncoperation"]
        states = [httpx.get(status_url, headers=BEARER).json()["status"] for _ in range(3)]
        assert states == ["InProgress", "InProgress", "Succeeded"]
        assert httpx.get(url, headers=BEARER).json()["properties"]["provisioningState"] == "Succeeded"
        deleted = httpx.delete(url, headers=BEARER)
        assert deleted.status_code == 202
        location = deleted.headers["location"]
        assert [httpx.get(location, headers=BEARER).status_code for _ in range(3)] == [202, 202, 204]
        assert httpx.get(url, headers=BEARER).status_code == 404
        created = httpx.put(url, json={"location": "uksouth", "properties": {"ipRules": []}}, headers=BEARER)
        assert created.status_code == 201 and created.json()["properties"]["provisioningState"] == "Creating"
        assert created.json()["properties"]["documentEndpoint"].startswith(emu.gateway_url)
        invalid = httpx.put(
            _url(emu, _cosmos_id(emu).replace("pavavy6pu5hpa", "other")),
            json={"location": "uksouth", "properties": {"ipRules": [{"ipAddressOrRange": "nope"}]}},
            headers=BEARER,
        )
        assert invalid.status_code == 400 and "nope" in invalid.json()["error"]["message"]


def test_state_file_keeps_the_world_between_emulators(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with Emulator(load_estate(), state_file=state, lro_polls=0) as emu:
        url = _url(emu, _cosmos_id(emu))
        assert not state.exists()  # reads change nothing, so nothing is saved
        httpx.get(url, headers=BEARER)
        assert not state.exists()
        httpx.patch(url, json={"properties": {"publicNetworkAccess": "Disabled"}}, headers=BEARER)
    with Emulator(load_estate(), state_file=state) as again:
        body = httpx.get(_url(again, _cosmos_id(again)), headers=BEARER).json()
        assert body["properties"]["publicNetworkAccess"] == "Disabled"
        assert body["properties"]["documentEndpoint"].startswith(again.gateway_url)


def test_update_is_idempotent_waits_for_the_operation_and_records_the_cli() -> None:
    with Emulator(load_estate(), lro_polls=1) as emu:
        params = {
            "id": _cosmos_id(emu),
            "api_version": COSMOS_VERSION,
            "append": {"properties.ipRules": [{"ipAddressOrRange": "79.97.178.198"}]},
            "poll_interval": 0,
        }
        done = _run("azure.update", _context(emu), **params)
        assert done.status == "changed" and done.output["sent"] and done.output["method"] == "PATCH"
        assert done.output["operation_status"] == "Succeeded" and done.output["polls"] == 2
        assert done.output["provisioning_state"] == "Succeeded"
        assert done.output["changed_paths"] == ["properties.ipRules"]
        assert done.output["az_cli"] == (
            "az cosmosdb update --name cosmos-pavavy6pu5hpa --resource-group lab-master-lab "
            "--ip-range-filter 203.0.113.0/24,79.97.178.198"
        )
        assert "Networking" in done.output["portal"]
        emu.clear_requests()
        again = _run("azure.update", _context(emu), **params)
        assert again.status == "ok" and not again.output["sent"] and again.output["method"] == "NONE"
        assert [r.method for r in emu.requests] == ["GET"]


def test_dry_run_sends_nothing_and_shows_the_diff() -> None:
    with Emulator(load_estate()) as emu:
        result = _run(
            "azure.update",
            _context(emu, dry_run=True),
            id=_cosmos_id(emu),
            api_version=COSMOS_VERSION,
            properties={"publicNetworkAccess": "Disabled"},
        )
        assert result.status == "changed" and not result.output["sent"]
        assert '-    "publicNetworkAccess": "Enabled"' in result.diff
        assert '+    "publicNetworkAccess": "Disabled"' in result.diff
        assert {r.method for r in emu.requests} == {"GET"}


def test_writes_are_refused_outside_fix() -> None:
    with Emulator(load_estate()) as emu:
        for stage in ("discovery", "verify"):
            with pytest.raises(ActionError, match="runs only in `fix` steps"):
                _run("azure.update", _context(emu, stage=stage), id=_cosmos_id(emu), api_version=COSMOS_VERSION)
        assert emu.requests == []


def test_create_puts_once_then_is_ok_and_list_filters_by_type() -> None:
    with Emulator(load_estate()) as emu:
        resource_id = _cosmos_id(emu).replace("DocumentDB/databaseAccounts/cosmos", "Search/searchServices/search")
        body = {"location": "uksouth", "sku": {"name": "basic"}, "properties": {"replicaCount": 1}}
        params = {"id": resource_id, "api_version": "2023-11-01", "body": body, "poll_interval": 0}
        made = _run("azure.create", _context(emu), **params)
        assert made.status == "changed" and made.output["status"] == 201
        assert made.output["operation_status"] == "Succeeded"
        assert made.output["az_cli"].startswith("az search service create --name search-pavavy6pu5hpa")
        assert _run("azure.create", _context(emu), **params).status == "ok"
        listed = _run("azure.list", _context(emu, stage="discovery"), type="Microsoft.Search/searchServices")
        assert listed.output["names"] == ["search-pavavy6pu5hpa"]
        search = emu.env()["AZURE_SEARCH_ENDPOINT"]
        assert (
            httpx.get(
                f"{search}/indexes?api-version=2024-07-01", headers={"api-key": "emulator-search-key-not-a-secret"}
            ).status_code
            == 200
        )


def test_serve_forever_loads_and_names_the_state_file(tmp_path: Path) -> None:
    from runbook.azure.emulator import serve_forever

    state = tmp_path / "state.json"
    with Emulator(load_estate(), state_file=state, lro_polls=0) as emu:
        httpx.patch(_url(emu, _cosmos_id(emu)), json={"tags": {"kept": "yes"}}, headers=BEARER)
    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=serve_forever, kwargs={"echo": lines.append, "stop": stop, "state_file": state})
    thread.start()
    try:
        for _ in range(200):
            if lines:
                break
            threading.Event().wait(0.05)
        text = "\n".join(lines)
        assert f"state    {state}" in text
        arm = next(line.split()[-1] for line in text.splitlines() if line.strip().startswith("ARM"))
        sub = next(line.split("=")[-1] for line in text.splitlines() if "AZURE_SUBSCRIPTION_ID=" in line)
        resource = f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-pavavy6pu5hpa"
        assert httpx.get(f"{arm}{resource}?api-version={COSMOS_VERSION}", headers=BEARER).json()["tags"] == {
            "kept": "yes"
        }
    finally:
        stop.set()
        thread.join(timeout=10)
