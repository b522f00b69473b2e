"""The memory budget: how much memory the runs of one pool may ask for together.

Each run asks for its ``memory_mb`` (the cap on its instance's linear memory, which is what
it may really take: the guest's image is mapped copy-on-write and shared). The pool admits a
run only while the runs it holds ask for no more than ``total_mb`` together; the next one
waits, in arrival order (a large run is not overtaken by smaller ones behind it), until
memory comes back or its queue wait ends (``PoolBusy`` with reason ``memory``: the 429).
Slots (runs per process) are counted apart, by the pool.
"""

from __future__ import annotations

import asyncio
import collections

from sandbox.errors import PoolBusy

__all__ = ["MemoryBudget"]


class MemoryBudget:
    """Memory reservations of one pool's runs, MiB; ``total_mb`` None: no budget."""

    def __init__(self, total_mb: int | None) -> None:
        if total_mb is not None and total_mb < 1:
            raise ValueError(f"total_mb must be at least 1, got {total_mb}")
        self.total_mb = total_mb
        self.in_use_mb = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def _fits(self, memory_mb: int) -> bool:
        return self.total_mb is None or self.in_use_mb + memory_mb <= self.total_mb

    async def reserve(self, memory_mb: int, deadline: float, waited_ms: int) -> None:
        """Reserve ``memory_mb`` by ``deadline`` (the loop's clock), or raise PoolBusy.

        ``waited_ms`` is what the refusal says was waited (the pool's queue wait).
        """
        if self.total_mb is not None and memory_mb > self.total_mb:
            raise self._busy(memory_mb, 0)  # it can never fit
        if not self._waiters and self._fits(memory_mb):
            self.in_use_mb += memory_mb
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (memory_mb, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout_at(deadline):
                await future
        except TimeoutError:
            raise self._busy(memory_mb, waited_ms) from None
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(memory_mb)  # granted just as the caller went away
            raise
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
                self._wake()

    def release(self, memory_mb: int) -> None:
        """Give back a reservation; the callers next in line that now fit get theirs."""
        self.in_use_mb = max(0, self.in_use_mb - memory_mb)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            memory_mb, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._fits(memory_mb):
                return  # in order: the first in line waits for its memory
            self._waiters.popleft()
            self.in_use_mb += memory_mb
            future.set_result(None)

    def _busy(self, memory_mb: int, waited_ms: int) -> PoolBusy:
        return PoolBusy(
            waited_ms,
            reason="memory",
            detail=(
                f"runs in progress hold {self.in_use_mb} of the {self.total_mb} MiB memory "
                f"budget and this run asks for {memory_mb} MiB (limits.memory_mb)"
            ),
        )
