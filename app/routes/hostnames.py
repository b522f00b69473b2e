"""/v1/namespaces/{ns}/hostnames: custom hostnames routed to the namespace's workers.

``PUT /v1/namespaces/shop/hostnames/shop.example.com {"worker": "site"}`` makes
requests whose Host is ``shop.example.com`` run the worker ``site`` (point the
name's DNS at the service). A hostname belongs to one namespace at a time.

A namespace's key claims only names under the suffixes the admin granted the
namespace; the admin key claims any name (``?reassign=true`` moves one from the
namespace that holds it); the API's own hostnames are nobody's.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth import CallerDep, require_namespace
from app.deps import SettingsDep, StoreDep
from app.errors import CONTROL_PLANE_ERRORS, ApiError, invalid_field
from app.hostnames import claim_problem, hostname_problem
from app.schemas import ErrorDetail, ErrorResponse, HostnameIn, HostnameList, HostnameOut
from app.store import hostnames, namespaces

router = APIRouter(prefix="/v1/namespaces/{namespace}/hostnames", tags=["hostnames"])


def _out(route: hostnames.Hostname) -> HostnameOut:
    return HostnameOut(
        hostname=route.hostname,
        namespace=route.namespace,
        worker=route.worker,
        created_at=route.created_at.isoformat(),
    )


@router.put(
    "/{hostname}",
    response_model=HostnameOut,
    responses={**CONTROL_PLANE_ERRORS, 409: {"model": ErrorResponse, "description": "Taken"}},
)
async def put_hostname(
    namespace: str,
    hostname: str,
    body: HostnameIn,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    reassign: Annotated[
        bool,
        Query(description="Admin key only: move the hostname from the namespace that holds it"),
    ] = False,
) -> HostnameOut:
    """Route a hostname to a worker of this namespace (201 when new, 200 when re-pointed).

    A namespace's key may claim only names under the namespace's
    ``custom_hostname_suffixes`` (403 otherwise); the API's hostnames are refused (422).
    """
    require_namespace(caller, namespace)
    problem = hostname_problem(hostname, settings.dispatch_domain, settings.api_hostnames)
    if problem:
        raise invalid_field("hostname", f"{hostname!r}: {problem}")
    if not caller.is_admin:
        if reassign:
            raise ApiError(403, "forbidden", "reassign=true needs the admin key")
        space = await asyncio.to_thread(namespaces.get, store, namespace)
        refused = claim_problem(hostname, namespace, space.custom_hostname_suffixes)
        if refused:
            raise ApiError(
                403, "forbidden", refused, [ErrorDetail(field="hostname", message=refused)]
            )
    route, created = await asyncio.to_thread(
        hostnames.put, store, namespace, hostname, body.worker, reassign=reassign
    )
    response.status_code = 201 if created else 200
    return _out(route)


@router.get("", response_model=HostnameList, responses=CONTROL_PLANE_ERRORS)
async def list_hostnames(namespace: str, store: StoreDep, caller: CallerDep) -> HostnameList:
    """The namespace's custom hostnames."""
    require_namespace(caller, namespace)
    routes = await asyncio.to_thread(hostnames.list_for, store, namespace)
    return HostnameList(hostnames=[_out(route) for route in routes])


@router.delete("/{hostname}", status_code=204, responses=CONTROL_PLANE_ERRORS)
async def delete_hostname(
    namespace: str, hostname: str, store: StoreDep, caller: CallerDep
) -> Response:
    """Stop routing the hostname."""
    require_namespace(caller, namespace)
    await asyncio.to_thread(hostnames.remove, store, namespace, hostname)
    return Response(status_code=204)
