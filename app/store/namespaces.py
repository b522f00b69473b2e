"""Namespaces in the store: create, read, list by page, delete."""

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
from app.store.models import NamespaceRow, WorkerRow, WorkerVersionRow

__all__ = ["Namespace", "NamespaceExists", "NamespaceNotFound", "create", "get", "page", "remove"]


class NamespaceExists(Exception):
    """A namespace of that name already exists."""


class NamespaceNotFound(Exception):
    """No namespace of that name."""


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    mode: str
    limits: dict[str, Any]
    allowed_hosts: list[str]
    dispatch_public: bool
    created_at: datetime
    workers: int = 0
    custom_hostname_suffixes: list[str] = field(default_factory=list)
    # None: the server's default.
    storage_mb: int | None = None
    version_retention: int | None = None
    # Bytes of the distinct artifacts its workers' versions refer to.
    storage_bytes: int = 0


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
        custom_hostname_suffixes=list(row.custom_hostname_suffixes),
        storage_mb=row.storage_mb,
        version_retention=row.version_retention,
        storage_bytes=storage_bytes,
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
    custom_hostname_suffixes: list[str] | None = None,
    storage_mb: int | None = None,
    version_retention: int | None = None,
) -> Namespace:
    """Raises NamespaceExists."""
    row = NamespaceRow(
        name=name,
        mode=mode,
        limits=limits,
        allowed_hosts=allowed_hosts,
        dispatch_public=dispatch_public,
        custom_hostname_suffixes=custom_hostname_suffixes or [],
        storage_mb=storage_mb,
        version_retention=version_retention,
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


def remove(store: Store, name: str, *, artifacts: ArtifactStore) -> None:
    """Delete the namespace with its keys, workers and hostnames, and the artifact files
    no other namespace's version refers to. Raises NamespaceNotFound."""
    with store.session() as session:
        shas = set(
            session.scalars(
                select(WorkerVersionRow.sha256)
                .join(WorkerRow, WorkerRow.id == WorkerVersionRow.worker_id)
                .join(NamespaceRow, NamespaceRow.id == WorkerRow.namespace_id)
                .where(NamespaceRow.name == name)
                .distinct()
            )
        )
        deleted = session.execute(delete(NamespaceRow).where(NamespaceRow.name == name))
        if deleted.rowcount == 0:  # type: ignore[attr-defined]
            raise NamespaceNotFound(name)
    blobs.release(store, artifacts, shas)
