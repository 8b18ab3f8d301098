"""What ARM serves: the table of resource types (`ROUTES`), their handlers and the estate lookups.

Adding a resource type is adding rows here: one `ArmRoute` per operation (name, method, lower-case
path pattern, handler), a handler that finds the estate's objects with the lookups below and returns
its shape from `arm_shapes`, and its words in `SERVES`. Lists return a list (paged by `ArmSite`);
gets return a dict; a handler may return a full `Response` (a write's 201/202 with headers); ARM
errors are raised as `ArmFailureError`. ARM names are case-insensitive: compare with `.lower()` and
echo them as the client wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from runbook.azure.emulator.arm import ArmCall, ArmFailureError, ArmRoute, not_found
from runbook.azure.emulator.arm_shapes import (
    account_item,
    api_item,
    deployment_item,
    group_item,
    operation_item,
    service_item,
    subscription_item,
)
from runbook.azure.emulator.odata import API_FIELDS, OPERATION_FIELDS, filter_items
from runbook.azure.emulator.transport import Json
from runbook.azure.estate import (
    Account,
    Api,
    ApiManagementService,
    Deployment,
    ResourceGroup,
    Subscription,
)

__all__ = ["ROUTES", "SERVES"]

# -------------------------------------------------------------------------------------- lookups


def subscription(call: ArmCall) -> Subscription:
    wanted = call.params["sub"].lower()
    for sub in call.estate.subscriptions:
        if sub.id == wanted:
            return sub
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


_Named = TypeVar("_Named", Account, ApiManagementService, Deployment)


def named(items: Sequence[_Named], name: str) -> _Named | None:
    """The item called `name`, compared case-insensitively as ARM does."""
    for item in items:
        if item.name.lower() == name.lower():
            return item
    return None


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


def _accounts_in_subscription(call: ArmCall) -> list[Json]:
    sub = subscription(call)
    return [account_item(sub, rg, item) for rg in sub.resource_groups for item in rg.accounts]


def _accounts_in_group(call: ArmCall) -> list[Json]:
    sub, rg = group(call)
    return [account_item(sub, rg, item) for item in rg.accounts]


def _account_get(call: ArmCall) -> Json:
    return account_item(*account(call))


def _deployments(call: ArmCall) -> list[Json]:
    sub, rg, acct = account(call)
    return [deployment_item(sub, rg, acct, item) for item in acct.deployments]


def _deployment_get(call: ArmCall) -> Json:
    sub, rg, acct = account(call)
    found = named(acct.deployments, call.params["deployment"])
    if found is None:
        raise not_found(rg, f"Microsoft.CognitiveServices/accounts/{acct.name}/deployments/{call.params['deployment']}")
    return deployment_item(sub, rg, acct, found)


def _services_in_subscription(call: ArmCall) -> list[Json]:
    sub = subscription(call)
    return [service_item(sub, rg, svc, call.gateway_url) for rg in sub.resource_groups for svc in rg.apim]


def _services_in_group(call: ArmCall) -> list[Json]:
    sub, rg = group(call)
    return [service_item(sub, rg, svc, call.gateway_url) for svc in rg.apim]


def _service_get(call: ArmCall) -> Json:
    return service_item(*service(call), call.gateway_url)


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
    # Microsoft.CognitiveServices
    ArmRoute("Accounts_List", "GET", _SUB + _COG, _accounts_in_subscription),
    ArmRoute("Accounts_ListByResourceGroup", "GET", _RG + _COG, _accounts_in_group),
    ArmRoute("Accounts_Get", "GET", _RG + _COG + "/{account}", _account_get),
    ArmRoute("Deployments_List", "GET", _RG + _COG + "/{account}/deployments", _deployments),
    ArmRoute("Deployments_Get", "GET", _RG + _COG + "/{account}/deployments/{deployment}", _deployment_get),
    # Microsoft.ApiManagement
    ArmRoute("ApiManagementService_List", "GET", _SUB + _APIM, _services_in_subscription),
    ArmRoute("ApiManagementService_ListByResourceGroup", "GET", _RG + _APIM, _services_in_group),
    ArmRoute("ApiManagementService_Get", "GET", _RG + _APIM + "/{svc}", _service_get),
    ArmRoute("Api_ListByService", "GET", _RG + _APIM + "/{svc}/apis", _apis, apim=True),
    ArmRoute("Api_Get", "GET", _RG + _APIM + "/{svc}/apis/{api}", _api_get),
    ArmRoute("ApiOperation_ListByApi", "GET", _RG + _APIM + "/{svc}/apis/{api}/operations", _operations, apim=True),
    ArmRoute("ApiOperation_Get", "GET", _RG + _APIM + "/{svc}/apis/{api}/operations/{op}", _operation_get),
)

#: What `ROUTES` cover, in the words of the `InvalidResourceType` answer: keep it in step with the table.
SERVES = (
    "reads of subscriptions, resource groups, Microsoft.CognitiveServices accounts and deployments, "
    "and Microsoft.ApiManagement services, APIs and operations"
)
