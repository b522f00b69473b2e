"""Fair shares of the cores between the runs of one worker process.

Every run in a worker process that takes several at once has a thread of its own (see
``serving.py``), and the kernel shares the cores between threads, not between runs of
different cost: a few busy loops spending their ``cpu_ms`` would take as much of the cores
as the many short runs beside them, and every short run would wait behind them.

So a run that has used more than ``after_ms`` of CPU is demoted: its thread's nice value
goes up to ``nice`` (``setpriority`` on the thread: unprivileged, since raising a nice value
is always allowed), and the kernel gives it a smaller weight (nice 10: about a ninth of a
normal thread's) whenever short runs want the cores; alone on a core it still runs at full
speed. Its ``cpu_ms`` budget is CPU time, so a demoted run still gets all of it, later in
wall time under load (``wall_ms`` still bounds it). A run thread takes one run after
another, but a demoted one ends with its run (:meth:`FairShare.forget` says so), so the next
run starts at the normal weight on another thread: the demotion never needs undoing (which
an unprivileged process couldn't do).

The sampler is one thread per worker process, waking every ``tick_s`` while runs are
going; :class:`Demotion` is the policy, a frozen value checked at construction. It is off
by default (``SANDLOT_CPU_HEAVY_AFTER_MS=0``): under a load that keeps the cores full of
short runs, a demoted run gets so little of them that it reaches ``wall_ms`` before its
``cpu_ms`` (bench/load.py: recursion bombs ended ``wall_limit`` instead of ``error``), and
the kernel's own sharing already kept short runs' p99 within the target (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from dataclasses import dataclass

__all__ = ["Demotion", "FairShare"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Demotion:
    """When a run's thread is demoted and how far.

    Attributes:
        after_ms: CPU time (milliseconds) a run may use at the normal weight; 0 turns
            demotion off.
        nice: the nice value a demoted run's thread gets (1 to 19).
    """

    after_ms: int = 0
    nice: int = 10

    def __post_init__(self) -> None:
        if self.after_ms < 0:
            raise ValueError(f"after_ms must be 0 (off) or more, got {self.after_ms}")
        if not 1 <= self.nice <= 19:
            raise ValueError(f"nice must be between 1 and 19, got {self.nice}")

    @property
    def enabled(self) -> bool:
        return self.after_ms > 0

    def due(self, cpu_s: float) -> bool:
        """Whether a run that has used ``cpu_s`` seconds of CPU is demoted."""
        return self.enabled and cpu_s * 1000 >= self.after_ms

    def argv(self) -> list[str]:
        """The worker process's flags that carry this policy (see :meth:`add_arguments`)."""
        return ["--demote-after-ms", str(self.after_ms), "--demote-nice", str(self.nice)]

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the flags of :meth:`argv` to a worker process's parser."""
        parser.add_argument("--demote-after-ms", type=int, default=0)
        parser.add_argument("--demote-nice", type=int, default=10)

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> Demotion:
        return cls(after_ms=args.demote_after_ms, nice=args.demote_nice)


class FairShare:
    """Watches the run threads of one process and demotes those past their share.

    ``watch(thread)`` from the run's thread as it starts, ``forget(thread)`` as it ends.
    """

    def __init__(self, demotion: Demotion, tick_s: float = 0.02) -> None:
        self.demotion = demotion
        self._tick_s = tick_s
        self._cond = threading.Condition()
        # Run threads at the normal weight: (CPU clock, native thread id, CPU time used
        # before this run: a thread takes one run after another).
        self._watched: dict[int, tuple[int, int, float]] = {}
        # Threads demoted during their current run, until forget().
        self._demoted: set[int] = set()
        self.demoted = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        if demotion.enabled:
            self._thread = threading.Thread(
                target=self._loop, name="sandlot-fairshare", daemon=True
            )
            self._thread.start()

    def watch(self) -> None:
        """Watch the calling thread (a run's own) until :meth:`forget`."""
        if self._thread is None:
            return
        ident = threading.get_ident()
        clock = time.pthread_getcpuclockid(ident)
        with self._cond:
            self._watched[ident] = (clock, threading.get_native_id(), time.clock_gettime(clock))
            self._cond.notify()

    def forget(self) -> bool:
        """Stop watching the calling thread; whether it was demoted during its run (then
        it must end: its weight can't be raised again)."""
        ident = threading.get_ident()
        with self._cond:
            self._watched.pop(ident, None)
            if ident in self._demoted:
                self._demoted.discard(ident)
                return True
        return False

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._watched:
                    self._cond.wait()
                    continue
                for ident, (clock, native_id, before) in list(self._watched.items()):
                    try:
                        used = time.clock_gettime(clock) - before
                    except OSError:  # the thread ended without forget()
                        del self._watched[ident]
                        continue
                    if self.demotion.due(used):
                        del self._watched[ident]
                        if self._demote(native_id):
                            self._demoted.add(ident)
                self._cond.wait(self._tick_s)

    def _demote(self, native_id: int) -> bool:
        try:
            os.setpriority(os.PRIO_PROCESS, native_id, self.demotion.nice)
        except OSError as exc:  # it ended meanwhile
            log.debug("could not demote thread %d: %s", native_id, exc)
            return False
        self.demoted += 1
        return True
