"""Custom hostnames: ``shop.example.com`` → a worker of a namespace.

A hostname belongs to at most one namespace. Pointing it at another worker of
the same namespace replaces the route; claiming one another namespace holds is
refused (HostnameTaken) unless the caller (the admin) asks to reassign it. Who
may claim which names is decided above the store (app/hostnames.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.store.db import Store
from app.store.errors import HostnameNotFound, HostnameTaken, NamespaceNotFound
from app.store.models import HostnameRow, NamespaceRow

__all__ = ["Hostname", "HostnameNotFound", "HostnameTaken", "list_for", "put", "remove", "route"]


@dataclass(frozen=True, slots=True)
class Hostname:
    hostname: str
    namespace: str
    worker: str
    created_at: datetime


def _from_row(row: HostnameRow, namespace: str) -> Hostname:
    created = row.created_at
    return Hostname(
        hostname=row.hostname,
        namespace=namespace,
        worker=row.worker,
        created_at=created.replace(tzinfo=created.tzinfo or UTC),
    )


def _namespace_id(session: Session, namespace: str) -> int:
    found = session.scalar(select(NamespaceRow.id).where(NamespaceRow.name == namespace))
    if found is None:
        raise NamespaceNotFound(namespace)
    return int(found)


def put(
    store: Store, namespace: str, hostname: str, worker: str, *, reassign: bool = False
) -> tuple[Hostname, bool]:
    """Route ``hostname`` to the worker; (the route, whether it is new).

    ``reassign`` moves it from the namespace that holds it. Raises NamespaceNotFound,
    HostnameTaken.
    """
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        row = session.get(HostnameRow, hostname, with_for_update=True)
        created = row is None
        if row is None:
            row = HostnameRow(hostname=hostname, namespace_id=namespace_id, worker=worker)
            session.add(row)
        elif row.namespace_id != namespace_id:
            if not reassign:
                raise HostnameTaken(hostname)
            row.namespace_id = namespace_id
        row.worker = worker
        session.flush()
        return _from_row(row, namespace), created


def list_for(store: Store, namespace: str) -> list[Hostname]:
    """The namespace's hostnames, by name. Raises NamespaceNotFound."""
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        rows = session.scalars(
            select(HostnameRow)
            .where(HostnameRow.namespace_id == namespace_id)
            .order_by(HostnameRow.hostname)
        )
        return [_from_row(row, namespace) for row in rows]


def remove(store: Store, namespace: str, hostname: str) -> None:
    """Raises NamespaceNotFound, HostnameNotFound."""
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        deleted = session.execute(
            delete(HostnameRow).where(
                HostnameRow.hostname == hostname, HostnameRow.namespace_id == namespace_id
            )
        )
        if deleted.rowcount == 0:  # type: ignore[attr-defined]
            raise HostnameNotFound(namespace, hostname)


def route(store: Store, hostname: str) -> tuple[str, str] | None:
    """(namespace, worker) that ``hostname`` routes to, or None: one indexed query."""
    with store.session() as session:
        found = session.execute(
            select(NamespaceRow.name, HostnameRow.worker)
            .join(NamespaceRow, NamespaceRow.id == HostnameRow.namespace_id)
            .where(HostnameRow.hostname == hostname)
        ).first()
        return (found[0], found[1]) if found else None
