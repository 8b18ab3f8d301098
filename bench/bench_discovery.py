"""Discovery fan-out: `azure.deployments` over 50 accounts against the same HTTP calls made one by one.

The embedded emulator serves a generated estate (50 accounts x 60 deployments) on 127.0.0.1 with
pages of 20 items and 100 ms added to every answer. It runs in a process of its own, as a remote
service would: in the benchmark's process its handlers would compete with the client for the GIL
(measured: ~9 ms per request instead of ~1 ms). runbook's side is the `azure.deployments` action
itself, called with an `ActionContext` whose target carries the emulator's settings (what a step of
a run gets; the run's YAML, record and console are measured by the executor benchmark): it lists the
accounts (3 pages), then every account's deployments (3 pages each) concurrently. The peer is the
floor of a naive client: plain `httpx.Client` GETs, one after another, following `nextLink`.

Lower bound: the longest chain of dependent requests x latency = (3 account pages + 3 deployment
pages) x 100 ms = 600 ms. Target: within 1.5x of that bound. The sweep over the concurrency (8, 16,
32, 64) runs interleaved with two reference clients: plain httpx with one pool per account, and plain
aiohttp with one session (what runbook's wire for wide fan-outs uses, without retries or checks).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Row, Section, interleaved, median, pair_ratio, quiet_env

NAME = "discovery"
TITLE = "Discovery fan-out"
ACCOUNTS, DEPLOYMENTS, PAGE_SIZE, LATENCY = 50, 60, 20, 0.1
API_VERSION = "2025-06-01"


_EMULATOR = """
import json, sys
from runbook.azure import emulator as module
from runbook.azure.emulator import Emulator
from runbook.azure.estate_generator import generate_estate
# socketserver's default listen backlog is 5: a burst of 16+ new connections overflows it and the
# kernel drops SYNs, which clients retry after 1 s. Azure does not do that, so the stand-in must not.
server = getattr(module, "_HTTPServer", None)
backlog = getattr(server, "request_queue_size", None)
if server is not None and backlog is not None and backlog < 128:
    server.request_queue_size = 128
emulator = Emulator(generate_estate({accounts}, {deployments}), page_size={page_size}, latency={latency}).start()
print(json.dumps({{"arm_url": emulator.arm_url, "env": emulator.env(), "backlog": backlog}}), flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
emulator.stop()
"""


@dataclass
class RemoteEmulator:
    """The emulator running in a child process: where it listens and the variables it hands out."""

    arm_url: str
    variables: dict[str, str]
    backlog: int | None = None
    pid: int | None = None

    def env(self) -> dict[str, str]:
        return dict(self.variables)

    def cpu(self) -> float | None:
        """CPU seconds the emulator's process has used so far (Linux's /proc; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None


@contextmanager
def emulator_process() -> Iterator[RemoteEmulator]:
    code = _EMULATOR.format(accounts=ACCOUNTS, deployments=DEPLOYMENTS, page_size=PAGE_SIZE, latency=LATENCY)
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=quiet_env(), text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the emulator process exited before it started serving")
        info = json.loads(line)
        yield RemoteEmulator(info["arm_url"], info["env"], info.get("backlog"), child.pid)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _pages(items: int) -> int:
    return max(1, -(-items // PAGE_SIZE))


def run_action(emulator: Any, workdir: Path, concurrency: int | None) -> tuple[float, int, float]:
    """(wall seconds, deployments found, CPU seconds of this process) of one `azure.deployments` call."""
    from runbook import actions
    from runbook.actions import ActionContext
    from runbook.secrets import Redactor
    from runbook.targets import TargetSession

    env = emulator.env()
    settings: dict[str, Any] = {
        "arm_url": emulator.arm_url,
        "subscription_id": env["AZURE_SUBSCRIPTION_ID"],
        "resource_group": env["RESOURCE_GROUP"],
        "credential": "emulator",
    }
    if concurrency is not None:
        settings["concurrency"] = concurrency
    target = TargetSession(name="emulator", kind="emulator", settings=settings, env=env)
    spec = actions.get("azure.deployments")
    params = spec.params.model_validate({} if concurrency is None else {"concurrency": concurrency})
    context = ActionContext(
        workspace_root=workdir,
        step_id="deployments",
        stage="discovery",
        dry_run=False,
        redactor=Redactor(),
        target=target,
        timeout=None,
        stop=threading.Event(),
    )
    cpu = time.process_time()
    started = time.perf_counter()
    try:
        result = spec.func(params, context)
    finally:
        for value in context.run_state.values():
            closer = getattr(value, "close", None)
            if callable(closer):
                closer()
    elapsed = time.perf_counter() - started
    return elapsed, int(result.output["total"]), time.process_time() - cpu


def run_sequential(emulator: Any, accounts_limit: int | None = None) -> tuple[float, int, int]:
    """(wall seconds, deployments found, requests) of the same GETs made one after another."""
    import httpx

    from runbook.azure.credentials import EMULATOR_TOKEN

    env = emulator.env()
    base = emulator.arm_url
    group = f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{env['RESOURCE_GROUP']}"
    headers = {"Authorization": f"Bearer {EMULATOR_TOKEN}", "Accept": "application/json"}
    requests = 0

    def listing(client: httpx.Client, path: str) -> list[dict[str, Any]]:
        nonlocal requests
        items: list[dict[str, Any]] = []
        url: str | None = f"{base}{path}?api-version={API_VERSION}"
        while url:
            response = client.get(url, headers=headers)
            requests += 1
            response.raise_for_status()
            page = response.json()
            items.extend(page.get("value") or [])
            url = page.get("nextLink") or None
        return items

    started = time.perf_counter()
    with httpx.Client(timeout=30) as client:
        accounts = listing(client, f"{group}/providers/Microsoft.CognitiveServices/accounts")
        found = 0
        for account in accounts[:accounts_limit]:
            found += len(listing(client, f"{account['id']}/deployments"))
    return time.perf_counter() - started, found, requests


def run_concurrent_reference(emulator: Any) -> float:
    """Wall seconds of the same GETs, all accounts at once, each account on its own small httpx pool:
    what the fan-out costs when the client's connection pool does not grow with the concurrency."""
    import asyncio
    import ssl

    import httpx

    from runbook.azure.credentials import EMULATOR_TOKEN

    env = emulator.env()
    base = emulator.arm_url
    group = f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{env['RESOURCE_GROUP']}"
    headers = {"Authorization": f"Bearer {EMULATOR_TOKEN}", "Accept": "application/json"}

    async def listing(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = f"{base}{path}?api-version={API_VERSION}"
        while url:
            response = await client.get(url, headers=headers)
            response.raise_for_status()
            page = response.json()
            items.extend(page.get("value") or [])
            url = page.get("nextLink") or None
        return items

    tls = ssl.create_default_context()  # loaded once: each client would otherwise load the CA file again

    async def deployments(account: dict[str, Any]) -> int:
        async with httpx.AsyncClient(timeout=30, verify=tls) as client:
            return len(await listing(client, f"{account['id']}/deployments"))

    async def main() -> int:
        async with httpx.AsyncClient(timeout=30) as client:
            accounts = await listing(client, f"{group}/providers/Microsoft.CognitiveServices/accounts")
        return sum(await asyncio.gather(*(deployments(a) for a in accounts)))

    started = time.perf_counter()
    found = asyncio.run(main())
    if found != ACCOUNTS * DEPLOYMENTS:
        raise RuntimeError(f"the reference client found {found} deployments")
    return time.perf_counter() - started


def run_aiohttp_reference(emulator: Any) -> tuple[float, float]:
    """(wall, CPU seconds) of the same GETs over one plain aiohttp session: no retries, no checks."""
    import asyncio

    import aiohttp

    from runbook.azure.credentials import EMULATOR_TOKEN

    env = emulator.env()
    base = emulator.arm_url
    group = f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{env['RESOURCE_GROUP']}"
    headers = {"Authorization": f"Bearer {EMULATOR_TOKEN}", "Accept": "application/json"}

    async def listing(session: aiohttp.ClientSession, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = f"{base}{path}?api-version={API_VERSION}"
        while url:
            async with session.get(url, headers=headers) as response:
                response.raise_for_status()
                page = json.loads(await response.read())
            items.extend(page.get("value") or [])
            url = page.get("nextLink") or None
        return items

    async def main() -> int:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            accounts = await listing(session, f"{group}/providers/Microsoft.CognitiveServices/accounts")
            found = await asyncio.gather(*(listing(session, f"{a['id']}/deployments") for a in accounts))
        return sum(map(len, found))

    cpu = time.process_time()
    started = time.perf_counter()
    found = asyncio.run(main())
    if found != ACCOUNTS * DEPLOYMENTS:
        raise RuntimeError(f"the aiohttp reference client found {found} deployments")
    return time.perf_counter() - started, time.process_time() - cpu


SWEEP = (8, 16, 32, 64)


def run(quick: bool) -> Section:
    from runbook.azure.client import DEFAULT_CONCURRENCY, WIRE_FAN_OUT_MIN

    section = Section(NAME, TITLE)
    repeat = 3 if quick else 7
    bound = (_pages(ACCOUNTS) + _pages(DEPLOYMENTS)) * LATENCY
    expected = ACCOUNTS * DEPLOYMENTS

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp, emulator_process() as emulator:
        workdir = Path(tmp)
        emulator_backlog = emulator.backlog
        run_action(emulator, workdir, None)  # warm-up: imports, first connections
        sides: dict[str, Any] = {"default": lambda: run_action(emulator, workdir, None)}
        for width in SWEEP:
            sides[f"c{width}"] = lambda width=width: run_action(emulator, workdir, width)
        sides["reference"] = lambda: (run_concurrent_reference(emulator), expected, 0.0)
        sides["aiohttp"] = lambda: (*run_aiohttp_reference(emulator), expected)
        emulator_cpu = emulator.cpu()
        results = interleaved(sides, repeat=repeat)
        emulator_after = emulator.cpu()
        sequential_runs = [run_sequential(emulator) for _ in range(1)]

    aiohttp_runs = results.pop("aiohttp")
    for label, runs in results.items():
        if any(found != expected for _, found, _ in runs):
            raise RuntimeError(f"{label} run found {[f for _, f, _ in runs]} deployments, expected {expected}")
    if any(found != expected for _, found, _ in sequential_runs):
        raise RuntimeError("the sequential client did not find every deployment")
    sequential_s = sequential_runs[0][0]
    requests = sequential_runs[0][2]
    reference = [t for t, _, _ in results["reference"]]

    section.add(Row("lower bound: (3 + 3 pages) x 100 ms", bound, unit="s"))
    default = [t for t, _, _ in results["default"]]
    default_s = median(default)
    section.add(
        Row(
            f"azure.deployments, default concurrency ({DEFAULT_CONCURRENCY}; fan-outs of {WIRE_FAN_OUT_MIN}+ over aiohttp)",
            default_s,
            unit="s",
            cpu=median([c for _, _, c in results["default"]]),
            peer="the bound (peer value) / this",
            peer_value=bound,
            target="<= 1.5x the bound",
            met=default_s <= 1.5 * bound,
        )
    )
    for width in SWEEP:
        runs = results[f"c{width}"]
        wall = median([t for t, _, _ in runs])
        section.add(
            Row(
                f"azure.deployments, concurrency {width}",
                wall,
                unit="s",
                cpu=median([c for _, _, c in runs]),
                peer="plain httpx, one pool per account (interleaved)",
                peer_value=median(reference),
                pair=pair_ratio(reference, [t for t, _, _ in runs]),
            )
        )
    section.add(
        Row(
            "plain aiohttp, one session, no retries or checks (interleaved)",
            median([t for t, _, _ in aiohttp_runs]),
            unit="s",
            cpu=median([c for _, c, _ in aiohttp_runs]),
            peer="azure.deployments default / this",
            peer_value=default_s,
            pair=pair_ratio(default, [t for t, _, _ in aiohttp_runs]),
        )
    )
    section.add(
        Row(
            "sequential httpx, one GET after another",
            sequential_s,
            unit="s",
            note=f"{requests} GETs, run once",
            peer="azure.deployments default / this",
            peer_value=default_s,
        )
    )
    section.notes.append(
        f"{ACCOUNTS} accounts x {DEPLOYMENTS} deployments, page size {PAGE_SIZE}, {LATENCY * 1000:.0f} ms latency "
        f"per answer; every run found all {expected} deployments. Default: {default_s / bound:.2f}x the bound, "
        f"{sequential_s / default_s:.1f}x faster than sequential. Each round ran the default, the sweep "
        f"{', '.join(map(str, SWEEP))} and the reference client one after another (order reversed every other "
        "round); the ratio column of the sweep is the median of the per-round ratios reference / runbook."
    )
    section.notes.append(
        "CPU is that of the benchmark process (the client side; the emulator runs in a process of its own). "
        f"A width below {ACCOUNTS} has its own floor: ceil({ACCOUNTS}/width) waves of 3 pages after the 3 account "
        "pages, e.g. (3 + 4 x 3) x 100 ms = 1.5 s at 16."
    )
    if emulator_cpu is not None and emulator_after is not None:
        rounds = sum(len(runs) for runs in results.values()) + len(aiohttp_runs)
        answered = rounds * (_pages(ACCOUNTS) + ACCOUNTS * _pages(DEPLOYMENTS))
        section.notes.append(
            f"The emulator's process spent {(emulator_after - emulator_cpu) / answered * 1000:.2f} ms of CPU per "
            f"request over the rounds ({answered} requests, after the warm-up): the server side's share of the "
            "machine's two cores."
        )
    if emulator_backlog is not None and emulator_backlog < 128:
        section.notes.append(
            f"the emulator's listen backlog is {emulator_backlog} (socketserver's default); the benchmark raises "
            "it to 128 in the emulator's process, otherwise a burst of new connections loses SYNs that "
            "clients retry only after 1 s."
        )
    return section
