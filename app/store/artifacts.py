"""Content-addressed artifacts on the local disk (an object store can implement this later).

This class only reads and writes files; which files may exist is decided in the
database (``blobs``): see app/store/blobs.py.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ArtifactStore"]

_HEX = frozenset("0123456789abcdef")


class ArtifactStore:
    """Bytes by their SHA-256 under ``root/<2 hex>/<64 hex>``; identical bytes are stored once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def _checked(sha256: str) -> str:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise ValueError(f"not a sha256: {sha256!r}")
        return sha256

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / self._checked(sha256)

    @staticmethod
    def sha256_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def write(self, data: bytes) -> str:
        """Store ``data`` (atomically; again if it is there) and return its sha256.

        Always writing keeps an upload's timing independent of what others stored.
        """
        sha256 = self.sha256_of(data)
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

    def get(self, sha256: str) -> bytes:
        """Raises FileNotFoundError."""
        return self._path(sha256).read_bytes()

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
