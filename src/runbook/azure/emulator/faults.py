"""Injected misbehaviour: which faults a run asks for (`FaultPlan`), the seeded draw, and the fault answers.

A fault is drawn per request, before the site sees it, from a `random.Random(seed)`, so the same seed and
the same request sequence give the same faults. The answers are shaped like the real ones: ARM's
throttling and server errors, and the APIM gateway's, each 429 and 503 with `Retry-After`; a "drop"
closes the connection without a status line.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from runbook.azure.emulator.transport import Response, apim_error, arm_error
from runbook.errors import InputError, did_you_mean

__all__ = ["FAULT_KINDS", "SERVERS", "FaultDraw", "FaultPlan", "fault_response"]

FAULT_KINDS = ("429", "500", "503", "drop")
SERVERS = ("arm", "gateway")


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


class FaultDraw:
    """The seeded dice: `draw(server)` gives the fault kind for the next request, or None."""

    def __init__(self, plan: FaultPlan | None, seed: int) -> None:
        self.plan = plan
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self, server: str) -> str | None:
        plan = self.plan
        if plan is None or plan.rate <= 0 or server not in plan.servers:
            return None
        with self._lock:
            if self._random.random() >= plan.rate:
                return None
            return self._random.choice(plan.kinds)


def fault_response(server: str, kind: str, plan: FaultPlan | None) -> Response:
    """The answer of fault `kind` ("429", "500" or "503") on `server`, as that server would give it."""
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
        response = apim_error(int(kind), messages[kind])
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
        response = arm_error(int(kind), *errors[kind])
    response.headers.extend(headers)
    return response


def _seconds(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _choices(word: str, choices: Sequence[str]) -> str:
    return f"{did_you_mean(word, choices)}choose from {', '.join(choices)}"
