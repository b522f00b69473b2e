"""Reads from the store, reused for a short time unless a write made them stale.

The store counts this process's statements that write the tables caches read and
the commits of transactions that wrote them (``Store.generation``). An entry is
stamped with the count read before its read ran: a write through this process makes
it stale at once, including one that was still uncommitted while the read ran.
Writes by other replicas arrive on the bus (app/bus.py, channel ``cache``), which
calls ``invalidate`` for the caches of the tables written; ``ttl_ms`` bounds how late
they are seen if a message is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable

from app.store.db import CACHED_TABLES, Store

__all__ = ["ReadCache"]


class ReadCache[K: Hashable, V]:
    """Values by key, least recently used out first; ``ttl_ms`` 0 keeps nothing.

    Values are kept as read, misses included when the read returns one (None);
    a read that raises keeps nothing. ``tables``: what its reads read (a subset of
    ``CACHED_TABLES``), so only writes to those invalidate it.
    """

    def __init__(
        self,
        store: Store,
        ttl_ms: int,
        size: int = 4096,
        tables: Collection[str] = CACHED_TABLES,
    ) -> None:
        unknown = set(tables) - CACHED_TABLES
        if unknown:
            raise ValueError(f"tables {sorted(unknown)} are not in CACHED_TABLES")
        self._store = store
        self._ttl = ttl_ms / 1000
        self._size = size
        self.tables = frozenset(tables)
        # Bumped by invalidate(): entries stamped with an older epoch are stale, and so is
        # a read that was in flight when it was called.
        self._epoch = 0
        self._entries: OrderedDict[K, tuple[tuple[int, int], float, V]] = OrderedDict()

    def reads_any(self, tables: Collection[str]) -> bool:
        return not self.tables.isdisjoint(tables)

    def invalidate(self) -> None:
        """Drop every entry (another replica wrote what they were read from)."""
        self._epoch += 1
        self._entries.clear()

    async def get(self, key: K, read: Callable[[], V]) -> V:
        """The value for ``key``: kept, or ``read()`` in a thread (it may block on the database)."""
        stamp, now = (self._store.generation, self._epoch), time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] == stamp and now - found[1] < self._ttl:
            self._entries.move_to_end(key)
            return found[2]
        value = await asyncio.to_thread(read)
        if self._ttl > 0 and stamp[1] == self._epoch:
            self._entries[key] = (stamp, now, value)
            self._entries.move_to_end(key)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value
