"""What the emulator remembers while it serves: the request log, the generated images, and the ARM
resources that writes change (`ArmStore`, with their etags and long-running operations).

The estate it starts from is read-only (`runbook.azure.estate`); everything that changes while the
servers run lives here, each piece behind its own lock because both servers answer from many threads.
The request log never keeps header values, and subscription-key query values are replaced by `***`.
`ArmStore` can be saved to and loaded from a JSON state file, so several runs can share one world.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["ArmStore", "AsyncOperation", "ImageStore", "RequestLog", "RequestLogEntry"]

#: The state file's format version (a file of another version is refused, not misread).
STATE_VERSION = 1

#: How many generated images stay downloadable (oldest dropped first).
IMAGE_CACHE = 256


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


class RequestLog:
    """The log of every request, oldest first, with secret query values redacted on the way in."""

    def __init__(self, secret_query_names: Iterable[str]) -> None:
        self._secret_names = {name.lower() for name in secret_query_names}
        self._entries: list[RequestLogEntry] = []
        self._lock = threading.Lock()

    def append(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def snapshot(self) -> list[RequestLogEntry]:
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def redacted(self, raw_query: str) -> str:
        """`raw_query` with secret values replaced by `***`; the rest stays exactly as the client sent it."""
        pairs = []
        for pair in raw_query.split("&"):
            name, eq, _ = pair.partition("=")
            secret = unquote_plus(name).lower() in self._secret_names
            pairs.append(f"{name}{eq}***" if secret else pair)
        return "&".join(pairs)


class ImageStore:
    """Generated PNGs served back by URL (`response_format: url`), the most recent `IMAGE_CACHE` kept."""

    def __init__(self, capacity: int = IMAGE_CACHE) -> None:
        self._capacity = capacity
        self._images: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, png: bytes) -> str:
        """Keep `png`; return its file name (derived from its content)."""
        name = hashlib.sha256(png).hexdigest()[:32] + ".png"
        with self._lock:
            self._images[name] = png
            self._images.move_to_end(name)
            while len(self._images) > self._capacity:
                self._images.popitem(last=False)
        return name

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self._images.get(name)


@dataclass
class AsyncOperation:
    """A long-running ARM operation: it finishes after `polls_left` polls of its status URL."""

    id: str
    resource_id: str  # lower-cased
    kind: str  # "put" or "delete"
    polls_left: int
    status: str = "InProgress"  # then "Succeeded"
    started: float = field(default_factory=time.time)


class ArmStore:
    """The ARM resources writes may change, by lower-cased id, in insertion order, with their operations.

    Values are ARM JSON objects (what a GET answers). `meta` keeps what Azure does not show (when a
    diagnostic setting was created). Every accessor copies, so callers never share a dict.
    """

    def __init__(self, lro_polls: int = 1) -> None:
        self.lro_polls = lro_polls  # polls that still answer InProgress before an operation succeeds
        self._items: dict[str, dict[str, Any]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._operations: dict[str, AsyncOperation] = {}
        self._counters: dict[str, int] = {}
        self._written = 0  # writes since start (a state file is saved after each)
        self.lock = threading.RLock()

    # -- resources

    def seed(self, resource: dict[str, Any]) -> None:
        """Add an estate resource unless the store (e.g. from a state file) already has it or deleted it."""
        key = str(resource["id"]).lower()
        with self.lock:
            if key not in self._items and key not in self._meta.get("_deleted", {}):
                self._items[key] = copy.deepcopy(resource)

    def get(self, resource_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self._items.get(resource_id.lower())
            return copy.deepcopy(found) if found is not None else None

    def children(self, parent_id: str, type_name: str) -> list[dict[str, Any]]:
        """The resources of `type_name` directly under `parent_id` (ids compared case-insensitively)."""
        parent = parent_id.lower().rstrip("/")
        wanted = type_name.lower()
        with self.lock:
            return [
                copy.deepcopy(item)
                for key, item in self._items.items()
                if key.rsplit("/", 2)[0] == parent and str(item.get("type", "")).lower() == wanted
            ]

    def under(self, prefix: str) -> list[dict[str, Any]]:
        """Every resource whose id starts with `prefix` (a subscription or resource group id)."""
        start = prefix.lower().rstrip("/") + "/"
        with self.lock:
            return [copy.deepcopy(item) for key, item in self._items.items() if key.startswith(start)]

    def put(self, resource: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        key = str(resource["id"]).lower()
        with self.lock:
            self._items[key] = copy.deepcopy(resource)
            self._meta.get("_deleted", {}).pop(key, None)
            if meta is not None:
                self._meta[key] = dict(meta)
            self._written += 1

    def remove(self, resource_id: str) -> bool:
        key = resource_id.lower()
        with self.lock:
            existed = self._items.pop(key, None) is not None
            self._meta.pop(key, None)
            self._meta.setdefault("_deleted", {})[key] = True
            self._written += 1
            return existed

    def meta(self, resource_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._meta.get(resource_id.lower(), {}))

    def next_etag(self, resource_id: str) -> str:
        """A new etag for `resource_id` (it changes on every write)."""
        with self.lock:
            count = self._counters.get(resource_id.lower(), 0) + 1
            self._counters[resource_id.lower()] = count
        h = hashlib.sha256(f"{resource_id.lower()}\0{count}".encode()).hexdigest()
        return f'"{h[:8]}-0000-0d00-0000-{h[8:20]}0000"'

    def next_in(self, name: str, modulo: int) -> int:
        """A counter `name` that cycles through 0..modulo-1 (round-robin over a backend pool)."""
        with self.lock:
            count = self._counters.get("#" + name, 0)
            self._counters["#" + name] = count + 1
            return count % max(modulo, 1)

    # -- long-running operations

    def begin(self, operation_id: str, resource_id: str, kind: str) -> AsyncOperation:
        operation = AsyncOperation(operation_id, resource_id.lower(), kind, self.lro_polls)
        with self.lock:
            self._operations[operation_id] = operation
        return operation

    def running(self, resource_id: str) -> AsyncOperation | None:
        """The operation in progress on `resource_id`, if any."""
        key = resource_id.lower()
        with self.lock:
            for operation in self._operations.values():
                if operation.resource_id == key and operation.status == "InProgress":
                    return operation
        return None

    def poll(self, operation_id: str) -> AsyncOperation | None:
        """One poll of an operation's status: it succeeds once its polls are used up (and the resource settles)."""
        with self.lock:
            operation = self._operations.get(operation_id)
            if operation is None or operation.status != "InProgress":
                return copy.copy(operation) if operation else None
            if operation.polls_left > 0:
                operation.polls_left -= 1
                return copy.copy(operation)
            operation.status = "Succeeded"
            resource = self._items.get(operation.resource_id)
            if operation.kind == "delete":
                self.remove(operation.resource_id)
            elif resource is not None:
                resource.setdefault("properties", {})["provisioningState"] = "Succeeded"
                self._written += 1
            return copy.copy(operation)

    # -- the state file

    def save(self, path: Path) -> None:
        """Write the store to `path` atomically (a temporary file renamed over it)."""
        with self.lock:
            document = {
                "version": STATE_VERSION,
                "resources": list(self._items.values()),
                "meta": self._meta,
                "counters": self._counters,
                "operations": [asdict(op) for op in self._operations.values()],
            }
            text = json.dumps(document, indent=1, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".emulator-state-", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)

    def load(self, path: Path) -> None:
        """Read a state file written by `save` (ValueError when it is not one)."""
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
            raise ValueError(f"not an emulator state file of version {STATE_VERSION}")
        with self.lock:
            self._items = {str(item["id"]).lower(): item for item in document.get("resources", [])}
            self._meta = dict(document.get("meta", {}))
            self._counters = {str(k): int(v) for k, v in document.get("counters", {}).items()}
            self._operations = {op["id"]: AsyncOperation(**op) for op in document.get("operations", [])}

    @property
    def writes(self) -> int:
        with self.lock:
            return self._written
