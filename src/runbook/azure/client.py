"""The one HTTP layer for Azure Resource Manager and the data plane (the APIM gateway).

Responsible for: timeouts; bounded retries with exponential backoff and jitter on 429/5xx and on
dropped or refused connections, honouring `Retry-After`; ARM paging (`nextLink`); concurrent fan-out
over many resources (asyncio, a fixed set of worker slots, one small connection pool per eight
slots; the GETs of a wide fan-out go over aiohttp, `wire.py`); turning failures into `AzureError`s whose message names
the endpoint and the status and whose hint names the missing role or key. Actions use it through
`run_sync`, which runs the async work on its own event loop in the step's worker thread and
cancels it promptly when the step is stopped (timeout or Ctrl-C).

It knows nothing about runbooks: credentials come from `credentials.py`, settings from the actions.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from ..errors import ActionError, AzureError, SecurityViolation
from ..secrets import MASK, is_secret_name
from .wire import Wire
from .wire import available as wire_available

if TYPE_CHECKING:
    import ssl

    import httpx

T = TypeVar("T")
R = TypeVar("R")
Plane = Literal["arm", "data"]
JsonObject = dict[str, Any]

DEFAULT_ARM_URL = "https://management.azure.com"
DEFAULT_TIMEOUT = 30.0
DEFAULT_ATTEMPTS = 5
# Fan-out default: wide enough that a resource group's accounts are fetched in one wave (a lower cap
# multiplies the latency floor: 50 accounts at 16 a time take 4 waves).
DEFAULT_CONCURRENCY = 64
MAX_CONCURRENCY = 256
# Connections per httpx pool. httpcore's pool scans all its connections for every queued request
# (CPU that grows with the square of its size); fan-out slots share pools of this size instead.
POOL_CONNECTIONS = 8
# A fan-out over at least this many items sends its ARM GETs over aiohttp (wire.py): ~1 ms of CPU a
# request instead of httpx's ~3 ms, which on two cores decides how close 50 accounts get to the
# latency floor; below it, aiohttp's import (~60-100 ms) would cost more than it saves.
WIRE_FAN_OUT_MIN = 16
# Statuses worth another try: throttling, timeouts and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A nextLink chain longer than this is a loop or a broken server, not a real listing.
MAX_PAGES = 10_000
USER_AGENT = "incident-runbook/0.1 (+runbook azure client)"

# ------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. Waits: `Retry-After` when given, else backoff with jitter."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = 0.5  # first backoff in seconds; doubles per attempt
    backoff_cap: float = 8.0
    max_wait: float = 30.0  # no single wait is longer, whatever Retry-After says
    statuses: frozenset[int] = RETRY_STATUSES

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        ceiling = min(self.backoff_cap, self.backoff * 2.0 ** (attempt - 1))
        # "equal jitter": at least half the backoff, so retries do not stampede nor spin
        return min(ceiling / 2 + random.uniform(0, ceiling / 2), self.max_wait)


@dataclass(frozen=True)
class Endpoints:
    """What the client needs from a target's settings (see `targets.py`), with defaults.

    Optional tuning settings: `http_timeout` (seconds per request), `http_attempts`,
    `http_backoff` (first backoff, seconds), `http_max_wait` (cap of one wait), `concurrency`.
    """

    arm_url: str = DEFAULT_ARM_URL
    gateway_url: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    apim_service: str | None = None
    inference_api_path: str | None = None
    api_key: str | None = None
    credential: str = "default"
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> Endpoints:
        values = dict(settings or {})

        def text(name: str) -> str | None:
            value = values.get(name)
            return str(value) if value not in (None, "") else None

        def number(name: str, default: float) -> float:
            value = values.get(name)
            try:
                return float(value) if value not in (None, "") else default
            except (TypeError, ValueError):
                raise ActionError(
                    f"target setting {name}={value!r} is not a number", hint="fix it in runbook.yaml"
                ) from None

        policy = RetryPolicy(
            attempts=max(1, int(number("http_attempts", DEFAULT_ATTEMPTS))),
            backoff=max(0.0, number("http_backoff", 0.5)),
            max_wait=max(0.0, number("http_max_wait", 30.0)),
        )
        return cls(
            arm_url=(text("arm_url") or DEFAULT_ARM_URL).rstrip("/"),
            gateway_url=(text("gateway_url") or "").rstrip("/") or None,
            subscription_id=text("subscription_id"),
            resource_group=text("resource_group"),
            apim_service=text("apim_service"),
            inference_api_path=text("inference_api_path"),
            api_key=text("api_key"),
            credential=text("credential") or "default",
            timeout=max(0.1, number("http_timeout", DEFAULT_TIMEOUT)),
            concurrency=min(MAX_CONCURRENCY, max(1, int(number("concurrency", DEFAULT_CONCURRENCY)))),
            policy=policy,
        )


# ------------------------------------------------------------------------------------------ errors

# What each environment variable is called, for hints that say exactly what to set.
SETTING_VARIABLES = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "RESOURCE_GROUP",
    "apim_service": "APIM_SERVICE_NAME",
    "gateway_url": "APIM_GATEWAY_URL",
    "api_key": "APIM_API_KEY",
}


def display_url(url: str) -> str:
    """`url` as shown in messages: secret-looking query values (keys, SAS signatures) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    pairs = [
        (name, MASK if is_secret_name(name) else value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="$*")))


def error_body(payload: object) -> tuple[str | None, str | None]:
    """(code, message) of an ARM/OpenAI `{"error": {...}}` or an APIM `{"statusCode", "message"}`."""
    if not isinstance(payload, dict):
        return None, None
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code is not None else None, str(message) if message is not None else None)
    if isinstance(error, str):
        return None, error
    message = payload.get("message") or payload.get("Message")
    return None, str(message) if message is not None else None


def _required_role(url: str) -> str:
    lowered = url.lower()
    if "/microsoft.apimanagement/" in lowered:
        return "needs the Reader role on the resource group (or API Management Service Reader)"
    if "/microsoft.cognitiveservices/" in lowered:
        return "needs the Reader role on the resource group (or Cognitive Services Contributor)"
    return "needs the Reader role on the subscription or the resource group"


def failure_hint(plane: Plane, status: int | None, code: str | None, url: str = "") -> str | None:
    """What to do about a failed answer: the role, key or setting that is missing."""
    if status is None:
        return "check the URL and the network (for the emulator target: is it running?)"
    if plane == "arm":
        if status == 401:
            return (
                "the Azure token was rejected: run `az login` again, or check AZURE_TENANT_ID, "
                "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and the tenant"
            )
        if status == 403:
            return f"the signed-in identity {_required_role(url)}"
        if code == "SubscriptionNotFound":
            return "check AZURE_SUBSCRIPTION_ID and that your identity can see it (`az account list`)"
        if code == "ResourceGroupNotFound":
            return "check the resource group (target setting resource_group, env RESOURCE_GROUP)"
        if code in ("ResourceNotFound", "ParentResourceNotFound"):
            return "check the name; azure.accounts, azure.deployments and azure.apim.apis list what exists"
        if code in ("InvalidApiVersionParameter", "NoRegisteredProviderFound"):
            return "use an api-version this resource type supports (the message lists them)"
    else:
        if status == 401:
            return "the APIM subscription key is missing or wrong: set APIM_API_KEY"
        if status == 403:
            return (
                "the key's subscription has no access to this API, or (with auth: entra) the identity "
                "needs the Cognitive Services OpenAI User role"
            )
        if code == "DeploymentNotFound":
            return (
                "no deployment of that name behind the gateway: list them with azure.deployments "
                "(deployment names are not model names)"
            )
        if status == 404:
            return "check the path against the API's operations (azure.apim.operations)"
    if status == 429:
        return "throttled: wait and run again, or lower `concurrency`"
    if status >= 500:
        return "the service kept failing: try again later"
    return None


def response_error(method: str, url: str, response: httpx.Response, *, plane: Plane, attempts: int = 1) -> AzureError:
    """An `AzureError` for a failed answer: endpoint, status, ARM code and message, and a hint."""
    try:
        payload: object = response.json()
    except ValueError:
        payload = None
    code, message = error_body(payload)
    if message is None:
        text = response.text.strip()
        message = (text[:300] + "…") if len(text) > 300 else text or response.reason_phrase
    status = f"{response.status_code} {code}" if code else str(response.status_code)
    where = f"{method} {display_url(url)}"
    if attempts > 1:
        text = f"{where} failed after {attempts} attempts: last status {status}: {message}"
        if plane == "arm" and response.status_code == 429:
            text = f"{where}: throttled by ARM (429) after {attempts - 1} retries; " + text.removeprefix(f"{where} ")
    else:
        text = f"{where}: {status}: {message}"
    error = AzureError(text, hint=failure_hint(plane, response.status_code, code, url))
    error.status = response.status_code  # type: ignore[attr-defined]
    error.code = code  # type: ignore[attr-defined]
    return error


class Stopped(ActionError):
    """The step was stopped (timeout or Ctrl-C) while waiting on Azure."""

    def __init__(self) -> None:
        super().__init__("stopped while waiting on Azure (the step timed out or was interrupted)")


# ----------------------------------------------------------------------------------------- client


@dataclass
class Exchange:
    """A finished request: the final response and how it went."""

    method: str
    url: str
    response: httpx.Response
    attempts: int
    elapsed_ms: float  # the final attempt only
    total_ms: float  # all attempts and waits
    dropped_bytes: int = 0  # body bytes past the caller's bound: counted, not held
    wire: Literal["httpx", "aiohttp"] = "httpx"  # what carried the final attempt


RetryListener = Callable[[str], None]


class AzureClient:
    """Async HTTP with retries, paging helpers and bounded fan-out. Use `async with`."""

    def __init__(
        self,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
        stop: threading.Event | None = None,
        on_retry: RetryListener | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.stop = stop or threading.Event()
        self.on_retry = on_retry
        self._pools: list[httpx.AsyncClient | None] = []
        self._tls: ssl.SSLContext | None = None
        self._wire: Wire | None = None
        self._base_headers: dict[str, tuple[str, str]] | None = None
        self._open = False

    async def __aenter__(self) -> AzureClient:
        self._pools = [None] * -(-self.concurrency // POOL_CONNECTIONS)
        self._open = True
        return self

    async def __aexit__(self, *_exc: object) -> None:
        pools, self._pools, self._open = self._pools, [], False
        wire, self._wire = self._wire, None
        for pool in pools:
            if pool is not None:
                await pool.aclose()
        if wire is not None:
            await wire.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        """The connection pool of the calling fan-out slot (slot 0 outside a fan-out), opened on first use."""
        if not self._open:
            raise RuntimeError("AzureClient is not open: use `async with AzureClient(...)`")
        return self._pool((_SLOT.get() // POOL_CONNECTIONS) % len(self._pools))

    def _pool(self, index: int) -> httpx.AsyncClient:
        pool = self._pools[index]
        if pool is None:
            pool = self._pools[index] = self._new_pool()
        return pool

    def _new_pool(self) -> httpx.AsyncClient:
        _import_httpcore_without_trio()
        import httpx

        if self._tls is None:
            self._tls = _tls_context()
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            limits=httpx.Limits(max_connections=POOL_CONNECTIONS + 4, max_keepalive_connections=POOL_CONNECTIONS),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            verify=self._tls,
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        plane: Plane,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        attempts: int | None = None,
        retry_statuses: frozenset[int] | None = None,
        timeout: float | None = None,
        follow_redirects: bool = False,
        max_body_bytes: int | None = None,
    ) -> Exchange:
        """Send with retries. Returns the last answer, whatever its status (callers judge it).

        `timeout` is a deadline for each whole attempt (connect, send, every byte of the answer), not
        a bound on each read: a server trickling one byte a second cannot hold a step. The body is
        read incrementally; past `max_body_bytes` bytes are counted (`Exchange.dropped_bytes`), not
        held, so a huge answer costs only the bound.

        Raises `AzureError` only when no answer came back after every attempt (refused, dropped,
        timed out), and `Stopped` when the step is stopped.
        """
        import asyncio

        import httpx

        if params and "?" in url:
            # httpx 0.28 *replaces* a URL's query with `params`; a query written in the URL (an
            # `http.request` url, a resource id, a link) is kept and `params` merged into it instead
            # (same names replaced), on both wires.
            url, params = str(httpx.URL(url).copy_merge_params(params)), None
        wire = self._wire_for(method, json, content, follow_redirects, max_body_bytes)
        tries = max(1, attempts if attempts is not None else self.policy.attempts)
        statuses = self.policy.statuses if retry_statuses is None else retry_statuses
        started = time.monotonic()

        def shown() -> str:  # for messages only: httpx's URL parsing costs ~0.2 ms a request
            return f"{method} {display_url(str(httpx.URL(url, params=params) if params else url))}"

        last_problem = ""
        for attempt in range(1, tries + 1):
            if self.stop.is_set():
                raise Stopped()
            sent = time.monotonic()
            deadline = timeout if timeout is not None else self.timeout
            try:
                if wire is not None:
                    async with asyncio.timeout(deadline):
                        response, sent_to = await wire.send(method, url, params, self._wire_headers(headers))
                    dropped = 0
                else:
                    request = self.http.build_request(
                        method,
                        url,
                        headers=headers,
                        params=params,
                        json=json,
                        content=content,
                        timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                    )
                    response, dropped = await asyncio.wait_for(
                        self._exchange(request, follow_redirects, max_body_bytes), timeout=deadline
                    )
            except (httpx.TransportError, TimeoutError) as exc:
                last_problem = (
                    f"no complete answer within the {deadline:g}s deadline"
                    if isinstance(exc, TimeoutError)
                    else _transport_problem(exc)
                )
                if attempt == tries:
                    noun = "attempt" if tries == 1 else "attempts"
                    raise AzureError(
                        f"{shown()} failed after {tries} {noun}: last status: no answer ({last_problem})",
                        hint=failure_hint(plane, None, None),
                    ) from None
                await self._wait(attempt, tries, None, shown, last_problem)
                continue
            elapsed_ms = round((time.monotonic() - sent) * 1000, 1)
            if response.status_code in statuses and attempt < tries:
                await self._wait(attempt, tries, retry_after(response.headers), shown, str(response.status_code))
                continue
            return Exchange(
                method=method,
                url=sent_to if wire is not None else str(response.request.url),
                response=response,
                attempts=attempt,
                elapsed_ms=elapsed_ms,
                total_ms=round((time.monotonic() - started) * 1000, 1),
                dropped_bytes=dropped,
                wire="aiohttp" if wire is not None else "httpx",
            )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _wire_for(
        self, method: str, json: Any, content: bytes | str | None, follow_redirects: bool, max_body_bytes: int | None
    ) -> Wire | None:
        """The aiohttp wire for a plain GET inside a wide fan-out (`WIRE_FAN_OUT_MIN`), else None (httpx)."""
        if not _WIDE.get() or method != "GET" or json is not None or content is not None:
            return None
        if follow_redirects or max_body_bytes is not None:
            return None
        if self._wire is None:
            if self._tls is None:
                self._tls = _tls_context()
            self._wire = Wire(
                tls=self._tls, connect_timeout=min(self.timeout, 10.0), connections=MAX_CONCURRENCY + POOL_CONNECTIONS
            )
        return self._wire

    def _wire_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """The client's headers (httpx's defaults and the User-Agent) with the caller's over them, by
        case-insensitive name, as httpx merges them."""
        if self._base_headers is None:
            self._base_headers = {name.lower(): (name, value) for name, value in self._pool(0).headers.items()}
        merged = dict(self._base_headers)
        for name, value in (headers or {}).items():
            merged[name.lower()] = (name, value)
        return dict(merged.values())

    async def _exchange(
        self, request: httpx.Request, follow_redirects: bool, max_body_bytes: int | None
    ) -> tuple[httpx.Response, int]:
        """One attempt: the response with at most `max_body_bytes` of its body held, and the bytes dropped."""
        response = await self.http.send(request, stream=True, follow_redirects=follow_redirects)
        kept: list[bytes] = []
        held = dropped = 0
        try:
            async for chunk in response.aiter_bytes():
                room = len(chunk) if max_body_bytes is None else max(0, max_body_bytes - held)
                if room:
                    kept.append(chunk[:room])
                    held += min(room, len(chunk))
                dropped += len(chunk) - min(room, len(chunk))
        finally:
            await response.aclose()
        # httpx fills `_content` itself when it reads a body whole; a bounded read sets what it held.
        response._content = b"".join(kept)
        return response, dropped

    async def _wait(self, attempt: int, tries: int, after: float | None, shown: Callable[[], str], why: str) -> None:
        delay = self.policy.delay(attempt, after)
        if self.on_retry is not None:
            self.on_retry(f"{shown()}: {why}; retrying in {delay:.2f}s (attempt {attempt + 1}/{tries})")
        if self.stop.is_set():
            raise Stopped()
        import asyncio

        await asyncio.sleep(delay)

    async def fan_out(
        self, items: Sequence[T], work: Callable[[T], Awaitable[R]], *, limit: int | None = None
    ) -> list[R]:
        """Run `work(item)` for every item, at most `limit` at a time; results in item order.

        The first failure cancels the others and is raised as itself (not as an ExceptionGroup).
        """
        import asyncio

        width = max(1, min(limit or self.concurrency, len(items) or 1))
        wide = len(items) >= WIRE_FAN_OUT_MIN and wire_available()
        slots: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(width):
            slots.put_nowait(slot)

        async def one(item: T) -> R:
            # a slot bounds the concurrency and picks the connection pool (`http`) the work uses
            slot = await slots.get()
            token = _SLOT.set(slot)
            wide_token = _WIDE.set(wide)
            try:
                return await work(item)
            finally:
                _WIDE.reset(wide_token)
                _SLOT.reset(token)
                slots.put_nowait(slot)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(item)) for item in items]
        except BaseExceptionGroup as failed:
            raise _first_leaf(failed) from None
        return [task.result() for task in tasks]


_TLS: list[ssl.SSLContext] = []
_TLS_LOCK = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: loading the CA bundle costs 20-90 ms,
    which every pool of every Azure step would otherwise pay again."""
    with _TLS_LOCK:
        if not _TLS:
            import httpx

            _TLS.append(httpx.create_ssl_context())
        return _TLS[0]


_HTTPCORE_LOCK = threading.Lock()


def _import_httpcore_without_trio() -> None:
    """Import httpcore (httpx imports it with its first client) with `trio` hidden from it.

    httpcore imports trio, when installed, to support running under trio; runbook runs httpx under
    asyncio only, and trio's import costs ~170 ms of CPU (measured: most of the first HTTP step's
    0.6 s in phase 1.5, where selenium's dependency put trio in the environment). Hidden only while
    httpcore is imported: anything importing trio later gets it as usual (httpcore under trio would
    then say "requires httpcore[trio]" instead of working)."""
    with _HTTPCORE_LOCK:
        if "httpcore" in sys.modules or "trio" in sys.modules:
            return
        sys.modules["trio"] = None  # type: ignore[assignment]  # `import trio` raises ImportError meanwhile
        try:
            import httpcore  # noqa: F401
        finally:
            if "trio" in sys.modules and sys.modules["trio"] is None:
                del sys.modules["trio"]


_SLOT: contextvars.ContextVar[int] = contextvars.ContextVar("runbook_fan_out_slot", default=0)
# True inside the tasks of a fan-out wide enough for the aiohttp wire
_WIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("runbook_fan_out_wide", default=False)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _transport_problem(exc: Exception) -> str:
    detail = str(exc).strip() or "no detail"
    return f"{type(exc).__name__}: {detail}"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds or date)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = lowered.get(name)
        if value:
            with contextlib.suppress(ValueError):
                return max(0.0, float(value) / 1000)
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# ------------------------------------------------------------------------------------------- ARM


def _with_api_version(url: str, api_version: str) -> str:
    """`url` with `api-version` added to its query unless it has one (the rest of the query kept as sent)."""
    if "api-version=" in url.lower():
        return url
    parts = urlsplit(url)
    added = f"api-version={quote(api_version, safe='')}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{added}" if parts.query else added))


class ArmClient:
    """ARM reads over an `AzureClient`: one resource, or a whole paged listing."""

    def __init__(self, client: AzureClient, base_url: str, token: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def url(self, path: str) -> str:
        """An absolute URL for an ARM path (`/subscriptions/...`); absolute URLs must stay on ARM."""
        if path.startswith(("http://", "https://")):
            self._same_origin(path)
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _same_origin(self, url: str) -> None:
        base, other = urlsplit(self.base_url), urlsplit(url)
        if (base.scheme, base.netloc.lower()) != (other.scheme, other.netloc.lower()):
            raise SecurityViolation(
                f"refusing to send the ARM token to {display_url(url)}: it is not {self.base_url}",
                hint="a nextLink or resource URL pointing elsewhere is a misbehaving server or proxy",
            )

    async def get(self, path: str, api_version: str) -> JsonObject:
        """GET one resource (or one page) and return its JSON object."""
        return await self._get_json(self.url(path), {"api-version": api_version})

    async def list(self, path: str, api_version: str) -> list[JsonObject]:
        """Every item of a listing, following `nextLink` until it is absent, null or empty."""
        items: list[JsonObject] = []
        url = self.url(path)
        params: dict[str, str] | None = {"api-version": api_version}
        seen: set[str] = set()
        for _page in range(MAX_PAGES):
            if self.client.stop.is_set():
                raise Stopped()
            payload = await self._get_json(url, params)
            value = payload.get("value")
            if value is None:
                value = []
            if not isinstance(value, list):
                raise AzureError(f"GET {display_url(url)}: the answer's `value` is not a list")
            items.extend(item for item in value if isinstance(item, dict))
            next_link = payload.get("nextLink")
            if not next_link:  # absent, null or "": the last page (zero items with a link is valid)
                return items
            next_link = urljoin(url, str(next_link))
            self._same_origin(next_link)
            if next_link in seen:
                raise AzureError(f"GET {display_url(url)}: paging loops (nextLink repeats {display_url(next_link)})")
            seen.add(next_link)
            # nextLink carries the api-version (and skip token) itself; add it only when missing, to
            # the link's own query: httpx's `params` would replace that query (the skip token with it)
            url, params = _with_api_version(next_link, api_version), None
        raise AzureError(f"GET {display_url(url)}: more than {MAX_PAGES} pages; giving up")

    async def _get_json(self, url: str, params: Mapping[str, str] | None) -> JsonObject:
        exchange = await self.client.send("GET", url, plane="arm", headers=self._headers, params=params)
        response = exchange.response
        if response.status_code >= 400:
            raise response_error("GET", exchange.url, response, plane="arm", attempts=exchange.attempts)
        try:
            payload = response.json()
        except ValueError:
            raise AzureError(
                f"GET {display_url(exchange.url)}: {response.status_code} but the body is not JSON",
                hint="is arm_url really Azure Resource Manager?",
            ) from None
        if not isinstance(payload, dict):
            raise AzureError(f"GET {display_url(exchange.url)}: expected a JSON object")
        return payload


# ------------------------------------------------------------------------------------- sync facade

_POLL_SECONDS = 0.05


def run_sync(
    work: Callable[[AzureClient], Awaitable[T]],
    *,
    stop: threading.Event | None = None,
    policy: RetryPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_retry: RetryListener | None = None,
) -> T:
    """Run `work(client)` to completion on a fresh event loop; stop it promptly when `stop` is set.

    Meant for actions, which run in a worker thread without a loop. Called where a loop already
    runs, the work gets a thread of its own.
    """
    import asyncio

    stop_event = stop or threading.Event()

    async def main() -> T:
        async with AzureClient(
            policy=policy, timeout=timeout, concurrency=concurrency, stop=stop_event, on_retry=on_retry
        ) as client:
            task = asyncio.ensure_future(work(client))
            while not task.done():
                await asyncio.wait({task}, timeout=_POLL_SECONDS)
                if stop_event.is_set() and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                    raise Stopped()
            return task.result()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=in_thread, name="runbook-azure-client", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def same_origin(url: str, base: str | None) -> bool:
    """True when `url` is on the origin of `base` (scheme, host and port) and under its path."""
    if not base:
        return False
    a, b = urlsplit(url), urlsplit(base)
    if (a.scheme, a.netloc.lower()) != (b.scheme, b.netloc.lower()):
        return False
    prefix = b.path.rstrip("/")
    return not prefix or a.path == prefix or a.path.startswith(prefix + "/")


_ARM_ID = re.compile(r"^/subscriptions/[^/]+(/.*)?$|^/providers/.+$", re.IGNORECASE)


def is_arm_id(value: str) -> bool:
    """True for an ARM resource id (`/subscriptions/...` or `/providers/...`)."""
    return bool(_ARM_ID.match(value))
