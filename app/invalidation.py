"""What a replica drops when another one writes: read caches and deleted artifacts.

Subscribed on the bus (app/bus.py) in the app's lifespan:

* ``cache`` ``{"tables": [...]}``: every read cache (app/store/cache.py) that reads
  one of the tables is emptied; the next lookup reads the database.
* ``artifacts`` ``{"deleted": [sha256, ...]}``: this replica's cached file and parsed
  bundle of each go (the database row is already gone).
* the bus reconnecting (messages may have been missed): every read cache is emptied.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.bundles import BundleCache
from app.bus import Bus
from app.store import ArtifactStore, ReadCache

__all__ = ["follow"]

log = logging.getLogger(__name__)


async def follow(
    bus: Bus,
    caches: Sequence[ReadCache[Any, Any]],
    artifacts: ArtifactStore,
    bundles: BundleCache,
) -> list[Callable[[], Awaitable[None]]]:
    """Subscribe; returns the unsubscribers."""

    def written(message: dict[str, Any]) -> None:
        tables = message.get("tables")
        if not isinstance(tables, list):
            return
        for cache in caches:
            if cache.reads_any(tables):
                cache.invalidate()

    def deleted(message: dict[str, Any]) -> None:
        for sha256 in message.get("deleted", ()):
            if not isinstance(sha256, str):
                continue
            try:
                artifacts.cache.delete(sha256)
            except ValueError:
                log.warning("bus: 'artifacts' named %r, not a sha256", sha256[:80])
                continue
            bundles.forget(sha256)

    def reconnected() -> None:
        for cache in caches:
            cache.invalidate()

    bus.on_reconnect(reconnected)
    return [await bus.subscribe("cache", written), await bus.subscribe("artifacts", deleted)]
