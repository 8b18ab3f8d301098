"""Generated estates for tests and benchmarks: many accounts and deployments in the lab's shapes."""

from __future__ import annotations

from ..errors import InputError
from .estate import (
    Account,
    Api,
    ApiManagementService,
    Deployment,
    Estate,
    Operation,
    RateLimits,
    ResourceGroup,
    Subscription,
)

_CATALOG: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("gpt-4o-mini", "2024-07-18", "OpenAI", ("chatCompletion",)),
    ("gpt-4o", "2024-08-06", "OpenAI", ("chatCompletion",)),
    ("gpt-4.1", "2025-04-14", "OpenAI", ("chatCompletion",)),
    ("gpt-4.1-mini", "2025-04-14", "OpenAI", ("chatCompletion",)),
    ("o3", "2025-04-16", "OpenAI", ("chatCompletion",)),
    ("text-embedding-3-small", "1", "OpenAI", ("embeddings",)),
    ("text-embedding-3-large", "1", "OpenAI", ("embeddings",)),
    ("FLUX-1.1-pro", "1", "Black Forest Labs", ("imageGenerations",)),
    ("FLUX.1-Kontext-pro", "1", "Black Forest Labs", ("imageGenerations",)),
)
_REGIONS = ("uksouth", "eastus", "swedencentral", "westeurope", "norwayeast", "eastus2")


def generate_estate(
    accounts: int,
    deployments_per_account: int,
    *,
    subscription_id: str = "5f3c0000-0000-4000-8000-00000000be4c",
    resource_group: str = "bench-rg",
    apim_name: str = "apim-bench",
    subscription_key: str = "bench-subscription-key-not-a-secret",
    rate_limits: RateLimits | None = None,
) -> Estate:
    """A large, deterministic estate for benchmarks: `accounts` accounts of N deployments each.

    Not throttled unless `rate_limits` says so: a benchmark of 500 accounts measures the client and the
    emulator, not how long ARM's 250-read burst takes to refill.
    """
    if accounts < 0 or deployments_per_account < 0:
        raise InputError("generate_estate needs non-negative counts")
    account_specs = []
    for a in range(accounts):
        deployments = []
        for d in range(deployments_per_account):
            model, version, fmt, capabilities = _CATALOG[d % len(_CATALOG)]
            deployments.append(
                Deployment(
                    name=f"{model}-{d:03d}",
                    model=model,
                    version=version,
                    format=fmt,
                    capabilities=capabilities,
                )
            )
        account_specs.append(
            Account(
                name=f"foundry{a + 1}-bench",
                location=_REGIONS[a % len(_REGIONS)],
                deployments=tuple(deployments),
            )
        )
    api = Api(
        id="inference-api",
        display_name="Inference API",
        path="inference/openai",
        backends=tuple(spec.name for spec in account_specs),
        operations=_OPENAI_OPERATIONS,
    )
    service = ApiManagementService(name=apim_name, subscription_keys=(subscription_key,), apis=(api,))
    group = ResourceGroup(name=resource_group, location="uksouth", accounts=tuple(account_specs), apim=(service,))
    return Estate(subscriptions=(Subscription(id=subscription_id, name="bench", resource_groups=(group,), rate_limits=rate_limits),))


_OPENAI_OPERATIONS = (
    Operation(
        id="ChatCompletions_Create",
        method="POST",
        url_template="/deployments/{deployment-id}/chat/completions?api-version={api-version}",
        display_name="Creates a completion for the chat message",
    ),
    Operation(
        id="ImageGenerations_Create",
        method="POST",
        url_template="/deployments/{deployment-id}/images/generations?api-version={api-version}",
        display_name="Generates a batch of images from a text caption",
    ),
    Operation(
        id="embeddings_create",
        method="POST",
        url_template="/deployments/{deployment-id}/embeddings?api-version={api-version}",
        display_name="Get a vector representation of a given input",
    ),
)
