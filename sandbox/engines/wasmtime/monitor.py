"""The monitor thread: interrupts a running guest at its wall-clock deadline or on abort."""

from __future__ import annotations

import threading
import time
from typing import Protocol

import wasmtime

__all__ = ["Monitor"]

_MONITOR_TICK_S = 0.025


class _Flushes(Protocol):
    def flush(self) -> None: ...


class Monitor:
    """A thread that interrupts the running guest at its deadline or on abort.

    It bumps the engine's epoch (the store's deadline is one tick away), and
    flushes the sink's buffered output every tick so streaming stays live
    while the guest computes.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._sink: _Flushes | None = None
        self._fire = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sandlot-monitor", daemon=True)
        self._thread.start()

    def arm(self, deadline: float, sink: _Flushes) -> None:
        with self._cond:
            self._deadline, self._sink, self._fire = deadline, sink, False
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._deadline, self._sink, self._fire = None, None, False

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
                if self._fire or remaining <= 0:
                    self._engine.increment_epoch()
                    self._deadline = None
                    continue
                self._cond.wait(min(remaining, _MONITOR_TICK_S))
                if self._sink is not None:
                    self._sink.flush()
