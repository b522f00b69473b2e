"""Worker artifacts, stored in the database and read through a local cache.

Every replica reads the same artifacts: the bytes live in the ``blobs`` table
(content-addressed by SHA-256, one row per distinct artifact, reference-counted by
app/store/blobs.py), and each replica keeps the ones it used in a local directory
(:class:`~app.store.artifact_cache.ArtifactCache`). What comes from the database is
checked against its hash before it is used or cached, so a damaged row is an error,
never wrong code.

S3-compatible object storage is not built: the database holds the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from app.store.artifact_cache import ArtifactCache, checked_sha256, sha256_of
from app.store.db import Store
from app.store.models import BlobRow

__all__ = ["ArtifactMissing", "ArtifactStore"]


class ArtifactMissing(FileNotFoundError):
    """No artifact with this sha256 is stored (or its bytes don't hash to it)."""


class ArtifactStore:
    """Artifacts by sha256: this replica's cache first, then the database."""

    def __init__(self, store: Store, cache: ArtifactCache) -> None:
        self.store = store
        self.cache = cache

    @staticmethod
    def sha256_of(data: bytes) -> str:
        return sha256_of(data)

    def get(self, sha256: str) -> bytes:
        """The artifact's bytes; ArtifactMissing when none is stored, ValueError for a bad id."""
        checked_sha256(sha256)
        cached = self.cache.get(sha256)
        if cached is not None:
            return cached
        with self.store.session() as session:
            data = session.scalar(select(BlobRow.data).where(BlobRow.sha256 == sha256))
        if data is None:
            raise ArtifactMissing(f"no artifact {sha256} is stored")
        data = bytes(data)
        if sha256_of(data) != sha256:
            raise ArtifactMissing(f"the stored artifact {sha256} does not match its hash")
        self.cache.write(data)
        return data

    def exists(self, sha256: str) -> bool:
        """Whether the database holds the artifact's bytes."""
        with self.store.session() as session:
            found = session.scalar(
                select(BlobRow.sha256).where(BlobRow.sha256 == sha256, BlobRow.data.is_not(None))
            )
        return found is not None

    def stored(self) -> Iterator[str]:
        """The sha256 of every artifact the database holds."""
        with self.store.session() as session:
            shas = list(session.scalars(select(BlobRow.sha256).order_by(BlobRow.sha256)))
        yield from shas
