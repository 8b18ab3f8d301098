"""The embedded Azure emulator: real HTTP servers on loopback that answer like Azure, from an estate.

Two servers run side by side. The ARM server answers Azure Resource Manager reads (subscriptions,
resource groups, Cognitive Services accounts and deployments, API Management services, APIs and
operations) in ARM's JSON shapes, with paging and ARM error bodies. The gateway server plays the
API Management gateway in front of the Foundry accounts: it routes by API path and operation URL
template, checks subscription keys, and answers chat completions, embeddings and image generations
(real PNGs) in the Azure OpenAI shapes. Latency and faults (429, 5xx, dropped connections) can be
injected, and every request is logged without header values.

`Emulator` is the Python API; `serve_forever` backs `runbook emulator` and
`python -m runbook.azure.emulator`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import ipaddress
import json
import math
import random
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlsplit

from runbook.azure.estate import (
    Account,
    Api,
    ApiManagementService,
    Deployment,
    Estate,
    Operation,
    ResourceGroup,
    Subscription,
    load_estate,
)
from runbook.azure.png import render_png
from runbook.errors import InputError, RunbookError, did_you_mean

__all__ = [
    "FAULT_KINDS",
    "Emulator",
    "FaultPlan",
    "RequestLogEntry",
    "main",
    "serve_forever",
]

Json = dict[str, Any]

FAULT_KINDS = ("429", "500", "503", "drop")
SERVERS = ("arm", "gateway")

#: The `created` stamp of data-plane answers: fixed (the seed incident's time), so they are stable.
CREATED = 1763093700  # 2025-11-14T04:15:00Z
_CREATED_AT = "2025-11-01T09:00:00.0000000Z"
_CREATED_BY = "lab-admin@contoso.com"
_MAX_BODY = 64 * 1024 * 1024
_IMAGE_SIDE = 64
_IMAGE_CACHE = 256


# -------------------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject: each request fails with probability `rate`, with one of `kinds`.

    Kinds: "429" (throttled, with `Retry-After`), "500", "503" (with `Retry-After`), "drop" (the
    connection closes without an answer). `retry_after` is in seconds; fractions are sent as is.
    """

    rate: float
    kinds: tuple[str, ...] = ("429", "503", "drop")
    retry_after: float = 1.0
    servers: tuple[str, ...] = SERVERS

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise InputError(f"fault rate {self.rate} is outside 0..1", hint="use e.g. 0.1 for 10%")
        if not self.kinds:
            raise InputError("a fault plan needs at least one kind", hint=f"use {', '.join(FAULT_KINDS)}")
        for kind in self.kinds:
            if kind not in FAULT_KINDS:
                raise InputError(f"unknown fault kind '{kind}'", hint=_choices(kind, FAULT_KINDS))
        for server in self.servers:
            if server not in SERVERS:
                raise InputError(f"unknown emulator server '{server}'", hint=_choices(server, SERVERS))
        if self.retry_after < 0:
            raise InputError(f"retry_after {self.retry_after} must not be negative")


@dataclass(frozen=True)
class RequestLogEntry:
    """One request the emulator answered (or dropped). Header values (keys!) are never kept."""

    time: float  # epoch seconds when the request arrived
    server: str  # "arm" or "gateway"
    method: str
    path: str
    query: str  # subscription-key query values are replaced by "***"
    status: int | None  # None when the connection was dropped
    fault: str | None  # the injected fault kind, if any
    operation: str | None  # ARM operation ("Deployments_List") or APIM operation id
    duration: float  # seconds, including injected latency

    @property
    def iso_time(self) -> str:
        """`time` as UTC ISO-8601 with a `Z`."""
        stamp = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        return stamp.replace("+00:00", "Z")


class Emulator:
    """Azure on loopback: an ARM server and an APIM gateway server, answering from an `Estate`."""

    def __init__(
        self,
        estate: Estate,
        *,
        host: str = "127.0.0.1",
        page_size: int = 100,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        seed: int = 0,
        arm_port: int = 0,
        gateway_port: int = 0,
    ) -> None:
        if page_size < 1:
            raise InputError(f"page size {page_size} must be at least 1")
        if latency < 0:
            raise InputError(f"latency {latency} must not be negative")
        self.estate = estate
        self.host = host
        self.page_size = page_size
        self.latency = latency
        self.faults = faults
        self._ports = (arm_port, gateway_port)
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._log: list[RequestLogEntry] = []
        self._log_lock = threading.Lock()
        self._servers: dict[str, _HTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self._urls: dict[str, str] = {}
        self._arm = _ArmSite(estate, page_size, lambda: self.arm_url, lambda: self.gateway_url)
        self._gateway = _GatewaySite(estate, lambda: self.gateway_url)
        self._secret_query_names = {"subscription-key"} | {
            service.subscription_key_query.lower() for _, _, service in estate.apim_services()
        }

    # -- lifecycle

    def start(self) -> Emulator:
        """Bind both servers (free ports unless given) and serve in daemon threads."""
        if self._servers:
            return self
        bind_host, family, url_host = _loopback(self.host)
        sites: dict[str, Callable[[_Request], _Response | None]] = {
            "arm": lambda request: self._serve("arm", request),
            "gateway": lambda request: self._serve("gateway", request),
        }
        try:
            for (name, site), port in zip(sites.items(), self._ports, strict=True):
                server = _HTTPServer((bind_host, port), family, site)
                self._servers[name] = server
                self._urls[name] = f"http://{url_host}:{server.server_address[1]}"
        except OSError as exc:
            self.stop()
            raise InputError(
                f"the emulator cannot listen on {self.host}: {exc.strerror or exc}",
                hint="choose other ports, or 0 for free ones",
            ) from exc
        for name, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"runbook-emulator-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and free the ports. Safe to call twice."""
        servers, self._servers = self._servers, {}
        for server in servers.values():
            if self._threads:
                server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a client needs

    @property
    def arm_url(self) -> str:
        """Base URL of the ARM server, e.g. http://127.0.0.1:PORT (routes: /subscriptions/...)."""
        return self._url("arm")

    @property
    def gateway_url(self) -> str:
        """Base URL of the APIM gateway server (routes start with an API path)."""
        return self._url("gateway")

    @property
    def subscription_key(self) -> str:
        """The first key of the first API Management service ("" when the estate has none)."""
        service = _first_service(self.estate)
        return service[2].subscription_keys[0] if service else ""

    @property
    def requests(self) -> list[RequestLogEntry]:
        """A snapshot of the request log, oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._log_lock:
            self._log.clear()

    def env(self) -> dict[str, str]:
        """The variables a notebook kernel needs to talk to this emulator."""
        values = {"ARM_BASE_URL": self.arm_url}
        found = _first_service(self.estate)
        if found is None:
            sub = self.estate.subscriptions[0]
            values["AZURE_SUBSCRIPTION_ID"] = sub.id
            if sub.resource_groups:
                values["RESOURCE_GROUP"] = sub.resource_groups[0].name
            return values
        sub, group, service = found
        values.update(
            APIM_GATEWAY_URL=self.gateway_url,
            APIM_API_KEY=service.subscription_keys[0],
            APIM_SERVICE_NAME=service.name,
            AZURE_SUBSCRIPTION_ID=sub.id,
            RESOURCE_GROUP=group.name,
            INFERENCE_API_PATH=_inference_api_path(service),
        )
        return dict(sorted(values.items()))

    # -- the request pipeline shared by both servers

    def _url(self, name: str) -> str:
        try:
            return self._urls[name]
        except KeyError:
            raise RuntimeError("the emulator is not started: call start() or use it as a context") from None

    def _serve(self, server: str, request: _Request) -> _Response | None:
        started = time.time()
        clock = time.perf_counter()
        if self.latency:
            time.sleep(self.latency)
        fault = self._draw_fault(server)
        response: _Response | None
        if fault == "drop":
            response = None
        elif fault is not None:
            response = _fault_response(server, fault, self.faults)
        else:
            site = self._arm if server == "arm" else self._gateway
            try:
                response = site.respond(request)
            except Exception as exc:  # the emulator must answer, never kill its thread
                response = _arm_error(500, "InternalServerError", f"emulator error: {exc!r}")
        entry = RequestLogEntry(
            time=started,
            server=server,
            method=request.method,
            path=request.path,
            query=self._redacted(request.raw_query),
            status=response.status if response else None,
            fault=fault,
            operation=response.operation if response else None,
            duration=time.perf_counter() - clock,
        )
        with self._log_lock:
            self._log.append(entry)
        return response

    def _draw_fault(self, server: str) -> str | None:
        plan = self.faults
        if plan is None or plan.rate <= 0 or server not in plan.servers:
            return None
        with self._random_lock:
            if self._random.random() >= plan.rate:
                return None
            return self._random.choice(plan.kinds)

    def _redacted(self, raw_query: str) -> str:
        # rewrite only the key values, so the rest of the query stays exactly as the client sent it
        pairs = []
        for pair in raw_query.split("&"):
            name, eq, _ = pair.partition("=")
            secret = unquote_plus(name).lower() in self._secret_query_names
            pairs.append(f"{name}{eq}***" if secret else pair)
        return "&".join(pairs)


def serve_forever(
    estate_path: Path | None = None,
    *,
    host: str = "127.0.0.1",
    arm_port: int = 0,
    gateway_port: int = 0,
    page_size: int = 100,
    latency: float = 0.0,
    fault_rate: float = 0.0,
    faults: FaultPlan | None = None,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the emulator until Ctrl-C (or until `stop` is set), printing its URLs, key and env.

    `fault_rate` is a shortcut for `FaultPlan(rate=fault_rate)`; `faults` wins when both are given.
    """
    say = echo if echo is not None else print
    plan = faults if faults is not None else (FaultPlan(rate=fault_rate) if fault_rate else None)
    emulator = Emulator(
        load_estate(estate_path),
        host=host,
        page_size=page_size,
        latency=latency,
        faults=plan,
        seed=seed,
        arm_port=arm_port,
        gateway_port=gateway_port,
    )
    with emulator:
        source = str(estate_path) if estate_path is not None else "the packaged AI-gateway lab"
        lines = [
            f"runbook Azure emulator, estate: {source}",
            f"  ARM      {emulator.arm_url}",
            f"  gateway  {emulator.gateway_url}",
            f"  key      {emulator.subscription_key}",
            "environment:",
            *(f"  export {name}={value}" for name, value in emulator.env().items()),
            "press Ctrl-C to stop",
        ]
        say("\n".join(lines))
        waiter = stop or threading.Event()
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            say("emulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m runbook.azure.emulator`: the same as `runbook emulator`, without the CLI."""
    parser = argparse.ArgumentParser(prog="python -m runbook.azure.emulator", description=__doc__)
    parser.add_argument("--estate", type=Path, default=None, help="estate YAML (default: packaged)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--arm-port", type=int, default=0)
    parser.add_argument("--gateway-port", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default="429,503,drop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        faults = (
            FaultPlan(rate=args.fault_rate, kinds=tuple(filter(None, args.fault_kinds.split(","))))
            if args.fault_rate
            else None
        )
        serve_forever(
            args.estate,
            host=args.host,
            arm_port=args.arm_port,
            gateway_port=args.gateway_port,
            page_size=args.page_size,
            latency=args.latency,
            faults=faults,
            seed=args.seed,
        )
    except RunbookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


# ----------------------------------------------------------------------------- requests, responses


@dataclass(frozen=True)
class _Request:
    method: str
    path: str  # still percent-encoded
    raw_query: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None

    def segments(self) -> list[str]:
        return [unquote(part) for part in self.path.strip("/").split("/") if part]


@dataclass
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    operation: str | None = None
    content_type: str = "application/json; charset=utf-8"


def _json_response(
    status: int,
    payload: object,
    *,
    operation: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> _Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _Response(status, body, list(headers), operation)


def _arm_error(status: int, code: str, message: str, *, operation: str | None = None) -> _Response:
    return _json_response(status, {"error": {"code": code, "message": message}}, operation=operation)


def _apim_error(status: int, message: str, *, operation: str | None = None) -> _Response:
    return _json_response(status, {"statusCode": status, "message": message}, operation=operation)


def _seconds(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _fault_response(server: str, kind: str, plan: FaultPlan | None) -> _Response:
    retry = _seconds(plan.retry_after if plan else 1.0)
    headers = [("x-runbook-fault", kind)]
    if kind in ("429", "503"):
        headers.append(("Retry-After", retry))
    if server == "gateway":
        messages = {
            "429": f"Rate limit is exceeded. Try again in {retry} seconds.",
            "500": "Internal server error",
            "503": "The service is temporarily unavailable. Try again later.",
        }
        response = _apim_error(int(kind), messages[kind])
    else:
        errors = {
            "429": (
                "SubscriptionRequestsThrottled",
                f"Number of 'read' requests for the subscription exceeded the limit. "
                f"Please try again after '{retry}' seconds.",
            ),
            "500": ("InternalServerError", "Encountered internal server error."),
            "503": ("ServiceUnavailable", "The server is currently unable to handle the request."),
        }
        response = _arm_error(int(kind), *errors[kind])
    response.headers.extend(headers)
    return response


# -------------------------------------------------------------------------------------- ARM server


class _ArmFailureError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.response = _arm_error(status, code, message)


@dataclass(frozen=True)
class _ArmRoute:
    operation: str
    pattern: tuple[str, ...]  # lower-cased literals and "{name}" placeholders
    handler: Callable[[dict[str, str]], Json | list[Json]]
    apim: bool = False  # APIM lists carry a `count`

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        if len(segments) != len(self.pattern):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.pattern, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got.lower():
                return None
        return params


_RG = "subscriptions/{sub}/resourcegroups/{rg}"
_COG = _RG + "/providers/microsoft.cognitiveservices/accounts"
_APIM = _RG + "/providers/microsoft.apimanagement/service"


class _ArmSite:
    """Answers ARM reads from the estate, in ARM's shapes, with ARM's errors and paging."""

    def __init__(
        self,
        estate: Estate,
        page_size: int,
        base_url: Callable[[], str],
        gateway_url: Callable[[], str],
    ) -> None:
        self.estate = estate
        self.page_size = page_size
        self.base_url = base_url
        self.gateway_url = gateway_url
        route = _ArmRoute
        self.routes = [
            route("Subscriptions_List", ("subscriptions",), self._subscriptions),
            route("Subscriptions_Get", ("subscriptions", "{sub}"), self._subscription_get),
            route("ResourceGroups_List", ("subscriptions", "{sub}", "resourcegroups"), self._groups),
            route("ResourceGroups_Get", _split(_RG), self._group_get),
            route(
                "Accounts_List",
                _split("subscriptions/{sub}/providers/microsoft.cognitiveservices/accounts"),
                self._accounts_in_subscription,
            ),
            route("Accounts_ListByResourceGroup", _split(_COG), self._accounts_in_group),
            route("Accounts_Get", _split(_COG + "/{account}"), self._account_get),
            route("Deployments_List", _split(_COG + "/{account}/deployments"), self._deployments),
            route(
                "Deployments_Get",
                _split(_COG + "/{account}/deployments/{deployment}"),
                self._deployment_get,
            ),
            route(
                "ApiManagementService_List",
                _split("subscriptions/{sub}/providers/microsoft.apimanagement/service"),
                self._services_in_subscription,
            ),
            route("ApiManagementService_ListByResourceGroup", _split(_APIM), self._services_in_group),
            route("ApiManagementService_Get", _split(_APIM + "/{svc}"), self._service_get),
            route("Api_ListByService", _split(_APIM + "/{svc}/apis"), self._apis, apim=True),
            route("Api_Get", _split(_APIM + "/{svc}/apis/{api}"), self._api_get),
            route(
                "ApiOperation_ListByApi",
                _split(_APIM + "/{svc}/apis/{api}/operations"),
                self._operations,
                apim=True,
            ),
            route(
                "ApiOperation_Get",
                _split(_APIM + "/{svc}/apis/{api}/operations/{op}"),
                self._operation_get,
            ),
        ]

    def respond(self, request: _Request) -> _Response:
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return self._unauthorized("The 'Authorization' header is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._unauthorized("The 'Authorization' header is provided in an invalid format.")
        api_version = request.query_value("api-version")
        if not api_version:
            return _arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        segments = request.segments()
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if request.method != "GET":
                return _arm_error(
                    405,
                    "MethodNotAllowed",
                    f"The emulator is read-only: it does not serve {request.method} '{request.path}'.",
                    operation=route.operation,
                )
            try:
                result = route.handler(params)
            except _ArmFailureError as failure:
                failure.response.operation = route.operation
                return failure.response
            except _BadSkipTokenError as exc:
                return _arm_error(400, "InvalidSkipToken", str(exc), operation=route.operation)
            if isinstance(result, list):
                result = self._page(result, request, api_version, count=route.apim)
            return _json_response(200, result, operation=route.operation, headers=_arm_headers())
        return _arm_error(
            404,
            "InvalidResourceType",
            f"The emulator does not serve '{request.method} {request.path}'. It answers reads "
            "of subscriptions, resource groups, Microsoft.CognitiveServices accounts and "
            "deployments, and Microsoft.ApiManagement services, APIs and operations.",
        )

    def _unauthorized(self, reason: str) -> _Response:
        response = _arm_error(401, "AuthenticationFailed", f"Authentication failed. {reason}")
        challenge = (
            f'Bearer authorization_uri="https://login.microsoftonline.com/{self.estate.tenant}", '
            f'error="invalid_token", error_description="{reason}"'
        )
        response.headers.append(("WWW-Authenticate", challenge))
        return response

    def _page(self, items: list[Json], request: _Request, api_version: str, *, count: bool) -> Json:
        token = request.query_value("$skipToken") or "0"
        if not token.isdigit():
            raise _BadSkipTokenError(f"The skip token '{token}' is not valid.")
        start = int(token)
        end = start + self.page_size
        page: Json = {"value": items[start:end]}
        if count:
            page["count"] = len(items)
        if end < len(items):
            page["nextLink"] = f"{self.base_url()}{request.path}?api-version={quote(api_version)}&$skipToken={end}"
        return page

    # -- lookups (ARM names are case-insensitive)

    def _sub(self, params: Mapping[str, str]) -> Subscription:
        wanted = params["sub"].lower()
        for sub in self.estate.subscriptions:
            if sub.id == wanted:
                return sub
        raise _ArmFailureError(404, "SubscriptionNotFound", f"The subscription '{params['sub']}' could not be found.")

    def _group(self, params: Mapping[str, str]) -> tuple[Subscription, ResourceGroup]:
        sub = self._sub(params)
        for group in sub.resource_groups:
            if group.name.lower() == params["rg"].lower():
                return sub, group
        raise _ArmFailureError(404, "ResourceGroupNotFound", f"Resource group '{params['rg']}' could not be found.")

    def _account(self, params: Mapping[str, str]) -> tuple[Subscription, ResourceGroup, Account]:
        sub, group = self._group(params)
        account = _named(group.accounts, params["account"])
        if account is None:
            raise _not_found(group, f"Microsoft.CognitiveServices/accounts/{params['account']}")
        return sub, group, account

    def _service(self, params: Mapping[str, str]) -> tuple[Subscription, ResourceGroup, ApiManagementService]:
        sub, group = self._group(params)
        service = _named(group.apim, params["svc"])
        if service is None:
            raise _not_found(group, f"Microsoft.ApiManagement/service/{params['svc']}")
        return sub, group, service

    def _api(self, params: Mapping[str, str]) -> tuple[Subscription, ResourceGroup, ApiManagementService, Api]:
        sub, group, service = self._service(params)
        for api in service.apis:
            if api.id.lower() == params["api"].lower():
                return sub, group, service, api
        raise _ArmFailureError(404, "ResourceNotFound", "Api not found.")

    # -- handlers

    def _subscriptions(self, params: dict[str, str]) -> list[Json]:
        return [_subscription_item(self.estate, sub) for sub in self.estate.subscriptions]

    def _subscription_get(self, params: dict[str, str]) -> Json:
        return _subscription_item(self.estate, self._sub(params))

    def _groups(self, params: dict[str, str]) -> list[Json]:
        sub = self._sub(params)
        return [_group_item(sub, group) for group in sub.resource_groups]

    def _group_get(self, params: dict[str, str]) -> Json:
        return _group_item(*self._group(params))

    def _accounts_in_subscription(self, params: dict[str, str]) -> list[Json]:
        sub = self._sub(params)
        return [_account_item(sub, group, account) for group in sub.resource_groups for account in group.accounts]

    def _accounts_in_group(self, params: dict[str, str]) -> list[Json]:
        sub, group = self._group(params)
        return [_account_item(sub, group, account) for account in group.accounts]

    def _account_get(self, params: dict[str, str]) -> Json:
        return _account_item(*self._account(params))

    def _deployments(self, params: dict[str, str]) -> list[Json]:
        sub, group, account = self._account(params)
        return [_deployment_item(sub, group, account, d) for d in account.deployments]

    def _deployment_get(self, params: dict[str, str]) -> Json:
        sub, group, account = self._account(params)
        deployment = _named(account.deployments, params["deployment"])
        if deployment is None:
            resource = f"Microsoft.CognitiveServices/accounts/{account.name}/deployments/{params['deployment']}"
            raise _not_found(group, resource)
        return _deployment_item(sub, group, account, deployment)

    def _services_in_subscription(self, params: dict[str, str]) -> list[Json]:
        sub = self._sub(params)
        return [
            _service_item(sub, group, service, self.gateway_url())
            for group in sub.resource_groups
            for service in group.apim
        ]

    def _services_in_group(self, params: dict[str, str]) -> list[Json]:
        sub, group = self._group(params)
        return [_service_item(sub, group, service, self.gateway_url()) for service in group.apim]

    def _service_get(self, params: dict[str, str]) -> Json:
        sub, group, service = self._service(params)
        return _service_item(sub, group, service, self.gateway_url())

    def _apis(self, params: dict[str, str]) -> list[Json]:
        sub, group, service = self._service(params)
        return [_api_item(sub, group, service, api) for api in service.apis]

    def _api_get(self, params: dict[str, str]) -> Json:
        return _api_item(*self._api(params))

    def _operations(self, params: dict[str, str]) -> list[Json]:
        sub, group, service, api = self._api(params)
        return [_operation_item(sub, group, service, api, op) for op in api.operations]

    def _operation_get(self, params: dict[str, str]) -> Json:
        sub, group, service, api = self._api(params)
        for op in api.operations:
            if op.id.lower() == params["op"].lower():
                return _operation_item(sub, group, service, api, op)
        raise _ArmFailureError(404, "ResourceNotFound", "Operation not found.")


class _BadSkipTokenError(Exception):
    pass


def _split(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("/"))


_Named = TypeVar("_Named", Account, ApiManagementService, Deployment)


def _named(items: Sequence[_Named], name: str) -> _Named | None:
    for item in items:
        if item.name.lower() == name.lower():
            return item
    return None


def _not_found(group: ResourceGroup, resource: str) -> _ArmFailureError:
    return _ArmFailureError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource}' under resource group '{group.name}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def _arm_headers() -> list[tuple[str, str]]:
    request_id = str(uuid.uuid4())
    return [
        ("x-ms-request-id", request_id),
        ("x-ms-correlation-request-id", request_id),
        ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        ("Cache-Control", "no-cache"),
    ]


# -------------------------------------------------------------------------------------- ARM shapes


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _etag(resource_id: str) -> str:
    h = _digest("etag", resource_id)
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


def _subscription_item(estate: Estate, sub: Subscription) -> Json:
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


def _group_item(sub: Subscription, group: ResourceGroup) -> Json:
    return {
        "id": _group_id(sub, group),
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": dict(group.tags),
        "properties": {"provisioningState": "Succeeded"},
    }


def _account_item(sub: Subscription, group: ResourceGroup, account: Account) -> Json:
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
            "internalId": _digest("internal", resource_id)[:32],
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


def _deployment_item(sub: Subscription, group: ResourceGroup, account: Account, deployment: Deployment) -> Json:
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


def _service_item(sub: Subscription, group: ResourceGroup, service: ApiManagementService, gateway_url: str) -> Json:
    resource_id = _service_id(sub, group, service)
    host = f"{service.name}.azure-api.net"
    return {
        "id": resource_id,
        "name": service.name,
        "type": "Microsoft.ApiManagement/service",
        "location": service.location or group.location,
        "tags": dict(service.tags),
        "etag": "AAAAAA" + _digest("etag", resource_id)[:10].upper() + "=",
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


def _api_item(sub: Subscription, group: ResourceGroup, service: ApiManagementService, api: Api) -> Json:
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


def _operation_item(
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


# ---------------------------------------------------------------------------------- gateway server

_KINDS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "images/generations": "images",
}
_CAPABILITY_OF = {
    "chat": "chatCompletion",
    "completions": "completion",
    "embeddings": "embeddings",
    "images": "imageGenerations",
}
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
        return cls(operation, tuple(segments), names, deployment_param, _KINDS.get("/".join(tail)))

    def match(self, method: str, segments: Sequence[str], request: _Request) -> dict[str, str] | None:
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


@dataclass(frozen=True)
class _GatewayApi:
    service: ApiManagementService
    api: Api
    prefix: tuple[str, ...]  # lower-cased path segments
    backends: tuple[Account, ...]
    operations: tuple[_CompiledOperation, ...]


class _GatewaySite:
    """Plays the APIM gateway: API + operation matching, subscription keys, Azure OpenAI answers."""

    def __init__(self, estate: Estate, base_url: Callable[[], str]) -> None:
        self.base_url = base_url
        apis = []
        for _, _, service in estate.apim_services():
            for api in service.apis:
                backends = tuple(a for a in map(estate.find_account, api.backends) if a is not None)
                apis.append(
                    _GatewayApi(
                        service,
                        api,
                        tuple(part.lower() for part in api.path.split("/") if part),
                        backends,
                        tuple(map(_CompiledOperation.compile, api.operations)),
                    )
                )
        # longest path first, so `inference/openai` wins over `inference`
        self.apis = sorted(apis, key=lambda entry: -len(entry.prefix))
        self.images: OrderedDict[str, bytes] = OrderedDict()
        self.images_lock = threading.Lock()

    def respond(self, request: _Request) -> _Response:
        segments = request.segments()
        if segments[:2] == ["_emulator", "images"] and len(segments) == 3 and request.method == "GET":
            return self._image_file(segments[2])
        for entry in self.apis:
            if [part.lower() for part in segments[: len(entry.prefix)]] == list(entry.prefix):
                return self._call(entry, segments[len(entry.prefix) :], request)
        return _apim_error(404, "Resource not found")

    def _call(self, entry: _GatewayApi, rest: Sequence[str], request: _Request) -> _Response:
        matches = [
            (op, params) for op in entry.operations if (params := op.match(request.method, rest, request)) is not None
        ]
        if not matches:
            return _apim_error(404, "Resource not found")
        # the most literal template wins, as in APIM
        op, params = max(matches, key=lambda match: sum(not p for p, _ in match[0].segments))
        name = op.operation.id
        if entry.api.subscription_required:
            key = request.headers.get(entry.service.subscription_key_header.lower())
            if key is None:
                key = request.query_value(entry.service.subscription_key_query)
            if not key:
                return _apim_error(401, _MISSING_KEY, operation=name)
            if key not in entry.service.subscription_keys:
                return _apim_error(401, _INVALID_KEY, operation=name)
        if op.kind is None:
            echo = {"operationId": name, "method": request.method, "templateParameters": params}
            return _json_response(200, echo, operation=name)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            return _openai_error(400, f"The request body is not valid JSON: {exc}", operation=name)
        if not isinstance(body, dict):
            return _openai_error(400, "The request body must be a JSON object.", operation=name)
        deployment_name = params.get(op.deployment_param) if op.deployment_param else body.get("model")
        found = _find_deployment(entry.backends, deployment_name)
        if found is None:
            return _arm_error(404, "DeploymentNotFound", _DEPLOYMENT_NOT_FOUND, operation=name)
        account, deployment = found
        capability = _CAPABILITY_OF[op.kind]
        if capability not in deployment.effective_capabilities():
            return _arm_error(
                400,
                "OperationNotSupported",
                f"The {capability} operation does not work with the specified model, "
                f"{deployment.model}. Please choose different model and try again. You can learn "
                "more about which models can be used with each operation here: "
                "https://go.microsoft.com/fwlink/?linkid=2197993.",
                operation=name,
            )
        handler = {
            "chat": self._chat,
            "completions": self._completions,
            "embeddings": self._embeddings,
            "images": self._images,
        }[op.kind]
        response = handler(deployment, body)
        response.operation = name
        response.headers.extend([("x-ms-region", account.location or ""), ("apim-request-id", str(uuid.uuid4()))])
        return response

    # -- Azure OpenAI answers

    def _chat(self, deployment: Deployment, body: Json) -> _Response:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _openai_error(400, "'messages' is a required property", param="messages")
        texts = [_message_text(m) for m in messages if isinstance(m, dict)]
        users = [_message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        asked = (users or texts or [""])[-1]
        reply = f"Emulated reply from deployment '{deployment.name}' ({deployment.model}): {asked[:200]}"
        choices_wanted = _int_in(body.get("n"), 1, 1, 10)
        if choices_wanted is None:
            return _openai_error(400, "n must be an integer from 1 to 10", param="n")
        digest = _digest("chat", deployment.name, json.dumps(messages, sort_keys=True))
        completion_id = "chatcmpl-" + digest[:29]
        model = _model_label(deployment)
        prompt_tokens = sum(map(_tokens, texts))
        completion_tokens = _tokens(reply) * choices_wanted
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return _chat_stream(completion_id, model, reply, choices_wanted, usage if include_usage else None)
        return _json_response(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "system_fingerprint": "fp_emulator",
                "choices": [
                    {
                        "index": index,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": reply, "refusal": None},
                    }
                    for index in range(choices_wanted)
                ],
                "usage": usage,
            },
        )

    def _completions(self, deployment: Deployment, body: Json) -> _Response:
        prompt = body.get("prompt", "")
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        reply = f"Emulated completion from deployment '{deployment.name}'."
        prompt_tokens, completion_tokens = _tokens(text), _tokens(reply)
        return _json_response(
            200,
            {
                "id": "cmpl-" + _digest("completion", deployment.name, text)[:29],
                "object": "text_completion",
                "created": CREATED,
                "model": _model_label(deployment),
                "choices": [{"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _embeddings(self, deployment: Deployment, body: Json) -> _Response:
        raw = body.get("input")
        if raw in (None, "", []):
            return _openai_error(400, "'input' is a required property", param="input")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        dimensions = _int_in(body.get("dimensions"), 8, 1, 3072)
        if dimensions is None:
            return _openai_error(400, "dimensions must be an integer from 1 to 3072", param="dimensions")
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            vector = _vector(text, dimensions)
            encoded: object = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_tokens(item if isinstance(item, str) else json.dumps(item)) for item in inputs)
        return _json_response(
            200,
            {
                "object": "list",
                "data": data,
                "model": deployment.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _images(self, deployment: Deployment, body: Json) -> _Response:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return _openai_error(400, "'prompt' is a required property", param="prompt")
        count = _int_in(body.get("n"), 1, 1, 4)
        if count is None:
            return _openai_error(400, "n must be an integer from 1 to 4", param="n")
        size = body.get("size") or "1024x1024"
        dimensions = _parse_size(size)
        if dimensions is None:
            return _openai_error(400, f"size '{size}' is not like '1024x1024'", param="size")
        response_format = body.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            return _openai_error(
                400,
                f"response_format '{response_format}' must be 'url' or 'b64_json'",
                param="response_format",
            )
        scale = _IMAGE_SIDE / max(dimensions)
        width, height = (max(1, round(side * scale)) for side in dimensions)
        data = []
        for index in range(count):
            png = render_png(f"{deployment.name}\0{prompt}", width=width, height=height, index=index)
            item: Json = {"revised_prompt": prompt}
            if response_format == "b64_json":
                item["b64_json"] = base64.b64encode(png).decode()
            else:
                item["url"] = self._store_image(png)
            data.append(item)
        return _json_response(200, {"created": CREATED, "data": data})

    def _store_image(self, png: bytes) -> str:
        name = hashlib.sha256(png).hexdigest()[:32] + ".png"
        with self.images_lock:
            self.images[name] = png
            self.images.move_to_end(name)
            while len(self.images) > _IMAGE_CACHE:
                self.images.popitem(last=False)
        return f"{self.base_url()}/_emulator/images/{name}"

    def _image_file(self, name: str) -> _Response:
        with self.images_lock:
            png = self.images.get(name)
        if png is None:
            return _apim_error(404, "Resource not found")
        return _Response(200, png, operation="image-file", content_type="image/png")


def _find_deployment(backends: Sequence[Account], name: object) -> tuple[Account, Deployment] | None:
    # backends are tried in order (the lab's priority pool): the first with the deployment answers
    if not isinstance(name, str):
        return None
    for account in backends:
        for deployment in account.deployments:
            if deployment.name == name:
                return account, deployment
    return None


def _openai_error(status: int, message: str, *, param: str | None = None, operation: str | None = None) -> _Response:
    error = {
        "code": "BadRequest",
        "message": message,
        "param": param,
        "type": "invalid_request_error",
    }
    return _json_response(status, {"error": error}, operation=operation)


def _chat_stream(completion_id: str, model: str, reply: str, choices: int, usage: Json | None) -> _Response:
    def chunk(choice_list: list[Json], extra: Json | None = None) -> str:
        payload: Json = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_emulator",
            "choices": choice_list,
        }
        payload.update(extra or {})
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    words = reply.split(" ")
    pieces = [" ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]
    events = []
    for index in range(choices):
        events.append(
            chunk(
                [
                    {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ]
            )
        )
        for piece in pieces:
            events.append(chunk([{"index": index, "delta": {"content": piece}, "finish_reason": None}]))
        events.append(chunk([{"index": index, "delta": {}, "finish_reason": "stop"}]))
    if usage is not None:
        events.append(chunk([], {"usage": usage}))
    events.append("data: [DONE]\n\n")
    return _Response(200, "".join(events).encode(), content_type="text/event-stream; charset=utf-8")


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # vision-style parts: keep the text ones
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _model_label(deployment: Deployment) -> str:
    # Azure answers with the model and its dated version, e.g. gpt-4o-mini-2024-07-18
    version = deployment.version
    dated = len(version) == 10 and version[4] == "-" and version[7] == "-"
    return f"{deployment.model}-{version}" if dated else deployment.model


def _int_in(value: object, default: int, low: int, high: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _parse_size(size: object) -> tuple[int, int] | None:
    if not isinstance(size, str):
        return None
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        return None
    return int(width), int(height)


def _vector(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        values.extend(byte / 127.5 - 1.0 for byte in hashlib.sha256(f"{block}\0{text}".encode()).digest())
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


# ----------------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that tracks its connections, so stop() need not wait on idle clients."""

    daemon_threads = True
    block_on_close = False
    # Python's default backlog of 5 drops connection attempts when a step fans out over 16+ accounts.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        site: Callable[[_Request], _Response | None],
    ) -> None:
        self.address_family = family
        self.site = site
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), slow on some hosts: skip it
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up mid-answer is not worth a traceback on stderr."""

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runbook-emulator"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is closed after a minute
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stalls
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator keeps its own request log."""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self._write(_apim_error(400, f"Bad request body: {exc}"))
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        request = _Request(
            method=self.command,
            path=parts.path or "/",
            raw_query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        response = self.server.site(request)
        if response is None:  # a dropped connection: no status line at all
            self.close_connection = True
            return
        self._write(response)

    # the stdlib dispatches on these names
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise ValueError("too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _write(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def _loopback(host: str) -> tuple[str, socket.AddressFamily, str]:
    """(bind address, family, host as written in URLs) for a loopback `host`; refuse the rest."""
    if host.lower() == "localhost":
        return "127.0.0.1", socket.AF_INET, "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise InputError(f"emulator host '{host}' is not an IP address", hint="use 127.0.0.1 (or ::1)") from None
    if not address.is_loopback:
        raise InputError(
            f"the emulator listens on loopback only, not on '{host}'",
            hint="use 127.0.0.1 (or ::1): the emulator is not for other machines to reach",
        )
    if address.version == 6:
        return str(address), socket.AF_INET6, f"[{address}]"
    return str(address), socket.AF_INET, str(address)


def _first_service(
    estate: Estate,
) -> tuple[Subscription, ResourceGroup, ApiManagementService] | None:
    return next(iter(estate.apim_services()), None)


def _inference_api_path(service: ApiManagementService) -> str:
    # notebooks build {gateway}/{INFERENCE_API_PATH}/openai/deployments/...: path minus "/openai"
    for api in service.apis:
        if api.path == "openai" or api.path.endswith("/openai"):
            return api.path.removesuffix("openai").rstrip("/")
    return service.apis[0].path if service.apis else ""


def _choices(word: str, choices: Sequence[str]) -> str:
    return f"{did_you_mean(word, choices)}choose from {', '.join(choices)}"


if __name__ == "__main__":
    sys.exit(main())
