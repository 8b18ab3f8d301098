"""Azure AI Search in the emulator: `Microsoft.Search/searchServices` in ARM and its data plane.

ARM: services are store-backed (`arm_writes`): a PUT creates one (a long-running operation, as in
Azure), DELETE removes it. The data plane is under `/_emulator/search/{service}/` on the gateway
server: `GET indexes?api-version=...` with an `api-key` header lists the index names. A service that
does not exist answers 404, as the lab saw when the service was never deployed.
"""

from __future__ import annotations

from urllib.parse import unquote

from runbook.azure.emulator.arm import ArmCall, ArmFailureError
from runbook.azure.emulator.arm_shapes import digest, group_id, system_data
from runbook.azure.emulator.arm_writes import StoredType, resource_id_of
from runbook.azure.emulator.state import ArmStore
from runbook.azure.emulator.transport import Json, Request, Response, json_response
from runbook.azure.estate import Estate, ResourceGroup, SearchService, Subscription

__all__ = ["API_VERSION", "SEARCH", "admin_keys", "dataplane", "seed", "service_json"]

API_VERSION = "2023-11-01"
TYPE = "Microsoft.Search/searchServices"
COLLECTION = "subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.search/searchservices"
PREFIX = "/_emulator/search"


def endpoint(gateway_url: str, name: str) -> str:
    return f"{gateway_url}{PREFIX}/{name}"


def service_json(sub: Subscription, group: ResourceGroup, service: SearchService, gateway_url: str = "") -> Json:
    resource_id = f"{group_id(sub, group)}/providers/{TYPE}/{service.name}"
    return {
        "id": resource_id,
        "name": service.name,
        "type": TYPE,
        "location": service.location or group.location,
        "tags": {},
        "sku": {"name": service.sku},
        "properties": {
            "replicaCount": 1,
            "partitionCount": 1,
            "status": "running",
            "statusDetails": "",
            "provisioningState": "succeeded",
            "hostingMode": "default",
            "publicNetworkAccess": "enabled",
            "endpoint": endpoint(gateway_url, service.name),
            "indexes": list(service.indexes),  # emulator extension: the data plane's index names
            "disableLocalAuth": False,
        },
        "systemData": system_data(),
        "etag": '"' + digest("etag", resource_id)[:16] + '"',
    }


def _template(call: ArmCall, resource_id: str, name: str) -> Json:
    for sub, group in call.estate.groups():
        if sub.id == call.params["sub"].lower() and group.name.lower() == call.params["rg"].lower():
            fresh = service_json(sub, group, SearchService(name=name), call.gateway_url)
            fresh["id"] = resource_id
            return fresh
    raise ArmFailureError(404, "ResourceGroupNotFound", f"Resource group '{call.params['rg']}' could not be found.")


def _refresh(call: ArmCall, resource: Json) -> Json:
    resource.setdefault("properties", {})["endpoint"] = endpoint(call.gateway_url, resource["name"])
    return resource


SEARCH = StoredType(
    type_name=TYPE,
    operations="Services",
    collection=COLLECTION,
    namespace="Microsoft.Search",
    template=_template,
    lro=True,
    item_param="search",
    refresh=_refresh,
)


def seed(estate: Estate, store: ArmStore) -> None:
    for sub, group in estate.groups():
        for service in group.search:
            store.seed(service_json(sub, group, service))


def _key_of(estate: Estate, name: str) -> str:
    for _, group in estate.groups():
        for service in group.search:
            if service.name.lower() == name.lower():
                return service.admin_key
    return SearchService(name="x").admin_key


def admin_keys(call: ArmCall) -> Json:
    """`POST .../searchServices/{s}/listAdminKeys`."""
    if call.store.get(resource_id_of(call).rsplit("/", 1)[0]) is None:
        raise ArmFailureError(404, "ResourceNotFound", f"The search service '{call.params['search']}' was not found.")
    key = _key_of(call.estate, call.params["search"])
    return {"primaryKey": key, "secondaryKey": key + "-2"}


def dataplane(request: Request, estate: Estate, store: ArmStore, rest: list[str]) -> Response:
    """Answer `/_emulator/search/{service}/...` (`rest` starts with the service name)."""
    name = unquote(rest[0]) if rest else ""
    resource = next(
        (r for r in store.under("/subscriptions") if r.get("type") == TYPE and r["name"].lower() == name.lower()), None
    )
    if resource is None:
        # a service that was never deployed: no such host in Azure; the emulator answers a bare 404
        return json_response(404, {"error": {"code": "ResourceNotFound", "message": f"No search service '{name}'."}})
    if request.headers.get("api-key") != _key_of(estate, name):
        return json_response(
            403, {"error": {"code": "Forbidden", "message": "Access denied: invalid or missing api-key."}}
        )
    if not request.query_value("api-version"):
        return json_response(
            400,
            {"error": {"code": "MissingRequiredParameter", "message": "The api-version query parameter is required."}},
        )
    if [part.lower() for part in rest[1:]] == ["indexes"]:
        names = resource.get("properties", {}).get("indexes", [])
        return json_response(200, {"value": [{"name": index, "fields": []} for index in names]})
    return json_response(404, {"error": {"code": "ResourceNotFound", "message": "The resource was not found."}})
