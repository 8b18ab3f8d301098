"""Cosmos DB in the emulator: `Microsoft.DocumentDB/databaseAccounts` in ARM and its firewalled data plane.

ARM: accounts are store-backed (`arm_writes`), so PUT/PATCH of `ipRules` or `publicNetworkAccess`
are long-running operations like Azure's; `listKeys` answers the master keys. The data plane lives
on the gateway server under `/_emulator/cosmos/{account}/` (the account's `documentEndpoint`): before
anything else it applies the firewall, answering 403 `Forbidden` with Cosmos DB's own message when the
caller's IP (the estate's `client_ip`; 127.0.0.1 by default) is not allowed. Allowed callers can read
the account, list databases and containers, and query a container (every document is returned).
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import unquote

from runbook.azure.emulator.arm import ArmCall, ArmFailureError
from runbook.azure.emulator.arm_shapes import digest, group_id, system_data
from runbook.azure.emulator.arm_writes import StoredType, resource_id_of
from runbook.azure.emulator.state import ArmStore
from runbook.azure.emulator.transport import Json, Request, Response, json_response
from runbook.azure.estate import CosmosAccount, Estate, ResourceGroup, Subscription

__all__ = ["API_VERSION", "COSMOS", "account_json", "dataplane", "firewall_message", "list_keys", "seed"]

API_VERSION = "2024-11-15"
TYPE = "Microsoft.DocumentDB/databaseAccounts"
COLLECTION = "subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.documentdb/databaseaccounts"
PREFIX = "/_emulator/cosmos"


def firewall_message(ip: str) -> str:
    """Cosmos DB's 403 message for a caller the firewall blocks."""
    return (
        f"Request originated from IP {ip} through public internet. This is blocked by your Cosmos DB account "
        "firewall settings. More info: https://aka.ms/cosmosdb-tsg-forbidden\r\nActivityId: "
        f"{digest('cosmos-activity', ip)[:8]}-0000-0000-0000-000000000000, Microsoft.Azure.Documents.Common/2.14.0"
    )


def endpoint(gateway_url: str, name: str) -> str:
    return f"{gateway_url}{PREFIX}/{name}/"


def account_json(sub: Subscription, group: ResourceGroup, account: CosmosAccount, gateway_url: str = "") -> Json:
    resource_id = f"{group_id(sub, group)}/providers/{TYPE}/{account.name}"
    location = account.location or group.location
    return {
        "id": resource_id,
        "name": account.name,
        "type": TYPE,
        "location": location,
        "kind": "GlobalDocumentDB",
        "tags": {},
        "etag": '"' + digest("etag", resource_id)[:8] + '-0000-0d00-0000-000000000000"',
        "properties": {
            "provisioningState": "Succeeded",
            "documentEndpoint": endpoint(gateway_url, account.name),
            "publicNetworkAccess": account.public_network_access,
            "ipRules": [{"ipAddressOrRange": rule} for rule in account.ip_rules],
            "isVirtualNetworkFilterEnabled": False,
            "virtualNetworkRules": [],
            "databaseAccountOfferType": "Standard",
            "consistencyPolicy": {
                "defaultConsistencyLevel": "Session",
                "maxIntervalInSeconds": 5,
                "maxStalenessPrefix": 100,
            },
            "locations": [{"locationName": location, "failoverPriority": 0, "isZoneRedundant": False}],
            "disableLocalAuth": False,
        },
        "systemData": system_data(),
    }


def _template(call: ArmCall, resource_id: str, name: str) -> Json:
    sub, group = _group_of(call)
    fresh = account_json(sub, group, CosmosAccount(name=name), call.gateway_url)
    fresh["id"] = resource_id
    return fresh


def _group_of(call: ArmCall) -> tuple[Subscription, ResourceGroup]:
    for sub, group in call.estate.groups():
        if sub.id == call.params["sub"].lower() and group.name.lower() == call.params["rg"].lower():
            return sub, group
    raise ArmFailureError(404, "ResourceGroupNotFound", f"Resource group '{call.params['rg']}' could not be found.")


def _refresh(call: ArmCall, resource: Json) -> Json:
    resource.setdefault("properties", {})["documentEndpoint"] = endpoint(call.gateway_url, resource["name"])
    return resource


def _validate(resource: Json) -> str | None:
    props = resource.get("properties", {})
    if props.get("publicNetworkAccess", "Enabled") not in ("Enabled", "Disabled", "SecuredByPerimeter"):
        return "publicNetworkAccess must be Enabled, Disabled or SecuredByPerimeter."
    rules = props.get("ipRules", [])
    if not isinstance(rules, list):
        return "ipRules must be a list of {ipAddressOrRange}."
    for rule in rules:
        value = rule.get("ipAddressOrRange") if isinstance(rule, dict) else None
        try:
            ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            return f"The ipAddressOrRange '{value}' is not a valid IP address or CIDR range."
    return None


COSMOS = StoredType(
    type_name=TYPE,
    operations="DatabaseAccounts",
    collection=COLLECTION,
    namespace="Microsoft.DocumentDB",
    template=_template,
    lro=True,
    item_param="cosmos",
    refresh=_refresh,
    validate=_validate,
)


def seed(estate: Estate, store: ArmStore) -> None:
    for sub, group in estate.groups():
        for account in group.cosmos:
            store.seed(account_json(sub, group, account))


def list_keys(call: ArmCall) -> Json:
    """`POST .../databaseAccounts/{a}/listKeys`: the master keys."""
    if call.store.get(resource_id_of(call).rsplit("/", 1)[0]) is None:
        raise ArmFailureError(404, "ResourceNotFound", f"Database account '{call.params['cosmos']}' was not found.")
    account = _estate_account(call.estate, call.params["cosmos"])
    keys = account.keys if account else CosmosAccount(name="x").keys
    return {
        "primaryMasterKey": keys[0],
        "secondaryMasterKey": keys[1],
        "primaryReadonlyMasterKey": keys[0] + "-ro",
        "secondaryReadonlyMasterKey": keys[1] + "-ro",
    }


def _estate_account(estate: Estate, name: str) -> CosmosAccount | None:
    for _, group in estate.groups():
        for account in group.cosmos:
            if account.name.lower() == name.lower():
                return account
    return None


def _allowed(resource: Json, ip: str) -> bool:
    props = resource.get("properties", {})
    if props.get("publicNetworkAccess", "Enabled") != "Enabled":
        return False
    rules = [r.get("ipAddressOrRange") for r in props.get("ipRules", []) if isinstance(r, dict)]
    if not rules:
        return True  # no rule: every network may connect (Azure's "All networks")
    address = ipaddress.ip_address(ip)
    for rule in rules:
        try:
            if address in ipaddress.ip_network(str(rule), strict=False):
                return True
        except ValueError:
            continue
    return False


def _error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"code": code, "message": message})


def dataplane(request: Request, estate: Estate, store: ArmStore, rest: list[str]) -> Response:
    """Answer `/_emulator/cosmos/{account}/...` (`rest` starts with the account name)."""
    if not rest:
        return _error(404, "NotFound", "Resource Not Found.")
    name = unquote(rest[0])
    resource = next(
        (r for r in store.under("/subscriptions") if r.get("type") == TYPE and r["name"].lower() == name.lower()), None
    )
    if resource is None:
        return _error(404, "NotFound", f"Database account '{name}' does not exist.")
    if not _allowed(resource, estate.client_ip):
        return _error(403, "Forbidden", firewall_message(estate.client_ip))
    if not request.headers.get("authorization"):
        return _error(
            401,
            "Unauthorized",
            "Required Header authorization is missing. Ensure a valid Authorization token is passed.",
        )
    account = _estate_account(estate, name)
    databases = account.databases if account else ()
    path = [unquote(part) for part in rest[1:]]
    if not path:
        return json_response(200, {"id": name, "_self": "", "writableLocations": [], "readableLocations": []})
    if path == ["dbs"]:
        return json_response(200, {"Databases": [{"id": db.name} for db in databases], "_count": len(databases)})
    database = next((db for db in databases if len(path) >= 2 and db.name == path[1]), None)
    if path[0] != "dbs" or database is None:
        return _error(404, "NotFound", "Resource Not Found.")
    if len(path) == 3 and path[2] == "colls":
        return json_response(
            200,
            {"DocumentCollections": [{"id": c.name} for c in database.containers], "_count": len(database.containers)},
        )
    container = next((c for c in database.containers if len(path) >= 4 and c.name == path[3]), None)
    if container is None or len(path) != 5 or path[2] != "colls" or path[4] != "docs":
        return _error(404, "NotFound", "Resource Not Found.")
    if request.method == "POST":
        try:
            query = json.loads(request.body or b"{}")
        except ValueError:
            return _error(400, "BadRequest", "The query body is not valid JSON.")
        if not isinstance(query, dict) or not isinstance(query.get("query"), str):
            return _error(400, "BadRequest", 'The query body must be {"query": "SELECT ..."}.')
    documents = [dict(doc) for doc in container.documents]
    return json_response(200, {"Documents": documents, "_count": len(documents)})
