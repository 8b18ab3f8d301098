"""Bearer tokens for Azure: ARM (`management.azure.com`) and the data plane (`cognitiveservices`).

Responsible for choosing the credential a target asks for (its `credential` setting), getting and
caching tokens per scope, handing every token to the run's redactor, and turning azure-identity's
failures into `CredentialError` ("no Azure credential: run `az login`, …"). azure-identity is slow
to import, so it is imported only when a real credential is first needed; the emulator target uses
a static token and never touches it.

`credential` setting: `default` (DefaultAzureCredential, which honours AZURE_TOKEN_CREDENTIALS),
`environment`, `cli`, `managed_identity`, `workload_identity`, or `emulator`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import CredentialError, InputError, did_you_mean

if TYPE_CHECKING:
    from ..actions import ActionContext
    from ..secrets import Redactor

ARM_SCOPE = "https://management.azure.com/.default"
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
# The emulator accepts any bearer token; this one is fixed so records stay deterministic.
EMULATOR_TOKEN = "emulator-bearer-token-not-a-secret"  # noqa: S105 - the emulator accepts any token
CREDENTIAL_KINDS = ("default", "environment", "cli", "managed_identity", "workload_identity", "emulator")
RUN_STATE_KEY = "azure.credentials"
# Renew a cached token this many seconds before it expires.
_EXPIRY_MARGIN = 300.0


class TokenProvider:
    """Tokens of one kind of credential, cached per scope; `close()` releases the credential."""

    def __init__(self, kind: str = "default", *, redactor: Redactor | None = None) -> None:
        if kind not in CREDENTIAL_KINDS:
            suggestion = did_you_mean(kind, CREDENTIAL_KINDS)
            raise InputError(
                f"unknown credential {kind!r} in the target settings: {suggestion}"
                f"use one of {', '.join(CREDENTIAL_KINDS)}"
            )
        self.kind = kind
        self.redactor = redactor
        self._credential: Any = None
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token(self, scope: str = ARM_SCOPE) -> str:
        """A bearer token for `scope` (cached until shortly before it expires)."""
        with self._lock:
            cached = self._cache.get(scope)
            if cached is not None and cached[1] - _EXPIRY_MARGIN > time.time():
                return cached[0]
            if self.kind == "emulator":
                value, expires = EMULATOR_TOKEN, time.time() + 86_400
            else:
                value, expires = self._fetch(scope)
            if self.redactor is not None:
                self.redactor.add(value)
            self._cache[scope] = (value, expires)
            return value

    def _fetch(self, scope: str) -> tuple[str, float]:
        from azure.core.exceptions import AzureError as CoreAzureError
        from azure.core.exceptions import ClientAuthenticationError

        try:
            credential = self._open()
            access = credential.get_token(scope)
        except ClientAuthenticationError as exc:  # CredentialUnavailableError is a subclass
            raise _credential_error(exc) from exc
        except CoreAzureError as exc:
            raise _credential_error(exc) from exc
        except ValueError as exc:  # e.g. an invalid AZURE_TOKEN_CREDENTIALS value
            raise CredentialError(f"no Azure credential: {exc}") from exc
        return str(access.token), float(access.expires_on)

    def _open(self) -> Any:
        if self._credential is not None:
            return self._credential
        # azure-identity logs every failed credential as a warning; the CredentialError says it all
        # (a NullHandler stops Python's last-resort stderr output; configured logging still sees them)
        logger = logging.getLogger("azure.identity")
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
        from azure import identity

        factories: dict[str, Any] = {
            "default": identity.DefaultAzureCredential,
            "environment": identity.EnvironmentCredential,
            "cli": identity.AzureCliCredential,
            "managed_identity": identity.ManagedIdentityCredential,
            "workload_identity": identity.WorkloadIdentityCredential,
        }
        self._credential = factories[self.kind]()
        return self._credential

    def close(self) -> None:
        credential, self._credential = self._credential, None
        closer = getattr(credential, "close", None)
        if callable(closer):
            closer()


def _credential_error(exc: Exception) -> CredentialError:
    error = CredentialError()
    detail = " ".join(str(getattr(exc, "message", None) or exc).split())
    if detail:
        error.hint = f"azure-identity said: {detail[:400]}" + ("…" if len(detail) > 400 else "")
    return error


def token_provider(ctx: ActionContext, kind: str | None = None) -> TokenProvider:
    """The run's provider for the target's credential, created once and closed with the run."""
    settings = getattr(ctx.target, "settings", None) or {}
    wanted = kind or str(settings.get("credential") or "default")
    key = f"{RUN_STATE_KEY}.{wanted}"
    provider = ctx.run_state.get(key)
    if not isinstance(provider, TokenProvider):
        provider = TokenProvider(wanted, redactor=ctx.redactor)
        ctx.run_state[key] = provider
    return provider
