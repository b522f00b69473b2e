"""Replicas and the sessions they hold, as every replica reads them.

A replica renews its ``replicas`` row (``beat``); one silent for longer than the lost
timeout is lost. Each session has a ``session_owners`` row (``claim``) naming its
replica and its owner key, marked when it ends (``ended``). Times are epoch seconds.
Open sessions are counted over the rows whose replica is alive, not ended, not past
their lifetime: a dead replica's sessions stop counting once it is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from app.store.db import Store
from app.store.models import ReplicaRow, SessionOwnerRow

__all__ = [
    "Claim",
    "Owner",
    "beat",
    "claim",
    "ended",
    "find",
    "leave",
    "open_of",
    "prune",
    "unclaim",
]

# PostgreSQL serialises session claims on this advisory lock (SQLite: its write lock).
_CLAIM_LOCK = 0x53414E44


@dataclass(frozen=True, slots=True)
class Owner:
    """Where a session lives and whose it is."""

    session_id: str
    replica_id: str
    replica_url: str
    key_id: str
    ended: str | None
    replica_alive: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A refused claim: which cap (``key`` or ``open``), and the open counts it saw."""

    refused: Literal["key", "open"]
    mine: int
    count: int


def beat(store: Store, replica_id: str, url: str, now: float) -> None:
    """Renew the replica's heartbeat (adding its row when it is missing)."""
    with store.session() as session:
        renewed = session.execute(
            update(ReplicaRow).where(ReplicaRow.id == replica_id).values(heartbeat_at=now, url=url)
        )
        if renewed.rowcount == 0:  # type: ignore[attr-defined]
            session.add(ReplicaRow(id=replica_id, url=url, started_at=now, heartbeat_at=now))


def leave(store: Store, replica_id: str) -> None:
    """The replica stops: its row goes (its sessions are lost at once)."""
    with store.session() as session:
        session.execute(delete(ReplicaRow).where(ReplicaRow.id == replica_id))


def _open(now: float, alive_since: float):  # type: ignore[no-untyped-def]
    return (
        select(SessionOwnerRow)
        .join(ReplicaRow, ReplicaRow.id == SessionOwnerRow.replica_id)
        .where(
            SessionOwnerRow.ended.is_(None),
            SessionOwnerRow.expires_at > now,
            ReplicaRow.heartbeat_at >= alive_since,
        )
    )


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK})


class _Refused(Exception):
    def __init__(self, claim: Claim) -> None:
        self.claim = claim


def claim(
    store: Store,
    row: SessionOwnerRow,
    *,
    max_per_key: int,
    max_open: int,
    alive_since: float,
) -> Claim | None:
    """Record the session unless its key already has ``max_per_key`` open sessions or
    ``max_open`` are open in all (counted on every alive replica); the refusal if so."""
    try:
        with store.session() as session:
            _lock(session)
            session.add(row)
            session.flush()
            counted = _open(row.created_at, alive_since).subquery()
            count = session.scalar(select(func.count()).select_from(counted)) or 0
            mine = (
                session.scalar(
                    select(func.count()).select_from(counted).where(counted.c.key_id == row.key_id)
                )
                or 0
            )
            if mine > max_per_key:
                raise _Refused(Claim("key", mine - 1, count - 1))
            if count > max_open:
                raise _Refused(Claim("open", mine - 1, count - 1))
    except _Refused as refused:
        return refused.claim
    return None


def unclaim(store: Store, session_id: str) -> None:
    """Forget a claim whose session was never made."""
    with store.session() as session:
        session.execute(delete(SessionOwnerRow).where(SessionOwnerRow.id == session_id))


def ended(store: Store, session_id: str, reason: str, now: float) -> None:
    with store.session() as session:
        session.execute(
            update(SessionOwnerRow)
            .where(SessionOwnerRow.id == session_id, SessionOwnerRow.ended.is_(None))
            .values(ended=reason, ended_at=now)
        )


def find(store: Store, session_id: str, alive_since: float) -> Owner | None:
    with store.session() as session:
        found = session.execute(
            select(SessionOwnerRow, ReplicaRow.heartbeat_at)
            .outerjoin(ReplicaRow, ReplicaRow.id == SessionOwnerRow.replica_id)
            .where(SessionOwnerRow.id == session_id)
        ).first()
    if found is None:
        return None
    row, heartbeat = found
    return Owner(
        session_id=row.id,
        replica_id=row.replica_id,
        replica_url=row.replica_url,
        key_id=row.key_id,
        ended=row.ended,
        replica_alive=heartbeat is not None and heartbeat >= alive_since,
    )


def open_of(store: Store, key_id: str, now: float, alive_since: float) -> list[Owner]:
    """The key's open sessions on alive replicas, oldest first."""
    with store.session() as session:
        rows = session.scalars(
            _open(now, alive_since)
            .where(SessionOwnerRow.key_id == key_id)
            .order_by(SessionOwnerRow.created_at)
        ).all()
    return [Owner(r.id, r.replica_id, r.replica_url, r.key_id, None, True) for r in rows]


def prune(store: Store, *, ended_before: float, silent_since: float) -> int:
    """Delete tombstones older than ``ended_before``, and replicas silent since
    ``silent_since`` with every row of theirs; how many session rows went."""
    with store.session() as session:
        gone = select(ReplicaRow.id).where(ReplicaRow.heartbeat_at < silent_since)
        removed = session.execute(
            delete(SessionOwnerRow).where(
                or_(
                    SessionOwnerRow.ended_at < ended_before,
                    SessionOwnerRow.expires_at < ended_before,
                    SessionOwnerRow.replica_id.in_(gone),
                )
            )
        )
        session.execute(delete(ReplicaRow).where(ReplicaRow.heartbeat_at < silent_since))
    return int(removed.rowcount or 0)  # type: ignore[attr-defined]
