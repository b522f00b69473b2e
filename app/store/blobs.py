"""Artifact files and who refers to them: reference counting through the database.

Versions refer to artifact files by sha256 (``worker_versions.sha256``); identical
bytes are one file on disk, shared by every version that has them. A file may be
deleted once no version refers to it. Each file's ``blobs`` row is its lock:

* ``hold`` (inside an upload's transaction): create the row if it is missing, lock
  it, write the file; the caller then adds its version and commits, which unlocks.
* ``release`` (after versions were deleted and that was committed): per file, lock
  the row, and if no version refers to the file any more, delete file and row.

Both lock the row before touching the file, so a release can never delete a file that
an upload is about to refer to, whatever the interleaving. The lock is a write: a row
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

from app.store.artifacts import ArtifactStore
from app.store.db import Store
from app.store.models import BlobRow, WorkerRow, WorkerVersionRow

__all__ = ["hold", "refers", "release", "sweep", "usage"]

log = logging.getLogger(__name__)

# Temporary files of a write in flight are younger than this.
_LEFTOVER_S = 3600.0


def _lock(session: Session, sha256: str) -> None:
    """Create the blob's row if it is missing, and lock it until the transaction ends."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # A release may delete the row while this waits for its lock: then insert it again.
    for _ in range(3):
        values = {"sha256": sha256, "created_at": datetime.now(UTC)}
        session.execute(dialect.insert(BlobRow).values(values).on_conflict_do_nothing())
        locked = session.execute(
            update(BlobRow)
            .where(BlobRow.sha256 == sha256)
            .values(created_at=BlobRow.created_at)
            .execution_options(synchronize_session=False)
        )
        if locked.rowcount == 1:  # type: ignore[attr-defined]
            return
    raise RuntimeError(f"could not lock the artifact {sha256}")


def hold(session: Session, artifacts: ArtifactStore, data: bytes) -> str:
    """Write ``data``'s file under its row's lock; return its sha256.

    Call inside the transaction that adds the version referring to it.
    """
    sha256 = ArtifactStore.sha256_of(data)
    _lock(session, sha256)
    artifacts.write(data)
    return sha256


def release(store: Store, artifacts: ArtifactStore, shas: Iterable[str]) -> list[str]:
    """Delete each file no version refers to any more (one transaction each); the deleted."""
    deleted = []
    for sha256 in sorted(set(shas)):
        with store.session() as session:
            _lock(session, sha256)
            used = session.scalar(select(exists().where(WorkerVersionRow.sha256 == sha256)))
            if used:
                continue
            artifacts.delete(sha256)
            session.execute(delete(BlobRow).where(BlobRow.sha256 == sha256))
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
    """Release every file and row no version refers to (what a crash or an older
    version of the service left behind); the deleted sha256s."""
    with store.session() as session:
        referenced = set(session.scalars(select(WorkerVersionRow.sha256).distinct()))
        rows = set(session.scalars(select(BlobRow.sha256)))
    on_disk = {sha256 for sha256, _ in artifacts.stored()}
    deleted = release(store, artifacts, (rows | on_disk) - referenced)
    leftovers = artifacts.remove_leftovers(before=time.time() - _LEFTOVER_S)
    if deleted or leftovers:
        log.info("artifacts: swept %d unreferenced, %d leftover files", len(deleted), leftovers)
    return deleted
