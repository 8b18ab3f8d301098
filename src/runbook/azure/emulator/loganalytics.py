"""Log Analytics in the emulator: workspaces, APIM diagnostic settings, and the query API.

ARM: `Microsoft.OperationalInsights/workspaces` and the APIM service's
`providers/Microsoft.Insights/diagnosticSettings` are store-backed (`arm_writes`). The query API is
`POST /_emulator/loganalytics/v1/workspaces/{customerId}/query` on the gateway server, body
`{"query": "<KQL>"}`. An id that is no workspace's `customerId` (its name, or its resource id, say)
answers 404 `PathNotFoundError`. The one table is `ApiManagementGatewayLogs`: one row per gateway
request logged after a diagnostic setting started sending that APIM service's logs to the workspace,
so a workspace nobody sends to answers an empty table. A query ending in `| count` answers one row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import unquote

from runbook.azure.emulator.arm import ArmCall, ArmFailureError
from runbook.azure.emulator.arm_shapes import digest, group_id, system_data
from runbook.azure.emulator.arm_writes import StoredType
from runbook.azure.emulator.state import ArmStore, RequestLogEntry
from runbook.azure.emulator.transport import Json, Request, Response, json_response
from runbook.azure.estate import Estate, Workspace

__all__ = ["API_VERSION", "DIAGNOSTICS", "DIAGNOSTICS_API_VERSION", "WORKSPACES", "query", "seed"]

API_VERSION = "2022-10-01"
DIAGNOSTICS_API_VERSION = "2021-05-01-preview"
TYPE = "Microsoft.OperationalInsights/workspaces"
DIAGNOSTIC_TYPE = "Microsoft.Insights/diagnosticSettings"
COLLECTION = "subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.operationalinsights/workspaces"
DIAGNOSTICS_COLLECTION = (
    "subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.apimanagement/service/{svc}"
    "/providers/microsoft.insights/diagnosticsettings"
)
PREFIX = "/_emulator/loganalytics"
_PATH_NOT_FOUND = {"error": {"code": "PathNotFoundError", "message": "The requested path does not exist"}}


def workspace_json(resource_id: str, workspace: Workspace, location: str) -> Json:
    return {
        "id": resource_id,
        "name": workspace.name,
        "type": TYPE,
        "location": workspace.location or location,
        "tags": {},
        "etag": '"' + digest("etag", resource_id)[:8] + '-0000-0100-0000-000000000000"',
        "properties": {
            "provisioningState": "Succeeded",
            "customerId": workspace.customer_id,
            "sku": {"name": "PerGB2018"},
            "retentionInDays": workspace.retention_days,
            "publicNetworkAccessForIngestion": "Enabled",
            "publicNetworkAccessForQuery": "Enabled",
        },
        "systemData": system_data(),
    }


def _workspace_template(_call: ArmCall, resource_id: str, name: str) -> Json:
    guid = digest("customer", resource_id.lower())
    customer_id = f"{guid[:8]}-{guid[8:12]}-4{guid[13:16]}-8{guid[17:20]}-{guid[20:32]}"
    return workspace_json(resource_id, Workspace(name=name, customer_id=customer_id), "uksouth")


def _diagnostic_template(_call: ArmCall, resource_id: str, name: str) -> Json:
    return {
        "id": resource_id,
        "name": name,
        "type": DIAGNOSTIC_TYPE,
        "properties": {"workspaceId": None, "logs": [], "metrics": [], "logAnalyticsDestinationType": None},
    }


def _diagnostic_valid(resource: Json) -> str | None:
    workspace = resource.get("properties", {}).get("workspaceId")
    if workspace is not None and not str(workspace).lower().startswith("/subscriptions/"):
        return f"workspaceId '{workspace}' must be the workspace's resource id (/subscriptions/...)."
    return None


WORKSPACES = StoredType(
    type_name=TYPE,
    operations="Workspaces",
    collection=COLLECTION,
    namespace="Microsoft.OperationalInsights",
    template=_workspace_template,
    item_param="workspace",
)
DIAGNOSTICS = StoredType(
    type_name=DIAGNOSTIC_TYPE,
    operations="DiagnosticSettings",
    collection=DIAGNOSTICS_COLLECTION,
    namespace="Microsoft.Insights",
    template=_diagnostic_template,
    patch=False,
    item_param="setting",
    validate=_diagnostic_valid,
    list_wrapped=True,
)


def seed(estate: Estate, store: ArmStore) -> None:
    workspace_ids: dict[str, str] = {}
    for sub, group in estate.groups():
        for workspace in group.workspaces:
            resource_id = f"{group_id(sub, group)}/providers/{TYPE}/{workspace.name}"
            workspace_ids[workspace.name.lower()] = resource_id
            store.seed(workspace_json(resource_id, workspace, group.location))
    for sub, group in estate.groups():
        for service in group.apim:
            service_id = f"{group_id(sub, group)}/providers/Microsoft.ApiManagement/service/{service.name}"
            for setting in service.diagnostics:
                store.seed(
                    {
                        "id": f"{service_id}/providers/{DIAGNOSTIC_TYPE}/{setting.name}",
                        "name": setting.name,
                        "type": DIAGNOSTIC_TYPE,
                        "properties": {
                            "workspaceId": workspace_ids[setting.workspace.lower()],
                            "logs": [{"categoryGroup": "allLogs", "enabled": True}],
                            "metrics": [],
                            "logAnalyticsDestinationType": "Dedicated",
                        },
                    }
                )


def _senders(store: ArmStore, workspace_id: str) -> list[float]:
    """When each diagnostic setting that sends logs to `workspace_id` started (epoch seconds)."""
    starts = []
    for resource in store.under("/subscriptions"):
        if str(resource.get("type", "")).lower() != DIAGNOSTIC_TYPE.lower():
            continue
        props = resource.get("properties", {})
        if str(props.get("workspaceId") or "").lower() != workspace_id.lower():
            continue
        if any(isinstance(log, dict) and log.get("enabled") for log in props.get("logs", [])):
            starts.append(float(store.meta(resource["id"]).get("created", 0.0)))
    return starts


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def query(
    request: Request, store: ArmStore, requests: Callable[[], Sequence[RequestLogEntry]], rest: list[str]
) -> Response:
    """Answer `/_emulator/loganalytics/v1/workspaces/{id}/query`."""
    if len(rest) != 4 or rest[0] != "v1" or rest[1] != "workspaces" or rest[3] != "query":
        return json_response(404, _PATH_NOT_FOUND)
    wanted = unquote(rest[2]).lower()
    workspace = next(
        (
            r
            for r in store.under("/subscriptions")
            if r.get("type") == TYPE and str(r.get("properties", {}).get("customerId", "")).lower() == wanted
        ),
        None,
    )
    if workspace is None:
        return json_response(404, _PATH_NOT_FOUND)
    if request.method == "POST":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = None
        text = body.get("query") if isinstance(body, dict) else None
    else:
        text = request.query_value("query")
    if not isinstance(text, str) or not text.strip():
        return json_response(
            400, {"error": {"code": "BadArgumentError", "message": "The request had some invalid properties: query"}}
        )
    starts = _senders(store, workspace["id"])
    since = min(starts) if starts else None
    entries = [
        e
        for e in requests()
        if since is not None and e.server == "gateway" and e.time >= since and not e.path.startswith("/_emulator/")
    ]
    if text.replace(" ", "").lower().endswith("|count"):
        table = {"name": "PrimaryResult", "columns": [{"name": "Count", "type": "long"}], "rows": [[len(entries)]]}
        return json_response(200, {"tables": [table]})
    columns = [
        {"name": "TimeGenerated", "type": "datetime"},
        {"name": "OperationId", "type": "string"},
        {"name": "Method", "type": "string"},
        {"name": "Url", "type": "string"},
        {"name": "ResponseCode", "type": "int"},
        {"name": "TotalTime", "type": "long"},
    ]
    rows = [
        [_stamp(e.time), e.operation or "", e.method, e.path, e.status or 0, round(e.duration * 1000)] for e in entries
    ]
    return json_response(200, {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]})


def workspace_exists(call: ArmCall) -> None:
    for sub, group in call.estate.groups():
        if sub.id == call.params["sub"].lower() and group.name.lower() == call.params["rg"].lower():
            return
    raise ArmFailureError(404, "ResourceGroupNotFound", f"Resource group '{call.params['rg']}' could not be found.")
