"""The emulator's own request-line and header parsing (transport.py), over a raw loopback socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from runbook.azure.emulator.transport import HTTPServer, Request, Response, json_response

seen: list[Request] = []


def _site(request: Request) -> Response:
    seen.append(request)
    return json_response(200, {"path": request.path, "headers": dict(request.headers)})


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    import threading

    httpd = HTTPServer(("127.0.0.1", 0), socket.AF_INET, _site)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()


def _exchange(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_headers_are_read_in_any_case_and_keep_alive_follows_the_version(server: tuple[str, int]) -> None:
    seen.clear()
    two = (
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAUTHORIZATION: Bearer t\r\nX-Twice: 1\r\nx-twice: 2\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    answer = _exchange(server, two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2  # one connection, two answers, then closed as asked
    first, second = seen
    assert first.path == "/a" and first.raw_query == "x=1"
    assert first.headers["authorization"] == "Bearer t" and first.headers["x-twice"] == "2"
    assert second.path == "/b"
    seen.clear()
    assert _exchange(server, b"GET /c HTTP/1.0\r\nHost: h\r\n\r\n").startswith(b"HTTP/1.1 200 OK")  # 1.0: closed


def test_a_body_is_read_by_content_length_and_odd_request_lines_get_the_stdlib_answer(server: tuple[str, int]) -> None:
    seen.clear()
    body = b'{"a": 1}'
    request = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\nConnection: close\r\n\r\n" + body
    assert _exchange(server, request).startswith(b"HTTP/1.1 200 OK")
    assert seen[-1].body == body and seen[-1].method == "POST"
    assert b" 400 " in _exchange(server, b"NONSENSE\r\n\r\n").split(b"\r\n")[0]
    assert b" 505 " in _exchange(server, b"GET / HTTP/2.0\r\n\r\n").split(b"\r\n")[0]
    assert b" 431 " in _exchange(server, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n").split(b"\r\n")[0]
