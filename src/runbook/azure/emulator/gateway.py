"""The API Management gateway: routes by gateway, API path and operation URL template, checks keys.

One gateway server plays every APIM service of the estate. A request names its service the way a
real one does, by host (`Host: {service}.azure-api.net`), or, since loopback has one host, by that
host as the first path segment: `{gateway}/{service}.azure-api.net/{api-path}/...` is the service's
own gateway URL (what ARM reports as `gatewayUrl` when the estate has several services). A request
without one goes to the API whose path is the estate's only one with that path (so a one-service
estate is served at the root, as before); a path several services share is refused with a 404 that
names them. Each API is compiled once: its path prefix, its backend accounts
(tried in order, like the lab's priority pool) and its operations' URL templates. A request goes to
the API with the longest matching prefix, then to the operation whose template matches (method,
segments, required query parameters), the most literal template winning as in APIM. Operations whose
template ends in an Azure OpenAI route are answered by a backend deployment (`dataplane`); any other
operation echoes what matched. Generated images are served back under `/_emulator/images/`.
An API with a `backend` is balanced over that APIM backend (pool) instead, and response headers such
as `x-ms-region` / `x-ms-backend-id` come only from the API policy's outbound section (`apim_backends`).

An API whose path ends in `openai` also answers the Azure OpenAI v1 routes under `v1/` (chat,
completions, embeddings, image generations and edits; the deployment named by `model`), as APIM
does when it imports the v1 API; there the key may also come as `Authorization: Bearer <key>`, as
the `openai.OpenAI(base_url=...)` client sends it. `images/edits` takes the multipart form the SDK
sends. Data-plane answers carry `x-request-id` and Azure's `x-ratelimit-*` headers (limits from the
deployment's capacity: 1000 tokens and 6 requests per minute per unit).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from runbook.azure.emulator.apim_backends import policy_headers, region_of, route, service_id
from runbook.azure.emulator.dataplane import CAPABILITY_OF, KINDS, answer, openai_error
from runbook.azure.emulator.state import ArmStore, ImageStore
from runbook.azure.emulator.transport import Request, Response, apim_error, arm_error, json_response
from runbook.azure.estate import (
    GATEWAY_HOST_SUFFIX,
    Account,
    Api,
    ApiManagementService,
    Deployment,
    Estate,
    Operation,
)

__all__ = ["GatewaySite"]

_DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment within the "
    "last 5 minutes, please wait a moment and try again."
)
_MISSING_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
_INVALID_KEY = (
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
)


@dataclass(frozen=True)
class _CompiledOperation:
    operation: Operation
    segments: tuple[tuple[bool, str], ...]  # (is_param, lower-cased literal or param name)
    query: tuple[str, ...]  # required query parameter names
    deployment_param: str | None  # the param right after a literal "deployments" segment
    kind: str | None  # chat / completions / embeddings / images, or None for other APIs

    @classmethod
    def compile(cls, operation: Operation) -> _CompiledOperation:
        path, _, query = operation.url_template.partition("?")
        segments: list[tuple[bool, str]] = []
        deployment_param = None
        for part in filter(None, path.split("/")):
            if part.startswith("{") and part.endswith("}"):
                if segments and segments[-1] == (False, "deployments"):
                    deployment_param = part[1:-1]
                segments.append((True, part[1:-1]))
            else:
                segments.append((False, part.lower()))
        tail: list[str] = []
        for is_param, text in reversed(segments):
            if is_param:
                break
            tail.insert(0, text)
        names = tuple(pair.partition("=")[0] for pair in query.split("&") if pair)
        return cls(operation, tuple(segments), names, deployment_param, KINDS.get("/".join(tail)))

    def match(self, method: str, segments: Sequence[str], request: Request) -> dict[str, str] | None:
        if method != self.operation.method or len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for (is_param, text), got in zip(self.segments, segments, strict=True):
            if is_param:
                params[text] = got
            elif text != got.lower():
                return None
        for name in self.query:
            value = request.query_value(name)
            if value is None:
                return None
            params[name] = value
        return params

    @property
    def literals(self) -> int:
        return sum(not is_param for is_param, _ in self.segments)


@dataclass(frozen=True)
class _GatewayApi:
    service: ApiManagementService
    api: Api
    prefix: tuple[str, ...]  # lower-cased path segments
    backends: tuple[Account, ...]
    operations: tuple[_CompiledOperation, ...]
    service_id: str = ""  # the service's ARM id, where its backends and policies live in the store


class GatewaySite:
    """Plays the APIM gateway: API + operation matching, subscription keys, Azure OpenAI answers."""

    def __init__(
        self, estate: Estate, base_url: Callable[[], str], images: ImageStore, store: ArmStore | None = None
    ) -> None:
        self.base_url = base_url
        self.images = images
        self.estate = estate
        self.store = store if store is not None else ArmStore()
        apis = []
        for sub, group, service in estate.apim_services():
            for api in service.apis:
                backends = tuple(a for a in map(estate.find_account, api.backends) if a is not None)
                apis.append(
                    _GatewayApi(
                        service,
                        api,
                        tuple(part.lower() for part in api.path.split("/") if part),
                        backends,
                        tuple(map(_CompiledOperation.compile, api.operations)),
                        service_id(sub.id, group.name, service.name),
                    )
                )
        # longest path first, so `inference/openai` wins over `inference`
        apis.sort(key=lambda entry: -len(entry.prefix))
        self.by_service: dict[str, list[_GatewayApi]] = {}
        owners: dict[tuple[str, ...], list[str]] = {}
        for entry in apis:
            self.by_service.setdefault(entry.service.name.lower(), []).append(entry)
            owners.setdefault(entry.prefix, []).append(entry.service.name)
        # the root serves the paths only one service has; the others need the service's own URL
        self.apis = [entry for entry in apis if len(owners[entry.prefix]) == 1]
        self.shared = {prefix: names for prefix, names in owners.items() if len(names) > 1}

    def respond(self, request: Request) -> Response:
        segments = request.segments()
        if segments[:2] == ["_emulator", "images"] and len(segments) == 3 and request.method == "GET":
            return self._image_file(segments[2])
        service = _host_service(request.headers.get("host", ""))
        if service is None and segments and segments[0].lower().endswith(GATEWAY_HOST_SUFFIX):
            service, segments = segments[0][: -len(GATEWAY_HOST_SUFFIX)].lower(), segments[1:]
        apis = self.apis if service is None else self.by_service.get(service)
        if apis is None:
            return apim_error(404, f"Resource not found: no API Management gateway '{service}{GATEWAY_HOST_SUFFIX}' here")
        lowered = [part.lower() for part in segments]
        for entry in apis:
            if lowered[: len(entry.prefix)] == list(entry.prefix):
                return self._call(entry, segments[len(entry.prefix) :], request)
        if service is None:
            for prefix, names in self.shared.items():
                if lowered[: len(prefix)] == list(prefix):
                    return apim_error(
                        404,
                        f"Resource not found: gateways {', '.join(names)} all serve '/{'/'.join(prefix)}'; "
                        f"call one through its own URL, {self.base_url()}/{{service}}{GATEWAY_HOST_SUFFIX}/...",
                    )
        return apim_error(404, "Resource not found")

    def _call(self, entry: _GatewayApi, rest: Sequence[str], request: Request) -> Response:
        if entry.prefix[-1:] == ("openai",) and list(rest[:1]) == ["v1"]:
            return self._v1(entry, [part.lower() for part in rest[1:]], request)
        matches = [
            (op, params) for op in entry.operations if (params := op.match(request.method, rest, request)) is not None
        ]
        if not matches:
            return apim_error(404, "Resource not found")
        # the most literal template wins, as in APIM
        op, params = max(matches, key=lambda match: match[0].literals)
        name = op.operation.id
        refused = _check_key(entry, request, name)
        if refused is not None:
            return refused
        if op.kind is None:
            echo = {"operationId": name, "method": request.method, "templateParameters": params}
            return json_response(200, echo, operation=name)
        body, problem = _request_body(request)
        if problem is not None:
            return openai_error(400, problem, operation=name)
        deployment_name = params.get(op.deployment_param) if op.deployment_param else body.get("model")
        return self._answer(entry, op.kind, name, deployment_name, body)

    def _v1(self, entry: _GatewayApi, rest: Sequence[str], request: Request) -> Response:
        kind = KINDS.get("/".join(rest))
        name = "v1-" + "-".join(rest)
        if kind is None or request.method != "POST":
            return apim_error(404, "Resource not found")
        refused = _check_key(entry, request, name, bearer=True)
        if refused is not None:
            return refused
        body, problem = _request_body(request)
        if problem is not None:
            return openai_error(400, problem, operation=name)
        if not isinstance(body.get("model"), str):
            return openai_error(400, "'model' is a required property", param="model", operation=name)
        return self._answer(entry, kind, name, body["model"], body)

    def _answer(self, entry: _GatewayApi, kind: str, name: str, deployment_name: object, body: dict[str, Any]) -> Response:
        """The deployment's answer to a data-plane call, with Azure's request-id and rate-limit headers."""
        routed = route(self.estate, self.store, entry.service_id, entry.api, str(deployment_name))
        if routed is not None:  # balanced over the API's backend pool
            extra = policy_headers(
                self.store, entry.service_id, entry.api, region=routed.region, backend_id=routed.backend_id
            )
            if routed.account is None or routed.deployment is None:
                missing = arm_error(404, "DeploymentNotFound", _DEPLOYMENT_NOT_FOUND, operation=name)
                missing.headers.extend(extra)
                return missing
            account, deployment = routed.account, routed.deployment
        else:
            found = _find_deployment(entry.backends, deployment_name)
            if found is None:
                return arm_error(404, "DeploymentNotFound", _DEPLOYMENT_NOT_FOUND, operation=name)
            account, deployment = found
            extra = policy_headers(
                self.store, entry.service_id, entry.api, region=region_of(self.estate, account), backend_id=account.name
            )
        capability = CAPABILITY_OF[kind]
        if capability not in deployment.effective_capabilities():
            return arm_error(
                400,
                "OperationNotSupported",
                f"The {capability} operation does not work with the specified model, "
                f"{deployment.model}. Please choose different model and try again. You can learn "
                "more about which models can be used with each operation here: "
                "https://go.microsoft.com/fwlink/?linkid=2197993.",
                operation=name,
            )
        response = answer(kind, deployment, body, self._store_image)
        response.operation = name
        response.headers.extend([*extra, ("apim-request-id", str(uuid.uuid4()))])
        response.headers.extend(_rate_limit_headers(deployment, response))
        return response

    def _store_image(self, png: bytes) -> str:
        return f"{self.base_url()}/_emulator/images/{self.images.put(png)}"

    def _image_file(self, name: str) -> Response:
        png = self.images.get(name)
        if png is None:
            return apim_error(404, "Resource not found")
        return Response(200, png, operation="image-file", content_type="image/png")


def _host_service(host: str) -> str | None:
    """The service named by a `Host: {service}.azure-api.net[:port]` header, or None."""
    name = host.partition(":")[0].lower()
    return name[: -len(GATEWAY_HOST_SUFFIX)] if name.endswith(GATEWAY_HOST_SUFFIX) else None


def _check_key(entry: _GatewayApi, request: Request, operation: str, *, bearer: bool = False) -> Response | None:
    """APIM's 401 when the API needs a subscription key and the request has no valid one, else None."""
    if not entry.api.subscription_required:
        return None
    key = request.headers.get(entry.service.subscription_key_header.lower())
    if key is None:
        key = request.query_value(entry.service.subscription_key_query)
    authorization = request.headers.get("authorization", "")
    if key is None and bearer and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        return apim_error(401, _MISSING_KEY, operation=operation)
    if key not in entry.service.subscription_keys:
        return apim_error(401, _INVALID_KEY, operation=operation)
    return None


def _request_body(request: Request) -> tuple[dict[str, Any], str | None]:
    """The request's parameters: a JSON object, or the fields of a multipart form (images.edit)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.body
        )
        if not message.is_multipart():
            return {}, "The multipart form could not be read."
        fields: dict[str, Any] = {}
        files: list[str] = []
        for part in message.iter_parts():
            field_name = part.get_param("name", header="content-disposition")
            if not isinstance(field_name, str):
                continue
            if part.get_filename() is not None:
                files.append(field_name)
            else:
                text = part.get_content()
                fields[field_name] = int(text) if field_name == "n" and str(text).isdigit() else text
        if not any(name.startswith("image") for name in files):
            return fields, "'image' is a required property"
        return fields, None
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        return {}, f"The request body is not valid JSON: {exc}"
    if not isinstance(body, dict):
        return {}, "The request body must be a JSON object."
    return body, None


def _rate_limit_headers(deployment: Deployment, response: Response) -> list[tuple[str, str]]:
    """`x-request-id` and Azure OpenAI's rate-limit headers; the limits follow the deployment's capacity."""
    tokens_limit = max(deployment.capacity, 1) * 1000
    requests_limit = max(deployment.capacity, 1) * 6
    used = 0
    if response.status == 200 and response.content_type.startswith("application/json"):
        try:
            used = int(json.loads(response.body).get("usage", {}).get("total_tokens", 0))
        except (ValueError, AttributeError, TypeError):
            used = 0
    return [
        ("x-request-id", str(uuid.uuid4())),
        ("x-ratelimit-limit-requests", str(requests_limit)),
        ("x-ratelimit-remaining-requests", str(requests_limit - 1)),
        ("x-ratelimit-limit-tokens", str(tokens_limit)),
        ("x-ratelimit-remaining-tokens", str(max(tokens_limit - used, 0))),
    ]


def _find_deployment(backends: Sequence[Account], name: object) -> tuple[Account, Deployment] | None:
    # backends are tried in order (the lab's priority pool): the first with the deployment answers
    if not isinstance(name, str):
        return None
    for account in backends:
        for deployment in account.deployments:
            if deployment.name == name:
                return account, deployment
    return None
