"""User workers in the store: immutable versions, the deployed one, tags."""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
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


def target(store: Store, namespace: str, name: str) -> Target:
    """The namespace's defaults, the worker and its bindings. Raises *NotFound.

    One query (dispatch runs it on every request): the ORM's per-object cost
    was a millisecond here, most of a dispatch's time outside the sandbox.
    """
    query = (
        select(NamespaceRow, WorkerRow, WorkerVersionRow)
        .select_from(NamespaceRow)
        .outerjoin(
            WorkerRow, (WorkerRow.namespace_id == NamespaceRow.id) & (WorkerRow.name == name)
        )
        .outerjoin(WorkerVersionRow, WorkerVersionRow.id == WorkerRow.current_version)
        .where(NamespaceRow.name == namespace)
    )
    with store.session() as session:
        found = session.execute(query).first()
        if found is None:
            raise NamespaceNotFound(namespace)
        space, row, version = found
        if row is None:
            raise WorkerNotFound(name)
        return Target(
            namespace_mode=space.mode,
            namespace_limits=dict(space.limits),
            namespace_allowed_hosts=list(space.allowed_hosts),
            dispatch_public=space.dispatch_public,
            worker=_worker_from(namespace, row, version),
            bindings={**row.vars, **row.secrets},
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
