"""What the emulator remembers while it serves: the request log and the generated images.

The estate it answers from is read-only (`runbook.azure.estate`); everything that changes while the
servers run lives here, each piece behind its own lock because both servers answer from many threads.
The request log never keeps header values, and subscription-key query values are replaced by `***`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

__all__ = ["ImageStore", "RequestLog", "RequestLogEntry"]

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
