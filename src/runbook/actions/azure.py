"""Built-in read-only Azure actions: discovery of what is really deployed (`azure.*`).

`azure.accounts` lists Cognitive Services / AI Foundry accounts; `azure.deployments` lists their
model deployments concurrently and marks image models (the phase 1.5 question: "which accounts have
FLUX, which have none"); `azure.apim.apis` and `azure.apim.operations` read the API Management
routes; `azure.resource` GETs any ARM resource. All of them talk to ARM through
`runbook.azure.client` with a token from `runbook.azure.credentials`, using the target's settings
(`arm_url`, `subscription_id`, `resource_group`, `apim_service`, `credential`), which each action's
parameters may override.
"""

import fnmatch
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator

from ..azure.client import SETTING_VARIABLES, ArmClient, AzureClient, Endpoints, is_arm_id, run_sync
from ..azure.credentials import ARM_SCOPE, token_provider
from ..errors import ActionError, AzureError, did_you_mean
from . import ActionContext, Params, Regex, Result, action
from .http import bound_json
from .outputs import Output

T = TypeVar("T")
COGNITIVE_API_VERSION = "2025-06-01"
APIM_API_VERSION = "2024-05-01"
# Model names of image generators, for deployments whose capabilities do not say so.
IMAGE_MODEL = re.compile(
    r"dall-?e|gpt-image|flux|stable-?diffusion|\bsd-?3|sdxl|imagen|midjourney|image-?gen", re.IGNORECASE
)
IMAGE_CAPABILITY = "imageGenerations"
RESOURCE_OUTPUT_CHARS = 4000


# ------------------------------------------------------------------------------- shared plumbing


class Scope(Params):
    subscription_id: str | None = Field(None, description="default: the target's subscription_id")
    resource_group: str | None = Field(None, description="default: the target's resource_group")


def _endpoints(ctx: ActionContext) -> Endpoints:
    return Endpoints.from_settings(getattr(ctx.target, "settings", None))


def _need(value: str | None, setting: str, action_name: str) -> str:
    if value:
        return value
    variable = SETTING_VARIABLES.get(setting)
    where = f" (env {variable})" if variable else ""
    raise ActionError(
        f"{action_name} needs {setting}: the target has no {setting}{where} and the step gives none",
        hint=f"set {variable or setting} for the target, or pass `{setting}:` in the step's `with`",
    )


def _arm(ctx: ActionContext, work: Callable[[ArmClient], Awaitable[T]]) -> T:
    """Run `work` against ARM with the target's credential, retry policy and stop event."""
    endpoints = _endpoints(ctx)
    token = token_provider(ctx).token(ARM_SCOPE)

    async def with_arm(client: AzureClient) -> T:
        return await work(ArmClient(client, endpoints.arm_url, token))

    return run_sync(
        with_arm,
        stop=ctx.stop,
        policy=endpoints.policy,
        timeout=endpoints.timeout,
        concurrency=endpoints.concurrency,
        on_retry=ctx.warn,
    )


def _group_path(subscription_id: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


def _props(item: dict[str, Any]) -> dict[str, Any]:
    return _mapping(item.get("properties"))


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _resource_group_of(resource_id: str) -> str | None:
    match = re.search(r"/resourceGroups/([^/]+)", resource_id, re.IGNORECASE)
    return match.group(1) if match else None


# -------------------------------------------------------------------------------------- accounts


class AccountsParams(Scope):
    scope: Literal["resource_group", "subscription"] = Field(
        "resource_group", description="list the resource group's accounts, or the whole subscription's"
    )
    kind: str | None = Field(None, description="only accounts of this kind (AIServices, OpenAI…)")
    api_version: str = Field(COGNITIVE_API_VERSION, description="the Cognitive Services ARM api-version")


class AccountRow(Output):
    name: str | None = Field(description="the account's name")
    kind: str | None = Field(description="AIServices, OpenAI…")
    location: str | None = Field(description="the Azure region")
    endpoint: str | None = Field(description="the account's endpoint URL")
    provisioning_state: str | None = Field(description="Succeeded, Failed…")
    resource_group: str | None = Field(description="the resource group it lives in")
    id: str = Field(description="its ARM resource id")


class AccountsOutput(Output):
    scope: Literal["resource_group", "subscription"] = Field(description="what was listed")
    subscription_id: str = Field(description="the subscription searched")
    resource_group: str | None = Field(description="the resource group searched (null for the subscription)")
    accounts: list[AccountRow] = Field(description="the accounts found (after the `kind` filter)")
    names: list[str | None] = Field(description="their names, in the same order")
    count: int = Field(description="how many accounts were found")


def _account_row(item: dict[str, Any]) -> dict[str, Any]:
    props = _props(item)
    resource_id = str(item.get("id") or "")
    return {
        "name": item.get("name"),
        "kind": item.get("kind"),
        "location": item.get("location"),
        "endpoint": props.get("endpoint"),
        "provisioning_state": props.get("provisioningState"),
        "resource_group": _resource_group_of(resource_id),
        "id": resource_id,
    }


async def _list_accounts(
    arm: ArmClient, subscription_id: str, resource_group: str | None, api_version: str
) -> list[dict[str, Any]]:
    base = _group_path(subscription_id, resource_group) if resource_group else f"/subscriptions/{subscription_id}"
    items = await arm.list(f"{base}/providers/Microsoft.CognitiveServices/accounts", api_version)
    return [_account_row(item) for item in items]


def _where(params: Scope, ctx: ActionContext, name: str, *, subscription_wide: bool) -> tuple[str, str | None]:
    endpoints = _endpoints(ctx)
    subscription_id = _need(params.subscription_id or endpoints.subscription_id, "subscription_id", name)
    if subscription_wide:
        return subscription_id, None
    return subscription_id, _need(params.resource_group or endpoints.resource_group, "resource_group", name)


@action(
    "azure.accounts",
    params=AccountsParams,
    changes=False,
    output=AccountsOutput,
    summary="List Cognitive Services / AI Foundry accounts of the resource group (or subscription).",
)
def azure_accounts(params: AccountsParams, ctx: ActionContext) -> Result:
    subscription_id, resource_group = _where(
        params, ctx, "azure.accounts", subscription_wide=params.scope == "subscription"
    )
    rows = _arm(ctx, lambda arm: _list_accounts(arm, subscription_id, resource_group, params.api_version))
    if params.kind:
        rows = [row for row in rows if str(row["kind"] or "").lower() == params.kind.lower()]
    return Result(
        output={
            "scope": params.scope,
            "subscription_id": subscription_id,
            "resource_group": resource_group,
            "accounts": rows,
            "names": [row["name"] for row in rows],
            "count": len(rows),
        }
    )


# ----------------------------------------------------------------------------------- deployments


class DeploymentsParams(Scope):
    accounts: list[str] | None = Field(
        None, description="account names (default: every account of the resource group or subscription)"
    )
    scope: Literal["resource_group", "subscription"] = Field(
        "resource_group", description="search the resource group's accounts, or the whole subscription's"
    )
    model: str | None = Field(
        None, description="model name pattern: a glob (FLUX*), or a regex written re:^flux (case-insensitive)"
    )
    name: str | None = Field(None, description="deployment name pattern, same syntax as `model`")
    capability: str | None = Field(None, description="e.g. imageGenerations, chatCompletion, embeddings")
    image_only: bool = Field(False, description="only image-generation deployments")
    api_version: str = Field(COGNITIVE_API_VERSION, description="the Cognitive Services ARM api-version")
    concurrency: int | None = Field(None, ge=1, le=256, description="accounts fetched at once (default: the target's `concurrency`, 64)")

    @field_validator("accounts", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("model", "name")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            compile_pattern(value)
        return value


class DeploymentRow(Output):
    account: str | None = Field(description="the account that holds the deployment")
    location: str | None = Field(description="the account's region")
    name: str | None = Field(description="the deployment's name (what URLs and SDK calls use)")
    model: str | None = Field(description="the model deployed, e.g. FLUX.1-Kontext-pro")
    version: str | None = Field(description="the model's version")
    format: str | None = Field(description="the model's format (publisher), e.g. OpenAI")
    sku: str | None = Field(description="the SKU name, e.g. GlobalStandard")
    capacity: int | None = Field(description="the SKU capacity")
    provisioning_state: str | None = Field(description="Succeeded, Failed…")
    capabilities: list[str] = Field(description="capabilities that are true (imageGenerations, chatCompletion…)")
    image: bool = Field(description="an image-generation model (by capability or known model name)")


class AccountDeployment(Output):
    name: str | None = Field(description="the deployment's name")
    model: str | None = Field(description="the model deployed")
    version: str | None = Field(description="the model's version")
    image: bool = Field(description="an image-generation model")


class DeploymentFilters(Output):
    model: str | None = Field(None, description="the `model` pattern, when given")
    name: str | None = Field(None, description="the `name` pattern, when given")
    capability: str | None = Field(None, description="the `capability`, when given")
    image_only: bool | None = Field(None, description="true when only image deployments were kept")


class DeploymentsOutput(Output):
    subscription_id: str = Field(description="the subscription searched")
    resource_group: str | None = Field(description="the resource group searched (null for the subscription)")
    filters: DeploymentFilters = Field(description="the filters applied")
    deployments: list[DeploymentRow] = Field(description="every deployment that passed the filters, by account")
    by_account: dict[str, list[AccountDeployment]] = Field(
        description="account name -> its deployments that passed the filters (empty list: none)"
    )
    accounts: list[str] = Field(description="the accounts searched")
    accounts_with_match: list[str] = Field(description="accounts with at least one matching deployment")
    accounts_without_match: list[str] = Field(description="accounts with none")
    image_deployments: list[str] = Field(description="`account/deployment` of every image deployment found")
    count: int = Field(description="how many deployments passed the filters")
    total: int = Field(description="how many deployments the accounts have in all")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A glob (`FLUX*`, whole name) or, written `re:…`, a regex (searched), both case-insensitive."""
    if pattern.startswith("re:"):
        try:
            return re.compile(pattern[3:], re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"bad regex {pattern[3:]!r}: {exc}") from None
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


def is_image_model(model: str | None, capabilities: list[str]) -> bool:
    """Image generation: the imageGenerations capability, or a known image model name."""
    return IMAGE_CAPABILITY in capabilities or bool(model and _image_name(model))


@functools.lru_cache(maxsize=1024)
def _image_name(model: str) -> bool:
    # an estate has a few model names over thousands of deployments: one regex search per name
    return IMAGE_MODEL.search(model) is not None


def _deployment_row(account: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    props = _props(item)
    model = _mapping(props.get("model"))
    sku = _mapping(item.get("sku"))
    raw_caps = _mapping(props.get("capabilities"))
    # true, or a string that reads true (what `str(v).lower() == "true"` accepts, without a str per value)
    capabilities = sorted(k for k, v in raw_caps.items() if v is True or (isinstance(v, str) and v.lower() == "true"))
    model_name = model.get("name")
    return {
        "account": account["name"],
        "location": account.get("location"),
        "name": item.get("name"),
        "model": model_name,
        "version": model.get("version"),
        "format": model.get("format"),
        "sku": sku.get("name"),
        "capacity": sku.get("capacity"),
        "provisioning_state": props.get("provisioningState"),
        "capabilities": capabilities,
        "image": is_image_model(str(model_name) if model_name else None, capabilities),
    }


def _matches(row: dict[str, Any], params: DeploymentsParams) -> bool:
    if params.model and not _pattern_hit(params.model, row["model"]):
        return False
    if params.name and not _pattern_hit(params.name, row["name"]):
        return False
    if params.capability and params.capability.lower() not in (c.lower() for c in row["capabilities"]):
        return False
    return not (params.image_only and not row["image"])


def _pattern_hit(pattern: str, value: Any) -> bool:
    compiled = compile_pattern(pattern)
    text = str(value or "")
    return bool(compiled.search(text) if pattern.startswith("re:") else compiled.match(text))


def _chosen_accounts(available: list[dict[str, Any]], wanted: list[str] | None, where: str) -> list[dict[str, Any]]:
    if wanted is None:
        return available
    by_name = {str(row["name"]).lower(): row for row in available}
    chosen, unknown = [], []
    for name in wanted:
        row = by_name.get(name.lower())
        if row is None:
            unknown.append(name)
        else:
            chosen.append(row)
    if unknown:
        names = [str(row["name"]) for row in available]
        suggestion = did_you_mean(unknown[0], names)
        raise AzureError(
            f"no account {', '.join(map(repr, unknown))} in {where}: {suggestion}"
            f"accounts: {', '.join(names) or 'none'}",
            hint="check the names with azure.accounts",
        )
    return chosen


@action(
    "azure.deployments",
    params=DeploymentsParams,
    changes=False,
    output=DeploymentsOutput,
    summary="List model deployments of accounts (concurrently), mark image models, filter by model/capability.",
)
def azure_deployments(params: DeploymentsParams, ctx: ActionContext) -> Result:
    subscription_id, resource_group = _where(
        params, ctx, "azure.deployments", subscription_wide=params.scope == "subscription"
    )
    where = f"resource group {resource_group}" if resource_group else f"subscription {subscription_id}"

    async def discover(arm: ArmClient) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        available = await _list_accounts(arm, subscription_id, resource_group, params.api_version)
        chosen = _chosen_accounts(available, params.accounts, where)

        async def deployments_of(account: dict[str, Any]) -> list[dict[str, Any]]:
            items = await arm.list(f"{account['id']}/deployments", params.api_version)
            return [_deployment_row(account, item) for item in items]

        found = await arm.client.fan_out(chosen, deployments_of, limit=params.concurrency)
        return chosen, found

    chosen, found = _arm(ctx, discover)
    deployments: list[dict[str, Any]] = []
    by_account: dict[str, list[dict[str, Any]]] = {}
    total = 0
    for account, rows in zip(chosen, found, strict=True):
        total += len(rows)
        hits = [row for row in rows if _matches(row, params)]
        deployments.extend(hits)
        by_account[str(account["name"])] = [
            {"name": r["name"], "model": r["model"], "version": r["version"], "image": r["image"]} for r in hits
        ]
    names = [str(account["name"]) for account in chosen]
    filters = {
        k: v
        for k, v in {
            "model": params.model,
            "name": params.name,
            "capability": params.capability,
            "image_only": params.image_only or None,
        }.items()
        if v is not None
    }
    return Result(
        output={
            "subscription_id": subscription_id,
            "resource_group": resource_group,
            "filters": filters,
            "deployments": deployments,
            "by_account": by_account,
            "accounts": names,
            "accounts_with_match": [n for n in names if by_account[n]],
            "accounts_without_match": [n for n in names if not by_account[n]],
            "image_deployments": [f"{r['account']}/{r['name']}" for r in deployments if r["image"]],
            "count": len(deployments),
            "total": total,
        }
    )


# ---------------------------------------------------------------------------------------- APIM


class ApimParams(Scope):
    service: str | None = Field(None, description="API Management service (default: the target's apim_service)")
    api_version: str = Field(APIM_API_VERSION, description="the API Management ARM api-version")


class ApiRow(Output):
    id: str | None = Field(description="the API's ARM resource id")
    name: str | None = Field(description="the API's name (id), e.g. inference-api")
    display_name: str | None = Field(description="its display name")
    path: str | None = Field(description="the path under the gateway URL, e.g. inference")
    service_url: str | None = Field(description="the backend URL it forwards to")
    protocols: list[str] = Field(description="https, http…")
    subscription_required: bool | None = Field(description="whether calls need a subscription key")


class ApisOutput(Output):
    service: str = Field(description="the API Management service")
    apis: list[ApiRow] = Field(description="its APIs")
    count: int = Field(description="how many APIs it has")


class OperationRow(Output):
    id: str | None = Field(description="the operation's ARM resource id")
    name: str | None = Field(description="the operation's name (id)")
    display_name: str | None = Field(description="its display name")
    method: str | None = Field(description="the HTTP method, e.g. POST")
    url_template: str | None = Field(
        description="the URL template, e.g. /openai/deployments/{deployment-id}/images/generations"
    )
    template_parameters: list[str | None] = Field(description="names of the template's parameters")


class OperationsOutput(Output):
    api: str = Field(description="the API whose operations were listed")
    operations: list[OperationRow] = Field(description="the operations that passed `match`")
    count: int = Field(description="how many passed `match`")
    total: int = Field(description="how many operations the API has")


def _service_path(params: ApimParams, ctx: ActionContext, name: str) -> str:
    subscription_id, resource_group = _where(params, ctx, name, subscription_wide=False)
    service = _need(params.service or _endpoints(ctx).apim_service, "apim_service", name)
    assert resource_group is not None
    return f"{_group_path(subscription_id, resource_group)}/providers/Microsoft.ApiManagement/service/{service}"


@action(
    "azure.apim.apis",
    params=ApimParams,
    changes=False,
    output=ApisOutput,
    summary="List the APIs of the target's API Management service (path, backend URL, protocols).",
)
def azure_apim_apis(params: ApimParams, ctx: ActionContext) -> Result:
    path = _service_path(params, ctx, "azure.apim.apis")
    items = _arm(ctx, lambda arm: arm.list(f"{path}/apis", params.api_version))
    apis = []
    for item in items:
        props = _props(item)
        apis.append(
            {
                "id": item.get("id"),
                "name": item.get("name"),
                "display_name": props.get("displayName"),
                "path": props.get("path"),
                "service_url": props.get("serviceUrl"),
                "protocols": props.get("protocols") or [],
                "subscription_required": props.get("subscriptionRequired"),
            }
        )
    return Result(output={"service": path.rsplit("/", 1)[-1], "apis": apis, "count": len(apis)})


class OperationsParams(ApimParams):
    api: str = Field(description="the API's name (id), e.g. inference-api")
    match: Regex | None = Field(None, description="regex searched in url_template and display_name")


@action(
    "azure.apim.operations",
    params=OperationsParams,
    changes=False,
    output=OperationsOutput,
    summary="List an APIM API's operations (method, URL template); `match` filters by regex.",
)
def azure_apim_operations(params: OperationsParams, ctx: ActionContext) -> Result:
    path = _service_path(params, ctx, "azure.apim.operations")
    items = _arm(ctx, lambda arm: arm.list(f"{path}/apis/{params.api}/operations", params.api_version))
    pattern = re.compile(params.match, re.IGNORECASE) if params.match else None
    operations = []
    for item in items:
        props = _props(item)
        row = {
            "id": item.get("id"),
            "name": item.get("name"),
            "display_name": props.get("displayName"),
            "method": props.get("method"),
            "url_template": props.get("urlTemplate"),
            "template_parameters": [
                p.get("name") for p in props.get("templateParameters") or [] if isinstance(p, dict)
            ],
        }
        text = f"{row['url_template'] or ''}\n{row['display_name'] or ''}"
        if pattern is None or pattern.search(text):
            operations.append(row)
    return Result(
        output={"api": params.api, "operations": operations, "count": len(operations), "total": len(items)}
    )


# -------------------------------------------------------------------------------------- resource


class ResourceParams(Params):
    id: str = Field(description="an ARM resource id: /subscriptions/…")
    api_version: str = Field(description="the api-version for this resource type")
    max_chars: int = Field(RESOURCE_OUTPUT_CHARS, ge=16, description="longer strings in the output are cut")

    @field_validator("id")
    @classmethod
    def _arm_id(cls, value: str) -> str:
        if not is_arm_id(value):
            raise ValueError(f"{value!r} is not an ARM resource id (it starts with /subscriptions/)")
        return value


class ResourceOutput(Output):
    id: str = Field(description="the resource id read")
    api_version: str = Field(description="the api-version used")
    name: str | None = Field(description="the resource's name")
    type: str | None = Field(description="the resource's type, e.g. Microsoft.CognitiveServices/accounts")
    json_: Any = Field(alias="json", description="the resource's JSON, bounded (long strings cut)")


@action(
    "azure.resource",
    params=ResourceParams,
    changes=False,
    output=ResourceOutput,
    summary="GET any ARM resource by id and api-version; record its JSON (bounded).",
)
def azure_resource(params: ResourceParams, ctx: ActionContext) -> Result:
    payload = _arm(ctx, lambda arm: arm.get(params.id, params.api_version))
    return Result(
        output={
            "id": params.id,
            "api_version": params.api_version,
            "name": payload.get("name"),
            "type": payload.get("type"),
            "json": bound_json(payload, max_chars=params.max_chars),
        }
    )
