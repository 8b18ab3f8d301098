"""ARM writes with Azure's semantics, for the resource types whose state lives in the `ArmStore`.

A `StoredType` describes one such type (its ARM type name, collection path, whether its writes are
long-running, the fresh resource a PUT starts from). `stored_routes` turns it into the table rows
List / Get / CreateOrUpdate (PUT) / Update (PATCH) / Delete, with:

- PUT creating (201) or replacing (200) a resource, PATCH merging into it (200);
- `etag` changing on every write and `If-Match` / `If-None-Match` checked (412 `PreconditionFailed`);
- long-running types answering with `provisioningState` `Creating`/`Updating`/`Deleting`, an
  `Azure-AsyncOperation` header (PUT/PATCH) or a 202 with `Location` (DELETE), polled through the
  operation rows of `OPERATION_ROUTES` until the operation has `Succeeded`;
- a write while an operation runs on the same resource answering 409 `AnotherOperationInProgress`.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from runbook.azure.emulator.arm import ArmCall, ArmFailureError, ArmRoute
from runbook.azure.emulator.transport import Json, Response, json_response

__all__ = ["OPERATION_ROUTES", "StoredType", "resource_id_of", "stored_routes"]

#: A function that raises `ArmFailureError` when the parent of the resource does not exist.
ParentCheck = Callable[[ArmCall], object]


@dataclass(frozen=True)
class StoredType:
    """One resource type served from the store, and how its writes behave."""

    type_name: str  # e.g. Microsoft.DocumentDB/databaseAccounts
    operations: str  # operation-name prefix, e.g. DatabaseAccounts
    collection: str  # lower-case route pattern of the collection (no leading slash)
    namespace: str  # resource provider, for the operation-status URLs
    template: Callable[[ArmCall, str, str], Json]  # (call, id, name) -> the resource before a PUT body
    lro: bool = False
    patch: bool = True
    creatable: bool = True
    item_param: str = "name"
    # Recomputes derived fields (data-plane URLs that depend on the emulator's ports) on the way out.
    refresh: Callable[[ArmCall, Json], Json] | None = None
    # A message when a written resource is not acceptable (ARM answers 400 with it), else None.
    validate: Callable[[Json], str | None] | None = None
    list_wrapped: bool = False  # diagnostic settings: the list has no paging, just {"value": [...]}


def resource_id_of(call: ArmCall) -> str:
    """The resource id a request names: its path, percent-decoded, as the client wrote it."""
    return unquote(call.request.path).rstrip("/")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def stored_routes(kind: StoredType, parent: ParentCheck) -> tuple[ArmRoute, ...]:
    """The table rows of `kind`: list, get, put, (patch), delete."""
    item = f"{kind.collection}/{{{kind.item_param}}}"
    prefix = kind.operations

    def out(call: ArmCall, resource: Json) -> Json:
        return kind.refresh(call, resource) if kind.refresh is not None else resource

    def listing(call: ArmCall) -> list[Json] | Json | Response:
        parent(call)
        parent_id = resource_id_of(call).rsplit("/", 1)[0]
        items = [out(call, resource) for resource in call.store.children(parent_id, kind.type_name)]
        if kind.list_wrapped:
            return json_response(200, {"value": items})
        return items

    def get(call: ArmCall) -> Json:
        parent(call)
        found = call.store.get(resource_id_of(call))
        if found is None:
            raise _not_found(call, kind)
        return out(call, found)

    def put(call: ArmCall) -> Response:
        return _write(call, kind, parent, merge=False, out=out)

    def patch(call: ArmCall) -> Response:
        return _write(call, kind, parent, merge=True, out=out)

    def delete(call: ArmCall) -> Response:
        parent(call)
        resource_id = resource_id_of(call)
        _not_busy(call, resource_id)
        existing = call.store.get(resource_id)
        if existing is None:
            return Response(204, b"")
        _check_preconditions(call, existing)
        if not kind.lro:
            call.store.remove(resource_id)
            return Response(200, b"")
        existing.setdefault("properties", {})["provisioningState"] = "Deleting"
        call.store.put(existing)
        operation = call.store.begin(str(uuid.uuid4()), resource_id, "delete")
        url = _operation_url(call, kind, existing, operation.id, "operationResults")
        return Response(202, b"", [("Location", url), ("Retry-After", _retry_after(call))])

    rows = [
        ArmRoute(f"{prefix}_List", "GET", kind.collection, listing),
        ArmRoute(f"{prefix}_Get", "GET", item, get),
        ArmRoute(f"{prefix}_CreateOrUpdate", "PUT", item, put),
        ArmRoute(f"{prefix}_Delete", "DELETE", item, delete),
    ]
    if kind.patch:
        rows.append(ArmRoute(f"{prefix}_Update", "PATCH", item, patch))
    return tuple(rows)


def _write(
    call: ArmCall, kind: StoredType, parent: ParentCheck, *, merge: bool, out: Callable[[ArmCall, Json], Json]
) -> Response:
    parent(call)
    resource_id = resource_id_of(call)
    body = _body(call)
    with call.store.lock:
        _not_busy(call, resource_id)
        existing = call.store.get(resource_id)
        _check_preconditions(call, existing)
        if existing is None and (merge or not kind.creatable):
            raise _not_found(call, kind)
        name = resource_id.rsplit("/", 1)[-1]
        if merge:
            assert existing is not None
            resource = _deep_merge(existing, body)
        else:
            resource = kind.template(call, resource_id, name)
            for key in ("location", "tags", "sku", "kind", "identity"):
                if key in body:
                    resource[key] = copy.deepcopy(body[key])
            properties = body.get("properties", {})
            if not isinstance(properties, dict):
                raise ArmFailureError(
                    400, "InvalidRequestContent", "The request content 'properties' must be an object."
                )
            base = resource.setdefault("properties", {})
            base.update(copy.deepcopy(properties))
        # identity fields are the server's, whatever the body says
        resource.update({"id": existing["id"] if existing else resource_id, "name": name, "type": kind.type_name})
        if kind.validate is not None:
            problem = kind.validate(resource)
            if problem is not None:
                raise ArmFailureError(400, "InvalidRequestContent", problem)
        resource["etag"] = call.store.next_etag(resource_id)
        created = existing is None
        props = resource.setdefault("properties", {})
        if "provisioningState" in props or kind.lro:
            props["provisioningState"] = ("Creating" if created else "Updating") if kind.lro else "Succeeded"
        system = resource.setdefault("systemData", {})
        system.update({"lastModifiedAt": _now(), "lastModifiedBy": "emulator-client", "lastModifiedByType": "User"})
        meta = {"created": time.time()} if created else None
        call.store.put(resource, meta)
        headers: list[tuple[str, str]] = [("ETag", resource["etag"])]
        if kind.lro:
            operation = call.store.begin(str(uuid.uuid4()), resource_id, "put")
            url = _operation_url(call, kind, resource, operation.id, "operationStatuses")
            headers += [("Azure-AsyncOperation", url), ("Retry-After", _retry_after(call))]
    return json_response(201 if created else 200, out(call, resource), headers=headers)


def _body(call: ArmCall) -> Json:
    try:
        body = json.loads(call.request.body or b"{}")
    except ValueError as exc:
        raise ArmFailureError(400, "InvalidRequestContent", f"The request content is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ArmFailureError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def _deep_merge(base: Json, patch: Json) -> Json:
    """`patch` merged into `base` (JSON merge patch: objects merge, null removes, the rest replaces)."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _not_busy(call: ArmCall, resource_id: str) -> None:
    running = call.store.running(resource_id)
    if running is not None:
        raise ArmFailureError(
            409,
            "AnotherOperationInProgress",
            f"There is already an operation in progress which requires exclusive lock on this service "
            f"{resource_id.rsplit('/', 1)[-1]}. Please retry the operation after sometime. "
            f"ActivityId: {running.id}.",
        )


def _check_preconditions(call: ArmCall, existing: Json | None) -> None:
    if_match = call.request.headers.get("if-match")
    if if_match is not None:
        current = existing.get("etag") if existing else None
        if current is None or (if_match.strip() != "*" and if_match.strip() != current):
            raise ArmFailureError(
                412,
                "PreconditionFailed",
                "The specified precondition 'If-Match' failed: the resource's etag has changed "
                "(read it again and retry with the new etag).",
            )
    if_none_match = call.request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() == "*" and existing is not None:
        raise ArmFailureError(
            412, "PreconditionFailed", "The specified precondition 'If-None-Match: *' failed: the resource exists."
        )


def _not_found(call: ArmCall, _kind: StoredType) -> ArmFailureError:
    resource_id = resource_id_of(call)
    group = call.params.get("rg", "")
    tail = resource_id.split("/providers/", 1)[-1]
    return ArmFailureError(
        404,
        "ResourceNotFound",
        f"The Resource '{tail}' under resource group '{group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def _retry_after(call: ArmCall) -> str:
    return str(getattr(call.store, "retry_after", 0))


def _operation_url(call: ArmCall, kind: StoredType, resource: Json, operation_id: str, collection: str) -> str:
    location = str(resource.get("location") or "global").replace(" ", "").lower()
    version = call.request.query_value("api-version") or ""
    return (
        f"{call.base_url}/subscriptions/{call.params['sub']}/providers/{kind.namespace}/locations/{location}/"
        f"{collection}/{operation_id}?api-version={version}"
    )


# ------------------------------------------------------------------------------ operation polling


def _operation_status(call: ArmCall) -> Json:
    operation = call.store.poll(call.params["op"])
    if operation is None:
        raise ArmFailureError(404, "OperationNotFound", f"The operation '{call.params['op']}' was not found.")
    status: dict[str, Any] = {
        "id": resource_id_of(call),
        "name": operation.id,
        "status": operation.status,
        "startTime": datetime.fromtimestamp(operation.started, UTC).isoformat().replace("+00:00", "Z"),
    }
    if operation.status != "InProgress":
        status["endTime"] = _now()
    return status


def _operation_result(call: ArmCall) -> Response:
    operation = call.store.poll(call.params["op"])
    if operation is None:
        raise ArmFailureError(404, "OperationNotFound", f"The operation '{call.params['op']}' was not found.")
    if operation.status == "InProgress":
        location = f"{call.base_url}{call.request.path}?{call.request.raw_query}"
        return Response(202, b"", [("Location", location), ("Retry-After", _retry_after(call))])
    resource = call.store.get(operation.resource_id)
    if operation.kind == "delete" or resource is None:
        return Response(204, b"")
    return json_response(200, resource)


_OPS = "subscriptions/{sub}/providers/{ns}/locations/{loc}"

#: The rows that answer `Azure-AsyncOperation` and `Location` polls, for every provider.
OPERATION_ROUTES: tuple[ArmRoute, ...] = (
    ArmRoute("AsyncOperation_Get", "GET", _OPS + "/operationstatuses/{op}", _operation_status),
    ArmRoute("OperationResult_Get", "GET", _OPS + "/operationresults/{op}", _operation_result),
)
