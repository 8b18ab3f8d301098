"""Lists served from pre-serialized items (`arm.Listing`): the same pages, bytes and links as a list of dicts.

Accounts and deployments are shaped once per owner and a page joins its slice of JSON texts; these
tests pin that this is only a cost change: every page equals what `json_response` made of the same
items paged by `ArmSite._page`, over HTTP and for every window, with `count` and without.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from runbook.azure.emulator import Emulator
from runbook.azure.emulator.arm import ArmSite
from runbook.azure.emulator.arm_shapes import account_item, deployment_item
from runbook.azure.emulator.transport import Request, json_text
from runbook.azure.estate_generator import generate_estate

API = "2025-06-01"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(generate_estate(3, 45), page_size=20) as emulator:
        yield emulator


def _pages(client: httpx.Client, url: str) -> list[dict[str, object]]:
    pages = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        next_url = pages[-1].get("nextLink")
    return pages


def test_deployment_pages_hold_every_item_in_order_with_arm_next_links(emu: Emulator) -> None:
    sub = emu.estate.subscriptions[0]
    rg = sub.resource_groups[0]
    acct = rg.accounts[1]
    path = f"/subscriptions/{sub.id}/resourceGroups/{rg.name}/providers/Microsoft.CognitiveServices/accounts/{acct.name}/deployments"
    with httpx.Client(headers={"Authorization": "Bearer test"}) as client:
        pages = _pages(client, f"{emu.arm_url}{path}?api-version={API}")
        again = _pages(client, f"{emu.arm_url}{path}?api-version={API}")  # the second time comes from the cache
        wrong = client.get(f"{emu.arm_url}{path}", params={"api-version": API, "$skipToken": "x"})
    assert [len(p["value"]) for p in pages] == [20, 20, 5]  # type: ignore[arg-type]
    assert [p.get("nextLink") for p in pages] == [
        f"{emu.arm_url}{path}?api-version={API}&$skipToken=20",
        f"{emu.arm_url}{path}?api-version={API}&$skipToken=40",
        None,
    ]
    items = [item for page in pages for item in page["value"]]  # type: ignore[attr-defined]
    assert items == [deployment_item(sub, rg, acct, d) for d in acct.deployments]
    assert again == pages
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "InvalidSkipToken"


def test_account_list_is_the_accounts_of_the_group(emu: Emulator) -> None:
    sub = emu.estate.subscriptions[0]
    rg = sub.resource_groups[0]
    with httpx.Client(headers={"Authorization": "Bearer test"}) as client:
        in_group = _pages(client, f"{emu.arm_url}/subscriptions/{sub.id}/resourceGroups/{rg.name}/providers/Microsoft.CognitiveServices/accounts?api-version={API}")
        in_sub = _pages(client, f"{emu.arm_url}/subscriptions/{sub.id}/providers/Microsoft.CognitiveServices/accounts?api-version={API}")
    expected = [account_item(sub, rg, a) for a in rg.accounts]
    assert [item for page in in_group for item in page["value"]] == expected  # type: ignore[attr-defined]
    assert [item["id"] for page in in_sub for item in page["value"]] == [  # type: ignore[attr-defined]
        account_item(sub, g, a)["id"] for g in sub.resource_groups for a in g.accounts
    ]


@pytest.mark.parametrize("count", [False, True])
@pytest.mark.parametrize("total", [0, 1, 19, 20, 21, 45])
def test_a_listing_page_is_byte_for_byte_the_list_page(total: int, count: bool) -> None:
    estate = generate_estate(1, 1)
    site = ArmSite(estate, (), "", 20, lambda: "http://127.0.0.1:1", lambda: "")
    items = [{"name": f"d-{i}", "note": "naïve ✓ \"quoted\" \\ /", "n": i} for i in range(total)]
    texts = tuple(json_text(item) for item in items)
    for token in ("", "&$skipToken=0", "&$skipToken=20", "&$skipToken=40", "&$skipToken=60"):
        request = Request("GET", "/subscriptions/s/x", f"api-version={API}{token}", {}, b"")
        expected = json_text(site._page(items, request, API, count=count)).encode()
        assert site._listing_page(texts, request, API, count=count) == expected
        assert json.loads(expected)["value"] == items[int(token.rpartition("=")[2] or 0) :][:20]
