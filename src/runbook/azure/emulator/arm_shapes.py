"""ARM's JSON shapes of the estate's resources: one function per resource type, as Azure answers them.

Each takes the estate objects on the path to a resource and returns its ARM representation (`id`,
`name`, `type`, `etag`, `properties`, `systemData` ...). Values Azure derives (etags, internal ids) are
hashes of the resource id, so answers are stable across runs.
"""

from __future__ import annotations

import functools
import hashlib

from runbook.azure.emulator.transport import Json
from runbook.azure.estate import (
    Account,
    AccountModel,
    Api,
    ApiManagementService,
    Deployment,
    Estate,
    Operation,
    ResourceGroup,
    Subscription,
)

__all__ = [
    "account_item",
    "api_item",
    "deployment_item",
    "digest",
    "generic_item",
    "group_id",
    "group_item",
    "model_item",
    "operation_item",
    "service_item",
    "subscription_item",
    "system_data",
]

_CREATED_AT = "2025-11-01T09:00:00.0000000Z"
_CREATED_BY = "lab-admin@contoso.com"


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@functools.lru_cache(maxsize=1 << 16)  # a sha256 per item per page request was ~15% of a listing's cost
def _etag(resource_id: str) -> str:
    h = digest("etag", resource_id)
    return f'"{h[:8]}-0000-0d00-0000-{h[8:20]}0000"'


def _system_data() -> Json:
    return {
        "createdBy": _CREATED_BY,
        "createdByType": "User",
        "createdAt": _CREATED_AT,
        "lastModifiedBy": _CREATED_BY,
        "lastModifiedByType": "User",
        "lastModifiedAt": _CREATED_AT,
    }


def _group_id(sub: Subscription, group: ResourceGroup) -> str:
    return f"/subscriptions/{sub.id}/resourceGroups/{group.name}"


def group_id(sub: Subscription, group: ResourceGroup) -> str:
    """The resource group's ARM id."""
    return _group_id(sub, group)


def system_data() -> Json:
    """The `systemData` of a resource the estate declares (created by the lab admin)."""
    return _system_data()


def model_item(model: AccountModel) -> Json:
    """One entry of `GET .../accounts/{a}/models`: a model the account may deploy, with retirement dates."""
    deprecation: Json = {}
    if model.deprecation_inference:
        deprecation["inference"] = f"{model.deprecation_inference}T00:00:00Z"
    if model.deprecation_fine_tune:
        deprecation["fineTune"] = f"{model.deprecation_fine_tune}T00:00:00Z"
    return {
        "format": model.format,
        "name": model.name,
        "version": model.version,
        "isDefaultVersion": model.is_default_version,
        "lifecycleStatus": model.lifecycle_status,
        "deprecation": deprecation,
        "capabilities": {},
        "skus": [{"name": "GlobalStandard", "usageName": f"OpenAI.GlobalStandard.{model.name}"}],
        "maxCapacity": 1000,
        "kind": "OpenAI" if model.format == "OpenAI" else "AIServices",
    }


def generic_item(resource: Json) -> Json:
    """A resource as ARM's generic resources list shows it (id, name, type, location, kind, sku, tags)."""
    item: Json = {key: resource[key] for key in ("id", "name", "type", "location", "kind", "sku", "tags") if key in resource}
    item.setdefault("tags", {})
    return item


def subscription_item(estate: Estate, sub: Subscription) -> Json:
    return {
        "id": f"/subscriptions/{sub.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": estate.tenant,
        "displayName": sub.name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def group_item(sub: Subscription, group: ResourceGroup) -> Json:
    return {
        "id": _group_id(sub, group),
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": dict(group.tags),
        "properties": {"provisioningState": "Succeeded"},
    }


def account_item(sub: Subscription, group: ResourceGroup, account: Account) -> Json:
    resource_id = f"{_group_id(sub, group)}/providers/Microsoft.CognitiveServices/accounts/{account.name}"
    name = account.name
    capabilities = sorted({c for d in account.deployments for c in d.effective_capabilities()})
    return {
        "id": resource_id,
        "name": name,
        "type": "Microsoft.CognitiveServices/accounts",
        "etag": _etag(resource_id),
        "location": account.location or group.location,
        "kind": account.kind,
        "sku": {"name": account.sku},
        "tags": dict(account.tags),
        "identity": {"type": "None"},
        "properties": {
            "endpoint": f"https://{name}.cognitiveservices.azure.com/",
            "endpoints": {
                "AI Foundry API": f"https://{name}.services.ai.azure.com/",
                "OpenAI Language Model Instance API": f"https://{name}.openai.azure.com/",
                "Azure AI Model Inference API": f"https://{name}.services.ai.azure.com/",
                "OpenAI Dall-E API": f"https://{name}.openai.azure.com/",
            },
            "internalId": digest("internal", resource_id)[:32],
            "dateCreated": _CREATED_AT,
            "customSubDomainName": name,
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "disableLocalAuth": False,
            "allowProjectManagement": True,
            "isMigrated": False,
            "capabilities": [{"name": capability} for capability in capabilities],
        },
        "systemData": _system_data(),
    }


def deployment_item(sub: Subscription, group: ResourceGroup, account: Account, deployment: Deployment) -> Json:
    account_id = f"{_group_id(sub, group)}/providers/Microsoft.CognitiveServices/accounts/{account.name}"
    resource_id = f"{account_id}/deployments/{deployment.name}"
    requests_per_minute = max(deployment.capacity, 1) * 10
    return {
        "id": resource_id,
        "name": deployment.name,
        "type": "Microsoft.CognitiveServices/accounts/deployments",
        "etag": _etag(resource_id),
        "sku": {"name": deployment.sku, "capacity": deployment.capacity},
        "properties": {
            "model": {
                "format": deployment.format,
                "name": deployment.model,
                "version": deployment.version,
            },
            "versionUpgradeOption": "OnceNewDefaultVersionAvailable",
            "currentCapacity": deployment.capacity,
            "capabilities": dict.fromkeys(deployment.effective_capabilities(), "true"),
            "raiPolicyName": "Microsoft.DefaultV2",
            "rateLimits": [
                {"key": "request", "renewalPeriod": 60, "count": requests_per_minute},
                {"key": "token", "renewalPeriod": 60, "count": requests_per_minute * 1000},
            ],
            "provisioningState": "Succeeded",
        },
        "systemData": _system_data(),
    }


def _service_id(sub: Subscription, group: ResourceGroup, service: ApiManagementService) -> str:
    return f"{_group_id(sub, group)}/providers/Microsoft.ApiManagement/service/{service.name}"


def service_item(sub: Subscription, group: ResourceGroup, service: ApiManagementService, gateway_url: str) -> Json:
    resource_id = _service_id(sub, group, service)
    host = f"{service.name}.azure-api.net"
    return {
        "id": resource_id,
        "name": service.name,
        "type": "Microsoft.ApiManagement/service",
        "location": service.location or group.location,
        "tags": dict(service.tags),
        "etag": "AAAAAA" + digest("etag", resource_id)[:10].upper() + "=",
        "sku": {"name": service.sku, "capacity": 1},
        "properties": {
            "publisherEmail": service.publisher_email,
            "publisherName": service.publisher_name,
            "notificationSenderEmail": "apimgmt-noreply@mail.windowsazure.com",
            "provisioningState": "Succeeded",
            "targetProvisioningState": "",
            "createdAtUtc": _CREATED_AT,
            # the emulator's own gateway, so discovery through ARM leads to a gateway that answers
            "gatewayUrl": gateway_url or f"https://{host}",
            "developerPortalUrl": f"https://{service.name}.developer.azure-api.net",
            "managementApiUrl": f"https://{service.name}.management.azure-api.net",
            "scmUrl": f"https://{service.name}.scm.azure-api.net",
            "hostnameConfigurations": [
                {
                    "type": "Proxy",
                    "hostName": host,
                    "negotiateClientCertificate": False,
                    "defaultSslBinding": True,
                    "certificateSource": "BuiltIn",
                }
            ],
            "publicIPAddresses": [],
            "virtualNetworkType": "None",
            "disableGateway": False,
            "publicNetworkAccess": "Enabled",
            "platformVersion": "stv2",
        },
        "systemData": _system_data(),
    }


def api_item(sub: Subscription, group: ResourceGroup, service: ApiManagementService, api: Api) -> Json:
    return {
        "id": f"{_service_id(sub, group, service)}/apis/{api.id}",
        "type": "Microsoft.ApiManagement/service/apis",
        "name": api.id,
        "properties": {
            "displayName": api.display_name or api.id,
            "apiRevision": "1",
            "description": "",
            "subscriptionRequired": api.subscription_required,
            "serviceUrl": api.effective_service_url(),
            "path": api.path,
            "protocols": ["https"],
            "authenticationSettings": {"oAuth2": None, "openid": None},
            "subscriptionKeyParameterNames": {
                "header": service.subscription_key_header,
                "query": service.subscription_key_query,
            },
            "isCurrent": True,
        },
    }


def operation_item(
    sub: Subscription, group: ResourceGroup, service: ApiManagementService, api: Api, op: Operation
) -> Json:
    return {
        "id": f"{_service_id(sub, group, service)}/apis/{api.id}/operations/{op.id}",
        "type": "Microsoft.ApiManagement/service/apis/operations",
        "name": op.id,
        "properties": {
            "displayName": op.display_name or op.id,
            "method": op.method,
            "urlTemplate": op.url_template,
            "templateParameters": [
                {"name": name, "type": "string", "required": True, "values": []} for name in op.template_parameters()
            ],
            "description": op.description or "",
            "responses": [],
            "policies": None,
        },
    }
