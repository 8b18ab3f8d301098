"""Targets: the environment a run talks to, opened for the length of one run.

`emulator` starts the embedded Azure emulator on loopback and fills the settings from it (no
credential needed). `azure` takes its settings from the config and from environment variables (or the
workspace `.env`), and fails before any step with the list of what is missing. Secret settings are
handed to the run's redactor the moment they are read.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    settings: dict[str, Any]
    env: dict[str, str]
    secret_settings: set[str] = field(default_factory=set)
    emulator: Any = None

    def public_settings(self) -> dict[str, Any]:
        return {k: ("***" if k in self.secret_settings else v) for k, v in self.settings.items()}

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None


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
) -> TargetSession:
    """Open the named target (default: the workspace's default_target)."""
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
            _start_emulator(workspace, config, session)
    elif missing:
        raise InputError(
            f"target {chosen!r} is missing settings: {', '.join(missing)}",
            hint="export these environment variables or add them to .env (never commit .env)",
        )
    for key in session.secret_settings:
        value = session.settings.get(key)
        if isinstance(value, str):
            redactor.add(value)
    if config.kind == "azure":
        _refuse_clear_text(session)
    for variable, template in config.env.items():
        from .templating import render_string

        session.env[variable] = str(render_string(template, {"settings": session.settings, **session.settings}))
    for variable, value in session.env.items():
        if is_secret_name(variable):
            redactor.add(value)
    return session


def _start_emulator(workspace: Workspace, config: TargetConfig, session: TargetSession) -> None:
    from .azure.emulator import Emulator
    from .azure.estate import load_estate

    estate_path = (workspace.root / config.estate) if config.estate else None
    emulator = Emulator(load_estate(estate_path), **_emulator_options(config.settings)).start()
    session.emulator = emulator
    env = emulator.env()
    session.env.update(env)
    defaults = {
        "arm_url": emulator.arm_url,
        "gateway_url": emulator.gateway_url,
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

