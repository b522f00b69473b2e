"""Namespaces in the store: create, read, list by page, change, delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store import blobs
from app.store.artifacts import ArtifactStore
from app.store.db import Store
from app.store.errors import NamespaceExists, NamespaceHasWorkers, NamespaceNotFound
from app.store.models import NamespaceRow, WorkerRow, WorkerVersionRow

__all__ = [
    "Namespace",
    "NamespaceExists",
    "NamespaceHasWorkers",
    "NamespaceNotFound",
    "create",
    "get",
    "page",
    "remove",
    "update",
]


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    mode: str
    limits: dict[str, Any]
    allowed_hosts: list[str]
    dispatch_public: bool
    created_at: datetime
    workers: int = 0
    private_egress: bool = False
    custom_hostname_suffixes: list[str] = field(default_factory=list)
    # None: the server's default.
    storage_mb: int | None = None
    version_retention: int | None = None
    # Bytes of the distinct artifacts its workers' versions refer to.
    storage_bytes: int = 0
    # Its rate limits and quotas (app/quotas.py): only the ones set.
    quotas: dict[str, Any] = field(default_factory=dict)


def _from_row(row: NamespaceRow, workers: int = 0, storage_bytes: int = 0) -> Namespace:
    return Namespace(
        name=row.name,
        mode=row.mode,
        limits=dict(row.limits),
        allowed_hosts=list(row.allowed_hosts),
        dispatch_public=row.dispatch_public,
        # SQLite keeps no time zone; every time stored here is UTC.
        created_at=row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC),
        workers=workers,
        private_egress=row.private_egress,
        custom_hostname_suffixes=list(row.custom_hostname_suffixes),
        storage_mb=row.storage_mb,
        version_retention=row.version_retention,
        storage_bytes=storage_bytes,
        quotas=dict(row.quotas or {}),
    )


def _worker_count(session: Session, namespace_id: int) -> int:
    query = (
        select(func.count()).select_from(WorkerRow).where(WorkerRow.namespace_id == namespace_id)
    )
    return int(session.scalar(query) or 0)


def create(
    store: Store,
    name: str,
    *,
    mode: str,
    limits: dict[str, Any],
    allowed_hosts: list[str],
    dispatch_public: bool,
    private_egress: bool = False,
    custom_hostname_suffixes: list[str] | None = None,
    storage_mb: int | None = None,
    version_retention: int | None = None,
    quotas: dict[str, Any] | None = None,
) -> Namespace:
    """Raises NamespaceExists."""
    row = NamespaceRow(
        name=name,
        mode=mode,
        limits=limits,
        allowed_hosts=allowed_hosts,
        dispatch_public=dispatch_public,
        private_egress=private_egress,
        custom_hostname_suffixes=custom_hostname_suffixes or [],
        storage_mb=storage_mb,
        version_retention=version_retention,
        quotas=quotas or {},
    )
    try:
        with store.session() as session:
            session.add(row)
            session.flush()
            return _from_row(row)
    except IntegrityError as exc:
        raise NamespaceExists(name) from exc


def get(store: Store, name: str) -> Namespace:
    """Raises NamespaceNotFound."""
    with store.session() as session:
        row = session.scalar(select(NamespaceRow).where(NamespaceRow.name == name))
        if row is None:
            raise NamespaceNotFound(name)
        return _from_row(row, _worker_count(session, row.id), blobs.usage(session, row.id))


@dataclass(frozen=True, slots=True)
class Policy:
    """What a request with one of the namespace's keys runs within (app/policy.py)."""

    limits: dict[str, Any]
    allowed_hosts: list[str]
    private_egress: bool


def policy(store: Store, name: str) -> Policy:
    """The namespace's policy, in one query of three columns (every request with one of its
    keys reads it: get() also counts its workers and sums its storage). Raises
    NamespaceNotFound."""
    with store.session() as session:
        found = session.execute(
            select(
                NamespaceRow.limits, NamespaceRow.allowed_hosts, NamespaceRow.private_egress
            ).where(NamespaceRow.name == name)
        ).first()
    if found is None:
        raise NamespaceNotFound(name)
    limits, allowed_hosts, private_egress = found
    return Policy(dict(limits), list(allowed_hosts), bool(private_egress))


def page(store: Store, *, limit: int, after: str | None) -> tuple[list[Namespace], str | None]:
    """Up to ``limit`` namespaces by name, after the cursor; and the next cursor (or None)."""
    query = select(NamespaceRow).order_by(NamespaceRow.name).limit(limit + 1)
    if after is not None:
        query = query.where(NamespaceRow.name > after)
    with store.session() as session:
        rows = list(session.scalars(query))
        items = [
            _from_row(row, _worker_count(session, row.id), blobs.usage(session, row.id))
            for row in rows[:limit]
        ]
    return items, (items[-1].name if len(rows) > limit else None)


# What update() may change: every column but the identity and the creation time, so a column
# added to NamespaceRow is changeable as soon as the API's patch schema names it.
_FIXED_COLUMNS = frozenset({"id", "name", "created_at"})


def update(store: Store, name: str, changes: dict[str, Any]) -> Namespace:
    """Set the given columns (already validated) and return the namespace.

    Raises NamespaceNotFound, and ValueError for a name that is not a changeable column.
    """
    columns = set(NamespaceRow.__table__.columns.keys()) - _FIXED_COLUMNS
    unknown = sorted(set(changes) - columns)
    if unknown:
        raise ValueError(f"not changeable namespace fields: {', '.join(unknown)}")
    with store.session() as session:
        row = session.scalar(select(NamespaceRow).where(NamespaceRow.name == name))
        if row is None:
            raise NamespaceNotFound(name)
        for column, value in changes.items():
            setattr(row, column, value)
        session.flush()
        return _from_row(row, _worker_count(session, row.id), blobs.usage(session, row.id))


def remove(store: Store, name: str, *, artifacts: ArtifactStore, force: bool = False) -> None:
    """Delete the namespace with its keys and hostnames (and, with ``force``, its workers),
    and the artifact files no other namespace's version refers to.

    Raises NamespaceNotFound, and NamespaceHasWorkers when it has workers and ``force`` is
    false (then nothing is deleted).
    """
    with store.session() as session:
        # FOR UPDATE (PostgreSQL): a worker saved meanwhile waits for this row, so the count
        # can't go stale between the check and the delete.
        query = select(NamespaceRow).where(NamespaceRow.name == name).with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NamespaceNotFound(name)
        workers = _worker_count(session, row.id)
        if workers and not force:
            raise NamespaceHasWorkers(name, workers)
        shas = set(
            session.scalars(
                select(WorkerVersionRow.sha256)
                .join(WorkerRow, WorkerRow.id == WorkerVersionRow.worker_id)
                .where(WorkerRow.namespace_id == row.id)
                .distinct()
            )
        )
        session.execute(delete(NamespaceRow).where(NamespaceRow.id == row.id))
    blobs.release(store, artifacts, shas)
