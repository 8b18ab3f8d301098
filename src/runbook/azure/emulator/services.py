"""The data planes of the lab's backend services, served on the gateway server under `/_emulator/`.

`/_emulator/cosmos/{account}/...` (Cosmos DB, behind its firewall), `/_emulator/search/{service}/...`
(Azure AI Search) and `/_emulator/loganalytics/v1/workspaces/{id}/query` (Log Analytics). Their ARM
resources give these URLs (`documentEndpoint`, `endpoint`); the estate's `notebook_env` hands them to
notebooks with `{services}` standing for `<gateway URL>/_emulator`. Generated images stay on the
gateway (`/_emulator/images/`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runbook.azure.emulator import cosmos, loganalytics, search
from runbook.azure.emulator.state import ArmStore, RequestLogEntry
from runbook.azure.emulator.transport import Request, Response
from runbook.azure.estate import Estate

__all__ = ["SERVICE_NAMES", "ServicesSite"]

SERVICE_NAMES = ("cosmos", "search", "loganalytics")


class ServicesSite:
    """Answers the backend services' data-plane requests from the estate and the ARM store."""

    def __init__(self, estate: Estate, store: ArmStore, requests: Callable[[], Sequence[RequestLogEntry]]) -> None:
        self.estate = estate
        self.store = store
        self.requests = requests

    @staticmethod
    def serves(segments: Sequence[str]) -> bool:
        return len(segments) >= 2 and segments[0] == "_emulator" and segments[1] in SERVICE_NAMES

    def respond(self, request: Request) -> Response:
        segments = request.segments()
        service, rest = segments[1], list(segments[2:])
        if service == "cosmos":
            response = cosmos.dataplane(request, self.estate, self.store, rest)
        elif service == "search":
            response = search.dataplane(request, self.estate, self.store, rest)
        else:
            response = loganalytics.query(request, self.store, self.requests, rest)
        response.operation = response.operation or f"{service}-dataplane"
        return response
