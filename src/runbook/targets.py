"""Targets: the environment a run talks to, opened for the length of one run.

`emulator` starts the embedded Azure emulator on loopback and fills the settings from it (no
credential needed), on first use: the target's settings and environment are filled the first time a
step (or the kernel) reads an emulator setting or the environment, so a run whose steps never talk to
Azure never starts it; the environment it gives a notebook kernel follows the notebook's own
`INFERENCE_API_PATH` convention (`kernel_env`). `azure` takes its settings from the config and from environment variables (or the
workspace `.env`), and fails before any step with the list of what is missing. Secret settings are
handed to the run's redactor the moment they are read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from .errors import InputError, SecurityViolation, did_you_mean
from .secrets import Redactor, is_secret_name
from .text import is_loopback
from .workspace import TargetConfig, Workspace

DEFAULT_ARM_URL = "https://management.azure.com"


@dataclass
class TargetSession:
    """An opened target: its settings, the environment it gives to shells/kernels, and cleanup."""

    name: str
    kind: str
    settings: MutableMapping[str, Any]
    env: MutableMapping[str, str]
    secret_settings: set[str] = field(default_factory=set)
    emulator: Any = None
    env_overrides: set[str] = field(default_factory=set)  # variables the target's `env:` sets
    # emulator: the inference API's path with and without its "/openai" tail
    inference_paths: tuple[str, str] | None = None

    def kernel_env(self, sources: Iterable[str] = ()) -> dict[str, str]:
        """The environment for a kernel running a notebook whose code cells are `sources`.

        Notebooks disagree on what INFERENCE_API_PATH holds: `inference` (cells add `/openai/...`)
        or `inference/openai` (cells add `/deployments/...`). For the emulator the variable is
        given in the notebook's own convention, so its default-following URLs reach a route the
        gateway knows. A target `env:` entry for the variable always wins.
        """
        env = dict(self.env)
        if self.inference_paths is not None and "INFERENCE_API_PATH" not in self.env_overrides:
            convention = inference_path_convention(sources)
            if convention is not None:
                full, short = self.inference_paths
                env["INFERENCE_API_PATH"] = full if convention == "full" else short
        return env

    def address(self) -> dict[str, str] | None:
        """The emulator's ARM and gateway URLs once it started (None before, and for Azure)."""
        if self.emulator is None:
            return None
        return {"arm_url": self.emulator.arm_url, "gateway_url": self.emulator.gateway_url}

    def public_settings(self) -> dict[str, Any]:
        """The settings for the record, without starting an emulator nobody has needed yet."""
        settings = self.settings._peek() if isinstance(self.settings, OnFirstUse) else self.settings
        return {k: ("***" if k in self.secret_settings else v) for k, v in settings.items()}

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None


class OnFirstUse(MutableMapping[str, Any]):
    """A mapping filled by `fill()` the first time it is read (any read, or a read of one of
    `trigger`); writes never fill it. Safe to read from several step threads at once."""

    def __init__(
        self, data: dict[str, Any], fill: Callable[[], None], lock: threading.Lock, trigger: frozenset[str] | None = None
    ) -> None:
        self._data = data
        self._fill: Callable[[], None] | None = fill
        self._lock = lock
        self._trigger = trigger

    def _need(self, key: object = None) -> dict[str, Any]:
        if self._fill is not None and (key is None or self._trigger is None or key in self._trigger):
            with self._lock:
                if self._fill is not None:  # the filler marks it filled on success; a failure raises again next time
                    self._fill()
        return self._data

    def _mark_filled(self) -> None:
        """Nothing left to fill (the filler calls this on every mapping it fills). Underscored, so a
        template reading `target._mark_filled` meets the sandbox, not this method."""
        self._fill = None

    def _peek(self) -> dict[str, Any]:
        """What the mapping holds so far, without filling it."""
        return dict(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._need(key)[key]

    def __contains__(self, key: object) -> bool:
        return key in self._need(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._need(key)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._need()))

    def __len__(self) -> int:
        return len(self._need())

    def __repr__(self) -> str:
        return repr(self._need())  # as the dict it stands for (a template may print it)


# Settings only a running emulator can give (their first read starts it).
EMULATOR_SETTINGS = frozenset(
    {"arm_url", "gateway_url", "subscription_id", "resource_group", "apim_service", "inference_api_path", "api_key",
     "credential"}
)


def target_config(workspace: Workspace, name: str | None) -> tuple[str, TargetConfig]:
    chosen = name or workspace.config.default_target
    targets = workspace.config.targets
    if chosen not in targets:
        if not targets and chosen == "emulator":
            return chosen, TargetConfig(kind="emulator")
        hint = did_you_mean(chosen, targets)
        raise InputError(
            f"unknown target {chosen!r}: {hint}targets in runbook.yaml: {', '.join(targets) or 'none'}"
        )
    return chosen, targets[chosen]


def open_target(
    workspace: Workspace,
    name: str | None,
    redactor: Redactor,
    *,
    environ: Mapping[str, str],
    start_emulator: bool = True,
    emulator_address: Mapping[str, str | None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> TargetSession:
    """Open the named target (default: the workspace's default_target).

    `emulator_address` (a resumed run: where the interrupted run's emulator listened, its
    `target_address` record line) makes the emulator bind those ports again, so outputs restored
    from that run still reach it; when one is taken it binds free ports and `warn`s."""
    chosen, config = target_config(workspace, name)
    dotenv = workspace.read_env_file()
    settings: dict[str, Any] = dict(config.settings)
    secret_names = set(config.secrets)
    missing: list[str] = []
    for setting, variable in config.from_env.items():
        value = environ.get(variable) or dotenv.get(variable)
        if value:
            settings[setting] = value
        elif setting not in settings:
            missing.append(f"{variable} (for {setting})")
    session = TargetSession(name=chosen, kind=config.kind, settings=settings, env={}, secret_settings=secret_names)
    if config.kind == "emulator":
        if start_emulator:
            _start_emulator_on_first_use(workspace, config, session, redactor, emulator_address, warn)
            return session
    elif missing:
        raise InputError(
            f"target {chosen!r} is missing settings: {', '.join(missing)}",
            hint="export these environment variables or add them to .env (never commit .env)",
        )
    _finish(session, config, redactor)
    return session


def _finish(session: TargetSession, config: TargetConfig, redactor: Redactor) -> None:
    """Redact the secret settings, refuse clear text, fill `env:` from the config's templates."""
    for key in session.secret_settings:
        value = session.settings.get(key)
        if isinstance(value, str):
            redactor.add(value)
    if config.kind == "azure":
        _refuse_clear_text(session)
    for variable, template in config.env.items():
        from .templating import render_string

        session.env[variable] = str(render_string(template, {"settings": session.settings, **session.settings}))
        session.env_overrides.add(variable)
    for variable, value in session.env.items():
        if is_secret_name(variable):
            redactor.add(value)


def _start_emulator_on_first_use(
    workspace: Workspace,
    config: TargetConfig,
    session: TargetSession,
    redactor: Redactor,
    address: Mapping[str, str | None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Make the session's settings and env start the emulator when first read (see OnFirstUse)."""
    # A bad emulator setting or estate file fails now, before any step; the packaged default
    # estate is known to be good and is loaded with the emulator.
    _emulator_options(config.settings)
    estate = _load_estate(workspace, config) if config.estate else None
    lock = threading.Lock()
    settings: dict[str, Any] = dict(session.settings)
    env: dict[str, str] = {}

    def start() -> None:  # under the lock, by whichever mapping is read first; fills both
        session.settings, session.env = settings, env
        try:
            _start_emulator(workspace, config, session, estate, address=address, warn=warn)
            _finish(session, config, redactor)
        except BaseException:
            session.settings, session.env = lazy_settings, lazy_env
            raise
        lazy_settings._mark_filled()
        lazy_env._mark_filled()

    lazy_settings = OnFirstUse(settings, start, lock, EMULATOR_SETTINGS)
    lazy_env = OnFirstUse(env, start, lock)
    session.settings, session.env = lazy_settings, lazy_env


def _load_estate(workspace: Workspace, config: TargetConfig) -> Any:
    from .azure.estate import load_estate

    return load_estate((workspace.root / config.estate) if config.estate else None)


def _start_emulator(
    workspace: Workspace,
    config: TargetConfig,
    session: TargetSession,
    estate: Any = None,
    *,
    address: Mapping[str, str | None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    from .azure.emulator import Emulator

    options = _emulator_options(config.settings)
    if config.settings.get("state_file"):  # ARM writes kept between runs (the world several runs share)
        options["state_file"] = workspace.root / str(config.settings["state_file"])
    estate = estate or _load_estate(workspace, config)
    ports = _recorded_ports(address)
    try:
        emulator = Emulator(estate, **{**options, **(ports or {})}).start()
    except InputError:
        if ports is None:
            raise
        emulator = Emulator(estate, **options).start()  # taken by something else since: free ports
        if warn is not None:
            old = ", ".join(str(url) for url in (address or {}).values() if url)
            warn(
                f"the interrupted run's emulator address ({old}) is taken: the emulator listens on "
                f"{emulator.arm_url} and {emulator.gateway_url} now, and restored outputs that hold the "
                "old URLs will not reach it (run the phase again without --resume if a step fails on them)"
            )
    session.emulator = emulator
    env = emulator.env()
    session.env.update(env)
    defaults = {
        "arm_url": emulator.arm_url,
        "gateway_url": env.get("APIM_GATEWAY_URL", emulator.gateway_url),  # a service's own URL when there are several
        "subscription_id": env.get("AZURE_SUBSCRIPTION_ID"),
        "resource_group": env.get("RESOURCE_GROUP"),
        "apim_service": env.get("APIM_SERVICE_NAME"),
        "inference_api_path": env.get("INFERENCE_API_PATH", "inference"),
        "api_key": emulator.subscription_key,
        "credential": "emulator",
    }
    for key, value in defaults.items():
        session.settings.setdefault(key, value)
    session.secret_settings.add("api_key")
    short = env.get("INFERENCE_API_PATH")
    if short is not None:
        session.inference_paths = (f"{short}/openai".lstrip("/"), short)


def _recorded_ports(address: Mapping[str, str | None] | None) -> dict[str, int] | None:
    """The ARM and gateway ports of a recorded emulator address, or None when it names no port of both."""
    from urllib.parse import urlsplit

    if not address:
        return None
    ports: dict[str, int] = {}
    for name in ("arm", "gateway"):
        try:
            port = urlsplit(str(address.get(f"{name}_url") or "")).port
        except ValueError:
            return None
        if port is None:
            return None
        ports[f"{name}_port"] = port
    return ports


_PATH_DEFAULT = re.compile(r"""INFERENCE_API_PATH['"]\s*,\s*(?:f?['"])([^'"]*)['"]""")
_SHORT_USE = re.compile(r"\{\s*(?:inference_api_path|INFERENCE_API_PATH)[^}]*\}/openai/")
_FULL_USE = re.compile(r"\{\s*(?:inference_api_path|INFERENCE_API_PATH)[^}]*\}/deployments/")


def inference_path_convention(sources: Iterable[str]) -> str | None:
    """The notebook's INFERENCE_API_PATH convention: "full" if it includes `/openai` (its default,
    or how its URLs continue after it), "short" if it does not, None when the notebook does not say."""
    uses = {"full": 0, "short": 0}
    for source in sources:
        for default in _PATH_DEFAULT.findall(source):
            return "full" if default.strip("/").endswith("openai") else "short"
        uses["short"] += len(_SHORT_USE.findall(source))
        uses["full"] += len(_FULL_USE.findall(source))
    if uses["full"] == uses["short"]:
        return None
    return "full" if uses["full"] > uses["short"] else "short"


def _emulator_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    from .checks import EmulatorSettings

    known = list(EmulatorSettings.model_fields)
    for key in settings:
        if key not in known:
            raise InputError(
                f"emulator target settings: unknown setting {key!r}: {did_you_mean(key, known)}"
                f"known settings: {', '.join(known)}",
                hint="`runbook validate` checks target settings with file:line:col",
            )
    options: dict[str, Any] = {}
    try:
        for key, kind in (("page_size", int), ("latency", float), ("seed", int)):
            if key in settings:
                options[key] = kind(settings[key])
        if "fault_rate" in settings:
            from .azure.emulator import FaultPlan

            plan: dict[str, Any] = {"rate": float(settings["fault_rate"])}
            for key, field_name in (("fault_kinds", "kinds"), ("fault_servers", "servers")):
                if key in settings:  # "fault_servers": which of "arm" and "gateway" misbehave
                    value = settings[key]
                    plan[field_name] = (str(value),) if isinstance(value, str | int) else tuple(str(v) for v in value)
            if "fault_retry_after" in settings:
                plan["retry_after"] = float(settings["fault_retry_after"])
            options["faults"] = FaultPlan(**plan)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"emulator target settings: {exc}",
            hint="page_size and seed are integers; latency, fault_rate and fault_retry_after numbers; "
            "fault_kinds and fault_servers lists",
        ) from None
    return options


def _refuse_clear_text(session: TargetSession) -> None:
    for key in ("arm_url", "gateway_url"):
        url = session.settings.get(key)
        if not isinstance(url, str):
            continue
        parsed = urlparse(url)
        if parsed.scheme == "http" and not is_loopback(parsed.hostname):
            raise SecurityViolation(
                f"target {session.name!r}: {key} {url} uses plain http to a non-loopback host; "
                "keys and tokens would travel in clear",
                hint="use https:// (plain http is allowed only for 127.0.0.1/localhost)",
            )
