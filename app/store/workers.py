"""User workers in the store: immutable versions, the deployed one, tags."""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.store.db import Store
from app.store.models import NamespaceRow, WorkerRow, WorkerVersionRow
from app.store.namespaces import NamespaceNotFound

__all__ = [
    "Target",
    "Version",
    "VersionNotFound",
    "Worker",
    "WorkerNotFound",
    "WorkerSpec",
    "count",
    "delete_by_tags",
    "deploy",
    "get",
    "page",
    "remove",
    "save_version",
    "set_tags",
    "target",
    "versions",
]


class WorkerNotFound(Exception):
    """No worker of that name in the namespace."""


class VersionNotFound(Exception):
    """No version of that id for the worker."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What an upload sets besides the code (the code is the version's artifact)."""

    runtime: str
    tags: list[str]
    limits: dict[str, Any]
    allowed_hosts: list[str]
    vars: dict[str, str]
    secrets: dict[str, str]


@dataclass(frozen=True, slots=True)
class Version:
    id: str
    number: int
    sha256: str
    main_module: str
    requirements: list[str]
    size: int
    build_ms: float
    warnings: list[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Worker:
    namespace: str
    name: str
    runtime: str
    tags: list[str]
    limits: dict[str, Any]
    allowed_hosts: list[str]
    vars: dict[str, str]
    secret_names: list[str]
    current: Version | None
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=moment.tzinfo or UTC)


def _version(row: WorkerVersionRow) -> Version:
    return Version(
        id=row.id,
        number=row.number,
        sha256=row.sha256,
        main_module=row.main_module,
        requirements=list(row.requirements),
        size=row.size,
        build_ms=row.build_ms,
        warnings=list(row.warnings),
        created_at=_utc(row.created_at),
    )


def _worker(session: Session, namespace: str, row: WorkerRow) -> Worker:
    version = None
    if row.current_version is not None:
        version = session.get(WorkerVersionRow, row.current_version)
    return _worker_from(namespace, row, version)


def _worker_from(namespace: str, row: WorkerRow, version: WorkerVersionRow | None) -> Worker:
    current = _version(version) if version is not None else None
    return Worker(
        namespace=namespace,
        name=row.name,
        runtime=row.runtime,
        tags=list(row.tags),
        limits=dict(row.limits),
        allowed_hosts=list(row.allowed_hosts),
        vars=dict(row.vars),
        secret_names=sorted(row.secrets),
        current=current,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _namespace_id(session: Session, namespace: str) -> int:
    found = session.scalar(select(NamespaceRow.id).where(NamespaceRow.name == namespace))
    if found is None:
        raise NamespaceNotFound(namespace)
    return int(found)


def _row(session: Session, namespace: str, name: str) -> WorkerRow:
    namespace_id = _namespace_id(session, namespace)
    row = session.scalar(
        select(WorkerRow).where(WorkerRow.namespace_id == namespace_id, WorkerRow.name == name)
    )
    if row is None:
        raise WorkerNotFound(name)
    return row


def save_version(
    store: Store,
    namespace: str,
    name: str,
    spec: WorkerSpec,
    *,
    sha256: str,
    main_module: str,
    requirements: list[str],
    size: int,
    build_ms: float,
    warnings: list[str],
) -> tuple[Worker, bool]:
    """Create or replace the worker, add a version and deploy it; (worker, whether new)."""
    now = datetime.now(UTC)
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        row = session.scalar(
            select(WorkerRow).where(WorkerRow.namespace_id == namespace_id, WorkerRow.name == name)
        )
        created = row is None
        if row is None:
            row = WorkerRow(namespace_id=namespace_id, name=name, created_at=now)
            session.add(row)
        row.runtime, row.tags, row.limits = spec.runtime, spec.tags, spec.limits
        row.allowed_hosts, row.vars, row.secrets = spec.allowed_hosts, spec.vars, spec.secrets
        row.updated_at = now
        session.flush()
        number = (
            session.scalar(
                select(func.max(WorkerVersionRow.number)).where(
                    WorkerVersionRow.worker_id == row.id
                )
            )
            or 0
        ) + 1
        version = WorkerVersionRow(
            id="ver_" + _secrets.token_hex(8),
            worker_id=row.id,
            number=number,
            sha256=sha256,
            main_module=main_module,
            requirements=requirements,
            size=size,
            build_ms=build_ms,
            warnings=warnings,
            created_at=now,
        )
        session.add(version)
        session.flush()
        row.current_version = version.id
        session.flush()
        return _worker(session, namespace, row), created


def get(store: Store, namespace: str, name: str) -> Worker:
    """Raises NamespaceNotFound, WorkerNotFound."""
    with store.session() as session:
        return _worker(session, namespace, _row(session, namespace, name))


def _matches(tags: list[str], wanted: dict[str, bool]) -> bool:
    return all((tag in tags) == present for tag, present in wanted.items())


def page(
    store: Store, namespace: str, *, tags: dict[str, bool], limit: int, after: str | None
) -> tuple[list[Worker], str | None]:
    """Workers by name matching the tag filter (tag → must have / must not have)."""
    found: list[Worker] = []
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        query = (
            select(WorkerRow).where(WorkerRow.namespace_id == namespace_id).order_by(WorkerRow.name)
        )
        if after is not None:
            query = query.where(WorkerRow.name > after)
        for row in session.scalars(query):
            if _matches(row.tags, tags):
                found.append(_worker(session, namespace, row))
                if len(found) > limit:
                    break
    items = found[:limit]
    return items, (items[-1].name if len(found) > limit else None)


def count(store: Store, namespace: str) -> int:
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        return int(
            session.scalar(
                select(func.count())
                .select_from(WorkerRow)
                .where(WorkerRow.namespace_id == namespace_id)
            )
            or 0
        )


def remove(store: Store, namespace: str, name: str) -> None:
    with store.session() as session:
        session.delete(_row(session, namespace, name))


def delete_by_tags(store: Store, namespace: str, tags: dict[str, bool]) -> list[str]:
    """Delete every worker matching the filter; return their names."""
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        rows = [
            row
            for row in session.scalars(
                select(WorkerRow).where(WorkerRow.namespace_id == namespace_id)
            )
            if _matches(row.tags, tags)
        ]
        for row in rows:
            session.delete(row)
        return sorted(row.name for row in rows)


@dataclass(frozen=True, slots=True)
class Target:
    """What dispatch needs, read in one transaction."""

    namespace_mode: str
    namespace_limits: dict[str, Any]
    namespace_allowed_hosts: list[str]
    dispatch_public: bool
    worker: Worker
    bindings: dict[str, str]
    namespace_private_egress: bool = False


_NAMESPACE_COLUMNS = ("mode", "limits", "allowed_hosts", "dispatch_public", "private_egress")
_WORKER_COLUMNS = (
    "name",
    "runtime",
    "tags",
    "limits",
    "allowed_hosts",
    "vars",
    "secrets",
    "created_at",
    "updated_at",
)
_VERSION_COLUMNS = (
    "id",
    "number",
    "sha256",
    "main_module",
    "requirements",
    "size",
    "build_ms",
    "warnings",
    "created_at",
)


def _target_query(namespace: str, name: str) -> Select[Any]:
    spaces, rows = NamespaceRow.__table__, WorkerRow.__table__
    versions_ = WorkerVersionRow.__table__
    columns = [
        *(spaces.c[column].label(f"n_{column}") for column in _NAMESPACE_COLUMNS),
        rows.c.id.label("w_id"),
        *(rows.c[column].label(f"w_{column}") for column in _WORKER_COLUMNS),
        *(versions_.c[column].label(f"v_{column}") for column in _VERSION_COLUMNS),
    ]
    return (
        select(*columns)
        .select_from(spaces)
        .outerjoin(rows, (rows.c.namespace_id == spaces.c.id) & (rows.c.name == name))
        .outerjoin(versions_, versions_.c.id == rows.c.current_version)
        .where(spaces.c.name == namespace)
    )


def target(store: Store, namespace: str, name: str) -> Target:
    """The namespace's defaults, the worker and its bindings. Raises *NotFound.

    One Core query on a plain connection (dispatch runs it on every request):
    loading ORM objects in a session cost about a millisecond more.
    """
    with store.engine.connect() as connection:
        found = connection.execute(_target_query(namespace, name)).mappings().first()
    if found is None:
        raise NamespaceNotFound(namespace)
    if found["w_id"] is None:
        raise WorkerNotFound(name)
    current = None
    if found["v_id"] is not None:
        current = Version(
            id=found["v_id"],
            number=found["v_number"],
            sha256=found["v_sha256"],
            main_module=found["v_main_module"],
            requirements=list(found["v_requirements"]),
            size=found["v_size"],
            build_ms=found["v_build_ms"],
            warnings=list(found["v_warnings"]),
            created_at=_utc(found["v_created_at"]),
        )
    worker = Worker(
        namespace=namespace,
        name=found["w_name"],
        runtime=found["w_runtime"],
        tags=list(found["w_tags"]),
        limits=dict(found["w_limits"]),
        allowed_hosts=list(found["w_allowed_hosts"]),
        vars=dict(found["w_vars"]),
        secret_names=sorted(found["w_secrets"]),
        current=current,
        created_at=_utc(found["w_created_at"]),
        updated_at=_utc(found["w_updated_at"]),
    )
    return Target(
        namespace_mode=found["n_mode"],
        namespace_limits=dict(found["n_limits"]),
        namespace_allowed_hosts=list(found["n_allowed_hosts"]),
        dispatch_public=bool(found["n_dispatch_public"]),
        worker=worker,
        bindings={**found["w_vars"], **found["w_secrets"]},
        namespace_private_egress=bool(found["n_private_egress"]),
    )


def versions(store: Store, namespace: str, name: str) -> list[Version]:
    with store.session() as session:
        row = _row(session, namespace, name)
        query = (
            select(WorkerVersionRow)
            .where(WorkerVersionRow.worker_id == row.id)
            .order_by(WorkerVersionRow.number)
        )
        return [_version(version) for version in session.scalars(query)]


def deploy(store: Store, namespace: str, name: str, version_id: str) -> Worker:
    """Make an earlier version the one that serves (rollback). Raises VersionNotFound."""
    with store.session() as session:
        row = _row(session, namespace, name)
        version = session.get(WorkerVersionRow, version_id)
        if version is None or version.worker_id != row.id:
            raise VersionNotFound(version_id)
        row.current_version = version.id
        row.updated_at = datetime.now(UTC)
        session.flush()
        return _worker(session, namespace, row)


def set_tags(store: Store, namespace: str, name: str, tags: list[str]) -> Worker:
    with store.session() as session:
        row = _row(session, namespace, name)
        row.tags = tags
        row.updated_at = datetime.now(UTC)
        session.flush()
        return _worker(session, namespace, row)
