"""One emulator serving a fleet: many subscriptions, each its own accounts and gateway, and ARM throttling.

Over real loopback HTTP: ARM routes by the subscription id in the path, the gateway by host
(`Host: {service}.azure-api.net`) or by that host as the first path segment; a path several gateways
share is refused at the root with a message naming them. ARM keeps a token bucket per subscription
and principal (Azure's 250 / 25 per s for reads by default; a tiny one for the throttling
subscription): every answer says what is left, an empty bucket answers 429 with Retry-After and
ARM's error body, the client backs off as told, and the other subscriptions never notice.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from runbook.azure.emulator import Emulator
from runbook.azure.emulator.throttle import Grant, Throttle
from runbook.azure.estate import Estate, default_estate_path, load_estate, parse_estate
from runbook.errors import AzureError, ValidationFailed
from runbook.fleet.generate import fleet_estate, subscription_id
from test_azure import context, run_action

API_VERSION = "2025-06-01"
APIM_VERSION = "2024-05-01"
HEALTHY, THROTTLED, NO_ROUTE = subscription_id(1), subscription_id(2), subscription_id(3)
IMAGE = "/inference/openai/deployments/FLUX-1.1-pro/images/generations?api-version=2024-10-21"
AUTH = {"Authorization": "Bearer fleet-test"}


def _estate(**limits: object) -> Estate:
    data = fleet_estate([(1, None, HEALTHY), (2, "throttled", THROTTLED), (3, "no-image-route", NO_ROUTE)])
    if limits:
        data["subscriptions"][1]["rate_limits"] = limits
    return Estate.model_validate(data)


@pytest.fixture(scope="module")
def fleet_emu() -> Iterator[Emulator]:
    with Emulator(_estate()) as emulator:
        yield emulator


def _accounts(sub: str, n: int) -> str:
    return f"/subscriptions/{sub}/resourceGroups/rg-member-{n:02d}/providers/Microsoft.CognitiveServices/accounts"


def _settings(emulator: Emulator, sub: str, n: int, **extra: object) -> dict[str, object]:
    return {
        "arm_url": emulator.arm_url,
        "gateway_url": emulator.gateway_url_for(f"apim-member-{n:02d}"),
        "subscription_id": sub,
        "resource_group": f"rg-member-{n:02d}",
        "apim_service": f"apim-member-{n:02d}",
        "api_key": f"member{n:02d}-apim-key-not-a-secret",
        "credential": "emulator",
        **extra,
    }


# ---------------------------------------------------------------- routing


def test_arm_routes_by_subscription_id(fleet_emu: Emulator) -> None:
    with httpx.Client(base_url=fleet_emu.arm_url, headers=AUTH) as arm:
        subs = arm.get("/subscriptions", params={"api-version": "2022-12-01"}).json()["value"]
        assert {s["subscriptionId"] for s in subs} == {HEALTHY, THROTTLED, NO_ROUTE}
        for n, sub in ((1, HEALTHY), (3, NO_ROUTE)):
            names = [a["name"] for a in arm.get(_accounts(sub, n), params={"api-version": API_VERSION}).json()["value"]]
            assert names == [f"foundry{i}-member{n:02d}" for i in (1, 2, 3)]
        # member 1's resource group is not in member 3's subscription
        missing = arm.get(_accounts(NO_ROUTE, 1), params={"api-version": API_VERSION})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceGroupNotFound"
        service = arm.get(f"/subscriptions/{HEALTHY}/resourceGroups/rg-member-01/providers/Microsoft.ApiManagement/service/apim-member-01",
                          params={"api-version": APIM_VERSION}).json()
        # several services: ARM reports each one's own gateway URL, and that URL answers
        assert service["properties"]["gatewayUrl"] == fleet_emu.gateway_url_for("apim-member-01")


def test_gateway_routes_by_host_or_host_segment(fleet_emu: Emulator) -> None:
    body = {"prompt": "a lighthouse", "n": 1, "size": "256x256", "response_format": "b64_json"}
    key1 = {"api-key": "member01-apim-key-not-a-secret"}
    by_path = httpx.post(fleet_emu.gateway_url_for("apim-member-01") + IMAGE, json=body, headers=key1)
    assert by_path.status_code == 200 and by_path.json()["data"][0]["b64_json"]
    by_host = httpx.post(fleet_emu.gateway_url + IMAGE, json=body, headers={**key1, "Host": "apim-member-01.azure-api.net"})
    assert by_host.status_code == 200
    # each gateway has its own keys
    wrong_key = httpx.post(fleet_emu.gateway_url_for("apim-member-02") + IMAGE, json=body, headers=key1)
    assert wrong_key.status_code == 401
    # member 3's gateway has no image route
    no_route = httpx.post(fleet_emu.gateway_url_for("apim-member-03") + IMAGE, json=body,
                          headers={"api-key": "member03-apim-key-not-a-secret"})
    assert no_route.status_code == 404 and no_route.json() == {"statusCode": 404, "message": "Resource not found"}
    # at the root, a path every gateway serves is ambiguous: refused, naming the gateways
    root = httpx.post(fleet_emu.gateway_url + IMAGE, json=body, headers=key1)
    assert root.status_code == 404
    assert "apim-member-01, apim-member-02, apim-member-03" in root.json()["message"]
    assert ".azure-api.net/" in root.json()["message"]
    unknown = httpx.post(fleet_emu.gateway_url + "/apim-nope.azure-api.net" + IMAGE, json=body, headers=key1)
    assert unknown.status_code == 404 and "apim-nope.azure-api.net" in unknown.json()["message"]


def test_one_service_estate_is_served_at_the_root_as_before() -> None:
    with Emulator(load_estate(None)) as emulator:
        assert emulator.env()["APIM_GATEWAY_URL"] == emulator.gateway_url
        response = httpx.post(emulator.gateway_url + IMAGE, json={"prompt": "x", "response_format": "b64_json"},
                              headers={"api-key": emulator.subscription_key})
        assert response.status_code == 200
        # and its own gateway URL answers too
        own = httpx.post(emulator.gateway_url_for("apim-pavavy6pu5hpa") + IMAGE, json={"prompt": "x", "response_format": "b64_json"},
                         headers={"api-key": emulator.subscription_key})
        assert own.status_code == 200


def test_estate_paths_unique_per_gateway_and_host_segments_reserved() -> None:
    text = default_estate_path().read_text(encoding="utf-8")
    twice = text.replace("path: lb/openai", "path: inference/openai")
    with pytest.raises(ValidationFailed) as caught:
        parse_estate(twice, source="estate.yaml")
    assert "duplicate gateway API path 'inference/openai'" in str(caught.value)
    reserved = text.replace("path: lb/openai", "path: x.azure-api.net/openai")
    with pytest.raises(ValidationFailed) as caught:
        parse_estate(reserved, source="estate.yaml")
    assert "estate.yaml:" in str(caught.value) and "azure-api.net" in str(caught.value)


# ---------------------------------------------------------------- throttling


def test_every_arm_answer_says_what_is_left_and_an_empty_bucket_answers_429() -> None:
    with Emulator(_estate(reads={"burst": 3, "per_second": 0.01})) as emulator, \
            httpx.Client(base_url=emulator.arm_url, headers=AUTH) as arm:
        left = []
        for _ in range(3):
            response = arm.get(_accounts(THROTTLED, 2), params={"api-version": API_VERSION})
            assert response.status_code == 200
            left.append(response.headers["x-ms-ratelimit-remaining-subscription-reads"])
        assert left == ["2", "1", "0"]
        refused = arm.get(_accounts(THROTTLED, 2), params={"api-version": API_VERSION})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "SubscriptionRequestsThrottled"
        assert THROTTLED in refused.json()["error"]["message"]
        assert refused.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
        assert 90 <= float(refused.headers["Retry-After"]) <= 100  # one token per 100 s
        # an error answer spends a token and says so too; another principal has a bucket of its own
        other = arm.get(_accounts(THROTTLED, 9), params={"api-version": API_VERSION}, headers={"Authorization": "Bearer someone-else"})
        assert other.status_code == 404 and other.headers["x-ms-ratelimit-remaining-subscription-reads"] == "2"
        # the healthy subscription has Azure's bucket: 250, one spent
        healthy = arm.get(_accounts(HEALTHY, 1), params={"api-version": API_VERSION})
        assert healthy.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
        # writes have their own bucket and header
        write = arm.post(_accounts(HEALTHY, 1) + "/foundry1-member01/listKeys", params={"api-version": API_VERSION})
        assert write.status_code == 200 and write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
        stats = emulator.throttle.stats()
        assert stats[THROTTLED] == {"granted": 4, "throttled": 1}
        assert stats[HEALTHY]["throttled"] == 0


def test_buckets_refill_at_their_rate_and_null_limits_turn_throttling_off() -> None:
    now = [100.0]
    estate = _estate(reads={"burst": 2, "per_second": 4})
    throttle = Throttle(estate, clock=lambda: now[0])
    assert [throttle.take(THROTTLED, "p", "GET").allowed for _ in range(3)] == [True, True, False]  # type: ignore[union-attr]
    refused = throttle.take(THROTTLED, "p", "GET")
    assert refused is not None and refused.retry_after == pytest.approx(0.25)
    now[0] += 0.25  # one token back
    assert throttle.take(THROTTLED, "p", "GET").allowed  # type: ignore[union-attr]
    assert not throttle.take(THROTTLED, "p", "GET").allowed  # type: ignore[union-attr]
    now[0] += 60  # refilled to the burst, not beyond
    assert [throttle.take(THROTTLED, "p", "HEAD").allowed for _ in range(3)] == [True, True, False]  # type: ignore[union-attr]
    assert throttle.take(THROTTLED, "p", "DELETE").header[0] == "x-ms-ratelimit-remaining-subscription-deletes"  # type: ignore[union-attr]
    off = _estate()
    data = off.model_dump()
    data["subscriptions"][0]["rate_limits"] = None
    unlimited = Throttle(Estate.model_validate(data))
    assert unlimited.take(HEALTHY, "p", "GET") is None
    assert unlimited.take("00000000-0000-0000-0000-000000000000", "p", "GET") is None  # unknown: its handler says 404


def test_client_backs_off_as_told_and_other_subscriptions_are_not_slowed() -> None:
    """A member on a tight subscription succeeds after backing off; one next to it never sees a 429."""
    with Emulator(_estate(reads={"burst": 2, "per_second": 5})) as emulator:
        results: dict[str, object] = {}
        refusals: list[tuple[float, float]] = []  # (when, the Retry-After it told) of every 429 for THROTTLED
        take = emulator.throttle.take

        def recording_take(subscription_id: str, principal: str, method: str) -> Grant | None:
            grant = take(subscription_id, principal, method)
            if grant is not None and not grant.allowed and subscription_id == THROTTLED:
                refusals.append((time.time(), grant.retry_after))
            return grant

        emulator.throttle.take = recording_take  # type: ignore[method-assign]

        def healthy() -> None:
            for _ in range(5):
                results["healthy"] = run_action("azure.deployments", context(_settings(emulator, HEALTHY, 1)))

        neighbour = threading.Thread(target=healthy)
        neighbour.start()
        throttled = run_action("azure.deployments", context(_settings(emulator, THROTTLED, 2, http_backoff=0.01)))
        neighbour.join()
        assert throttled.output["total"] == 16 and results["healthy"].output["total"] == 16  # type: ignore[attr-defined]
        log = [e for e in emulator.requests if e.server == "arm"]
        mine = [e for e in log if THROTTLED in e.path]
        assert any(e.status == 429 for e in mine) and mine[-1].status == 200
        # Retry-After was honoured, not the 0.01 s backoff: each retry of a refused request came no
        # earlier than the wait that 429 told (a partly refilled bucket may tell less than 0.2 s).
        refused = sorted(refusals)
        assert refused and max(wait for _when, wait in refused) > 0.02
        for earlier, later in itertools.pairwise(sorted(mine, key=lambda e: e.time)):
            if earlier.status == 429 and earlier.path == later.path:
                when, wait = min(refused, key=lambda r: abs(r[0] - earlier.time))
                assert later.time - when >= wait - 0.005, (later.time - when, wait)
        others = [e for e in log if HEALTHY in e.path]
        assert len(others) == 5 * 4 and all(e.status == 200 for e in others)
        assert emulator.throttle.stats()[HEALTHY]["throttled"] == 0


def test_a_member_out_of_retries_says_it_was_throttled_by_arm() -> None:
    with Emulator(_estate()) as emulator:  # the generated throttling subscription: 3 reads, one every 20 s
        settings = _settings(emulator, THROTTLED, 2, http_attempts=3, http_max_wait=0.05)
        with pytest.raises(AzureError) as caught:
            run_action("azure.deployments", context(settings))
    message = str(caught.value)
    assert "throttled by ARM (429) after 2 retries" in message
    assert "SubscriptionRequestsThrottled" in message and "Traceback" not in message
