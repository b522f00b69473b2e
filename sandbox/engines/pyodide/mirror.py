"""A Pyodide session's files: its directory on the host, and the copy its interpreter sees.

Pyodide's file system lives in the session's Web Worker's memory; the session's
directory lives on the host, where the file calls (``sandbox/workspace.py``) read and
write it. The host's directory is the truth. Before each turn, what changed there since
the last turn (files ``PUT`` or deleted by the file calls) goes in
(:meth:`DirectoryMirror.inbound`); during the turn's end, what the turn changed under
``/work`` comes back (:meth:`DirectoryMirror.receive_file` and friends, fed by the
worker through the Deno host), and :meth:`DirectoryMirror.settle` notes the result.

Everything that comes back is checked here: the paths like any file call's (no links
followed, nothing outside the directory), and the bytes against the disk quota, counted
as they arrive: past it, nothing more is written and ``over_quota`` says so (the session
then ends, ``disk_quota``). Links the code makes stay in its interpreter: they are never
copied out.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox.workspace import TreeEntry, Workspace

__all__ = ["CHUNK_BYTES", "DirectoryMirror"]

log = logging.getLogger(__name__)

# Bytes of one file per message in either direction (base64 makes it a third larger).
CHUNK_BYTES = 4 * 1024 * 1024


class DirectoryMirror:
    """Keeps one session's directory and its interpreter's ``/work`` in step; not
    thread-safe (one turn at a time)."""

    def __init__(self, root: Path, quota_bytes: int) -> None:
        self._workspace = Workspace(root, quota_bytes)
        self._synced: dict[str, TreeEntry] = {}
        self._used = 0
        self.over_quota = False

    @property
    def root(self) -> Path:
        return self._workspace.root

    def inbound(self) -> Iterator[dict[str, Any]]:
        """The changes since the last turn, as ``sync`` messages for the worker, in order:
        paths gone (or changed kind), directories made, then files in chunks."""
        now = self._workspace.tree()
        before = self._synced
        gone = sorted(
            path
            for path, entry in before.items()
            if path not in now or now[path].is_dir != entry.is_dir
        )
        gone_set = set(gone)
        for path in gone:
            if not any(parent in gone_set for parent in _parents(path)):
                yield {"path": path, "kind": "gone"}
        for path, entry in now.items():
            was = before.get(path)
            if entry.is_dir and (was is None or not was.is_dir):
                yield {"path": path, "kind": "dir"}
        for path, entry in now.items():
            if entry.is_dir or before.get(path) == entry:
                continue
            yield from self._chunks(path)
        self._synced = now
        self._used = sum(entry.size for entry in now.values())
        self.over_quota = False

    def _chunks(self, path: str) -> Iterator[dict[str, Any]]:
        try:
            handle = self._workspace.open(path, "rb")
        except (OSError, ValueError):
            return  # gone since the walk: the next turn's walk says so
        with handle:
            append = False
            while True:
                data = handle.read(CHUNK_BYTES)
                if not data and append:
                    return
                yield {
                    "path": path,
                    "kind": "file",
                    "data": base64.b64encode(data).decode(),
                    "append": append,
                }
                if len(data) < CHUNK_BYTES:
                    return
                append = True

    # -- what a turn changed, as it arrives --------------------------------------

    def receive_file(self, path: str, data_b64: str, append: bool) -> None:
        """One chunk of a file the turn wrote (the first one replaces the file)."""
        if self.over_quota:
            return
        try:
            data = base64.b64decode(data_b64, validate=True)
        except ValueError:
            log.warning("a session's worker sent a file chunk that is not base64")
            return
        if not append:
            previous = self._synced.pop(path, None)
            if previous is not None and not previous.is_dir:
                self._used -= previous.size
        self._used += len(data)
        if self._used > self._workspace.quota_bytes:
            self.over_quota = True
            return
        try:
            with self._workspace.open(path, "ab" if append else "wb") as handle:
                handle.write(data)
        except (OSError, ValueError) as exc:
            # A path the file calls would refuse (or a kind clash the next walk sorts
            # out): that file stays in the interpreter only.
            log.info("a session file was not copied out (%s): %s", path[:200], exc)

    def receive_dir(self, path: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._workspace.make_dirs(path)

    def receive_gone(self, path: str) -> None:
        """A path the turn removed (a file, or a directory with all in it): its bytes no
        longer count (the worker sends these before the files the turn wrote)."""
        try:
            self._workspace.delete(path)
        except FileNotFoundError:
            pass  # gone already (with a directory the turn removed before)
        except (OSError, ValueError):
            return  # still there: it still counts
        under = path + "/"
        for gone in [p for p in self._synced if p == path or p.startswith(under)]:
            entry = self._synced.pop(gone)
            if not entry.is_dir:
                self._used -= entry.size

    def settle(self) -> None:
        """Note the directory as it is now: the next turn sends in only what changes
        after this."""
        self._synced = self._workspace.tree()
        self._used = sum(entry.size for entry in self._synced.values())


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:index]) for index in range(1, len(parts))]
