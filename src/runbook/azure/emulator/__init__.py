"""The embedded Azure emulator: real HTTP servers on loopback that answer like Azure, from an estate.

Two servers run side by side. The ARM server answers Azure Resource Manager reads (subscriptions,
resource groups, Cognitive Services accounts and deployments, API Management services, APIs and
operations) in ARM's JSON shapes, with paging and ARM error bodies. The gateway server plays the
API Management gateway in front of the Foundry accounts: it routes by API path and operation URL
template, checks subscription keys, and answers chat completions, embeddings and image generations
(real PNGs) in the Azure OpenAI shapes. Latency and faults (429, 5xx, dropped connections) can be
injected, and every request is logged without header values.

One module per concern:

- `lifecycle`: the `Emulator` API (start/stop, ports, URLs, env, the request pipeline) and
  `serve_forever`, which backs the `runbook emulator` command;
- `transport`: request/response values and the loopback HTTP server (stdlib `http.server`);
- `arm`: the ARM protocol (auth, api-version, route matching, 405, paging, errors);
- `arm_resources`: the table of ARM resource types and their handlers (add a type here);
- `arm_shapes`: ARM's JSON shape of each resource type;
- `gateway`: the APIM gateway (API and operation matching, subscription keys);
- `dataplane`: the Azure OpenAI answers (chat, completions, embeddings, images);
- `faults`: `FaultPlan`, the seeded fault draw and the fault answers;
- `throttle`: ARM's token buckets per subscription and principal (429 + Retry-After, remaining headers);
- `state`: what changes while serving (request log, generated images).

The estate it serves is loaded by `runbook.azure.estate`; one emulator serves every subscription and
every APIM service of it (a gateway is chosen by host, `{service}.azure-api.net`, or by that host as
the first path segment), which is how `runbook fleet run` serves a whole fleet.

The HTTP plumbing is the standard library's threading server with a small route table, not werkzeug:
measured on loopback, werkzeug's WSGI server answered about half as many requests per second
(~300/s against ~600/s, 2,000 keep-alive GETs), its route matching took ~28 us against ~5 us, and its
routing is case-sensitive where ARM paths are not.
"""

from __future__ import annotations

from runbook.azure.emulator.dataplane import CREATED
from runbook.azure.emulator.faults import FAULT_KINDS, SERVERS, FaultPlan
from runbook.azure.emulator.lifecycle import Emulator, loopback_address, serve_forever
from runbook.azure.emulator.state import RequestLogEntry

__all__ = [
    "CREATED",
    "FAULT_KINDS",
    "SERVERS",
    "Emulator",
    "FaultPlan",
    "RequestLogEntry",
    "loopback_address",
    "serve_forever",
]
