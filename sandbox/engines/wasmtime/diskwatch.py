"""The disk watch: stops a session's turn (or a run) soon after its files go over its quota.

The guest writes ``/work`` and ``/tmp`` through WASI preopens of host directories, and
wasmtime's WASI has no quota of its own; ``RLIMIT_FSIZE`` is per file and per process (the
worker's own files too). So while a turn runs, a thread counts both directories
(:meth:`~sandbox.workspace.Workspace.usage`: no link followed, sizes of regular files) and
calls back once it is over; the runtime then interrupts the guest through the epoch, as
for its other limits.

A count costs about 2 us an entry (10,000 entries, the most a session may hold: 20-50 ms),
so the watch counts only when it must. Every byte the guest writes into a file passes
through a ``write`` of this process, which the kernel tallies (``wchar`` in
``/proc/self/io``, one ``pread``, about 1 us): while the tally has grown by less than the
room the last count left, the directory can't have gone over, and nothing is counted. It
is read every ``MIN_TICK_S`` to ``MAX_TICK_S`` (sooner the less room is left, at the
guest's measured peak of ``PEAK_WRITE_BYTES_PER_S``); once the tally passes the room, the
directory is counted at once (no sooner than one count's length after the last one).
What grows a file's size without writing its bytes (``ftruncate``, a write past a seek:
sparse, so no disk is used) is caught by a count every ``RECOUNT_S`` (no sooner than
``IDLE_SHARE`` counts' length after the last). Without ``/proc/self/io``, every tick counts.

The overshoot is then what the guest writes in a tick and a count (measured: at most
9 MiB with a few files; BENCHMARKS.md), plus the one write call it is inside when
interrupted (WASI finishes it; its size is bounded by the guest's memory).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from sandbox.workspace import DiskUsage, Workspace

__all__ = ["DiskWatch"]

# A guest's sustained writes into /work (1 MiB writes to one file: 3 GiB/s, BENCHMARKS.md).
PEAK_WRITE_BYTES_PER_S = 4 * 1024 * 1024 * 1024
MIN_TICK_S = 0.002
MAX_TICK_S = 0.05
RECOUNT_S = 1.0
# Between counts nothing forces, at least this many times a count's length.
IDLE_SHARE = 9.0


def _write_tally() -> tuple[Callable[[], int | None], Callable[[], None]]:
    """A reader of the bytes this process has written so far (``wchar``), or of None
    where the kernel doesn't say; and its close."""
    try:
        fd = os.open("/proc/self/io", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return (lambda: None), (lambda: None)

    def read() -> int | None:
        try:
            for line in os.pread(fd, 4096, 0).split(b"\n"):
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    return read, lambda: os.close(fd)


class DiskWatch:
    """A thread that counts a workspace while armed and calls ``on_over`` once it is over
    its quota (then disarms itself). Started on first :meth:`arm`; :meth:`close` ends it.

    ``on_over`` runs on the watch's thread, under its lock: it must not call back in.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._workspace: Workspace | None = None
        self._on_over: Callable[[DiskUsage], None] | None = None
        # Bumped by every arm and disarm: a count begun under one arming reports to it only.
        self._generation = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        # For the benchmark: counts made, and their total length.
        self.walks = 0
        self.walk_s = 0.0

    def arm(self, workspace: Workspace, on_over: Callable[[DiskUsage], None]) -> None:
        with self._cond:
            self._workspace, self._on_over = workspace, on_over
            self._generation += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="sandlot-diskwatch", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> None:
        """No more callbacks for the last arming (a count under way is ignored)."""
        with self._cond:
            self._workspace, self._on_over = None, None
            self._generation += 1

    def close(self) -> None:
        """Stop the thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._workspace, self._on_over = None, None
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=1)

    def _next(self) -> tuple[Workspace, int] | None:
        """The workspace to count and its arming, once armed; None once closed."""
        with self._cond:
            while not self._closed:
                if self._workspace is not None:
                    return self._workspace, self._generation
                self._cond.wait()
            return None

    def _loop(self) -> None:
        tally, close = _write_tally()
        try:
            while (armed := self._next()) is not None:
                workspace, generation = armed
                self._watch(workspace, generation, tally)
        finally:
            close()

    def _watch(
        self, workspace: Workspace, generation: int, tally: Callable[[], int | None]
    ) -> None:
        """Count and wait until this arming ends (disarmed, over, closed)."""
        counted_at = -1e9  # when the last count ended; it took `took` seconds
        took = 0.0
        written_then = 0  # the tally when the last count began
        room = -1  # what the last count left under the quota, bytes; -1: count now
        while True:
            now = time.perf_counter()
            written = tally()
            since = now - counted_at
            if written is None or room < 0 or written - written_then > room:
                must = since >= took  # it may have gone over: count at once, nearly
            else:
                must = since >= max(RECOUNT_S, IDLE_SHARE * took)
            if must:
                written_then = written or 0
                # Outside the lock: disarm() must not wait for a count of many files.
                usage = workspace.usage()
                counted_at = time.perf_counter()
                took = counted_at - now
                room = workspace.quota_bytes - usage.file_bytes
            with self._cond:
                if must:
                    self.walks += 1
                    self.walk_s += took
                if generation != self._generation or self._closed:
                    return
                if must and usage.over(workspace.quota_bytes):
                    on_over = self._on_over
                    self._on_over, self._workspace = None, None
                    self._generation += 1
                    if on_over is not None:
                        on_over(usage)
                    return
                left = room - (((written or 0) - written_then) if written is not None else 0)
                pause = min(MAX_TICK_S, max(MIN_TICK_S, left / PEAK_WRITE_BYTES_PER_S))
                self._cond.wait(pause)
