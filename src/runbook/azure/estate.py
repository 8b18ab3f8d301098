"""The estate: the Azure world the emulator plays, its YAML file format, and its loader.

An estate lists subscriptions, their resource groups, the AI Foundry (Cognitive Services) accounts
with their model deployments and deployable models, the API Management services with their APIs,
operations, backends, policies and diagnostic settings, and the backend services of the lab: Cosmos DB
accounts (firewall rules, documents), Azure AI Search services and Log Analytics workspaces. The
packaged `default_estate.yaml` reproduces the world of the phase 1.5 and 1.6 incidents. Loading reports every
problem with `file:line:col` (and "did you mean" for unknown keys) as a `ValidationFailed`.
"""

from __future__ import annotations

import ipaddress
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from runbook.errors import InputError, Location, Problem, RunbookError, ValidationFailed, did_you_mean, relative_display

__all__ = [
    "KNOWN_CAPABILITIES",
    "Account",
    "AccountModel",
    "Api",
    "ApiManagementService",
    "Backend",
    "CosmosAccount",
    "CosmosContainer",
    "CosmosDatabase",
    "Deployment",
    "DiagnosticSetting",
    "Estate",
    "Operation",
    "PoolMember",
    "RateLimits",
    "ResourceGroup",
    "SearchService",
    "Subscription",
    "TokenBucket",
    "Workspace",
    "default_estate_path",
    "load_estate",
    "parse_estate",
]

#: Deployment capability flags the emulator knows; ARM shows them as `{"name": "true"}`.
KNOWN_CAPABILITIES = (
    "chatCompletion",
    "completion",
    "embeddings",
    "imageGenerations",
    "assistants",
    "responses",
    "realtime",
    "audio",
    "jsonObjectResponse",
    "agentsV2",
)
#: A gateway's host is `{service}.azure-api.net`; the emulator also takes it as a first path segment.
GATEWAY_HOST_SUFFIX = ".azure-api.net"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_NAME = re.compile(r"^[^/?#\s]+$")
_TEMPLATE_PARAM = re.compile(r"^\{([A-Za-z0-9_.-]+)\}$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resource_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid resource name (no spaces, '/', '?' or '#')")
    return value


def _scalar_text(value: object) -> object:
    # YAML reads `version: 2024-07-18` as a date and `version: 1` as an int; both mean text here.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


ResourceName = Annotated[str, AfterValidator(_resource_name)]
Text = Annotated[str, BeforeValidator(_scalar_text)]


class Deployment(_Spec):
    """A model deployment on an account (`Microsoft.CognitiveServices/accounts/deployments`)."""

    name: ResourceName = Field(description="the deployment name (what URLs and SDK calls use)")
    model: Text = Field(description="the model deployed, e.g. gpt-4o-mini or FLUX.1-Kontext-pro")
    version: Text = Field(description="the model version, e.g. 2024-07-18")
    format: str = Field("OpenAI", description="the model format (publisher), e.g. OpenAI, Black Forest Labs")
    sku: str = Field("GlobalStandard", description="the deployment SKU")
    capacity: int = Field(default=10, ge=0, description="capacity units (thousands of tokens per minute)")
    capabilities: tuple[str, ...] | None = Field(
        None,
        description="capability flags, e.g. chatCompletion, embeddings, imageGenerations (default: from the model)",
    )

    def effective_capabilities(self) -> tuple[str, ...]:
        """The declared capabilities, or, when none are declared, ones inferred from the model."""
        if self.capabilities is not None:
            return self.capabilities
        model = self.model.lower()
        if any(word in model for word in ("flux", "dall-e", "image")):
            return ("imageGenerations",)
        if "embedding" in model:
            return ("embeddings",)
        return ("chatCompletion",)


class AccountModel(_Spec):
    """A model the account may deploy (`GET .../accounts/{a}/models`), with its retirement dates."""

    name: Text = Field(description="the model name, e.g. gpt-4o")
    version: Text = Field(description="the model version")
    format: str = Field("OpenAI", description="the model format, e.g. OpenAI")
    lifecycle_status: str = Field("GenerallyAvailable", description="GenerallyAvailable, Preview or Deprecated")
    is_default_version: bool = Field(True, description="whether this is the default version")
    deprecation_inference: Text | None = Field(None, description="date inference stops (ISO 8601)")
    deprecation_fine_tune: Text | None = Field(None, description="date fine-tuning stops (ISO 8601)")


class Account(_Spec):
    """An AI Foundry / Azure OpenAI account (`Microsoft.CognitiveServices/accounts`)."""

    name: ResourceName = Field(description="the account name")
    kind: str = Field("AIServices", description="the account kind: AIServices, OpenAI ...")
    location: str | None = Field(None, description="Azure region (default: the resource group's)")
    sku: str = Field("S0", description="the account SKU")
    tags: dict[str, str] = Field(default_factory=dict, description="ARM tags")
    deployments: tuple[Deployment, ...] = Field((), description="the account's model deployments")
    models: tuple[AccountModel, ...] = Field(
        (), description="models the account may deploy (default: one per deployed model)"
    )
    keys: tuple[str, str] = Field(
        ("emulator-account-key1-not-a-secret", "emulator-account-key2-not-a-secret"),
        description="what listKeys answers (fake keys)",
    )


class Operation(_Spec):
    """An API Management operation: a method plus a URL template relative to the API's path."""

    id: ResourceName = Field(description="the operation id")
    method: str = Field(description="the HTTP method, e.g. POST")
    url_template: str = Field(
        description="the URL template below the API's path, e.g. /deployments/{deployment-id}/chat/completions"
    )
    display_name: str | None = Field(None, description="the name the portal shows")
    description: str | None = Field(None, description="what the operation does")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"{value!r} is not an HTTP method; use one of {', '.join(HTTP_METHODS)}")
        return method

    @field_validator("url_template")
    @classmethod
    def _template(cls, value: str) -> str:
        path, _, query = value.partition("?")
        if not path.startswith("/"):
            raise ValueError(f"{value!r} must start with '/'")
        for segment in path.split("/")[1:]:
            if ("{" in segment or "}" in segment) and not _TEMPLATE_PARAM.match(segment):
                raise ValueError(f"segment {segment!r} must be literal text or one whole '{{name}}'")
        for pair in filter(None, query.split("&")):
            name, eq, param = pair.partition("=")
            if not name or not eq or not _TEMPLATE_PARAM.match(param):
                raise ValueError(f"query part {pair!r} must look like 'name={{name}}'")
        return value

    def template_parameters(self) -> tuple[str, ...]:
        """Names of the `{param}` placeholders, path first, then query, in order."""
        return tuple(re.findall(r"\{([A-Za-z0-9_.-]+)\}", self.url_template))


class Api(_Spec):
    """An API on an API Management service, served by the gateway under `path`."""

    id: ResourceName = Field(description="the API id")
    display_name: str | None = Field(None, description="the name the portal shows")
    path: str = Field(description="the gateway path the API is served under, e.g. inference/openai")
    service_url: str | None = Field(None, description="the backend URL (default: the first backend's endpoint)")
    backends: tuple[str, ...] = Field((), description="names of the accounts behind the API")
    subscription_required: bool = Field(True, description="callers must send a subscription key")
    operations: tuple[Operation, ...] = Field((), description="the API's operations")
    backend: str | None = Field(None, description="an APIM backend id (Single or Pool): the gateway balances over it")
    policy: str | None = Field(None, description="the API-level policy document (rawxml); its outbound sets headers")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        path = value.strip("/")
        if any(ch in path for ch in " ?#{}"):
            raise ValueError(f"{value!r} must be plain URL segments like 'inference/openai'")
        if path.split("/")[0].lower().endswith(GATEWAY_HOST_SUFFIX):
            raise ValueError(f"{value!r} must not start with a '*{GATEWAY_HOST_SUFFIX}' segment (that names a gateway)")
        return path

    def effective_service_url(self) -> str | None:
        """The backend URL ARM reports: declared, or the first backend's OpenAI endpoint."""
        if self.service_url is not None:
            return self.service_url
        if self.backends:
            return f"https://{self.backends[0]}.openai.azure.com/openai"
        return None


class PoolMember(_Spec):
    """A member of a backend pool: another backend's id, its priority (1 first) and weight."""

    backend: ResourceName = Field(description="a backend id of the same service")
    priority: int = Field(default=1, ge=1, description="lower is tried first")
    weight: int = Field(default=1, ge=1, description="share of requests among members of equal priority")


class Backend(_Spec):
    """An APIM backend: a Single one pointing at an account (or a URL), or a Pool of backends."""

    id: ResourceName = Field(description="the backend id")
    type: Literal["Single", "Pool"] = Field(
        "Single", description="Single (one account or URL) or Pool (several backends)"
    )
    account: str | None = Field(None, description="the account a Single backend sends to")
    url: str | None = Field(None, description="the URL a Single backend sends to")
    pool: tuple[PoolMember, ...] = Field((), description="the members of a Pool backend")

    def effective_url(self) -> str | None:
        if self.url is not None:
            return self.url
        if self.account is not None:
            return f"https://{self.account}.openai.azure.com/openai"
        return None


class DiagnosticSetting(_Spec):
    """Where the service sends its logs (`Microsoft.Insights/diagnosticSettings`): a workspace name."""

    name: ResourceName = Field(description="the diagnostic setting name")
    workspace: str = Field(description="the Log Analytics workspace it sends to")


class ApiManagementService(_Spec):
    """An API Management service (`Microsoft.ApiManagement/service`) and its gateway keys."""

    name: ResourceName = Field(description="the API Management service name")
    location: str | None = Field(None, description="Azure region (default: the resource group's)")
    sku: str = Field("Developer", description="the service SKU")
    publisher_email: str = Field("admin@contoso.com", description="the publisher's e-mail address")
    publisher_name: str = Field("Contoso", description="the publisher's name")
    tags: dict[str, str] = Field(default_factory=dict, description="ARM tags")
    subscription_key_header: str = Field("api-key", description="the header the gateway reads the key from")
    subscription_key_query: str = Field("subscription-key", description="the query parameter it reads the key from")
    subscription_keys: tuple[str, ...] = Field(min_length=1, description="keys the gateway accepts (fake ones)")
    apis: tuple[Api, ...] = Field((), description="the APIs the gateway serves")
    backends: tuple[Backend, ...] = Field((), description="APIM backends (Single or Pool) the APIs may use")
    diagnostics: tuple[DiagnosticSetting, ...] = Field((), description="diagnostic settings: where APIM sends logs")


class CosmosContainer(_Spec):
    """A Cosmos DB container and the documents a query returns."""

    name: ResourceName = Field(description="the container name")
    documents: tuple[dict[str, Any], ...] = Field((), description="documents a query returns")


class CosmosDatabase(_Spec):
    name: ResourceName = Field(description="the database name")
    containers: tuple[CosmosContainer, ...] = Field((), description="the database's containers")


def _ip_rule(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR range like 79.97.178.0/24") from None
    return value


class CosmosAccount(_Spec):
    """A Cosmos DB account (`Microsoft.DocumentDB/databaseAccounts`) and its firewall."""

    name: ResourceName = Field(description="the Cosmos DB account name")
    location: str | None = Field(None, description="Azure region (default: the resource group's)")
    public_network_access: Literal["Enabled", "Disabled"] = Field("Enabled", description="Enabled or Disabled")
    ip_rules: tuple[Annotated[str, AfterValidator(_ip_rule)], ...] = Field(
        (), description="IP addresses or CIDR ranges allowed through the firewall (empty: every network)"
    )
    databases: tuple[CosmosDatabase, ...] = Field((), description="databases and their containers")
    keys: tuple[str, str] = Field(
        ("emulator-cosmos-key1-not-a-secret", "emulator-cosmos-key2-not-a-secret"),
        description="what listKeys answers (fake keys)",
    )


class SearchService(_Spec):
    """An Azure AI Search service (`Microsoft.Search/searchServices`) and its index names."""

    name: ResourceName = Field(description="the search service name")
    location: str | None = Field(None, description="Azure region (default: the resource group's)")
    sku: str = Field("basic", description="the service SKU")
    indexes: tuple[str, ...] = Field((), description="index names the data plane lists")
    admin_key: str = Field("emulator-search-key-not-a-secret", description="the admin key (fake)")


def _guid_text(value: str) -> str:
    if not _GUID.match(value):
        raise ValueError(f"{value!r} is not a GUID; write it like 00000000-0000-0000-0000-000000000000")
    return value.lower()


class Workspace(_Spec):
    """A Log Analytics workspace (`Microsoft.OperationalInsights/workspaces`); queries use `customer_id`."""

    name: ResourceName = Field(description="the workspace name")
    location: str | None = Field(None, description="Azure region (default: the resource group's)")
    customer_id: Annotated[str, AfterValidator(_guid_text)] = Field(description="the workspace id queries use (a GUID)")
    retention_days: int = Field(default=30, ge=1, description="days logs are kept")


class ResourceGroup(_Spec):
    """A resource group: its location is the default for the resources it holds."""

    name: ResourceName = Field(description="the resource group name")
    location: str = Field(description="Azure region, e.g. uksouth (the default for what it holds)")
    tags: dict[str, str] = Field(default_factory=dict, description="ARM tags")
    accounts: tuple[Account, ...] = Field((), description="AI Foundry / Azure OpenAI accounts")
    apim: tuple[ApiManagementService, ...] = Field((), description="API Management services")
    cosmos: tuple[CosmosAccount, ...] = Field((), description="Cosmos DB accounts")
    search: tuple[SearchService, ...] = Field((), description="Azure AI Search services")
    workspaces: tuple[Workspace, ...] = Field((), description="Log Analytics workspaces")


class TokenBucket(_Spec):
    """One ARM token bucket: `burst` requests at once, refilled at `per_second` (Azure's throttling model)."""

    burst: int = Field(ge=0, description="tokens the bucket holds when full (requests that may come at once)")
    per_second: float = Field(ge=0, description="tokens added back per second")


class RateLimits(_Spec):
    """ARM's per-subscription (and principal) throttling: a token bucket per kind of request.

    The defaults are Azure's since 2024: reads 250 burst / 25 per second, writes and deletes 200 / 10.
    A request over budget is answered 429 `SubscriptionRequestsThrottled` with `Retry-After`.
    """

    reads: TokenBucket = Field(TokenBucket(burst=250, per_second=25), description="GET and HEAD")
    writes: TokenBucket = Field(TokenBucket(burst=200, per_second=10), description="PUT, PATCH and POST (e.g. listKeys)")
    deletes: TokenBucket = Field(TokenBucket(burst=200, per_second=10), description="DELETE")


class Subscription(_Spec):
    """A subscription, identified by its GUID."""

    id: str = Field(description="the subscription GUID")
    name: str = Field("lab", description="the subscription's display name")
    resource_groups: tuple[ResourceGroup, ...] = Field((), description="the subscription's resource groups")
    rate_limits: RateLimits | None = Field(
        default_factory=RateLimits,
        description="ARM throttling of this subscription (default: Azure's buckets); null turns it off",
    )

    @field_validator("id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not _GUID.match(value):
            raise ValueError(f"{value!r} is not a GUID; write it like 00000000-0000-0000-0000-000000000000")
        return value.lower()


class Estate(_Spec):
    """The whole world the emulator serves. In YAML (see `default_estate.yaml` for a full one)::

    tenant: <guid>                      # optional
    subscriptions:
      - id: <guid>
        name: lab
        rate_limits:                    # ARM throttling (default: Azure's; null: none)
          reads: {burst: 250, per_second: 25}
        resource_groups:
          - name: lab-master-lab
            location: uksouth
            accounts:                   # Microsoft.CognitiveServices/accounts
              - name: foundry1-...
                kind: AIServices        # location defaults to the group's
                deployments:
                  - {name, model, version, format, sku, capacity, capabilities: [...]}
            apim:                       # Microsoft.ApiManagement/service
              - name: apim-...
                subscription_key_header: api-key
                subscription_keys: [...]
                apis:
                  - {id, display_name, path, backends: [account names], operations:
                     [{id, method, url_template, display_name}], backend: <backend id>, policy: <xml>}
                backends: [{id, type: Single|Pool, account | url, pool: [{backend, priority, weight}]}]
                diagnostics: [{name, workspace: <workspace name>}]
            cosmos: [{name, public_network_access, ip_rules: [...], databases: [...]}]
            search: [{name, sku, indexes: [...]}]
            workspaces: [{name, customer_id: <guid>}]
    client_ip: 79.97.178.198            # the public IP the emulator attributes to every caller
    notebook_env: {NAME: value}         # extra kernel variables; {services} is the emulator's data planes
    """

    tenant: str = Field("00000000-0000-0000-0000-000000000001", description="the tenant GUID")
    subscriptions: tuple[Subscription, ...] = Field(min_length=1, description="the subscriptions, at least one")
    client_ip: str = Field("127.0.0.1", description="the public IP the emulator attributes to callers (firewalls)")
    notebook_env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for notebook kernels (templated over the emulator URLs)"
    )
    # lookups built on first use (the estate is read-only once loaded)
    _accounts: dict[str, Account] | None = PrivateAttr(None)
    _subscriptions: dict[str, Subscription] | None = PrivateAttr(None)
    _apim_count: int | None = PrivateAttr(None)

    @field_validator("client_ip")
    @classmethod
    def _client_ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address like 79.97.178.198") from None

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if not _GUID.match(value):
            raise ValueError(f"{value!r} is not a GUID")
        return value.lower()

    def accounts(self) -> Iterator[tuple[Subscription, ResourceGroup, Account]]:
        """Every account, with the subscription and resource group that hold it."""
        for sub in self.subscriptions:
            for group in sub.resource_groups:
                for account in group.accounts:
                    yield sub, group, account

    def apim_services(self) -> Iterator[tuple[Subscription, ResourceGroup, ApiManagementService]]:
        """Every API Management service, with the subscription and resource group that hold it."""
        for sub in self.subscriptions:
            for group in sub.resource_groups:
                for service in group.apim:
                    yield sub, group, service

    def groups(self) -> Iterator[tuple[Subscription, ResourceGroup]]:
        """Every resource group, with its subscription."""
        for sub in self.subscriptions:
            for group in sub.resource_groups:
                yield sub, group

    def find_account(self, name: str) -> Account | None:
        """The account called `name` (case-insensitive, as in Azure), or None."""
        if self._accounts is None:
            index: dict[str, Account] = {}
            for _, _, account in self.accounts():
                index.setdefault(account.name.lower(), account)
            self._accounts = index
        return self._accounts.get(name.lower())

    def find_subscription(self, subscription_id: str) -> Subscription | None:
        """The subscription with this id (case-insensitive), or None: a dict lookup, for every ARM request."""
        if self._subscriptions is None:
            self._subscriptions = {sub.id: sub for sub in self.subscriptions}
        return self._subscriptions.get(subscription_id.lower())

    def apim_count(self) -> int:
        """How many API Management services the estate has."""
        if self._apim_count is None:
            self._apim_count = sum(1 for _ in self.apim_services())
        return self._apim_count

    def find_apim(self, name: str) -> tuple[Subscription, ResourceGroup, ApiManagementService] | None:
        """The API Management service called `name` (case-insensitive; names are global, like their hosts)."""
        for found in self.apim_services():
            if found[2].name.lower() == name.lower():
                return found
        return None


# ----------------------------------------------------------------------------------------- loading


def default_estate_path() -> Path:
    """The packaged default estate (the phase 1.5 lab)."""
    return Path(str(resources.files("runbook.azure").joinpath("default_estate.yaml")))


def load_estate(path: Path | None = None) -> Estate:
    """Read and validate an estate file; `None` loads the packaged default."""
    source = path if path is not None else default_estate_path()
    shown = relative_display(source)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            "estate file not found",
            location=Location(shown),
            hint="check the path, or omit it to use the packaged default estate",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the estate file: {exc}", location=Location(shown)) from exc
    return parse_estate(text, source=shown)


def parse_estate(text: str, *, source: str = "<estate>") -> Estate:
    """Validate estate YAML `text` (`source` names it in errors): C path, else located round trip."""
    return fast if (fast := _parse_fast(text, source)) is not None else _parse_located(text, source)


def _parse_fast(text: str, source: str) -> Estate | None:
    # a valid estate by the C path (~10x faster than the round trip every emulator start paid), else None
    from runbook.loader import parse_yaml

    try:
        document = parse_yaml(text, source)[0]
        estate = Estate.model_validate(document) if isinstance(document, dict) else None
    except (RunbookError, ValidationError, ValueError, TypeError):
        return None
    return None if estate is None or _cross_check(estate) else estate


def _parse_located(text: str, source: str) -> Estate:
    from runbook.loader import parse_yaml_text

    try:
        document = parse_yaml_text(text, source)
    except InputError as exc:
        raise ValidationFailed([Problem(exc.location or Location(source), exc.message.split(": ", 1)[-1])]) from None
    if not isinstance(document, CommentedMap):
        raise ValidationFailed(
            [Problem(Location(source, 1, 1), "an estate file must be a mapping with 'subscriptions:'")]
        )
    try:
        estate = Estate.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors()
        problems = [_pydantic_problem(source, document, error) for error in errors if not _is_echo(error, errors)]
        raise ValidationFailed(_unique(problems)) from None
    problems = []
    for finding in _cross_check(estate):
        message = finding.message
        if finding.first is not None:
            first = _locate(source, document, finding.first)
            message += f" (first defined at line {first.line})"
        problems.append(Problem(_locate(source, document, finding.loc), message))
    if problems:
        raise ValidationFailed(problems)
    return estate


def _is_echo(error: Mapping[str, Any], errors: Sequence[Mapping[str, Any]]) -> bool:
    # A list whose items failed also reports "too short" (failed items do not count): noise.
    if error["type"] != "too_short":
        return False
    loc = tuple(error["loc"])
    return any(tuple(other["loc"])[: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: dict[str, Problem] = {}
    for problem in problems:
        seen.setdefault(str(problem), problem)
    return list(seen.values())


def _pydantic_problem(source: str, document: CommentedMap, error: Mapping[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    field = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        message = f"unknown key '{key}'" + _suggest(key, _allowed_keys(loc[:-1]), "allowed keys")
        return Problem(_locate(source, document, loc, at_key=True), message)
    if kind == "missing":
        return Problem(_locate(source, document, loc), f"missing required key '{field}'")
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        message = str(error["msg"])
        message = message[0].lower() + message[1:] if message else message
        if not isinstance(error.get("input"), Mapping | list):
            message += f" (got {error.get('input')!r})"
    return Problem(_locate(source, document, loc), f"{field}: {message}" if field else message)


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] | None = Estate
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        model = _model_in(info.annotation) if info is not None else None
    return list(model.model_fields) if model is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _locate(source: str, document: CommentedMap, loc: Sequence[int | str], *, at_key: bool = False) -> Location:
    """Map a validation `loc` to the 1-based line:col of that key (or value) in the YAML tree."""
    node: object = document
    position: tuple[int, int] = (0, 0)
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            position = node.lc.key(part) if (at_key and last) else node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            position = node.lc.item(part)
            node = node[part]
        else:
            if isinstance(node, CommentedMap | CommentedSeq):
                position = (node.lc.line, node.lc.col)
            break
    return Location(source, position[0] + 1, position[1] + 1)


_Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class _Finding:
    loc: _Loc
    message: str
    first: _Loc | None = None  # where the duplicated name was first defined


def _cross_check(estate: Estate) -> list[_Finding]:
    """Checks that span several objects: unique names, known capabilities, backends that exist."""
    checker = _CrossCheck(estate)
    for s, sub in enumerate(estate.subscriptions):
        checker.subscription(("subscriptions", s), sub)
    return checker.found


class _CrossCheck:
    """One walk over the estate, level by level, collecting located findings."""

    def __init__(self, estate: Estate) -> None:
        self.estate = estate
        self.found: list[_Finding] = []
        self.account_names: dict[str, _Loc] = {}
        self.apim_names: dict[str, _Loc] = {}
        self.subs: dict[str, _Loc] = {}
        self.service_names: dict[str, dict[str, _Loc]] = {}
        self.all_accounts = [account.name for _, _, account in estate.accounts()]
        self.workspaces = {w.name.lower() for _, g in estate.groups() for w in g.workspaces}

    def unique(self, seen: dict[str, _Loc], key: str, loc: _Loc, what: str) -> None:
        if key.lower() in seen:
            self.found.append(_Finding(loc, f"duplicate {what} '{key}'", seen[key.lower()]))
        else:
            seen[key.lower()] = loc

    def missing(self, loc: _Loc, message: str, word: str, choices: Sequence[str], label: str) -> None:
        self.found.append(_Finding(loc, message + _suggest(word, choices, label)))

    def subscription(self, s_loc: _Loc, sub: Any) -> None:
        self.unique(self.subs, sub.id, (*s_loc, "id"), "subscription id")
        groups: dict[str, _Loc] = {}
        for g, group in enumerate(sub.resource_groups):
            g_loc = (*s_loc, "resource_groups", g)
            self.unique(groups, group.name, (*g_loc, "name"), "resource group")
            for a, account in enumerate(group.accounts):
                self.account((*g_loc, "accounts", a), account)
            for m, service in enumerate(group.apim):
                self.apim((*g_loc, "apim", m), service)
            for kind in ("cosmos", "search", "workspaces"):
                names = self.service_names.setdefault(kind, {})
                for i, item in enumerate(getattr(group, kind)):
                    self.unique(names, item.name, (*g_loc, kind, i, "name"), f"{kind} name")

    def account(self, a_loc: _Loc, account: Any) -> None:
        self.unique(self.account_names, account.name, (*a_loc, "name"), "account name")
        deployments: dict[str, _Loc] = {}
        for d, deployment in enumerate(account.deployments):
            d_loc = (*a_loc, "deployments", d)
            self.unique(deployments, deployment.name, (*d_loc, "name"), "deployment")
            for c, capability in enumerate(deployment.capabilities or ()):
                if capability not in KNOWN_CAPABILITIES:
                    self.missing(
                        (*d_loc, "capabilities", c),
                        f"unknown capability '{capability}'",
                        capability,
                        KNOWN_CAPABILITIES,
                        "known",
                    )

    def apim(self, m_loc: _Loc, service: Any) -> None:
        self.unique(self.apim_names, service.name, (*m_loc, "name"), "API Management service")
        backend_ids = [backend.id for backend in service.backends]
        api_ids: dict[str, _Loc] = {}
        api_paths: dict[str, _Loc] = {}
        for p, api in enumerate(service.apis):
            p_loc = (*m_loc, "apis", p)
            self.unique(api_ids, api.id, (*p_loc, "id"), "API id")
            # paths differ within a gateway; services may share one (each has its own gateway URL)
            self.unique(api_paths, api.path, (*p_loc, "path"), "gateway API path")
            for b, backend in enumerate(api.backends):
                if self.estate.find_account(backend) is None:
                    self.missing(
                        (*p_loc, "backends", b),
                        f"backend '{backend}' is not an account in this estate",
                        backend,
                        self.all_accounts,
                        "accounts",
                    )
            operation_ids: dict[str, _Loc] = {}
            for o, operation in enumerate(api.operations):
                self.unique(operation_ids, operation.id, (*p_loc, "operations", o, "id"), "operation id")
            if api.backend is not None and api.backend not in backend_ids:
                self.missing(
                    (*p_loc, "backend"),
                    f"backend '{api.backend}' is not a backend of this service",
                    api.backend,
                    backend_ids,
                    "backends",
                )
        self.backends(m_loc, service, backend_ids)
        for d, setting in enumerate(service.diagnostics):
            if setting.workspace.lower() not in self.workspaces:
                self.missing(
                    (*m_loc, "diagnostics", d, "workspace"),
                    f"workspace '{setting.workspace}' is not a Log Analytics workspace in this estate",
                    setting.workspace,
                    list(self.workspaces),
                    "workspaces",
                )

    def backends(self, m_loc: _Loc, service: Any, backend_ids: list[str]) -> None:
        seen: dict[str, _Loc] = {}
        for b, spec in enumerate(service.backends):
            b_loc = (*m_loc, "backends", b)
            self.unique(seen, spec.id, (*b_loc, "id"), "backend id")
            if spec.type == "Single" and spec.account is None and spec.url is None:
                self.found.append(_Finding(b_loc, "a Single backend needs 'account' or 'url'"))
            if spec.account is not None and self.estate.find_account(spec.account) is None:
                self.missing(
                    (*b_loc, "account"),
                    f"account '{spec.account}' is not an account in this estate",
                    spec.account,
                    self.all_accounts,
                    "accounts",
                )
            for i, member in enumerate(spec.pool):
                if member.backend not in backend_ids:
                    self.missing(
                        (*b_loc, "pool", i, "backend"),
                        f"pool member '{member.backend}' is not a backend of this service",
                        member.backend,
                        backend_ids,
                        "backends",
                    )


def _suggest(word: str, choices: Sequence[str], label: str) -> str:
    close = did_you_mean(word, choices).rstrip()
    if close:
        return f"; {close}"
    if choices and len(choices) <= 12:
        return f"; {label}: {', '.join(choices)}"
    return ""
