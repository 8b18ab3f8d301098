"""Azure actions that list resources generically and change them: `azure.list`, `azure.update`, `azure.create`.

`azure.list` lists a resource group's (or subscription's) resources through ARM's resources list
with `$filter` (for services without a dedicated action). `azure.update` sets properties of a
resource by id: it reads the resource, computes the desired one (a merge of `properties`/`body`, plus
items that must be in lists, `append`), and sends nothing when the desired values already hold
(status `ok`: idempotent). Otherwise it PATCHes the changed part (or PUTs the whole resource) with
`If-Match` on the etag it read, and waits for the long-running operation (`Azure-AsyncOperation` or
`Location`) within a bounded timeout. `azure.create` PUTs a new resource and waits until it has
`Succeeded`. Under `--dry-run` both show the JSON diff of what would change and send nothing.

Writes are refused outside `fix` steps (discovery and verify stay read-only). Every write records
the resource before and after (redacted, bounded) and its equivalent `az` CLI command and portal path
(`cli_equivalent`, `portal_path`), which the resolution report shows.
"""

import copy
import difflib
import json
import shlex
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from ..azure.client import ArmClient, display_url, is_arm_id, response_error
from ..errors import ActionError, AzureError
from . import ActionContext, Params, Result, action
from .azure import Scope, _arm, _where
from .http import bound_json
from .outputs import Output

RESOURCES_API_VERSION = "2021-04-01"
DEFAULT_WAIT = 300.0
MAX_POLL_INTERVAL = 10.0
_READ_ONLY_KEYS = ("id", "name", "type", "etag", "systemData")


def _refuse_outside_fix(ctx: ActionContext, name: str) -> None:
    if ctx.stage != "fix":
        raise ActionError(
            f"{name} changes Azure and runs only in `fix` steps, not in {ctx.stage}",
            hint="discovery and verify are read-only: move the step to `fix:`",
        )


def _arm_id(value: str) -> str:
    if not is_arm_id(value):
        raise ValueError(f"{value!r} is not an ARM resource id (it starts with /subscriptions/)")
    return value


# ------------------------------------------------------------------------------------------ list


class ListParams(Scope):
    type: str | None = Field(None, description="resource type, e.g. Microsoft.DocumentDB/databaseAccounts")
    name: str | None = Field(None, description="only the resource of this name")
    scope: Literal["resource_group", "subscription"] = Field(
        "resource_group", description="list the target's resource group, or the whole subscription"
    )
    api_version: str = Field(RESOURCES_API_VERSION, description="the ARM resources API version")


class ResourceRow(Output):
    id: str = Field(description="the resource's ARM id")
    name: str | None = Field(description="its name")
    type: str | None = Field(description="its type")
    location: str | None = Field(description="its region")
    kind: str | None = Field(description="its kind, when the type has kinds")


class ListOutput(Output):
    filter: str = Field(description="the $filter sent ('' for none)")
    resources: list[ResourceRow] = Field(description="the resources found")
    names: list[str | None] = Field(description="their names, in the same order")
    count: int = Field(description="how many were found")


@action(
    "azure.list",
    params=ListParams,
    changes=False,
    output=ListOutput,
    summary="List resources of the resource group (or subscription) by type and name (ARM $filter).",
)
def azure_list(params: ListParams, ctx: ActionContext) -> Result:
    subscription_id, group = _where(params, ctx, "azure.list", subscription_wide=params.scope == "subscription")
    base = f"/subscriptions/{subscription_id}" + (f"/resourceGroups/{group}" if group else "")
    clauses = []
    if params.type:
        clauses.append(f"resourceType eq '{params.type}'")
    if params.name:
        clauses.append(f"name eq '{params.name}'")
    text = " and ".join(clauses)
    query = {"api-version": params.api_version, **({"$filter": text} if text else {})}

    async def listing(arm: ArmClient) -> list[dict[str, Any]]:
        # ArmClient.list sends only api-version; the first page here carries $filter too
        page = await arm._get_json(arm.url(f"{base}/resources"), query)
        items = [item for item in page.get("value") or [] if isinstance(item, dict)]
        if page.get("nextLink"):
            items += await arm.list(str(page["nextLink"]), params.api_version)
        return items

    items = _arm(ctx, listing)
    rows = [
        {
            "id": str(item.get("id") or ""),
            "name": item.get("name"),
            "type": item.get("type"),
            "location": item.get("location"),
            "kind": item.get("kind"),
        }
        for item in items
    ]
    return Result(output={"filter": text, "resources": rows, "names": [r["name"] for r in rows], "count": len(rows)})


# --------------------------------------------------------------------------------- shared writes


class WriteOutput(Output):
    id: str = Field(description="the resource written")
    method: str = Field(description="PATCH, PUT, or NONE when nothing needed changing")
    sent: bool = Field(description="whether a write was sent (false when already as desired, or under --dry-run)")
    status: int | None = Field(description="the write's HTTP status (null when none was sent)")
    operation_status: str | None = Field(description="the long-running operation's final status (Succeeded…)")
    polls: int = Field(description="how many times the operation was polled")
    changed_paths: list[str] = Field(description="dotted paths whose values change (or changed)")
    diff: str = Field(description="unified JSON diff of before and after ('' when nothing changes)")
    before: Any = Field(description="the resource before (redacted, bounded; null when it did not exist)")
    after: Any = Field(description="the resource after (redacted, bounded; the desired one under --dry-run)")
    provisioning_state: str | None = Field(description="properties.provisioningState after the write")
    az_cli: str = Field(description="the equivalent az CLI command")
    portal: str = Field(description="where the same change is made in the Azure portal")


class WriteParams(Params):
    id: str = Field(description="the ARM resource id")
    api_version: str = Field(description="the api-version of the resource type")
    timeout: float = Field(DEFAULT_WAIT, gt=0, le=3600, description="seconds to wait for the operation")
    poll_interval: float = Field(
        1.0, ge=0, le=MAX_POLL_INTERVAL, description="seconds between polls without Retry-After"
    )
    max_chars: int = Field(2000, ge=16, description="longer strings in before/after are cut")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return _arm_id(value)


def _headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json", **extra}


def _token(arm: ArmClient) -> str:
    return arm._headers["Authorization"].split(" ", 1)[1]  # the client's own token, never logged


async def _read(arm: ArmClient, resource_id: str, api_version: str) -> dict[str, Any] | None:
    exchange = await arm.client.send(
        "GET", arm.url(resource_id), plane="arm", headers=_headers(_token(arm)), params={"api-version": api_version}
    )
    if exchange.response.status_code == 404:
        return None
    if exchange.response.status_code >= 400:
        raise response_error("GET", exchange.url, exchange.response, plane="arm", attempts=exchange.attempts)
    payload = exchange.response.json()
    return payload if isinstance(payload, dict) else None


async def _send_and_wait(
    arm: ArmClient, method: str, resource_id: str, params: WriteParams, body: dict[str, Any], etag: str | None
) -> tuple[int, str | None, int, dict[str, Any] | None]:
    """(status, operation status, polls, final resource) of one write and its long-running operation."""
    import asyncio  # here, not at import: validating a runbook must not load the async stack

    extra = {"Content-Type": "application/json"}
    if etag:
        extra["If-Match"] = etag
    elif method == "PUT":
        extra["If-None-Match"] = "*"
    exchange = await arm.client.send(
        method,
        arm.url(resource_id),
        plane="arm",
        headers=_headers(_token(arm), **extra),
        params={"api-version": params.api_version},
        json=body,
        retry_statuses=frozenset({429, 503}),
    )
    response = exchange.response
    if response.status_code >= 400:
        raise response_error(method, exchange.url, response, plane="arm", attempts=exchange.attempts)
    status_url = response.headers.get("azure-asyncoperation")
    location = response.headers.get("location")
    polls, outcome = 0, None
    deadline = time.monotonic() + params.timeout
    url = status_url or location
    while url and outcome is None:
        await asyncio.sleep(_poll_delay(response.headers, params.poll_interval))
        if time.monotonic() > deadline:
            raise AzureError(
                f"{method} {display_url(exchange.url)}: the operation did not finish within {params.timeout:g}s",
                hint="raise the step's `timeout:` in `with`, or check the resource in the portal",
            )
        response = (await arm.client.send("GET", arm.url(url), plane="arm", headers=_headers(_token(arm)))).response
        polls += 1
        if status_url:
            state = str((response.json() or {}).get("status", "")) if response.status_code == 200 else ""
            if state in ("Succeeded", "Failed", "Canceled"):
                outcome = state
                if state != "Succeeded":
                    error = (response.json() or {}).get("error") or {}
                    raise AzureError(
                        f"{method} {display_url(exchange.url)}: the operation {state.lower()}: "
                        f"{error.get('code', '')} {error.get('message', '')}".rstrip()
                    )
        elif response.status_code != 202:
            outcome = "Succeeded" if response.status_code < 400 else "Failed"
    final = await _read(arm, resource_id, params.api_version)
    return exchange.response.status_code, outcome, polls, final


def _poll_delay(headers: Any, default: float) -> float:
    value = headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), MAX_POLL_INTERVAL) if value is not None else default
    except ValueError:
        return default


def merge(base: Any, patch: Any) -> Any:
    """`patch` merged into `base`: objects merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = merge(merged.get(key), value)
        return merged
    return copy.deepcopy(patch)


def _ensure_items(resource: dict[str, Any], path: str, items: list[Any]) -> None:
    node: Any = resource
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ActionError(f"append: {path}: {part} is not an object in the resource")
    current = node.get(parts[-1]) or []
    if not isinstance(current, list):
        raise ActionError(f"append: {path} is not a list in the resource")
    node[parts[-1]] = current + [item for item in items if item not in current]


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths where `after` differs from `before` (lists compared whole)."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                paths += changed_paths(before.get(key), after.get(key), f"{prefix}{key}.")
        return paths
    return [prefix.rstrip(".")] if before != after else []


def _patch_document(before: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The smallest merge patch from `before` to `desired` (top-level keys, properties by key)."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key in _READ_ONLY_KEYS or before.get(key) == value:
            continue
        if key == "properties" and isinstance(value, dict) and isinstance(before.get(key), dict):
            patch[key] = {k: v for k, v in value.items() if before[key].get(k) != v}
        else:
            patch[key] = value
    return patch


def _json_diff(before: Any, after: Any, name: str) -> str:
    a = json.dumps(before, indent=2, sort_keys=True).splitlines(keepends=True) if before is not None else []
    b = json.dumps(after, indent=2, sort_keys=True).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"a/{name}", f"b/{name}"))


def _comparable(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    shown = {k: v for k, v in resource.items() if k not in ("etag", "systemData")}
    props = shown.get("properties")
    if isinstance(props, dict):
        shown["properties"] = {k: v for k, v in props.items() if k != "provisioningState"}
    return shown


def _outcome(
    ctx: ActionContext,
    params: WriteParams,
    *,
    method: str,
    before: dict[str, Any] | None,
    desired: dict[str, Any],
    sent: tuple[int, str | None, int, dict[str, Any] | None] | None,
    body: dict[str, Any],
) -> Result:
    after = sent[3] if sent is not None and sent[3] is not None else desired
    paths = changed_paths(_comparable(before) or {}, _comparable(desired) or {})
    diff = ctx.redactor.text(_json_diff(_comparable(before), _comparable(desired), params.id.rsplit("/", 1)[-1]))
    output = {
        "id": params.id,
        "method": method if paths or before is None else "NONE",
        "sent": sent is not None,
        "status": sent[0] if sent else None,
        "operation_status": sent[1] if sent else None,
        "polls": sent[2] if sent else 0,
        "changed_paths": paths,
        "diff": diff if paths or before is None else "",
        "before": ctx.redactor(bound_json(before, max_chars=params.max_chars)) if before is not None else None,
        "after": ctx.redactor(bound_json(after, max_chars=params.max_chars)),
        "provisioning_state": (after.get("properties") or {}).get("provisioningState")
        if isinstance(after, dict)
        else None,
        "az_cli": ctx.redactor.text(cli_equivalent(method, params.id, params.api_version, body)),
        "portal": portal_path(params.id),
    }
    if not paths and before is not None:
        return Result(status="ok", output=output, message="already as desired: nothing sent")
    message = f"would {method} {len(paths)} change(s) (dry-run: nothing sent)" if sent is None else None
    return Result(
        status="changed",
        output=output,
        diff=output["diff"],
        message=message,
        changes=[{"kind": "azure", "id": params.id, "method": method, "paths": paths}],
    )


# ---------------------------------------------------------------------------------------- update


class UpdateParams(WriteParams):
    properties: dict[str, Any] = Field(default_factory=dict, description="values merged into `properties`")
    body: dict[str, Any] = Field(default_factory=dict, description="values merged into the whole resource (tags, sku…)")
    append: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted path -> items that must be in that list (added when missing)"
    )
    method: Literal["patch", "put"] = Field("patch", description="PATCH the changes, or PUT the whole resource")


@action(
    "azure.update",
    params=UpdateParams,
    changes=True,
    supports_dry_run=True,
    output=WriteOutput,
    summary="Set properties of an ARM resource (merge or PUT), only when they differ; wait for the operation.",
)
def azure_update(params: UpdateParams, ctx: ActionContext) -> Result:
    _refuse_outside_fix(ctx, "azure.update")

    async def work(arm: ArmClient) -> Result:
        before = await _read(arm, params.id, params.api_version)
        if before is None:
            raise AzureError(f"azure.update: {params.id} does not exist", hint="create it with azure.create")
        desired = merge(merge(before, params.body), {"properties": params.properties} if params.properties else {})
        for path, items in params.append.items():
            _ensure_items(desired, path, items)
        method = params.method.upper()
        if method == "PUT":
            body = {k: v for k, v in desired.items() if k not in _READ_ONLY_KEYS}
        else:
            body = _patch_document(before, desired)
        if not changed_paths(_comparable(before) or {}, _comparable(desired) or {}) or ctx.dry_run:
            return _outcome(ctx, params, method=method, before=before, desired=desired, sent=None, body=body)
        sent = await _send_and_wait(arm, method, params.id, params, body, before.get("etag"))
        return _outcome(ctx, params, method=method, before=before, desired=desired, sent=sent, body=body)

    return _arm(ctx, work)


# ---------------------------------------------------------------------------------------- create


class CreateParams(WriteParams):
    body: dict[str, Any] = Field(description="the whole resource to PUT (location, properties…)")


@action(
    "azure.create",
    params=CreateParams,
    changes=True,
    supports_dry_run=True,
    output=WriteOutput,
    summary="PUT a new ARM resource (or one whose values differ) and wait until it has Succeeded.",
)
def azure_create(params: CreateParams, ctx: ActionContext) -> Result:
    _refuse_outside_fix(ctx, "azure.create")

    async def work(arm: ArmClient) -> Result:
        before = await _read(arm, params.id, params.api_version)
        desired = merge(before or {}, params.body)
        desired.update({"id": params.id, "name": params.id.rsplit("/", 1)[-1]})
        if before is not None:
            desired["type"] = before.get("type")
        body = dict(params.body)
        unchanged = before is not None and not changed_paths(_comparable(before) or {}, _comparable(desired) or {})
        if unchanged or ctx.dry_run:
            return _outcome(ctx, params, method="PUT", before=before, desired=desired, sent=None, body=body)
        sent = await _send_and_wait(arm, "PUT", params.id, params, body, before.get("etag") if before else None)
        return _outcome(ctx, params, method="PUT", before=before, desired=desired, sent=sent, body=body)

    return _arm(ctx, work)


# ------------------------------------------------------------------------- CLI and portal equivalents


def _parts(resource_id: str) -> dict[str, str]:
    segments = resource_id.strip("/").split("/")
    found = {"rg": "", "name": segments[-1]}
    for index, segment in enumerate(segments[:-1]):
        if segment.lower() == "resourcegroups":
            found["rg"] = segments[index + 1]
    return found


def cli_equivalent(method: str, resource_id: str, api_version: str, body: dict[str, Any]) -> str:
    """The `az` command that makes the same change as this write (a specific command when one exists)."""
    lowered = resource_id.lower()
    parts = _parts(resource_id)
    found = body.get("properties")
    props: dict[str, Any] = found if isinstance(found, dict) else {}
    quote = shlex.quote
    if "/microsoft.documentdb/databaseaccounts/" in lowered and "ipRules" in props:
        ranges = ",".join(str(rule.get("ipAddressOrRange")) for rule in props["ipRules"] if isinstance(rule, dict))
        return f"az cosmosdb update --name {parts['name']} --resource-group {parts['rg']} --ip-range-filter {quote(ranges)}"
    if "/microsoft.insights/diagnosticsettings/" in lowered:
        target = resource_id.split("/providers/Microsoft.Insights", 1)[0].split("/providers/microsoft.insights", 1)[0]
        logs = json.dumps(props.get("logs", []), separators=(",", ":"))
        return (
            f"az monitor diagnostic-settings create --name {parts['name']} --resource {quote(target)} "
            f"--workspace {quote(str(props.get('workspaceId', '')))} --logs {quote(logs)}"
        )
    if "/microsoft.search/searchservices/" in lowered and method == "PUT":
        sku = (body.get("sku") or {}).get("name", "basic")
        location = body.get("location", "")
        return f"az search service create --name {parts['name']} --resource-group {parts['rg']} --sku {sku} --location {location}"
    url = f"https://management.azure.com{resource_id}?api-version={api_version}"
    document = json.dumps(body, separators=(",", ":"))
    return f"az rest --method {method.lower()} --url {quote(url)} --body {quote(document)}"


_PORTAL = (
    (
        "/apis/",
        "/policies/",
        "API Management service > APIs > {api} > All operations > Outbound processing > Policy code editor",
    ),
    (
        "/microsoft.insights/diagnosticsettings/",
        "",
        "API Management service > Monitoring > Diagnostic settings > {name}",
    ),
    (
        "/microsoft.documentdb/databaseaccounts/",
        "",
        "Azure Cosmos DB account > Settings > Networking > Public access: Selected networks > Firewall",
    ),
    ("/microsoft.search/searchservices/", "", "Create a resource > Azure AI Search"),
    ("/microsoft.apimanagement/service/", "/backends/", "API Management service > APIs > Backends > {name}"),
    ("/microsoft.operationalinsights/workspaces/", "", "Log Analytics workspace > Overview (Workspace ID)"),
)


def portal_path(resource_id: str) -> str:
    """Where in the Azure portal the same change is made."""
    lowered = resource_id.lower()
    segments = resource_id.strip("/").split("/")
    api = next((segments[i + 1] for i, s in enumerate(segments[:-1]) if s.lower() == "apis"), "")
    for first, second, text in _PORTAL:
        if first in lowered and second in lowered:
            return text.format(api=api, name=segments[-1])
    return "Resource > Overview > JSON View"
