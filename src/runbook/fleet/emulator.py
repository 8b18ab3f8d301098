"""The fleet's one emulator: a process of its own serving the fleet's estate on loopback while a fleet run lasts.

A fleet file with `emulator: {estate: estate.yaml}` has every member talk to ONE emulator: routing by
subscription id in the ARM path, by gateway (`{gateway}/{service}.azure-api.net/...`) on the data
plane, with ARM's throttling per subscription. `start_fleet_emulator` starts it as
`python -m runbook.fleet.emulator` in a session of its own, so a terminal's Ctrl-C reaches the
coordinator and the members but not the Azure they are talking to, waits until it listens, and
hands back a `FleetEmulator` that knows each member's settings: the ARM URL, the URL and key of the
member's gateway (`apim_service`), `credential: emulator`. The keys are the estate's fake ones.

`stop()` ends it with SIGTERM; it then writes what it served (requests, ARM throttling per
subscription) for the fleet record. When the coordinator dies without stopping it (SIGKILL), the
emulator sees its parent gone and keeps serving until the members that were running go quiet (no
request for `IDLE_S`, at most `ORPHAN_S`), so orphaned member runs wind down as interrupted rather
than failing on an Azure that vanished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, RunbookError

IDLE_S = 3.0
ORPHAN_S = 120.0
START_TIMEOUT_S = 60.0


@dataclass
class FleetEmulator:
    """The running shared emulator, as the coordinator sees it."""

    process: subprocess.Popen[bytes]
    folder: Path
    arm_url: str
    gateway_url: str
    keys: dict[str, str] = field(default_factory=dict)  # lower-cased APIM service name -> its first key
    stats: dict[str, Any] | None = None
    moved: bool = False  # asked for the ports of an earlier emulator, one was taken: listens elsewhere
    moved_from: str | None = None  # that earlier address, for the record (set by the coordinator)

    def gateway_url_for(self, service: str) -> str:
        from ..azure.estate import GATEWAY_HOST_SUFFIX

        return f"{self.gateway_url}/{service}{GATEWAY_HOST_SUFFIX}"

    def member_settings(self, settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """(settings, secret settings) a member gets from the emulator; its own `settings` win."""
        service = settings.get("apim_service")
        given: dict[str, Any] = {
            "arm_url": self.arm_url,
            "gateway_url": self.gateway_url_for(str(service)) if service else self.gateway_url,
            "credential": "emulator",
        }
        secret = {}
        key = self.keys.get(str(service).lower()) if service else None
        if key is not None and "api_key" not in settings:
            secret["api_key"] = key
        return {**given, **settings}, secret

    def stop(self) -> dict[str, Any] | None:
        """SIGTERM, wait, and read what it served. Safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        stats_file = self.folder / "stats.json"
        if self.stats is None and stats_file.exists():
            self.stats = json.loads(stats_file.read_text(encoding="utf-8"))
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.stats


def estate_keys(estate: Any) -> dict[str, str]:
    """The first subscription key of every API Management service, by lower-cased service name."""
    return {svc.name.lower(): svc.subscription_keys[0] for _, _, svc in estate.apim_services() if svc.subscription_keys}


def start_fleet_emulator(estate_path: Path, *, latency: float = 0.0, seed: int = 0, page_size: int = 100,
                         keys: dict[str, str] | None = None, ports: tuple[int, int] | None = None) -> FleetEmulator:
    """Start the shared emulator process and wait until it listens. `ports` (ARM, gateway): where
    to listen when they are free (a resumed fleet run: where its emulator listened before), else
    on free ones (`FleetEmulator.moved` then says so)."""
    folder = Path(tempfile.mkdtemp(prefix="runbook-fleet-emulator-"))
    ready = folder / "ready.json"
    stderr = (folder / "stderr.txt").open("wb")
    command = [sys.executable, "-m", "runbook.fleet.emulator", str(estate_path), "--folder", str(folder),
               "--latency", str(latency), "--seed", str(seed), "--page-size", str(page_size)]
    if ports is not None:
        command += ["--arm-port", str(ports[0]), "--gateway-port", str(ports[1])]
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
    finally:
        stderr.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            said = (folder / "stderr.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()
            shutil.rmtree(folder, ignore_errors=True)
            raise RunbookError(f"the fleet's emulator did not start: {(said or ['no output'])[-1][:300]}",
                               hint=f"try it alone: runbook emulator --estate {estate_path}")
        time.sleep(0.05)
    urls = json.loads(ready.read_text(encoding="utf-8"))
    return FleetEmulator(process, folder, urls["arm_url"], urls["gateway_url"], dict(keys or {}), moved=bool(urls.get("moved")))


def wait_for_orphaned(pid: int | None, timeout: float = ORPHAN_S + IDLE_S + 5.0) -> None:
    """Wait (at most `timeout` s) until an earlier fleet emulator, process `pid`, has exited.

    A coordinator killed a moment ago leaves its emulator serving the orphaned members until they go
    quiet; a `--resume` started meanwhile would find its ports taken and listen elsewhere, where
    restored outputs that hold the old URLs do not reach. Only a process that is visibly a fleet
    emulator (Linux's /proc) is waited for: elsewhere, or for a pid reused since, nothing is."""
    deadline = time.monotonic() + timeout
    while pid and is_fleet_emulator(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def is_fleet_emulator(pid: int) -> bool:
    """Whether process `pid` is a live fleet emulator (Linux's /proc; False elsewhere)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[:1]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state != [b"Z"] and b"runbook.fleet.emulator" in command


# ---------------------------------------------------------------- the emulator process


def serve(estate_path: Path, folder: Path, *, latency: float, seed: int, page_size: int,
          ports: tuple[int, int] = (0, 0)) -> None:
    """Serve until SIGTERM (or until orphaned and idle), then write stats.json into `folder`.
    `ports` (ARM, gateway; 0 for a free one): when one is taken, both are free ones and ready.json
    says `moved`."""
    from ..atomic import atomic_write_text
    from ..azure.emulator import Emulator
    from ..azure.estate import load_estate

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when the fleet's Azure goes away
    parent = os.getppid()
    estate = load_estate(estate_path)
    moved = False
    try:
        emulator = Emulator(estate, latency=latency, seed=seed, page_size=page_size, arm_port=ports[0],
                            gateway_port=ports[1]).start()
    except InputError:
        if ports == (0, 0):
            raise
        emulator = Emulator(estate, latency=latency, seed=seed, page_size=page_size).start()
        moved = True
    try:
        atomic_write_text(folder / "ready.json", json.dumps({"arm_url": emulator.arm_url, "gateway_url": emulator.gateway_url,
                                                             "pid": os.getpid(), "moved": moved}))
        orphaned = None
        seen, quiet_since = 0, time.monotonic()
        while not stop.wait(0.2):
            if os.getppid() == parent:
                continue
            now = time.monotonic()
            orphaned = orphaned or now
            count = emulator.request_count
            if count != seen:
                seen, quiet_since = count, now
            if now - quiet_since > IDLE_S or now - orphaned > ORPHAN_S:
                break
        entries = emulator.requests
        stats = {
            "requests": len(entries),
            "arm_requests": sum(1 for e in entries if e.server == "arm"),
            "gateway_requests": sum(1 for e in entries if e.server == "gateway"),
            "subscriptions": emulator.throttle.stats(),
        }
        if folder.exists():
            atomic_write_text(folder / "stats.json", json.dumps(stats, sort_keys=True))
    finally:
        emulator.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook.fleet.emulator", description="The fleet's shared emulator.")
    parser.add_argument("estate", type=Path)
    parser.add_argument("--folder", type=Path, required=True, help="where ready.json and stats.json go")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--arm-port", type=int, default=0, help="where to listen, when free (0: a free port)")
    parser.add_argument("--gateway-port", type=int, default=0, help="where to listen, when free (0: a free port)")
    args = parser.parse_args(argv)
    try:
        serve(args.estate, args.folder, latency=args.latency, seed=args.seed, page_size=args.page_size,
              ports=(args.arm_port, args.gateway_port))
    except (RunbookError, InputError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process by start_fleet_emulator
    sys.exit(main(sys.argv[1:]))
