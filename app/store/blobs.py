"""Artifacts and who refers to them: reference counting through the database.

Versions refer to artifacts by sha256 (``worker_versions.sha256``); identical bytes
are one ``blobs`` row (which holds them, app/store/artifacts.py), shared by every
version that has them. An artifact may be deleted once no version refers to it. Each
row is its own lock:

* ``hold`` (inside an upload's transaction): write the row (insert, or rewrite the
  same bytes), which locks it; the caller then adds its version and commits.
* ``release`` (after versions were deleted and that was committed): per artifact, lock
  the row, and if no version refers to it any more, delete it (and this replica's
  cached file; other replicas drop theirs when the ``artifacts`` message reaches them).

Both lock the row before deciding, so a release can never delete an artifact that an
upload is about to refer to, whatever the interleaving. The lock is a write: a row
lock on PostgreSQL, the database's write lock on SQLite (where a transaction that
starts with a write also waits its turn instead of failing on a stale snapshot).

What a namespace stores is counted per namespace (``usage``, ``refers``): a file
shared with another namespace counts for each, so no answer depends on what other
namespaces uploaded. ``sweep`` (at start-up) finishes what a crash left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.store.artifact_cache import sha256_of
from app.store.artifacts import ArtifactStore
from app.store.db import Store
from app.store.models import BlobRow, WorkerRow, WorkerVersionRow

__all__ = ["hold", "refers", "release", "sweep", "usage"]

log = logging.getLogger(__name__)

# Temporary files of a write in flight are younger than this.
_LEFTOVER_S = 3600.0


def _lock(session: Session, sha256: str) -> bool:
    """Lock the artifact's row until the transaction ends; False when there is none."""
    locked = session.execute(
        update(BlobRow)
        .where(BlobRow.sha256 == sha256)
        .values(created_at=BlobRow.created_at)
        .execution_options(synchronize_session=False)
    )
    return bool(locked.rowcount == 1)  # type: ignore[attr-defined]


def hold(session: Session, artifacts: ArtifactStore, data: bytes) -> str:
    """Store ``data`` in its row, locked until the transaction ends; return its sha256.

    Call inside the transaction that adds the version referring to it. The bytes are
    written even when the row is there (an upsert: a release waiting for the lock then
    finds the version), so an upload's timing says nothing of what others stored.
    """
    sha256 = sha256_of(data)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {"sha256": sha256, "size": len(data), "data": data, "created_at": datetime.now(UTC)}
    insert = dialect.insert(BlobRow).values(values)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=[BlobRow.sha256],
            set_={"data": insert.excluded.data, "size": insert.excluded.size},
        )
    )
    artifacts.cache.write(data)
    return sha256


def release(store: Store, artifacts: ArtifactStore, shas: Iterable[str]) -> list[str]:
    """Delete each artifact no version refers to any more (one transaction each); the
    deleted. Other replicas are told on the ``artifacts`` channel (app/bus.py)."""
    deleted = []
    for sha256 in sorted(set(shas)):
        with store.session() as session:
            if _lock(session, sha256):
                used = session.scalar(select(exists().where(WorkerVersionRow.sha256 == sha256)))
                if used:
                    continue
                session.execute(delete(BlobRow).where(BlobRow.sha256 == sha256))
                store.notify(session, "artifacts", {"deleted": [sha256]})
        artifacts.cache.delete(sha256)
        deleted.append(sha256)
    return deleted


def refers(session: Session, namespace_id: int, sha256: str) -> bool:
    """Whether a version of the namespace's workers refers to the file."""
    query = select(
        exists()
        .where(WorkerVersionRow.sha256 == sha256)
        .where(WorkerVersionRow.worker_id == WorkerRow.id)
        .where(WorkerRow.namespace_id == namespace_id)
    )
    return bool(session.scalar(query))


def usage(session: Session, namespace_id: int) -> int:
    """Bytes of the distinct artifacts the namespace's versions refer to."""
    distinct = (
        select(WorkerVersionRow.sha256, WorkerVersionRow.size)
        .join(WorkerRow, WorkerRow.id == WorkerVersionRow.worker_id)
        .where(WorkerRow.namespace_id == namespace_id)
        .distinct()
        .subquery()
    )
    return int(session.scalar(select(func.coalesce(func.sum(distinct.c.size), 0))) or 0)


def sweep(store: Store, artifacts: ArtifactStore) -> list[str]:
    """Release every artifact no version refers to (what a crash or an older version of
    the service left behind), and drop cached files of artifacts the database no longer
    holds; the sha256s released."""
    with store.session() as session:
        referenced = set(session.scalars(select(WorkerVersionRow.sha256).distinct()))
        rows = set(session.scalars(select(BlobRow.sha256)))
    deleted = release(store, artifacts, rows - referenced)
    dropped = 0
    for sha256, _ in artifacts.cache.stored():
        if sha256 not in rows or sha256 in deleted:
            artifacts.cache.delete(sha256)
            dropped += 1
    leftovers = artifacts.cache.remove_leftovers(before=time.time() - _LEFTOVER_S)
    if deleted or dropped or leftovers:
        log.info(
            "artifacts: swept %d unreferenced, %d stale cached, %d leftover files",
            len(deleted),
            dropped,
            leftovers,
        )
    return deleted
