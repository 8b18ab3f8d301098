"""The ARM protocol around the resource table: authentication, api-version, routing, paging, ARM errors.

Writes (PUT/PATCH/DELETE/POST rows) reach their handlers like reads; their state is the `ArmStore`
every call carries (`ArmCall.store`). Every request under `/subscriptions/{id}` first spends a token
of that subscription's bucket (`throttle`): over budget it is answered 429 with `Retry-After`, and
every answer carries the bucket's `x-ms-ratelimit-remaining-subscription-reads|writes|deletes`.

`ArmSite` answers a request by finding its row in a table of `ArmRoute`s (`arm_resources.ROUTES`):
it checks the bearer token and `api-version` first, matches the path case-insensitively as ARM does,
answers 405 when the path is known but the method is not, and pages list results with `nextLink` and
`$skipToken`. A handler gets an `ArmCall` and returns a resource (a dict), a list (paged here), a
`Listing` (a list whose items are already JSON text: a page then costs its own items, not the whole
list's), or a full `Response` (for answers such as a 201/202 with headers); it raises `ArmFailureError`
for an ARM error. A path no row matches gets ARM's `InvalidResourceType`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from runbook.azure.emulator.state import ArmStore
from runbook.azure.emulator.throttle import Throttle, request_kind, throttled
from runbook.azure.emulator.transport import Json, Request, Response, arm_error, json_response, json_text
from runbook.azure.estate import Estate, ResourceGroup

__all__ = ["ArmCall", "ArmFailureError", "ArmRoute", "ArmSite", "Listing", "not_found"]


class ArmFailureError(Exception):
    """Raised by a handler: answer with ARM's error body `code`/`message` and `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ArmCall:
    """What a handler gets: the estate, the path parameters of its row, the request, and the mutable store."""

    estate: Estate
    params: Mapping[str, str]  # as the client wrote them (compare case-insensitively)
    request: Request
    gateway_url: str  # the emulator's own gateway, for services' `gatewayUrl`
    store: ArmStore = field(default_factory=ArmStore)  # resources writes change, and their operations
    base_url: str = ""  # the ARM server's own URL, for Azure-AsyncOperation and Location headers


@dataclass(frozen=True)
class Listing:
    """A list answer whose items are already serialized: `items[i]` is item i's JSON text, exactly as
    `json_response` would write it (compact separators, no ASCII escaping). A page joins its own slice,
    so serving page 3 of 60 items costs 20 items; the texts can be shaped once and kept (the estate's
    resources never change while the emulator runs)."""

    items: Sequence[str]


ArmHandler = Callable[[ArmCall], Json | list[Json] | Listing | Response]


@dataclass(frozen=True)
class ArmRoute:
    """One row of the resource table: an ARM operation, its method and path pattern, and its handler.

    `path` has lower-case literal segments and `{name}` placeholders, without a leading slash, e.g.
    `subscriptions/{sub}/resourcegroups/{rg}`. `apim` lists carry a `count`, as API Management's do.
    """

    operation: str
    method: str
    path: str
    handler: ArmHandler
    apim: bool = False
    pattern: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", tuple(self.path.split("/")))

    def match(self, segments: Sequence[str], lowered: Sequence[str] | None = None) -> dict[str, str] | None:
        """The path parameters when `segments` fit the pattern (literals case-insensitively), else None.
        `lowered` is `segments` in lower case, when the caller has it already."""
        if len(segments) != len(self.pattern):
            return None
        if lowered is None:
            lowered = [segment.lower() for segment in segments]
        params: dict[str, str] = {}
        for want, got, low in zip(self.pattern, segments, lowered, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != low:
                return None
        return params


class _BadSkipTokenError(Exception):
    pass


class ArmSite:
    """Answers ARM requests from `routes`, in ARM's shapes, with ARM's errors and paging."""

    def __init__(
        self,
        estate: Estate,
        routes: Sequence[ArmRoute],
        serves: str,
        page_size: int,
        base_url: Callable[[], str],
        gateway_url: Callable[[], str],
        store: ArmStore | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.estate = estate
        self.store = store if store is not None else ArmStore()
        self.throttle = throttle if throttle is not None else Throttle(estate)
        self.routes = tuple(routes)
        self._by_length: dict[int, tuple[ArmRoute, ...]] = {}  # the rows of each path length, in table order
        for route in self.routes:
            self._by_length[len(route.pattern)] = (*self._by_length.get(len(route.pattern), ()), route)
        self.serves = serves  # what `routes` cover, in words, for the InvalidResourceType message
        self.page_size = page_size
        self.base_url = base_url
        self.gateway_url = gateway_url

    def respond(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return self._unauthorized("The 'Authorization' header is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._unauthorized("The 'Authorization' header is provided in an invalid format.")
        segments = request.segments()
        remaining = _UNCOUNTED[request_kind(request.method)]
        if len(segments) >= 2 and segments[0].lower() == "subscriptions":
            grant = self.throttle.take(segments[1], token.strip(), request.method)
            if grant is not None:
                if not grant.allowed:
                    response = throttled(grant, segments[1], request.method)
                    response.headers.extend(_arm_headers())
                    return response
                remaining = grant.header
        response = self._answer(request, segments)
        response.headers.append(remaining)
        return response

    def _answer(self, request: Request, segments: list[str]) -> Response:
        api_version = request.query_value("api-version")
        if not api_version:
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        on_path: ArmRoute | None = None
        lowered = [segment.lower() for segment in segments]
        for route in self._by_length.get(len(segments), ()):
            params = route.match(segments, lowered)
            if params is None:
                continue
            if route.method == request.method:
                return self._call(route, params, request, api_version)
            on_path = on_path or route
        if on_path is not None:
            return arm_error(
                405,
                "MethodNotAllowed",
                f"The emulator does not serve {request.method} on '{request.path}' (that resource type "
                "does not support this method here).",
                operation=on_path.operation,
            )
        return arm_error(
            404,
            "InvalidResourceType",
            f"The emulator does not serve '{request.method} {request.path}'. It answers {self.serves}.",
        )

    def _call(self, route: ArmRoute, params: dict[str, str], request: Request, api_version: str) -> Response:
        call = ArmCall(self.estate, params, request, self.gateway_url(), self.store, self.base_url())
        try:
            result = route.handler(call)
            if isinstance(result, Response):
                result.operation = route.operation
                if not any(name.lower() == "x-ms-request-id" for name, _ in result.headers):
                    result.headers.extend(_arm_headers())
                return result
            if isinstance(result, Listing):
                body = self._listing_page(result.items, request, api_version, count=route.apim)
                return Response(200, body, _arm_headers(), route.operation)
            if isinstance(result, list):
                result = self._page(result, request, api_version, count=route.apim)
        except ArmFailureError as failure:
            return arm_error(failure.status, failure.code, failure.message, operation=route.operation)
        except _BadSkipTokenError as exc:
            return arm_error(400, "InvalidSkipToken", str(exc), operation=route.operation)
        return json_response(200, result, operation=route.operation, headers=_arm_headers())

    def _unauthorized(self, reason: str) -> Response:
        response = arm_error(401, "AuthenticationFailed", f"Authentication failed. {reason}")
        challenge = (
            f'Bearer authorization_uri="https://login.microsoftonline.com/{self.estate.tenant}", '
            f'error="invalid_token", error_description="{reason}"'
        )
        response.headers.append(("WWW-Authenticate", challenge))
        return response

    def _page(self, items: list[Json], request: Request, api_version: str, *, count: bool) -> Json:
        start, end = self._window(request)
        page: Json = {"value": items[start:end]}
        page.update(self._page_links(len(items), end, request, api_version, count=count))
        return page

    def _listing_page(self, items: Sequence[str], request: Request, api_version: str, *, count: bool) -> bytes:
        """The same page as `_page` gives, byte for byte, joined from the slice's JSON texts."""
        start, end = self._window(request)
        head = '{"value":[' + ",".join(items[start:end]) + "]"
        rest = self._page_links(len(items), end, request, api_version, count=count)
        if not rest:
            return (head + "}").encode()
        return (head + "," + json_text(rest)[1:]).encode()

    def _window(self, request: Request) -> tuple[int, int]:
        token = request.query_value("$skipToken") or "0"
        if not token.isdigit():
            raise _BadSkipTokenError(f"The skip token '{token}' is not valid.")
        start = int(token)
        return start, start + self.page_size

    def _page_links(self, total: int, end: int, request: Request, api_version: str, *, count: bool) -> Json:
        """What follows `value` on a page: API Management's `count`, and `nextLink` unless it is the last."""
        links: Json = {}
        if count:
            links["count"] = total
        if end < total:
            links["nextLink"] = f"{self.base_url()}{request.path}?api-version={quote(api_version)}&$skipToken={end}"
        return links


def not_found(group: ResourceGroup, resource: str) -> ArmFailureError:
    """ARM's `ResourceNotFound` for `resource` (e.g. "Microsoft.X/things/name") in `group`."""
    return ArmFailureError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource}' under resource group '{group.name}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


#: What an answer says is left when no bucket counts it (a subscription without rate limits, a tenant-level list).
_UNCOUNTED = {
    "reads": ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
    "writes": ("x-ms-ratelimit-remaining-subscription-writes", "1199"),
    "deletes": ("x-ms-ratelimit-remaining-subscription-deletes", "1199"),
}


def _arm_headers() -> list[tuple[str, str]]:
    # A version-4 UUID from `random`, not `uuid.uuid4()`: its `os.urandom` lets go of the GIL, and
    # winning it back behind busy handler threads added ~3 ms to every answer under a fan-out. A
    # request id must be unique, not unguessable.
    request_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
    return [
        ("x-ms-request-id", request_id),
        ("x-ms-correlation-request-id", request_id),
        ("Cache-Control", "no-cache"),
    ]
