"""A Pyodide worker process's Deno processes: one for runs, one per tenant for sessions.

Deno can't end a Web Worker whose thread is busy in JavaScript or wasm (``terminate()``
leaves it burning a core, measured on Deno 2.9.8). Guest code writes no JavaScript or wasm
of its own (``lockdown.mjs``), but a built-in over a huge array still holds the thread for
about a minute, and the driver frees such a thread the only way there is, by restarting
the whole Deno process (``host.py``). That restart ends every session in that process. So the
sessions of one tenant (a namespace; the admin's are a tenant of their own) live in a Deno
process that holds only that tenant's sessions, and a forced restart ends only the
sessions of the tenant whose code forced it. Runs keep a Deno of their own, which holds no
session: one run at a time, so a restart after a run ends no one else's.

=================  ============================================================
runs               one :class:`PyodideRuntime` with its spares (as before)
a tenant's Deno    a :class:`PyodideRuntime` that keeps a restored spare for its
                   next open (the service's default, SANDLOT_PYODIDE_TENANT_SPARE;
                   ~250 MiB a Deno) or, without, restores one per open after
                   its first (~125 MiB)
the warm Deno      one unclaimed tenant Deno with its spare restored, made once
                   sessions are used here; the next tenant without a Deno takes
                   it (its open costs what one with a spare does) and another is
                   warmed in the background
stopped            a tenant's Deno ``idle_stop_s`` after its last session
                   closed (so close-then-open doesn't pay a start)
=================  ============================================================

Every call but :meth:`TenantRuntimes.abort` comes from the worker's one job thread
(``serving.py``); ``abort`` comes from its reader thread and goes to whichever runtime is
running now. A housekeeping thread stops idle tenants' Denos and calls ``prepare`` on
the idle runtimes every ``check_s``, so a thread left spinning after its run or turn costs
its core for about a second, not until that Deno's next job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.engines.pyodide.host import PyodideRuntime
from sandbox.events import GuestError, RunReport, Status, Usage
from sandbox.jobs import Job
from sandbox.protocol import FrameSink

__all__ = ["TenantRuntimes"]

log = logging.getLogger(__name__)

# The tenant of sessions opened without one (tests, a caller that doesn't say).
_UNNAMED = ""


@dataclass(slots=True)
class _Tenant:
    runtime: PyodideRuntime
    sessions: set[str] = field(default_factory=set)
    # When its last session closed (monotonic); None while it has one.
    idle_since: float | None = None


class TenantRuntimes:
    """The serving ``SessionRuntime`` of a Pyodide worker process (module docstring).

    ``make_runtime(for_tenant)`` makes one Deno-driving runtime: for runs (False) or for
    a tenant's sessions (True). Raises what it raises (EngineUnavailable) for the runs'
    one, here; a tenant's is made when its first session opens.
    """

    def __init__(
        self,
        make_runtime: Callable[[bool], PyodideRuntime],
        *,
        idle_stop_s: float = 30.0,
        check_s: float = 1.0,
    ) -> None:
        if idle_stop_s < 0 or check_s <= 0:
            raise ValueError(f"bad timings: idle_stop_s={idle_stop_s}, check_s={check_s}")
        self._make = make_runtime
        self._idle_stop_s = idle_stop_s
        self._check_s = check_s
        self._runs = make_runtime(False)
        self._tenants: dict[str, _Tenant] = {}
        self._where: dict[str, str] = {}  # session id -> its tenant
        # Held by every call of the job thread and by housekeeping: a runtime is used by
        # one thread at a time, and never stopped while in use.
        self._lock = threading.Lock()
        self._current: PyodideRuntime | None = None  # running a run or a turn now
        self._last: PyodideRuntime | None = None  # to prepare after the last call
        self._end_reason: str | None = None
        # The warm, unclaimed tenant Deno, and the thread making it.
        self._warm: PyodideRuntime | None = None
        self._warming: threading.Thread | None = None
        self._warm_lock = threading.Lock()
        self._closed = threading.Event()
        self._housekeeper = threading.Thread(
            target=self._keep_house, name="sandlot-tenants", daemon=True
        )
        self._housekeeper.start()

    # -- runs ----------------------------------------------------------------

    def run(self, job: Job, sink: FrameSink) -> RunReport:
        with self._lock:
            self._current = self._last = self._runs
            try:
                return self._runs.run(job, sink)
            finally:
                self._current = None

    def abort(self, status: Status) -> None:
        """End the run or turn under way (if any) soon with ``status``; any thread."""
        runtime = self._current
        if runtime is not None:
            runtime.abort(status)

    def prepare(self) -> None:
        """Get the runtime of the last call ready for the next one (see PyodideRuntime)."""
        with self._lock:
            runtime, self._last = self._last, None
            if runtime is not None:
                runtime.prepare()

    # -- sessions ------------------------------------------------------------

    def open_session(
        self, session_id: str, workdir: Path, memory_mb: int, *, tenant: str | None = None
    ) -> None:
        """Open the session in its tenant's Deno (started, or the warm one claimed, for
        the tenant's first). Raises as :meth:`PyodideRuntime.open_session` does."""
        name = tenant or _UNNAMED
        with self._lock:
            if session_id in self._where:
                raise ValueError(f"session {session_id} is already open")
            own = self._tenants.get(name)
            if own is None:
                own = _Tenant(self._claim_warm(), idle_since=time.monotonic())
                self._tenants[name] = own
                log.info("a Deno process for a tenant's sessions (%d tenants)", len(self._tenants))
            self._last = own.runtime
            own.runtime.open_session(session_id, workdir, memory_mb)
            own.sessions.add(session_id)
            own.idle_since = None
            self._where[session_id] = name

    def run_turn(self, session_id: str, job: Job, sink: FrameSink) -> tuple[RunReport, bool]:
        """One turn in the session's worker, in its tenant's Deno (see PyodideRuntime)."""
        with self._lock:
            own = self._tenants.get(self._where.get(session_id, _UNNAMED))
            if own is None or session_id not in own.sessions:
                self._end_reason = "crashed"
                return _ended_before(session_id), False
            self._current = self._last = own.runtime
            try:
                report, alive = own.runtime.run_turn(session_id, job, sink)
            finally:
                self._current = None
            self._end_reason = None if alive else own.runtime.session_end_reason(session_id)
            return report, alive

    def session_end_reason(self, session_id: str) -> str | None:
        """Why the last turn ended its session, when its status alone doesn't say."""
        return self._end_reason

    def close_session(self, session_id: str) -> None:
        """Drop the session's worker. Idempotent."""
        with self._lock:
            name = self._where.pop(session_id, None)
            own = self._tenants.get(name) if name is not None else None
            if own is None:
                return
            own.runtime.close_session(session_id)
            own.sessions.discard(session_id)
            if not own.sessions:
                own.idle_since = time.monotonic()

    def session_memory_bytes(self, session_id: str) -> int | None:
        """The session's wasm heap after its last turn, bytes (None when unknown)."""
        own = self._tenants.get(self._where.get(session_id, _UNNAMED))
        return own.runtime.session_memory_bytes(session_id) if own is not None else None

    @property
    def tenant_count(self) -> int:
        """How many tenants have a Deno process here now."""
        return len(self._tenants)

    # -- the warm Deno ---------------------------------------------------------

    def _claim_warm(self) -> PyodideRuntime:
        """The warm tenant Deno (waiting for the one being made), or a new one; another
        is warmed in the background. Raises EngineUnavailable if none can start."""
        warming = self._warming
        if warming is not None:
            warming.join()
            self._warming = None
        with self._warm_lock:
            runtime, self._warm = self._warm, None
        if runtime is None:
            runtime = self._make(True)
        self._warming = threading.Thread(target=self._warm_one, name="sandlot-warm", daemon=True)
        self._warming.start()
        return runtime

    def _warm_one(self) -> None:
        try:
            runtime = self._make(True)
        except Exception:
            # The next tenant's open starts one itself (and says why it can't).
            log.exception("warming a Deno process for sessions failed")
            return
        with self._warm_lock:
            if not self._closed.is_set():
                self._warm = runtime
                return
        runtime.close()

    # -- housekeeping --------------------------------------------------------

    def _keep_house(self) -> None:
        while not self._closed.wait(self._check_s):
            stopped: list[PyodideRuntime] = []
            with self._lock:
                if self._closed.is_set():
                    return
                now = time.monotonic()
                for name, own in list(self._tenants.items()):
                    idle = own.idle_since
                    if idle is not None and now - idle >= self._idle_stop_s:
                        del self._tenants[name]
                        stopped.append(own.runtime)
                        if self._last is own.runtime:
                            self._last = None
                        continue
                    self._prepare_idle(own.runtime)
                self._prepare_idle(self._runs)
            for runtime in stopped:
                log.info("stopping a tenant's Deno process: its last session closed")
                runtime.close()

    def _prepare_idle(self, runtime: PyodideRuntime) -> None:
        # A worker whose thread outlived its end, a Deno that died or kept a run's
        # memory: dealt with now rather than at that Deno's next job.
        try:
            runtime.prepare()
        except Exception:
            log.exception("preparing an idle Deno process failed")

    def close(self) -> None:
        """Stop every Deno process. Idempotent."""
        self._closed.set()
        # Housekeeping may be preparing one: let it finish (a restart takes ~0.2 s).
        locked = self._lock.acquire(timeout=5)
        with self._warm_lock:
            warm, self._warm = self._warm, None
        runtimes = [self._runs, *(own.runtime for own in self._tenants.values())]
        self._tenants.clear()
        self._where.clear()
        if warm is not None:
            runtimes.append(warm)
        if locked:
            self._lock.release()
        # At once: each waits up to 2 s for its Deno to exit, and the pool gives the
        # worker process 1 s in all.
        closing = [threading.Thread(target=_close, args=(r,), daemon=True) for r in runtimes]
        for thread in closing:
            thread.start()
        for thread in closing:
            thread.join()


def _close(runtime: PyodideRuntime) -> None:
    try:
        runtime.close()
    except Exception:  # the others are closed all the same
        log.exception("closing a Deno process failed")


def _ended_before(session_id: str) -> RunReport:
    """The report of a turn for a session this process doesn't hold (its Deno stopped)."""
    error = GuestError(
        "SessionEnded", f"session {session_id} ended before this turn began (crashed)"
    )
    return RunReport(status=Status.INTERNAL_ERROR, usage=Usage(), error=error)
