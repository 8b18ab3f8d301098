"""The emulator's lifecycle API: `Emulator` (start/stop, ports, URLs, env, request log) and `serve_forever`.

`Emulator` binds the ARM and gateway servers on loopback (free ports unless given), serves them in
daemon threads, and runs every request through one pipeline: injected latency, the seeded fault draw,
the site's answer (an unexpected exception becomes ARM's 500, never a dead thread), and a request-log
entry. `serve_forever` backs `runbook emulator`: it prints the URLs, key and environment and serves
until Ctrl-C or until its `stop` event is set.

`https=True` serves both servers over TLS with a throwaway CA made by `trustme` for this emulator
alone (a certificate for 127.0.0.1, ::1 and localhost); `ca_file` is its PEM, and `env()` points
`SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE` at it, so the official SDKs (azure-mgmt-*, openai) connect
with their default settings: no `enforce_https=False`, no `verify=False`. Plain http stays the
default (azure-core's bearer policy then needs `enforce_https=False` on each call).
The ARM resources that writes change live in one `ArmStore`, seeded from the estate (after a
state file, when one is given and exists, so the file's world wins) and saved back to that file after
every change.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from runbook.azure.emulator import apim_backends, cosmos, loganalytics, search
from runbook.azure.emulator.arm import ArmSite
from runbook.azure.emulator.arm_resources import ROUTES, SERVES
from runbook.azure.emulator.faults import FaultDraw, FaultPlan, fault_response
from runbook.azure.emulator.gateway import GatewaySite
from runbook.azure.emulator.services import ServicesSite
from runbook.azure.emulator.state import ArmStore, ImageStore, RequestLog, RequestLogEntry
from runbook.azure.emulator.throttle import Throttle
from runbook.azure.emulator.transport import HTTPServer, Request, Response, Site, arm_error
from runbook.azure.estate import (
    GATEWAY_HOST_SUFFIX,
    ApiManagementService,
    Estate,
    ResourceGroup,
    Subscription,
    load_estate,
)
from runbook.errors import InputError

__all__ = ["Emulator", "loopback_address", "serve_forever"]


class Emulator:
    """Azure on loopback: an ARM server and an APIM gateway server, answering from an `Estate`."""

    def __init__(
        self,
        estate: Estate,
        *,
        host: str = "127.0.0.1",
        page_size: int = 100,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        seed: int = 0,
        arm_port: int = 0,
        gateway_port: int = 0,
        state_file: Path | None = None,
        lro_polls: int = 1,
        https: bool = False,
    ) -> None:
        if page_size < 1:
            raise InputError(f"page size {page_size} must be at least 1")
        if latency < 0:
            raise InputError(f"latency {latency} must not be negative")
        self.estate = estate
        self.host = host
        self.page_size = page_size
        self.latency = latency
        self.faults = faults
        self._ports = (arm_port, gateway_port)
        self.https = https
        self.ca_file: Path | None = None  # the throwaway CA's PEM while serving https
        self._tls: ssl.SSLContext | None = None
        self._dice = FaultDraw(faults, seed)
        self._log = RequestLog(
            {"subscription-key"} | {service.subscription_key_query for _, _, service in estate.apim_services()}
        )
        self._servers: dict[str, HTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self._urls: dict[str, str] = {}
        self.state_file = state_file
        self.store = ArmStore(lro_polls=max(0, lro_polls))
        if state_file is not None and state_file.exists():
            try:
                self.store.load(state_file)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    f"cannot read the emulator state file {state_file}: {exc}",
                    hint="delete it to start from the estate again",
                ) from None
        for module in (cosmos, search, loganalytics, apim_backends):
            module.seed(estate, self.store)
        self._saved = self.store.writes  # nothing to save until a write changes the store
        self._save_lock = threading.Lock()
        self.throttle = Throttle(estate)
        self._arm = ArmSite(
            estate, ROUTES, SERVES, page_size, lambda: self.arm_url, lambda: self.gateway_url, self.store, self.throttle
        )
        self._gateway = GatewaySite(estate, lambda: self.gateway_url, ImageStore(), self.store)
        self._services = ServicesSite(estate, self.store, self._log.snapshot)

    # -- lifecycle

    def start(self) -> Emulator:
        """Bind both servers (free ports unless given) and serve in daemon threads."""
        if self._servers:
            return self
        bind_host, family, url_host = loopback_address(self.host)
        sites: dict[str, Site] = {
            "arm": lambda request: self._serve("arm", request),
            "gateway": lambda request: self._serve("gateway", request),
        }
        scheme = "https" if self.https else "http"
        if self.https and self._tls is None:
            self._tls = self._throwaway_ca()
        try:
            for (name, site), port in zip(sites.items(), self._ports, strict=True):
                server = HTTPServer((bind_host, port), family, site)
                if self._tls is not None:
                    # the handshake runs in the connection's thread, on its first read
                    server.socket = self._tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
                self._servers[name] = server
                self._urls[name] = f"{scheme}://{url_host}:{server.server_address[1]}"
        except OSError as exc:
            self.stop()
            raise InputError(
                f"the emulator cannot listen on {self.host}: {exc.strerror or exc}",
                hint="choose other ports, or 0 for free ones",
            ) from exc
        for name, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"runbook-emulator-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and free the ports. Safe to call twice."""
        servers, self._servers = self._servers, {}
        for server in servers.values():
            if self._threads:
                server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        if self.ca_file is not None:
            shutil.rmtree(self.ca_file.parent, ignore_errors=True)
            self.ca_file = None
            self._tls = None
        self.save_state()

    def save_state(self) -> None:
        """Write the ARM store to the state file (when there is one and something changed)."""
        if self.state_file is None:
            return
        with self._save_lock:
            writes = self.store.writes
            if writes != self._saved:
                self.store.save(self.state_file)
                self._saved = writes

    def _throwaway_ca(self) -> ssl.SSLContext:
        try:
            import trustme
        except ImportError:
            raise InputError(
                "the emulator's https needs the trustme package",
                hint="pip install 'incident-runbook[https]' (or trustme), or leave https off",
            ) from None
        ca = trustme.CA(organization_name="runbook emulator (throwaway)")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "::1", "localhost").configure_cert(context)
        folder = Path(tempfile.mkdtemp(prefix="runbook-emulator-ca-"))
        self.ca_file = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        return context

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what a client needs

    @property
    def arm_url(self) -> str:
        """Base URL of the ARM server, e.g. http://127.0.0.1:PORT (routes: /subscriptions/...)."""
        return self._url("arm")

    @property
    def gateway_url(self) -> str:
        """Base URL of the APIM gateway server (routes start with an API path)."""
        return self._url("gateway")

    def gateway_url_for(self, service: str) -> str:
        """The gateway URL of API Management service `service`: `{gateway_url}/{service}.azure-api.net`.

        Every service answers there; a one-service estate is also served at `gateway_url` itself.
        """
        if self.estate.find_apim(service) is None:
            names = [svc.name for _, _, svc in self.estate.apim_services()]
            raise InputError(f"no API Management service {service!r} in the estate", hint=_did_you_mean(service, names))
        return f"{self.gateway_url}/{service}{GATEWAY_HOST_SUFFIX}"

    @property
    def subscription_key(self) -> str:
        """The first key of the first API Management service ("" when the estate has none)."""
        service = _first_service(self.estate)
        return service[2].subscription_keys[0] if service else ""

    @property
    def requests(self) -> list[RequestLogEntry]:
        """A snapshot of the request log, oldest first."""
        return self._log.snapshot()

    @property
    def request_count(self) -> int:
        """How many requests the emulator has answered (or dropped) since it started or was cleared."""
        return len(self._log)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._log.clear()

    def env(self) -> dict[str, str]:
        """The variables a notebook kernel needs to talk to this emulator."""
        values = {"ARM_BASE_URL": self.arm_url}
        if self.ca_file is not None:  # clients trust the throwaway CA: requests, httpx, ssl
            values.update(SSL_CERT_FILE=str(self.ca_file), REQUESTS_CA_BUNDLE=str(self.ca_file))
        found = _first_service(self.estate)
        if found is None:
            sub = self.estate.subscriptions[0]
            values["AZURE_SUBSCRIPTION_ID"] = sub.id
            if sub.resource_groups:
                values["RESOURCE_GROUP"] = sub.resource_groups[0].name
            return values
        sub, group, service = found
        gateway = self.gateway_url_for(service.name) if self.estate.apim_count() > 1 else self.gateway_url
        values.update(
            APIM_GATEWAY_URL=gateway,
            APIM_API_KEY=service.subscription_keys[0],
            APIM_SERVICE_NAME=service.name,
            AZURE_SUBSCRIPTION_ID=sub.id,
            RESOURCE_GROUP=group.name,
            INFERENCE_API_PATH=_inference_api_path(service),
        )
        services = f"{self.gateway_url}/_emulator"
        for name, value in self.estate.notebook_env.items():
            values[name] = value.replace("{services}", services).replace("{gateway}", self.gateway_url)
        return dict(sorted(values.items()))

    # -- the request pipeline shared by both servers

    def _url(self, name: str) -> str:
        try:
            return self._urls[name]
        except KeyError:
            raise RuntimeError("the emulator is not started: call start() or use it as a context") from None

    def _serve(self, server: str, request: Request) -> Response | None:
        started = time.time()
        clock = time.perf_counter()
        if self.latency:
            time.sleep(self.latency)
        fault = self._dice.draw(server)
        response: Response | None
        if fault == "drop":
            response = None
        elif fault is not None:
            response = fault_response(server, fault, self.faults)
        else:
            site: ArmSite | GatewaySite | ServicesSite = self._arm if server == "arm" else self._gateway
            if server == "gateway" and ServicesSite.serves(request.segments()):
                site = self._services
            try:
                response = site.respond(request)
            except Exception as exc:  # the emulator must answer, never kill its thread
                response = arm_error(500, "InternalServerError", f"emulator error: {exc!r}")
            if server == "arm":
                self.save_state()
        self._log.append(
            RequestLogEntry(
                time=started,
                server=server,
                method=request.method,
                path=request.path,
                query=self._log.redacted(request.raw_query),
                status=response.status if response else None,
                fault=fault,
                operation=response.operation if response else None,
                duration=time.perf_counter() - clock,
            )
        )
        return response


def serve_forever(
    estate_path: Path | None = None,
    *,
    host: str = "127.0.0.1",
    arm_port: int = 0,
    gateway_port: int = 0,
    page_size: int = 100,
    latency: float = 0.0,
    fault_rate: float = 0.0,
    faults: FaultPlan | None = None,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    state_file: Path | None = None,
    https: bool = False,
) -> None:
    """Run the emulator until Ctrl-C (or until `stop` is set), printing its URLs, key and env.

    `fault_rate` is a shortcut for `FaultPlan(rate=fault_rate)`; `faults` wins when both are given.
    """
    say = echo if echo is not None else print
    plan = faults if faults is not None else (FaultPlan(rate=fault_rate) if fault_rate else None)
    loopback_address(host)  # refuse a non-loopback host before loading the estate
    emulator = Emulator(
        load_estate(estate_path),
        host=host,
        page_size=page_size,
        latency=latency,
        faults=plan,
        seed=seed,
        arm_port=arm_port,
        gateway_port=gateway_port,
        state_file=state_file,
        https=https,
    )
    with emulator:
        source = str(estate_path) if estate_path is not None else "the packaged AI-gateway lab"
        lines = [
            f"runbook Azure emulator, estate: {source}",
            *([f"  state    {state_file} (ARM writes are kept there)"] if state_file is not None else []),
            f"  ARM      {emulator.arm_url}",
            f"  gateway  {emulator.gateway_url}",
            f"  key      {emulator.subscription_key}",
            *([f"  CA       {emulator.ca_file} (throwaway; trusted through SSL_CERT_FILE / REQUESTS_CA_BUNDLE)"] if emulator.ca_file else []),
            "environment:",
            *(f"  export {name}={value}" for name, value in emulator.env().items()),
            "press Ctrl-C to stop",
        ]
        say("\n".join(lines))
        waiter = stop or threading.Event()
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            say("emulator stopped")


def loopback_address(host: str) -> tuple[str, socket.AddressFamily, str]:
    """(bind address, family, host as written in URLs) for a loopback `host`; InputError for the rest."""
    if host.lower() == "localhost":
        return "127.0.0.1", socket.AF_INET, "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise InputError(f"emulator host '{host}' is not an IP address", hint="use 127.0.0.1 (or ::1)") from None
    if not address.is_loopback:
        raise InputError(
            f"the emulator listens on loopback only, not on '{host}'",
            hint="use 127.0.0.1 (or ::1): the emulator is not for other machines to reach",
        )
    if address.version == 6:
        return str(address), socket.AF_INET6, f"[{address}]"
    return str(address), socket.AF_INET, str(address)


def _did_you_mean(word: str, choices: list[str]) -> str:
    from runbook.errors import did_you_mean

    return f"{did_you_mean(word, choices)}services: {', '.join(choices[:12]) or 'none'}"


def _first_service(estate: Estate) -> tuple[Subscription, ResourceGroup, ApiManagementService] | None:
    return next(iter(estate.apim_services()), None)


def _inference_api_path(service: ApiManagementService) -> str:
    # notebooks build {gateway}/{INFERENCE_API_PATH}/openai/deployments/...: path minus "/openai"
    for api in service.apis:
        if api.path == "openai" or api.path.endswith("/openai"):
            return api.path.removesuffix("openai").rstrip("/")
    return service.apis[0].path if service.apis else ""
