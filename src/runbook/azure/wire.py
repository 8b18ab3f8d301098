"""The aiohttp wire of wide ARM fan-outs: the same GETs as httpx would send, at a third of the CPU.

Responsible for: one `aiohttp.ClientSession` per `AzureClient` (opened on first use, on the loop
that runs the fan-out), sending a GET with the headers httpx would send (the client's own, User-Agent
and Accept-Encoding included, merged with the caller's) and the query merged as httpx merges it,
and handing back an `httpx.Response` holding the status, the raw headers and the body, decoded by
httpx as it decodes its own answers (aiohttp's decompression is off). Transport failures come back as the httpx
exceptions httpx raises for the same failure, with httpx's wording, so the client's retry loop,
its messages and its callers see no difference.

Why a second HTTP stack: 50 accounts x 3 pages at 100 ms latency, httpx (httpcore, anyio) spends
~3 ms of CPU per request on pool bookkeeping, which on two cores is what keeps the fan-out away
from its latency floor; aiohttp's C parser and plain asyncio connector spend ~1 ms (measured in
bench/bench_discovery.py). Only ARM GETs inside a fan-out of `AzureClient.WIRE_FAN_OUT_MIN` or
more items come here: aiohttp's import (~60-100 ms, most of it the TLS contexts it builds at
import) pays off only over many requests, and every other request (writes, the http.request
action, redirects, bounded bodies) stays on httpx.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import httpx


def available() -> bool:
    """Whether aiohttp can be imported (it is a dependency; a broken install falls back to httpx) and
    would reach the servers as httpx does: aiohttp's `trust_env` reads HTTP(S)_PROXY only, so with
    ALL_PROXY (which httpx honours) or a SOCKS proxy in the environment the GETs stay on httpx."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return _proxies_understood()


def _proxies_understood() -> bool:
    import urllib.request

    proxies = urllib.request.getproxies()
    if "all" in proxies:
        return False
    return not any(str(url).lower().startswith("socks") for url in proxies.values())


class Wire:
    """One aiohttp session for the GETs of one `AzureClient` (close it with `aclose`)."""

    def __init__(self, *, tls: ssl.SSLContext, connect_timeout: float, connections: int) -> None:
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._tls),
                # httpx decodes the body (as for its own answers), and the deadline of a whole attempt
                # is the caller's (`AzureClient.send`); only connecting has a bound of its own here
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout),
                # proxies from HTTP(S)_PROXY / NO_PROXY, as httpx does; with none set, aiohttp is not
                # asked to look (it would, in a worker thread, twice for every request)
                trust_env=_proxies_configured(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def send(
        self, method: str, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str]
    ) -> tuple[httpx.Response, str]:
        """Send a GET without body (`headers` already merged with the client's) and return the whole
        answer as an `httpx.Response`, and the URL it was sent to. Query `params` are merged into the
        URL's query as httpx merges them (same names replaced)."""
        import aiohttp
        from yarl import URL

        session = self._open()
        target = URL(url, encoded=True)
        if params:
            target = target.update_query({str(k): str(v) for k, v in params.items()})
        sent = str(target)
        try:
            async with session.request(method, target, headers=dict(headers), allow_redirects=False) as answer:
                body = await answer.read()
                status, raw_headers, reason = answer.status, answer.raw_headers, answer.reason or ""
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, method, sent, headers) from exc
        response = _response_class()(
            status,
            headers=list(raw_headers),
            content=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason.encode("ascii", "replace")},
        )
        response.sent_as = (method, sent, dict(headers))
        return response, sent

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _proxies_configured() -> bool:
    """Whether the environment names a proxy (`*_proxy` variables, as urllib and httpx read them)."""
    import urllib.request

    return bool(urllib.request.getproxies())


@functools.cache
def _response_class() -> type[Any]:
    """`httpx.Response` whose `request` (httpx's URL parsing costs ~0.2 ms) is built when asked for."""
    import httpx

    class WireResponse(httpx.Response):
        sent_as: tuple[str, str, dict[str, str]]

        @property
        def request(self) -> httpx.Request:
            if self._request is None:
                method, url, headers = self.sent_as
                self._request = httpx.Request(method, url, headers=headers)
            return self._request

        @request.setter
        def request(self, value: httpx.Request) -> None:
            self._request = value

    return WireResponse


def _as_httpx(exc: Exception, method: str, url: str, headers: Mapping[str, str]) -> Exception:
    """The httpx exception (and wording) httpx gives for the same transport failure."""
    import aiohttp
    import httpx

    request = httpx.Request(method, url, headers=headers)

    kind: Any
    if isinstance(exc, aiohttp.ClientConnectorError):
        kind, text = httpx.ConnectError, "All connection attempts failed"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        kind, text = httpx.RemoteProtocolError, "Server disconnected without sending a response."
    elif isinstance(exc, aiohttp.ClientPayloadError):
        kind, text = httpx.RemoteProtocolError, "peer closed connection without sending complete message body"
    elif isinstance(exc, aiohttp.ServerTimeoutError):
        kind, text = httpx.ReadTimeout, str(exc) or "timed out"
    elif isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not HTTP
        kind, text = httpx.RemoteProtocolError, getattr(exc, "message", "") or str(exc)
    elif isinstance(exc, aiohttp.ClientOSError):  # reset or broken pipe on a connection
        kind, text = httpx.ReadError, str(exc.strerror or exc)
    else:
        kind, text = httpx.TransportError, str(exc)
    error: Exception = kind(text, request=request)
    return error
