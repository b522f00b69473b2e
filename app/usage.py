"""Usage per namespace and day: counted in memory where runs start, flushed to the store.

Every run that belongs to a namespace passes through :meth:`UsageMeter.observe`: runs of
/v1/execute, the tools and /v1/generate by a namespace's key, session turns, and
dispatches (an anonymous dispatch counts to the worker's namespace). The admin key's own
runs belong to no namespace and are not counted.

Counts gather in memory by (namespace, UTC day of the run's end) and are added to the
store (:mod:`app.store.usage`, an upsert that adds) every ``flush_ms`` and once more at
shutdown, so a busy service writes one row per namespace and day per flush, and several
replicas add up. A failed flush keeps its counts for the next one. Reading usage adds
this process's counts not yet flushed, so an answer is never older than the other
replicas' flush interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime

from app.store import Store
from app.store import usage as stored
from app.store.usage import DayUsage
from sandbox import End, Event, Started, Subrequest

__all__ = ["DayUsage", "UsageMeter"]

log = logging.getLogger(__name__)

Key = tuple[str, date]


class UsageMeter:
    """This process's unflushed usage and the task that flushes it (made in the lifespan).

    ``store`` None keeps counts in memory only (tests of other parts).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        flush_ms: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.flush_ms = flush_ms
        self._clock = clock
        self._pending: dict[Key, DayUsage] = {}
        # Held while a flush writes and while a read merges: a read never counts twice.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock(), UTC).date()

    def _day(self, namespace: str) -> DayUsage:
        key = (namespace, self._today())
        found = self._pending.get(key)
        if found is None:
            found = self._pending[key] = DayUsage()
        return found

    def record_end(
        self, namespace: str, end: End | None, *, dispatch: bool, wall_ms: float
    ) -> None:
        """One run finished (``end`` None: closed before its end, ``wall_ms`` measured)."""
        day = self._day(namespace)
        day.runs += 1
        day.dispatches += 1 if dispatch else 0
        if end is not None:
            day.cpu_ms += end.usage.cpu_ms
            day.wall_ms += end.usage.wall_ms
        else:
            day.wall_ms += wall_ms

    def record_subrequest(self, namespace: str, request: Subrequest) -> None:
        """One outbound hop: a subrequest, and the bytes the gate sent and received."""
        day = self._day(namespace)
        day.subrequests += 1
        day.egress_sent_bytes += request.sent_bytes
        day.egress_received_bytes += request.bytes

    async def observe(
        self, events: AsyncIterator[Event], *, namespace: str | None, kind: str
    ) -> AsyncIterator[Event]:
        """``events``, counted to ``namespace`` (None: not counted); ``kind`` "dispatch"
        also counts a dispatch. Closing this closes ``events``."""
        started: float | None = None
        ended = False
        try:
            async for event in events:
                if namespace is not None:
                    if isinstance(event, Started):
                        started = time.monotonic()
                    elif isinstance(event, Subrequest):
                        self.record_subrequest(namespace, event)
                    elif isinstance(event, End):
                        ended = True
                        self.record_end(namespace, event, dispatch=kind == "dispatch", wall_ms=0)
                yield event
        finally:
            if namespace is not None and started is not None and not ended:
                wall_ms = (time.monotonic() - started) * 1000
                self.record_end(namespace, None, dispatch=kind == "dispatch", wall_ms=wall_ms)
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    # -- the store -------------------------------------------------------------

    async def flush(self) -> None:
        """Add the pending counts to the store; on failure they wait for the next flush."""
        if self._store is None:
            return
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                await asyncio.to_thread(stored.add, self._store, batch)
            except Exception:
                log.exception("usage flush failed; %d rows kept for the next one", len(batch))
                for key, counts in batch.items():
                    self._pending.setdefault(key, DayUsage()).merge(counts)

    async def days(self, namespace: str, first: date, last: date) -> dict[date, DayUsage]:
        """Stored days of ``namespace`` in [first, last], plus this process's unflushed."""
        async with self._lock:
            found: dict[date, DayUsage] = {}
            if self._store is not None:
                found = await asyncio.to_thread(stored.days, self._store, namespace, first, last)
            for (name, day), counts in self._pending.items():
                if name == namespace and first <= day <= last:
                    found.setdefault(day, DayUsage()).merge(counts)
            return dict(sorted(found.items()))

    def start(self) -> None:
        """Flush every ``flush_ms`` until :meth:`close`."""
        if self._task is None and self._store is not None:
            self._task = asyncio.create_task(self._flush_forever(), name="usage-flush")

    async def _flush_forever(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.flush_ms / 1000)
            except TimeoutError:
                await self.flush()

    async def close(self) -> None:
        """Stop flushing periodically (a flush under way finishes) and flush what is
        left (idempotent)."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
