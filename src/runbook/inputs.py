"""The values of a runbook's declared `inputs:`: where each comes from, and which are secret."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .errors import InputError
from .loader import LoadedRunbook
from .secrets import Redactor


class _WithVars(Protocol):
    """What is read of the run's options (`executor.RunOptions`): the `--var NAME=VALUE` pairs."""

    @property
    def vars(self) -> Mapping[str, str]: ...


def resolve_inputs(
    loaded: LoadedRunbook,
    options: _WithVars,
    environ: Mapping[str, str],
    dotenv: Mapping[str, str],
    target_env: Mapping[str, str],
    target_settings: Mapping[str, Any],
    redactor: Redactor,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Values of declared inputs: --var, then the environment, the target, .env, the default.

    Returns (public values, secret values). Every missing required input is listed at once.
    """
    public: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    missing: list[str] = []
    for name, spec in loaded.runbook.inputs.items():
        variable = spec.env or name
        candidates = (
            options.vars.get(name),
            environ.get(variable),
            target_env.get(variable),
            target_settings.get(name),
            dotenv.get(variable),
            spec.default,
        )
        # An empty environment variable counts as unset, as it does for most CLIs.
        value: Any = next((c for c in candidates if c is not None and c != ""), None)
        if value is None and spec.required:
            missing.append(f"{name} (env {variable})" if spec.env else name)
            continue
        if spec.secret:
            if isinstance(value, str):
                redactor.add(value)
            secret[name] = value
        else:
            public[name] = value
    if missing:
        raise InputError(
            f"{loaded.doc.display}: missing required inputs: {', '.join(missing)}",
            hint="pass --var NAME=VALUE, export the variable, or add it to .env",
        )
    return public, secret
