"""The monitor thread: interrupts a running guest at its deadline, its CPU budget or on abort."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import wasmtime

__all__ = ["CpuBudget", "Monitor"]

_MONITOR_TICK_S = 0.025


class _Flushes(Protocol):
    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CpuBudget:
    """A thread's CPU clock and the reading at which its budget is spent (seconds)."""

    clock: int
    ends_at: float

    @classmethod
    def for_this_thread(cls, cpu_ms: int) -> CpuBudget:
        clock = time.pthread_getcpuclockid(threading.get_ident())
        return cls(clock, time.clock_gettime(clock) + cpu_ms / 1000)

    def left(self) -> float:
        return self.ends_at - time.clock_gettime(self.clock)


def _nothing() -> None:
    pass


class Monitor:
    """A thread that interrupts the running guest at its deadline, its CPU budget or on abort.

    It bumps the engine's epoch (the store's deadline is one tick away), and
    flushes the sink's buffered output every tick so streaming stays live
    while the guest computes. When the CPU budget is spent it calls
    ``on_cpu_limit`` first (under its lock: the callback must not call back in).
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._cpu: CpuBudget | None = None
        self._on_cpu_limit: Callable[[], None] = _nothing
        self._sink: _Flushes | None = None
        self._fire = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sandlot-monitor", daemon=True)
        self._thread.start()

    def arm(
        self,
        deadline: float,
        sink: _Flushes,
        cpu: CpuBudget,
        on_cpu_limit: Callable[[], None],
    ) -> None:
        with self._cond:
            self._deadline, self._sink, self._fire = deadline, sink, False
            self._cpu, self._on_cpu_limit = cpu, on_cpu_limit
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline, self._sink, self._fire = None, None, False
            self._cpu, self._on_cpu_limit = None, _nothing

    def interrupt(self) -> None:
        with self._cond:
            self._fire = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=1)

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                cpu_left = self._cpu.left() if self._cpu is not None else remaining
                if cpu_left <= 0:
                    self._on_cpu_limit()
                if self._fire or remaining <= 0 or cpu_left <= 0:
                    self._engine.increment_epoch()
                    self._deadline = None
                    continue
                # CPU time never runs ahead of wall time: nothing to check before then.
                self._cond.wait(min(remaining, cpu_left, _MONITOR_TICK_S))
                if self._sink is not None:
                    self._sink.flush()
