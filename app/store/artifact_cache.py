"""This replica's copy of artifacts: a content-addressed directory on the local disk.

The database holds every artifact (app/store/artifacts.py); this directory keeps the
ones this replica has read or written, so a dispatch reads a local file, not a row.
A file is only ever its bytes' SHA-256: a read checks it, and a damaged file is
removed and read again from the database.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ArtifactCache", "checked_sha256", "sha256_of"]

_HEX = frozenset("0123456789abcdef")


def checked_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lower-case hex digits; ValueError otherwise."""
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"not a sha256: {sha256!r}")
    return sha256


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactCache:
    """Bytes by their SHA-256 under ``root/<2 hex>/<64 hex>``; identical bytes are stored once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / checked_sha256(sha256)

    def write(self, data: bytes) -> str:
        """Store ``data`` (atomically; again if it is there) and return its sha256."""
        sha256 = sha256_of(data)
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes | None:
        """The bytes, or None when the file is missing or not these bytes (then removed)."""
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if sha256_of(data) != sha256:
            path.unlink(missing_ok=True)
            return None
        return data

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> None:
        """Remove the file if it is there (idempotent)."""
        self._path(sha256).unlink(missing_ok=True)

    def stored(self) -> Iterator[tuple[str, float]]:
        """(sha256, modification time) of every stored file."""
        for path in self._files():
            if len(path.name) == 64 and set(path.name) <= _HEX:
                yield path.name, path.stat().st_mtime

    def remove_leftovers(self, before: float) -> int:
        """Delete temporary files of interrupted writes older than ``before`` (epoch s)."""
        removed = 0
        for path in self._files():
            if path.name.startswith(".tmp-") and path.stat().st_mtime < before:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir():
                yield from sorted(shard.iterdir())
