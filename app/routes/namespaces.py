"""/v1/namespaces: the control plane's dispatch namespaces and their policy (admin key).

A namespace's limits, allowed_hosts and private_egress are the ceilings of everything its
keys and workers do (app/policy.py); only the admin key creates or changes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.auth import AdminDep, CallerDep, require_namespace
from app.config import Settings
from app.deps import ArtifactsDep, SettingsDep, StoreDep
from app.errors import CONTROL_PLANE_ERRORS, invalid_field
from app.hostnames import hostname_problem
from app.policy import checked_hosts, checked_limits, server_ceiling
from app.schemas import (
    NAMESPACE_NAME,
    ErrorResponse,
    IssuedKey,
    KeyIn,
    KeyList,
    KeyOut,
    KeyPatch,
    LimitsIn,
    NamespaceIn,
    NamespaceList,
    NamespaceOut,
    NamespacePatch,
    QuotasIn,
    QuotasOut,
)
from app.store import keys, namespaces

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])

_ERRORS = CONTROL_PLANE_ERRORS


def _out(namespace: namespaces.Namespace) -> NamespaceOut:
    # Every stored field the response model names, so a new field needs only the schema.
    return NamespaceOut.model_validate(
        {**asdict(namespace), "created_at": namespace.created_at.isoformat()}
    )


def checked_suffixes(settings: Settings, suffixes: list[str]) -> list[str]:
    """Custom-hostname suffixes the admin grants: DNS names none of the API's. 422 otherwise."""
    for index, suffix in enumerate(suffixes):
        problem = hostname_problem(suffix, settings.dispatch_domain, settings.api_hostnames)
        if problem:
            raise invalid_field(f"custom_hostname_suffixes[{index}]", f"{suffix!r}: {problem}")
    return sorted(set(suffixes))


def _checked_limits(settings: Settings, limits: LimitsIn) -> dict[str, int]:
    return checked_limits(server_ceiling(settings), limits.model_dump())


def _checked_hosts(settings: Settings, hosts: list[str]) -> list[str]:
    # The admin's own ceiling: any public host; private literals only inside the operator's
    # networks (a namespace can't be granted what the operator hasn't opened).
    checked_hosts(server_ceiling(settings), hosts)
    return hosts


@router.post(
    "",
    status_code=201,
    response_model=NamespaceOut,
    responses={**_ERRORS, 409: {"model": ErrorResponse, "description": "Name taken"}},
)
def create_namespace(
    body: NamespaceIn, store: StoreDep, settings: SettingsDep, _: AdminDep
) -> NamespaceOut:
    """Create a namespace; its limits must be within the server's maximums."""
    limits = _checked_limits(settings, body.limits)
    created = namespaces.create(
        store,
        body.name,
        mode=body.mode,
        limits=limits,
        allowed_hosts=_checked_hosts(settings, body.allowed_hosts),
        dispatch_public=body.dispatch_public,
        private_egress=body.private_egress,
        custom_hostname_suffixes=checked_suffixes(settings, body.custom_hostname_suffixes),
        storage_mb=body.storage_mb,
        version_retention=body.version_retention,
        quotas=body.quotas.stored(),
    )
    return _out(created)


@router.patch("/{name}", response_model=NamespaceOut, responses=_ERRORS)
def update_namespace(
    name: str, body: NamespacePatch, store: StoreDep, settings: SettingsDep, _: AdminDep
) -> NamespaceOut:
    """Change the fields sent (admin key only); validated like a new namespace.

    Narrowing limits or allowed_hosts applies to the namespace's keys and workers from
    their next request (dispatch reads the namespace again), and so do new quotas.
    """
    checks: dict[str, Callable[[Any], Any]] = {
        "limits": lambda _: _checked_limits(settings, body.limits or LimitsIn()),
        "allowed_hosts": lambda hosts: _checked_hosts(settings, hosts),
        "custom_hostname_suffixes": lambda suffixes: checked_suffixes(settings, suffixes),
        "quotas": lambda _: (body.quotas or QuotasIn()).stored(),
    }
    changes: dict[str, Any] = {}
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            raise invalid_field(field, "may not be null; leave the field out to keep it")
        changes[field] = checks[field](value) if field in checks else value
    return _out(namespaces.update(store, name, changes))


@router.get("", response_model=NamespaceList, responses={401: _ERRORS[401]})
def list_namespaces(
    store: StoreDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=NAMESPACE_NAME)] = None,
) -> NamespaceList:
    """Namespaces by name, a page at a time."""
    items, next_cursor = namespaces.page(store, limit=limit, after=cursor)
    return NamespaceList(namespaces=[_out(item) for item in items], next_cursor=next_cursor)


@router.get("/{name}", response_model=NamespaceOut, responses=_ERRORS)
def get_namespace(name: str, store: StoreDep, caller: CallerDep) -> NamespaceOut:
    """The namespace (admin key, or a key of this namespace)."""
    require_namespace(caller, name)
    return _out(namespaces.get(store, name))


@router.delete(
    "/{name}",
    status_code=204,
    responses={
        **_ERRORS,
        409: {"model": ErrorResponse, "description": "It has workers; send ?force=true"},
    },
)
def delete_namespace(
    name: str,
    store: StoreDep,
    caller: CallerDep,
    artifacts: ArtifactsDep,
    force: Annotated[
        bool, Query(description="Also delete its workers (without it, 409 if it has any)")
    ] = False,
) -> Response:
    """Delete a namespace with its keys and hostnames; with ``?force=true``, its workers too.

    Artifacts no other namespace's version refers to are deleted with it.
    """
    require_namespace(caller, name)
    namespaces.remove(store, name, force=force, artifacts=artifacts)
    return Response(status_code=204)


@router.post(
    "/{name}/keys",
    status_code=201,
    response_model=IssuedKey,
    responses=_ERRORS,
)
def issue_key(name: str, body: KeyIn, store: StoreDep, _: AdminDep) -> IssuedKey:
    """A new key for this namespace (admin key only). The key is in this answer only."""
    record, key = keys.issue(store, name, body.label, body.quotas.stored())
    return IssuedKey(**_key_out(record).model_dump(), key=key)


@router.patch("/{name}/keys/{key_id}", response_model=KeyOut, responses=_ERRORS)
def update_key(name: str, key_id: str, body: KeyPatch, store: StoreDep, _: AdminDep) -> KeyOut:
    """Change a key's label or quotas (admin key only); from its next request."""
    changes: dict[str, Any] = {}
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            raise invalid_field(field, "may not be null; leave the field out to keep it")
        changes[field] = (body.quotas or QuotasIn()).stored() if field == "quotas" else value
    return _key_out(keys.update(store, name, key_id, changes))


@router.get("/{name}/keys", response_model=KeyList, responses=_ERRORS)
def list_keys(name: str, store: StoreDep, caller: CallerDep) -> KeyList:
    """The namespace's keys, without the keys themselves."""
    require_namespace(caller, name)
    return KeyList(keys=[_key_out(k) for k in keys.list_keys(store, name)])


@router.delete("/{name}/keys/{key_id}", status_code=204, responses=_ERRORS)
def revoke_key(name: str, key_id: str, store: StoreDep, caller: CallerDep) -> Response:
    require_namespace(caller, name)
    keys.revoke(store, name, key_id)
    return Response(status_code=204)


def _key_out(record: keys.ApiKey) -> KeyOut:
    return KeyOut(
        id=record.id,
        namespace=record.namespace,
        label=record.label,
        created_at=record.created_at.isoformat(),
        quotas=QuotasOut(**record.quotas),
    )
