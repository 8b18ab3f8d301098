"""The emulator's HTTP plumbing: the request and response values, and the loopback server that carries them.

A `Request` is what a site sees (method, still-encoded path, raw query, lower-cased headers, body); a
`Response` is what it answers, with the ARM or APIM operation it matched for the request log. `HTTPServer`
is the stdlib threading server, tuned for the emulator: it tracks open connections so `stop()` need not
wait for idle keep-alive clients, has a listen backlog big enough for a fanned-out discovery, skips the
reverse DNS lookup at bind, stays quiet on stderr, and can drop a connection without a status line (the
"drop" fault) when the site answers `None`.

The stdlib server was kept over werkzeug's WSGI server (about half the request rate on loopback) and
werkzeug's routing (case-sensitive, where ARM paths are not): see the package docstring.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["HTTPServer", "Json", "Request", "Response", "Site", "apim_error", "arm_error", "json_response", "json_text"]

Json = dict[str, Any]

#: The largest request body read (64 MiB): a bigger one is answered 400.
MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One HTTP request as a site sees it."""

    method: str
    path: str  # still percent-encoded
    raw_query: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        """The first value of query parameter `name` (matched case-insensitively), or None."""
        return self._first_values.get(name.lower())

    @functools.cached_property
    def _first_values(self) -> dict[str, str]:
        # parsed once per request (ARM asks for api-version and $skipToken): lower-cased name -> the
        # first value of the first parameter of that name, as a scan of `query` in order would find
        first: dict[str, str] = {}
        for key, values in self.query.items():
            if values:
                first.setdefault(key.lower(), values[0])
        return first

    def segments(self) -> list[str]:
        """The decoded, non-empty path segments."""
        return [unquote(part) for part in self.path.strip("/").split("/") if part]


@dataclass
class Response:
    """One answer; `operation` names what it matched (kept in the request log, never sent)."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    operation: str | None = None
    content_type: str = "application/json; charset=utf-8"


#: What a server calls per request: a response, or None to drop the connection unanswered.
Site = Callable[[Request], Response | None]


def json_response(
    status: int,
    payload: object,
    *,
    operation: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    return Response(status, json_text(payload).encode(), list(headers), operation)


def json_text(payload: object) -> str:
    """`payload` as every answer writes it: compact separators, no ASCII escaping."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def arm_error(status: int, code: str, message: str, *, operation: str | None = None) -> Response:
    """ARM's error body: `{"error": {"code", "message"}}` (Azure OpenAI uses it too)."""
    return json_response(status, {"error": {"code": code, "message": message}}, operation=operation)


def apim_error(status: int, message: str, *, operation: str | None = None) -> Response:
    """API Management's gateway error body: `{"statusCode", "message"}`."""
    return json_response(status, {"statusCode": status, "message": message}, operation=operation)


class HTTPServer(ThreadingHTTPServer):
    """A threading server that tracks its connections, so stop() need not wait on idle clients."""

    daemon_threads = True
    block_on_close = False
    # Python's default backlog of 5 drops connection attempts when a step fans out over 16+ accounts.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, site: Site) -> None:
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


class _Headers:
    """Request headers as `email.message.Message` answers the handler: `get` by any case of the
    name (the first value), `items()` in the order received."""

    def __init__(self, lines: list[bytes]) -> None:
        self._items: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}
        for raw in lines:
            name, colon, value = raw.decode("iso-8859-1").partition(":")
            if not colon:
                continue  # not a header line (the email parser drops it as a defect too)
            name, value = name.strip(), value.strip()
            self._items.append((name, value))
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str = "") -> str:
        return self._first.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runbook-emulator"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is closed after a minute
    disable_nagle_algorithm = True  # no 40 ms stalls when an answer takes more than one segment
    server: HTTPServer
    raw_requestline: bytes

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulator keeps its own request log."""

    def parse_request(self) -> bool:
        """The stdlib's parse_request without the email package: a plain `METHOD PATH HTTP/1.x` line
        with its headers (every request a client sends) is parsed here in a few microseconds instead
        of ~0.2 ms through `email.parser` (the emulator's biggest cost per request after the site);
        any other request line goes to the stdlib's own parser, errors and all."""
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return bool(super().parse_request())
        self.requestline = " ".join(words)
        self.command, self.path, self.request_version = words
        self.close_connection = words[2] == "HTTP/1.0"
        if self.path.startswith("//"):  # as the stdlib does (gh-87389): no open redirects
            self.path = "/" + self.path.lstrip("/")
        try:
            lines = http.client._read_headers(self.rfile)  # type: ignore[attr-defined]  # its line and count limits
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        self.headers = _Headers(lines)  # type: ignore[assignment]
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        expect = self.headers.get("Expect", "").lower()
        if expect == "100-continue" and self.request_version == "HTTP/1.1":
            return bool(self.handle_expect_100())
        return True

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self._write(apim_error(400, f"Bad request body: {exc}"))
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        request = Request(
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
            return self._read_chunks()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> bytes:
        # chunked transfer coding (RFC 9112 section 7.1): hex size [;ext] CRLF, data CRLF ... 0 CRLF trailers CRLF
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailer fields, ignored
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        # end_headers() without its flush: the head and the body leave in one write (one syscall, and
        # one wait to get the GIL back instead of two)
        buffer: list[bytes] | None = getattr(self, "_headers_buffer", None)  # BaseHTTPRequestHandler's
        if buffer is None:  # HTTP/0.9 has no head
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        buffer.append(b"\r\n")
        if self.command != "HEAD":
            buffer.append(response.body)
        self.flush_headers()
