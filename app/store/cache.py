"""Reads from the store, reused for a short time unless this process wrote since.

The store counts the statements that write and the commits of transactions
that wrote (``Store.generation``). An entry is stamped with the count read
before its read ran: a write through this process makes it stale at once,
including one that was still uncommitted while the read ran. Writes by other
processes on the same database are seen within ``ttl_ms``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from app.store.db import Store

__all__ = ["ReadCache"]


class ReadCache[K: Hashable, V]:
    """Values by key, least recently used out first; ``ttl_ms`` 0 keeps nothing.

    Values are kept as read, misses included when the read returns one (None);
    a read that raises keeps nothing.
    """

    def __init__(self, store: Store, ttl_ms: int, size: int = 4096) -> None:
        self._store = store
        self._ttl = ttl_ms / 1000
        self._size = size
        self._entries: OrderedDict[K, tuple[int, float, V]] = OrderedDict()

    async def get(self, key: K, read: Callable[[], V]) -> V:
        """The value for ``key``: kept, or ``read()`` in a thread (it may block on the database)."""
        generation, now = self._store.generation, time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] == generation and now - found[1] < self._ttl:
            self._entries.move_to_end(key)
            return found[2]
        value = await asyncio.to_thread(read)
        if self._ttl > 0:
            self._entries[key] = (generation, now, value)
            self._entries.move_to_end(key)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value
