"""APIM backends and API policies in the emulator: their ARM rows, and what the gateway does with them.

ARM: `service/{svc}/backends/{id}` (Single backends with a `url`, Pool backends with
`pool.services: [{id, priority, weight}]`) and `service/{svc}/apis/{api}/policies/policy` (`rawxml`)
are store-backed (`arm_writes`), so writes take effect on the next gateway request.

Gateway: an API whose estate entry names a `backend` is balanced over it: a Pool sends each request
to the next member of its best priority (weighted round-robin); a member is a Single backend whose
URL names a Foundry account (`https://{account}.openai.azure.com/...`). A member whose URL names no
account, or whose account lacks the deployment, answers 404 `DeploymentNotFound`. Response headers
come from the API policy's `<outbound>`: `<set-header name=... exists-action=override|skip|delete>`
with a literal `<value>` or an expression; an expression that mentions `Region` yields the serving
account's region and one that mentions `Backend` the serving backend's id. Without a policy that sets
`x-ms-region` the gateway sends none.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree

from runbook.azure.emulator.arm import ArmCall
from runbook.azure.emulator.arm_shapes import group_id
from runbook.azure.emulator.arm_writes import StoredType
from runbook.azure.emulator.state import ArmStore
from runbook.azure.emulator.transport import Json
from runbook.azure.estate import Account, Api, Deployment, Estate

__all__ = ["BACKENDS", "POLICIES", "Routed", "policy_headers", "region_of", "route", "seed", "service_id"]

BACKEND_TYPE = "Microsoft.ApiManagement/service/backends"
POLICY_TYPE = "Microsoft.ApiManagement/service/apis/policies"
_SERVICE = "subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.apimanagement/service/{svc}"
EMPTY_POLICY = (
    "<policies>\r\n\t<inbound>\r\n\t\t<base />\r\n\t</inbound>\r\n\t<backend>\r\n\t\t<base />\r\n\t</backend>"
    "\r\n\t<outbound>\r\n\t\t<base />\r\n\t</outbound>\r\n\t<on-error>\r\n\t\t<base />\r\n\t</on-error>\r\n</policies>"
)


def _backend_template(_call: ArmCall, resource_id: str, name: str) -> Json:
    return {
        "id": resource_id,
        "name": name,
        "type": BACKEND_TYPE,
        "properties": {"title": None, "description": None, "url": None, "protocol": "http", "type": "Single"},
    }


def _backend_valid(resource: Json) -> str | None:
    props = resource.get("properties", {})
    kind = props.get("type", "Single")
    if kind not in ("Single", "Pool"):
        return "Backend type must be Single or Pool."
    if kind == "Single" and not props.get("url"):
        return "A Single backend needs properties.url."
    if kind == "Pool" and not (props.get("pool") or {}).get("services"):
        return "A Pool backend needs properties.pool.services."
    return None


def _policy_template(_call: ArmCall, resource_id: str, name: str) -> Json:
    return {
        "id": resource_id,
        "name": name,
        "type": POLICY_TYPE,
        "properties": {"format": "rawxml", "value": EMPTY_POLICY},
    }


def _policy_valid(resource: Json) -> str | None:
    if resource["name"].lower() != "policy":
        return "The only API policy is named 'policy'."
    value = resource.get("properties", {}).get("value")
    try:
        root = ElementTree.fromstring(str(value or ""))  # noqa: S314 - expat refuses entity expansion bombs (3.7.1+)
    except ElementTree.ParseError as exc:
        return f"'{exc}' in the policy document (format rawxml)."
    if root.tag != "policies":
        return "The policy document's root element must be <policies>."
    return None


BACKENDS = StoredType(
    type_name=BACKEND_TYPE,
    operations="Backend",
    collection=_SERVICE + "/backends",
    namespace="Microsoft.ApiManagement",
    template=_backend_template,
    item_param="backend",
    validate=_backend_valid,
)
POLICIES = StoredType(
    type_name=POLICY_TYPE,
    operations="ApiPolicy",
    collection=_SERVICE + "/apis/{api}/policies",
    namespace="Microsoft.ApiManagement",
    template=_policy_template,
    patch=False,
    item_param="policy",
    validate=_policy_valid,
)


def service_id(sub_id: str, group_name: str, service_name: str) -> str:
    return (
        f"/subscriptions/{sub_id}/resourceGroups/{group_name}/providers/Microsoft.ApiManagement/service/{service_name}"
    )


def seed(estate: Estate, store: ArmStore) -> None:
    for sub, group in estate.groups():
        for service in group.apim:
            base = f"{group_id(sub, group)}/providers/Microsoft.ApiManagement/service/{service.name}"
            for backend in service.backends:
                props: Json = {"title": None, "description": None, "protocol": "http", "type": backend.type}
                if backend.type == "Pool":
                    props["pool"] = {
                        "services": [
                            {"id": f"{base}/backends/{m.backend}", "priority": m.priority, "weight": m.weight}
                            for m in backend.pool
                        ]
                    }
                else:
                    props["url"] = backend.effective_url()
                store.seed(
                    {
                        "id": f"{base}/backends/{backend.id}",
                        "name": backend.id,
                        "type": BACKEND_TYPE,
                        "properties": props,
                    }
                )
            for api in service.apis:
                if api.policy is not None:
                    store.seed(
                        {
                            "id": f"{base}/apis/{api.id}/policies/policy",
                            "name": "policy",
                            "type": POLICY_TYPE,
                            "properties": {"format": "rawxml", "value": api.policy},
                        }
                    )


@dataclass(frozen=True)
class Routed:
    """Where the pool sent a request: the backend id, and the account and deployment (None: 404)."""

    backend_id: str
    account: Account | None
    deployment: Deployment | None
    region: str


def _account_of_url(estate: Estate, url: str) -> Account | None:
    host = (urlsplit(url).hostname or "").lower()
    name = host.split(".", 1)[0]
    return estate.find_account(name) if name else None


def route(estate: Estate, store: ArmStore, service: str, api: Api, deployment_name: str) -> Routed | None:
    """The member of the API's backend (pool) that serves this request, or None when it has no backend."""
    if api.backend is None:
        return None
    backend = store.get(f"{service}/backends/{api.backend}")
    if backend is None:
        return Routed(api.backend, None, None, "")
    props = backend.get("properties", {})
    chosen = backend
    if props.get("type") == "Pool":
        members = [m for m in (props.get("pool") or {}).get("services", []) if isinstance(m, dict)]
        if not members:
            return Routed(backend["name"], None, None, "")
        best = min(int(m.get("priority", 1)) for m in members)
        ring = [m for m in members if int(m.get("priority", 1)) == best for _ in range(max(1, int(m.get("weight", 1))))]
        member = ring[store.next_in(backend["id"].lower(), len(ring))]
        chosen = store.get(str(member.get("id", ""))) or {
            "name": str(member.get("id", "")).rsplit("/", 1)[-1],
            "properties": {},
        }
    account = _account_of_url(estate, str(chosen.get("properties", {}).get("url") or ""))
    name = str(chosen.get("name"))
    if account is None:
        return Routed(name, None, None, "")
    region = region_of(estate, account)
    deployment = next((d for d in account.deployments if d.name == deployment_name), None)
    return Routed(name, account, deployment, region)


def region_of(estate: Estate, account: Account) -> str:
    """The account's region (its group's when it declares none)."""
    if account.location:
        return account.location
    for _, group, candidate in estate.accounts():
        if candidate is account:
            return group.location
    return ""


def policy_headers(store: ArmStore, service: str, api: Api, *, region: str, backend_id: str) -> list[tuple[str, str]]:
    """The response headers the API policy's outbound section sets for this answer."""
    policy = store.get(f"{service}/apis/{api.id}/policies/policy")
    if policy is None:
        return []
    try:
        root = ElementTree.fromstring(str(policy.get("properties", {}).get("value") or ""))  # noqa: S314 - as above
    except ElementTree.ParseError:
        return []
    headers: dict[str, str] = {}
    for outbound in root.iter("outbound"):
        for element in outbound.iter("set-header"):
            name = element.get("name")
            if not name:
                continue
            action = (element.get("exists-action") or "override").lower()
            if action == "delete":
                headers.pop(name.lower(), None)
                continue
            if action == "skip" and name.lower() in headers:
                continue
            values = [_evaluate(v.text or "", region, backend_id) for v in element.iter("value")]
            headers[name.lower()] = ",".join(values)
    return [(name, value) for name, value in headers.items() if value]


def _evaluate(text: str, region: str, backend_id: str) -> str:
    value = text.strip()
    if not value.startswith("@"):
        return value
    lowered = value.lower()
    if "region" in lowered:
        return region
    if "backend" in lowered:
        return backend_id
    return ""
