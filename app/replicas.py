"""This service process as one replica among several on one database.

Set ``SANDLOT_REPLICA_URL`` (the base URL other replicas reach this one at, e.g.
``http://10.0.0.5:8000``) and the process takes a fresh replica id, announces itself
in the ``replicas`` table and renews a heartbeat every ``SANDLOT_REPLICA_HEARTBEAT_MS``.
A replica silent for ``SANDLOT_REPLICA_LOST_MS`` is lost: its sessions answer 410
``replica_lost`` on every other replica. Unset (one process, the default), none of
this runs and sessions stay in this process's memory only, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from app.config import Settings
from app.store import Store, replicas

__all__ = ["Replica"]

log = logging.getLogger(__name__)

# A lost replica's rows, and tombstones of ended sessions, are kept this long.
_KEEP_S = 3_600


class Replica:
    """This process's identity and heartbeat; ``start`` and ``close`` it in the lifespan."""

    def __init__(self, store: Store, url: str, heartbeat_ms: int, lost_ms: int) -> None:
        self.store = store
        self.id = "rep_" + secrets.token_hex(8)
        self.url = url.rstrip("/")
        self._heartbeat_s = heartbeat_ms / 1000
        self._lost_s = lost_ms / 1000
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, settings: Settings, store: Store) -> Replica | None:
        if settings.replica_url is None:
            return None
        return cls(
            store, settings.replica_url, settings.replica_heartbeat_ms, settings.replica_lost_ms
        )

    def alive_since(self) -> float:
        """Replicas whose heartbeat is older than this (epoch s) are lost."""
        return time.time() - self._lost_s

    async def start(self) -> None:
        await asyncio.to_thread(replicas.beat, self.store, self.id, self.url, time.time())
        self._task = asyncio.create_task(self._beat_forever(), name="replica-heartbeat")
        log.info("replica %s at %s", self.id, self.url)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(replicas.leave, self.store, self.id)

    async def _beat_forever(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self._heartbeat_s)
            now = time.time()
            try:
                await asyncio.to_thread(replicas.beat, self.store, self.id, self.url, now)
                beats += 1
                if beats % 60 == 0:
                    await asyncio.to_thread(
                        replicas.prune,
                        self.store,
                        ended_before=now - _KEEP_S,
                        silent_since=now - _KEEP_S,
                    )
            except Exception:  # keep beating: the database may be back at the next one
                log.exception("replica %s: heartbeat failed", self.id)
