"""A minimal Language Server Protocol client over stdio, for driving the real yaml-language-server in tests."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any


class LspClient:
    """Starts a language server, answers its requests, and collects `publishDiagnostics` by URI."""

    def __init__(self, argv: list[str], root: Path, settings: dict[str, Any]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.settings = settings
        self.next_id = 0
        self.responses: dict[int, Any] = {}
        self.diagnostics: queue.Queue[tuple[str, list[dict[str, Any]]]] = queue.Queue()
        self._lock = threading.Lock()
        self._answered = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": {
                    "workspace": {"configuration": True, "didChangeConfiguration": {"dynamicRegistration": True}},
                    "textDocument": {"publishDiagnostics": {"relatedInformation": False}},
                },
                "initializationOptions": {},
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": settings})

    # -- wire format

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            self.process.stdin.flush()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            headers: dict[str, str] = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            message = json.loads(stream.read(int(headers["content-length"])))
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:  # a response to one of our requests
            with self._answered:
                self.responses[message["id"]] = message
                self._answered.notify_all()
        elif "id" in message:  # a request from the server
            result: Any = None
            if method == "workspace/configuration":
                result = [self._section(item.get("section")) for item in message["params"]["items"]]
            self._send({"id": message["id"], "result": result})
        elif method == "textDocument/publishDiagnostics":
            self.diagnostics.put((message["params"]["uri"], message["params"]["diagnostics"]))

    def _section(self, section: str | None) -> Any:
        value: Any = self.settings
        for part in (section or "").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return value

    # -- requests

    def request(self, method: str, params: dict[str, Any], timeout: float = 60) -> Any:
        self.next_id += 1
        ident = self.next_id
        self._send({"id": ident, "method": method, "params": params})
        with self._answered:
            if not self._answered.wait_for(lambda: ident in self.responses, timeout):
                raise TimeoutError(f"{method}: no answer from the language server")
        return self.responses.pop(ident).get("result")

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def open(self, path: Path) -> str:
        uri = path.resolve().as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": path.read_text(encoding="utf-8")}},
        )
        return uri

    def diagnostics_for(self, uris: list[str], timeout: float = 60) -> dict[str, list[dict[str, Any]]]:
        """The first diagnostics published for each of `uris` (they are published after validation)."""
        found: dict[str, list[dict[str, Any]]] = {}
        while set(uris) - set(found):
            uri, items = self.diagnostics.get(timeout=timeout)
            if uri in uris:
                found[uri] = items
        return found

    def close(self) -> None:
        try:
            self.request("shutdown", {}, timeout=10)
            self.notify("exit", {})
            self.process.wait(10)
        except (TimeoutError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(10)
