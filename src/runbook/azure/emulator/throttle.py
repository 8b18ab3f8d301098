"""ARM throttling: a token bucket per subscription, principal and kind of request, in Azure's shapes.

Azure Resource Manager (since 2024) keeps a token bucket per subscription and principal in each
region: reads 250 burst refilled at 25 per second, writes and deletes 200 / 10. Every answer says
what is left (`x-ms-ratelimit-remaining-subscription-reads` / `-writes` / `-deletes`); a request
over budget gets 429 `SubscriptionRequestsThrottled` with `Retry-After` (seconds until a token is
back) and ARM's error body. The limits come from the estate (`Subscription.rate_limits`); a
subscription whose limits are `null` is not throttled. Requests outside a subscription (listing
subscriptions) are not counted.

The principal is the bearer token: the emulator does not decode tokens, and one token stands for
one identity while it lives. The cost per request is a dict lookup, a little arithmetic and an
uncontended lock, because the emulator is the bottleneck of fleet benchmarks. `stats()` counts what
each subscription was granted and refused, for tests and the fleet benchmark.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from runbook.azure.emulator.transport import Response, arm_error
from runbook.azure.estate import Estate, TokenBucket

__all__ = ["KINDS", "Grant", "Throttle", "request_kind", "throttled"]

#: Kinds of ARM request, each with its own bucket and header.
KINDS = ("reads", "writes", "deletes")
_KIND_OF_METHOD = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}  # the rest: writes


def request_kind(method: str) -> str:
    """"reads" (GET, HEAD), "deletes" (DELETE) or "writes" (PUT, PATCH, POST)."""
    return _KIND_OF_METHOD.get(method, "writes")


class Grant(NamedTuple):
    """The throttle's answer: allowed or not, the header to send, and (when refused) the seconds to wait."""

    allowed: bool
    header: tuple[str, str]
    retry_after: float = 0.0


_HEADERS = {kind: f"x-ms-ratelimit-remaining-subscription-{kind}" for kind in KINDS}


class _Bucket:
    __slots__ = ("capacity", "granted", "rate", "refused", "stamp", "tokens")

    def __init__(self, limit: TokenBucket, now: float) -> None:
        self.capacity = float(limit.burst)
        self.rate = float(limit.per_second)
        self.tokens = self.capacity
        self.stamp = now
        self.granted = 0
        self.refused = 0


class Throttle:
    """The token buckets of one emulator, created on a subscription's first request."""

    def __init__(self, estate: Estate, clock: Callable[[], float] = time.monotonic) -> None:
        self._estate = estate
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket | None] = {}
        self._lock = threading.Lock()

    def take(self, subscription_id: str, principal: str, method: str) -> Grant | None:
        """Spend a token of `subscription_id`'s bucket for this principal and method; None when not throttled."""
        kind = request_kind(method)
        key = (subscription_id.lower(), principal, kind)
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key, _MISSING)
            if bucket is _MISSING:
                bucket = self._buckets[key] = self._new(key[0], kind, now)
            if bucket is None:
                return None
            assert isinstance(bucket, _Bucket)
            tokens = min(bucket.capacity, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
            header_name = _HEADERS[kind]
            if tokens >= 1.0:
                bucket.tokens = tokens - 1.0
                bucket.granted += 1
                return Grant(True, (header_name, str(int(bucket.tokens))))
            bucket.tokens = tokens
            bucket.refused += 1
        wait = (1.0 - tokens) / bucket.rate if bucket.rate > 0 else 3600.0
        return Grant(False, (header_name, "0"), wait)

    def _new(self, subscription_id: str, kind: str, now: float) -> _Bucket | None:
        sub = self._estate.find_subscription(subscription_id)
        if sub is None or sub.rate_limits is None:
            return None  # an unknown subscription is answered 404 by its handler; nothing to count
        return _Bucket(getattr(sub.rate_limits, kind), now)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per subscription: requests granted and refused (429), summed over principals and kinds."""
        totals: dict[str, dict[str, int]] = {}
        with self._lock:
            for (sub, _, _), bucket in self._buckets.items():
                if bucket is None:
                    continue
                counts = totals.setdefault(sub, {"granted": 0, "throttled": 0})
                counts["granted"] += bucket.granted
                counts["throttled"] += bucket.refused
        return totals


_MISSING = object()


def throttled(grant: Grant, subscription_id: str, method: str) -> Response:
    """ARM's 429 for a request over budget: `SubscriptionRequestsThrottled`, `Retry-After` in seconds."""
    kind = request_kind(method)[:-1]  # "read", "write", "delete"
    seconds = _seconds(grant.retry_after)
    response = arm_error(
        429,
        "SubscriptionRequestsThrottled",
        f"Number of '{kind}' requests for subscription '{subscription_id}' exceeded the limit. "
        f"Please try again after '{seconds}' seconds after additional tokens are available. "
        "Refer to https://aka.ms/arm-throttling",
    )
    response.headers.extend([("Retry-After", seconds), grant.header])
    return response


def _seconds(value: float) -> str:
    # Azure sends whole seconds; the emulator keeps milliseconds so tiny test buckets stay fast.
    if value >= 1.0:
        return str(math.ceil(value))
    return f"{math.ceil(value * 1000) / 1000:.3f}".rstrip("0").rstrip(".") or "0.001"
