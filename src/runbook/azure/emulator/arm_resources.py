"""What ARM serves: the table of resource types (`ROUTES`), their handlers and the estate lookups.

Adding a resource type is adding rows here: one `ArmRoute` per operation (name, method, lower-case
path pattern, handler), a handler that finds the estate's objects with the lookups below and returns
its shape from `arm_shapes`, and its words in `SERVES`. A type whose writes are served (its state in
the `ArmStore`) is a `StoredType` given to `arm_writes.stored_routes` with the check of its parent. Lists return a list (paged by `ArmSite`);
gets return a dict; a handler may return a full `Response` (a write's 201/202 with headers); ARM
errors are raised as `ArmFailureError`. ARM names are case-insensitive: compare with `.lower()` and
echo them as the client wrote them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from runbook.azure.emulator import apim_backends, cosmos, loganalytics, search
from runbook.azure.emulator.arm import ArmCall, ArmFailureError, ArmRoute, Listing, not_found
from runbook.azure.emulator.arm_shapes import (
    account_item,
    api_item,
    deployment_item,
    generic_item,
    group_id,
    group_item,
    model_item,
    operation_item,
    service_item,
    subscription_item,
)
from runbook.azure.emulator.arm_writes import OPERATION_ROUTES, stored_routes
from runbook.azure.emulator.odata import API_FIELDS, OPERATION_FIELDS, filter_items
from runbook.azure.emulator.transport import Json, json_text
from runbook.azure.estate import (
    GATEWAY_HOST_SUFFIX,
    Account,
    AccountModel,
    Api,
    ApiManagementService,
    Deployment,
    ResourceGroup,
    Subscription,
)

__all__ = ["ROUTES", "SERVES"]

# -------------------------------------------------------------------------------------- lookups


def subscription(call: ArmCall) -> Subscription:
    found = call.estate.find_subscription(call.params["sub"])
    if found is not None:
        return found
    raise ArmFailureError(404, "SubscriptionNotFound", f"The subscription '{call.params['sub']}' could not be found.")


def group(call: ArmCall) -> tuple[Subscription, ResourceGroup]:
    sub = subscription(call)
    for candidate in sub.resource_groups:
        if candidate.name.lower() == call.params["rg"].lower():
            return sub, candidate
    raise ArmFailureError(404, "ResourceGroupNotFound", f"Resource group '{call.params['rg']}' could not be found.")


def account(call: ArmCall) -> tuple[Subscription, ResourceGroup, Account]:
    sub, rg = group(call)
    found = named(rg.accounts, call.params["account"])
    if found is None:
        raise not_found(rg, f"Microsoft.CognitiveServices/accounts/{call.params['account']}")
    return sub, rg, found


def service(call: ArmCall) -> tuple[Subscription, ResourceGroup, ApiManagementService]:
    sub, rg = group(call)
    found = named(rg.apim, call.params["svc"])
    if found is None:
        raise not_found(rg, f"Microsoft.ApiManagement/service/{call.params['svc']}")
    return sub, rg, found


def api(call: ArmCall) -> tuple[Subscription, ResourceGroup, ApiManagementService, Api]:
    sub, rg, svc = service(call)
    for candidate in svc.apis:
        if candidate.id.lower() == call.params["api"].lower():
            return sub, rg, svc, candidate
    raise ArmFailureError(404, "ResourceNotFound", "Api not found.")


def gateway_of(call: ArmCall, svc: ApiManagementService) -> str:
    """The service's gateway URL on the emulator: the root for a one-service estate, else its own path."""
    if call.estate.apim_count() > 1:
        return f"{call.gateway_url}/{svc.name}{GATEWAY_HOST_SUFFIX}"
    return call.gateway_url


_Named = TypeVar("_Named", Account, ApiManagementService, Deployment)


def named(items: Sequence[_Named], name: str) -> _Named | None:
    """The item called `name`, compared case-insensitively as ARM does."""
    wanted = name.lower()
    for item in items:
        if item.name.lower() == wanted:
            return item
    return None


class _ShapedLists:
    """The JSON texts of a list's items, shaped once per owner (the estate objects on the list's path).

    The estate is frozen while the emulator serves it, so an account's deployments answer the same
    on every page: shaping all of them for each page of 20 was most of a listing's CPU. The key is
    the owners' identities; the entry keeps the owners alive, so an id is never reused while cached.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: dict[tuple[int, ...], tuple[tuple[object, ...], Listing]] = {}

    def get(self, owners: tuple[object, ...], shape: Callable[[], Iterable[Json]]) -> Listing:
        key = tuple(map(id, owners))
        hit = self._entries.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], owners, strict=True)):
            return hit[1]
        listing = Listing(tuple(json_text(item) for item in shape()))
        if len(self._entries) >= self.capacity:  # many estates in one process (tests): start again
            self._entries.clear()
        self._entries[key] = (owners, listing)
        return listing


_SHAPED = _ShapedLists()

# ------------------------------------------------------------------------------------- handlers


def _subscriptions(call: ArmCall) -> list[Json]:
    return [subscription_item(call.estate, sub) for sub in call.estate.subscriptions]


def _subscription_get(call: ArmCall) -> Json:
    return subscription_item(call.estate, subscription(call))


def _groups(call: ArmCall) -> list[Json]:
    sub = subscription(call)
    return [group_item(sub, rg) for rg in sub.resource_groups]


def _group_get(call: ArmCall) -> Json:
    return group_item(*group(call))


def _accounts_in_subscription(call: ArmCall) -> Listing:
    sub = subscription(call)
    return _SHAPED.get((sub,), lambda: (account_item(sub, rg, item) for rg in sub.resource_groups for item in rg.accounts))


def _accounts_in_group(call: ArmCall) -> Listing:
    sub, rg = group(call)
    return _SHAPED.get((sub, rg), lambda: (account_item(sub, rg, item) for item in rg.accounts))


def _account_get(call: ArmCall) -> Json:
    return account_item(*account(call))


def _deployments(call: ArmCall) -> Listing:
    sub, rg, acct = account(call)
    return _SHAPED.get((sub, rg, acct), lambda: (deployment_item(sub, rg, acct, item) for item in acct.deployments))


def _deployment_get(call: ArmCall) -> Json:
    sub, rg, acct = account(call)
    found = named(acct.deployments, call.params["deployment"])
    if found is None:
        raise not_found(rg, f"Microsoft.CognitiveServices/accounts/{acct.name}/deployments/{call.params['deployment']}")
    return deployment_item(sub, rg, acct, found)


def _account_keys(call: ArmCall) -> Json:
    _, _, acct = account(call)
    return {"key1": acct.keys[0], "key2": acct.keys[1]}


def _account_models(call: ArmCall) -> list[Json]:
    _, _, acct = account(call)
    models = acct.models or tuple(
        AccountModel(name=d.model, version=d.version, format=d.format)
        for d in {(d.model, d.version): d for d in acct.deployments}.values()
    )
    return [model_item(model) for model in models]


def _filtered(call: ArmCall, items: list[Json]) -> list[Json]:
    """ARM's `$filter` on a resources list: `resourceType eq '...'` and `name eq '...'` joined by `and`."""
    text = (call.request.query_value("$filter") or "").strip()
    if not text:
        return items
    wanted: dict[str, str] = {}
    for clause in text.split(" and "):
        field, _, rest = clause.strip().partition(" eq ")
        value = rest.strip()
        if (
            field.strip().lower() not in ("resourcetype", "name")
            or len(value) < 2
            or value[0] != "'"
            or value[-1] != "'"
        ):
            raise ArmFailureError(
                400,
                "InvalidFilterInQueryString",
                f"Invalid $filter '{text}': use resourceType eq '<type>' and/or name eq '<name>'.",
            )
        wanted[field.strip().lower()] = value[1:-1].lower()
    return [
        item
        for item in items
        if ("resourcetype" not in wanted or str(item.get("type", "")).lower() == wanted["resourcetype"])
        and ("name" not in wanted or str(item.get("name", "")).lower() == wanted["name"])
    ]


def _top_level(call: ArmCall, prefix: str) -> list[Json]:
    # store-backed resources directly in a resource group: /subscriptions/s/resourceGroups/g/providers/ns/type/name
    return [generic_item(r) for r in call.store.under(prefix) if str(r["id"]).count("/") == 8]


def _resources_in_group(call: ArmCall) -> list[Json]:
    sub, rg = group(call)
    items = [generic_item(account_item(sub, rg, a)) for a in rg.accounts]
    items += [generic_item(service_item(sub, rg, svc, gateway_of(call, svc))) for svc in rg.apim]
    return _filtered(call, items + _top_level(call, group_id(sub, rg)))


def _resources_in_subscription(call: ArmCall) -> list[Json]:
    sub = subscription(call)
    items: list[Json] = []
    for rg in sub.resource_groups:
        items += [generic_item(account_item(sub, rg, a)) for a in rg.accounts]
        items += [generic_item(service_item(sub, rg, svc, gateway_of(call, svc))) for svc in rg.apim]
    return _filtered(call, items + _top_level(call, f"/subscriptions/{sub.id}"))


def _services_in_subscription(call: ArmCall) -> list[Json]:
    sub = subscription(call)
    return [service_item(sub, rg, svc, gateway_of(call, svc)) for rg in sub.resource_groups for svc in rg.apim]


def _services_in_group(call: ArmCall) -> list[Json]:
    sub, rg = group(call)
    return [service_item(sub, rg, svc, gateway_of(call, svc)) for svc in rg.apim]


def _service_get(call: ArmCall) -> Json:
    sub, rg, svc = service(call)
    return service_item(sub, rg, svc, gateway_of(call, svc))


def _apis(call: ArmCall) -> list[Json]:
    sub, rg, svc = service(call)
    items = [api_item(sub, rg, svc, item) for item in svc.apis]
    return filter_items(items, call.request.query_value("$filter"), API_FIELDS)


def _api_get(call: ArmCall) -> Json:
    return api_item(*api(call))


def _operations(call: ArmCall) -> list[Json]:
    sub, rg, svc, found = api(call)
    items = [operation_item(sub, rg, svc, found, op) for op in found.operations]
    return filter_items(items, call.request.query_value("$filter"), OPERATION_FIELDS)


def _operation_get(call: ArmCall) -> Json:
    sub, rg, svc, found = api(call)
    for op in found.operations:
        if op.id.lower() == call.params["op"].lower():
            return operation_item(sub, rg, svc, found, op)
    raise ArmFailureError(404, "ResourceNotFound", "Operation not found.")


# ---------------------------------------------------------------------------------------- table

_SUB = "subscriptions/{sub}"
_RG = _SUB + "/resourcegroups/{rg}"
_COG = "/providers/microsoft.cognitiveservices/accounts"
_APIM = "/providers/microsoft.apimanagement/service"

ROUTES: tuple[ArmRoute, ...] = (
    # Microsoft.Resources
    ArmRoute("Subscriptions_List", "GET", "subscriptions", _subscriptions),
    ArmRoute("Subscriptions_Get", "GET", _SUB, _subscription_get),
    ArmRoute("ResourceGroups_List", "GET", _SUB + "/resourcegroups", _groups),
    ArmRoute("ResourceGroups_Get", "GET", _RG, _group_get),
    ArmRoute("Resources_List", "GET", _SUB + "/resources", _resources_in_subscription),
    ArmRoute("Resources_ListByResourceGroup", "GET", _RG + "/resources", _resources_in_group),
    *OPERATION_ROUTES,
    # Microsoft.CognitiveServices
    ArmRoute("Accounts_List", "GET", _SUB + _COG, _accounts_in_subscription),
    ArmRoute("Accounts_ListByResourceGroup", "GET", _RG + _COG, _accounts_in_group),
    ArmRoute("Accounts_Get", "GET", _RG + _COG + "/{account}", _account_get),
    ArmRoute("Deployments_List", "GET", _RG + _COG + "/{account}/deployments", _deployments),
    ArmRoute("Deployments_Get", "GET", _RG + _COG + "/{account}/deployments/{deployment}", _deployment_get),
    ArmRoute("Accounts_ListKeys", "POST", _RG + _COG + "/{account}/listkeys", _account_keys),
    ArmRoute("Accounts_ListModels", "GET", _RG + _COG + "/{account}/models", _account_models),
    # Microsoft.ApiManagement
    ArmRoute("ApiManagementService_List", "GET", _SUB + _APIM, _services_in_subscription),
    ArmRoute("ApiManagementService_ListByResourceGroup", "GET", _RG + _APIM, _services_in_group),
    ArmRoute("ApiManagementService_Get", "GET", _RG + _APIM + "/{svc}", _service_get),
    ArmRoute("Api_ListByService", "GET", _RG + _APIM + "/{svc}/apis", _apis, apim=True),
    ArmRoute("Api_Get", "GET", _RG + _APIM + "/{svc}/apis/{api}", _api_get),
    ArmRoute("ApiOperation_ListByApi", "GET", _RG + _APIM + "/{svc}/apis/{api}/operations", _operations, apim=True),
    ArmRoute("ApiOperation_Get", "GET", _RG + _APIM + "/{svc}/apis/{api}/operations/{op}", _operation_get),
    *stored_routes(apim_backends.BACKENDS, service),
    *stored_routes(apim_backends.POLICIES, api),
    *stored_routes(loganalytics.DIAGNOSTICS, service),
    # Microsoft.DocumentDB, Microsoft.Search, Microsoft.OperationalInsights (state in the ArmStore)
    *stored_routes(cosmos.COSMOS, group),
    ArmRoute("DatabaseAccounts_ListKeys", "POST", cosmos.COLLECTION + "/{cosmos}/listkeys", cosmos.list_keys),
    *stored_routes(search.SEARCH, group),
    ArmRoute("AdminKeys_Get", "POST", search.COLLECTION + "/{search}/listadminkeys", search.admin_keys),
    *stored_routes(loganalytics.WORKSPACES, group),
)

#: What `ROUTES` cover, in the words of the `InvalidResourceType` answer: keep it in step with the table.
SERVES = (
    "reads of subscriptions, resource groups, resources lists ($filter by resourceType/name), "
    "Microsoft.CognitiveServices accounts (listKeys, models) and deployments, and Microsoft.ApiManagement "
    "services, APIs and operations; reads and writes (PUT/PATCH/DELETE) of APIM backends, API policies and "
    "diagnostic settings, Microsoft.DocumentDB databaseAccounts (listKeys), Microsoft.Search searchServices "
    "and Microsoft.OperationalInsights workspaces, with async-operation polling"
)
