"""The main loop of every engine's worker process.

The pool (``sandbox/pool.py``) starts ``python -m sandbox.engines.<engine>.worker``
and talks to it over stdin/stdout with the frames of ``sandbox/protocol.py``.
:func:`serve_process` owns that conversation; an engine supplies the
:class:`Runtime` that runs one job at a time, and, to take several runs at once, a
factory of more runtimes: each run then gets a thread and a runtime of its own (threads
wait for the next run when theirs ends, so starting a run wakes a thread instead of making
one).

The process is disposable: a crash, a panic or a call blocked inside the
engine is contained here, and the pool kills and replaces the process when a
run overruns its hard deadline.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

from sandbox import protocol
from sandbox.engines.fairshare import Demotion, FairShare
from sandbox.events import GuestError, RunReport, Status, Usage
from sandbox.jobs import Job

__all__ = ["Runtime", "SessionRuntime", "serve", "serve_process"]


class Runtime(Protocol):
    """One engine inside a worker process: runs one job at a time."""

    def run(self, job: Job, sink: protocol.FrameSink) -> RunReport:
        """Run a job, streaming output and subrequests to ``sink``; never raises for guests."""
        ...

    def abort(self, status: Status) -> None:
        """End the current run soon with ``status``; called from another thread."""

    def prepare(self) -> None:
        """Get ready for the next run (after the last one was reported)."""

    def close(self) -> None:
        """Release everything. Idempotent."""


@runtime_checkable
class SessionRuntime(Runtime, Protocol):
    """A runtime that also keeps instances between turns (sessions), one turn at a time."""

    def open_session(
        self, session_id: str, workdir: Path, memory_mb: int, *, tenant: str | None = None
    ) -> None:
        """Make the session's instance with ``workdir`` (made here) at /work (and whatever
        else the engine mounts: the wasmtime engine's /tmp beside it); raises on a host
        fault. ``tenant`` (a namespace, say) is who owns it: an engine may keep
        different tenants' sessions apart (Pyodide: a Deno process each), or ignore it."""

    def run_turn(
        self, session_id: str, job: Job, sink: protocol.FrameSink
    ) -> tuple[RunReport, bool]:
        """Run one turn in the session's instance: its report, and whether it lives on."""
        ...

    def close_session(self, session_id: str) -> None:
        """Drop the session's instance. Idempotent."""

    def session_memory_bytes(self, session_id: str) -> int | None:
        """The session's linear memory now, bytes; None when unknown."""
        ...

    # Optional: ``session_end_reason(session_id) -> str | None``, why the last turn ended
    # its session when the turn's status alone doesn't say (``crashed``, ``disk_quota``).


_QUEUED_OPS = frozenset({"run", "open", "turn", "close"})
# How long a run thread waits for the next run before it ends.
THREAD_IDLE_S = 30.0


class _SerialWriter:
    """The protocol's pipe, shared by every run's sink: one whole frame per write."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self._lock:
            return self._out.write(data)


class _Lanes:
    """The runtimes that take runs on their own threads (``runs`` > 1): at most ``runs``
    live at once, each made on first need and reused, one run at a time each."""

    def __init__(
        self,
        make_runtime: Callable[[], Runtime],
        runs: int,
        out: BinaryIO,
        demotion: Demotion | None = None,
    ) -> None:
        self._make = make_runtime
        self._runs = runs
        self._out = out
        # Each run's thread is its own: demoted once it is CPU-heavy (fairshare.py).
        self._fair = FairShare(demotion or Demotion(after_ms=0))
        self._lock = threading.Lock()
        # Notified when a runtime goes back to idle or one fewer exists.
        self._freed = threading.Condition(self._lock)
        self._idle: list[Runtime] = []
        self._made = 0
        self._running: dict[str, Runtime] = {}
        # Runs started but not yet in a runtime, and those of them canceled meanwhile.
        self._pending: set[str] = set()
        self._canceled: set[str] = set()
        # Run threads outlive their run: a thread made per run cost ~2 ms before the run
        # began (the new thread is placed on the idlest core, and waking an idle vCPU is
        # slow), a thread waiting here is woken like any other. ``_waiting`` counts the
        # threads blocked on ``_handoff`` that no start() has claimed yet.
        self._handoff: queue.SimpleQueue[tuple[str, dict[str, Any]] | None] = queue.SimpleQueue()
        self._waiting = 0
        self._closed = False

    def warm(self) -> None:
        """Make one runtime now, so the first run doesn't pay for it."""
        runtime = self._make()
        with self._lock:
            self._made += 1
            self._idle.append(runtime)

    def start(self, message: dict[str, Any]) -> None:
        run_id = str(message["id"])
        with self._lock:
            self._pending.add(run_id)
            handed = self._waiting > 0
            if handed:
                self._waiting -= 1
        if handed:
            self._handoff.put((run_id, message))
            return
        threading.Thread(
            target=self._thread, args=((run_id, message),), name="sandlot-run", daemon=True
        ).start()

    def _thread(self, first: tuple[str, dict[str, Any]]) -> None:
        """Run ``first``, then wait for more; end after ``THREAD_IDLE_S`` without one,
        when closed, or once demoted (only a new thread runs at the normal weight)."""
        item: tuple[str, dict[str, Any]] | None = first
        while item is not None:
            if self._run(*item):
                return
            with self._lock:
                if self._closed:
                    return
                self._waiting += 1
            try:
                item = self._handoff.get(timeout=THREAD_IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._waiting > 0:  # unclaimed: leave
                        self._waiting -= 1
                        return
                # A start() claimed this thread as the wait ran out: its run is on the way.
                item = self._handoff.get()

    def cancel(self, run_id: str) -> None:
        with self._lock:
            runtime = self._running.get(run_id)
            if runtime is None and run_id in self._pending:
                self._canceled.add(run_id)
        if runtime is not None:
            runtime.abort(Status.CANCELED)

    def _take(self, run_id: str) -> Runtime:
        """An idle runtime, a new one while fewer than ``runs`` exist, else the next one
        freed (the pool may send a run as soon as it has the last one's end, before that
        runtime's ``prepare`` is over)."""
        with self._freed:
            while not self._idle and self._made >= self._runs:
                self._freed.wait()
            if self._idle:
                runtime = self._idle.pop()
                self._running[run_id] = runtime
                return runtime
            self._made += 1
        try:
            runtime = self._make()
        except BaseException:
            with self._freed:
                self._made -= 1
                self._pending.discard(run_id)
                self._freed.notify()
            raise
        with self._lock:
            self._running[run_id] = runtime
        return runtime

    def _run(self, run_id: str, message: dict[str, Any]) -> bool:
        """Run one job on the calling thread; whether the thread was demoted meanwhile."""
        self._fair.watch()
        try:
            self._run_watched(run_id, message)
        finally:
            demoted = self._fair.forget()
        return demoted

    def _run_watched(self, run_id: str, message: dict[str, Any]) -> None:
        sink = protocol.FrameSink(self._out, tag={"id": run_id})
        try:
            job = protocol.job_from_message(message["job"])
        except (KeyError, TypeError, ValueError) as exc:
            with self._lock:
                self._pending.discard(run_id)
                self._canceled.discard(run_id)
            sink.send({"t": "end", "status": Status.INTERNAL_ERROR.value, "detail": str(exc)})
            return
        runtime: Runtime | None = None
        reported = False
        try:
            runtime = self._take(run_id)
            with self._lock:
                self._pending.discard(run_id)
                canceled = run_id in self._canceled
                self._canceled.discard(run_id)
            if canceled:  # before it began: nothing ran
                report = RunReport(status=Status.CANCELED, usage=Usage())
            else:
                report = runtime.run(job, sink)
            sink.send(protocol.end_message(report))
            reported = True
            with self._lock:
                self._running.pop(run_id, None)
            runtime.prepare()
        except Exception:
            # A host fault in one runtime: that run ends internal_error and the runtime
            # is dropped; the other runs in this process go on.
            traceback.print_exc(file=sys.stderr)
            if not reported:
                sink.send({"t": "end", "status": Status.INTERNAL_ERROR.value, "detail": "host"})
            self._drop(run_id, runtime)
            return
        with self._freed:
            self._idle.append(runtime)
            self._freed.notify()

    def _drop(self, run_id: str, runtime: Runtime | None) -> None:
        with self._freed:
            self._running.pop(run_id, None)
            if runtime is not None:
                self._made -= 1
                self._freed.notify()
        if runtime is not None:
            runtime.close()

    def close(self) -> None:
        self._fair.close()
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, 0
            runtimes = [*self._idle, *self._running.values()]
            self._idle.clear()
        for _ in range(waiting):
            self._handoff.put(None)
        for runtime in runtimes:
            runtime.close()


def serve(
    runtime: Runtime,
    inp: BinaryIO,
    out: BinaryIO,
    *,
    make_runtime: Callable[[], Runtime] | None = None,
    runs: int = 1,
    demotion: Demotion | None = None,
) -> None:
    """Answer the pool until it says exit or closes the pipe.

    With ``runs`` > 1 (and ``make_runtime``), a ``run`` that names itself (``id``) runs on
    a thread of its own in a runtime of its own, up to ``runs`` at once, demoted by
    ``demotion`` once CPU-heavy; ``runtime`` keeps the sessions and anything without an
    id, one at a time, in order.
    """
    out = cast(BinaryIO, _SerialWriter(out))
    sink = protocol.FrameSink(out)
    lanes = (
        _Lanes(make_runtime, runs, out, demotion) if make_runtime is not None and runs > 1 else None
    )
    if lanes is not None:
        lanes.warm()
    jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    # The session whose turn runs now: a cancel naming a session ends only its turn.
    turning: list[str | None] = [None]

    def read_loop() -> None:
        # Reads while the main thread runs a job, so cancels land at once.
        try:
            while (message := protocol.read_frame(inp)) is not None:
                op = message["op"]
                if op == "cancel":
                    named, run_id = message.get("session"), message.get("id")
                    if lanes is not None and run_id is not None and named is None:
                        lanes.cancel(str(run_id))
                    elif named is None or named == turning[0]:
                        runtime.abort(Status.CANCELED)
                elif op == "run" and lanes is not None and message.get("id") is not None:
                    lanes.start(message)
                elif op in _QUEUED_OPS:
                    jobs.put(message)
                else:
                    break
        finally:
            jobs.put(None)

    threading.Thread(target=read_loop, name="sandlot-reader", daemon=True).start()
    sink.send({"t": "ready", "pid": os.getpid(), "runs": runs if lanes is not None else 1})
    try:
        _serve_queued(runtime, jobs, out, turning)
    finally:
        if lanes is not None:
            lanes.close()


def _serve_queued(
    runtime: Runtime,
    jobs: queue.SimpleQueue[dict[str, Any] | None],
    out: BinaryIO,
    turning: list[str | None],
) -> None:
    while (message := jobs.get()) is not None:
        op = message["op"]
        run_id = message.get("id")
        sink = protocol.FrameSink(out, tag=None if run_id is None else {"id": str(run_id)})
        if op == "open":
            _open(runtime, message, sink)
            runtime.prepare()
            continue
        if op == "close":
            if isinstance(runtime, SessionRuntime):
                runtime.close_session(str(message.get("session")))
            continue
        try:
            job = protocol.job_from_message(message["job"])
        except (KeyError, TypeError, ValueError) as exc:
            sink.send({"t": "end", "status": Status.INTERNAL_ERROR.value, "detail": str(exc)})
            continue
        if op == "turn":
            session_id = str(message.get("session"))
            if isinstance(runtime, SessionRuntime):
                turning[0] = session_id
                try:
                    report, alive = runtime.run_turn(session_id, job, sink)
                finally:
                    turning[0] = None
            else:
                report, alive = _no_sessions(), False
            memory = None
            reason = None
            if alive and isinstance(runtime, SessionRuntime):
                memory = runtime.session_memory_bytes(session_id)
            elif (end_reason := getattr(runtime, "session_end_reason", None)) is not None:
                reason = end_reason(session_id)
            sink.send(
                {
                    **protocol.end_message(report),
                    "session_alive": alive,
                    "session_memory_bytes": memory,
                    "session_ended": reason,
                }
            )
        else:
            report = runtime.run(job, sink)
            sink.send(protocol.end_message(report))
        runtime.prepare()


def _open(runtime: Runtime, message: dict[str, Any], sink: protocol.FrameSink) -> None:
    session_id = str(message.get("session"))
    if not isinstance(runtime, SessionRuntime):
        sink.send({"t": "open_failed", "session": session_id, "detail": "no sessions here"})
        return
    tenant = message.get("tenant")
    try:
        runtime.open_session(
            session_id,
            Path(str(message["workdir"])),
            int(message["memory_mb"]),
            tenant=tenant if isinstance(tenant, str) else None,
        )
    except Exception as exc:  # a host fault: the pool reports it, this process lives on
        sink.send({"t": "open_failed", "session": session_id, "detail": str(exc)})
        return
    sink.send({"t": "opened", "session": session_id})


def _no_sessions() -> RunReport:
    return RunReport(
        status=Status.INTERNAL_ERROR,
        usage=Usage(),
        error=GuestError("SessionsUnsupported", "this engine keeps no sessions"),
    )


def serve_process(
    make_runtime: Callable[[], Runtime],
    *,
    make_lane_runtime: Callable[[], Runtime] | None = None,
    runs: int = 1,
    demotion: Demotion | None = None,
) -> None:
    """Run a worker process: protocol on stdout, everything else printed to stderr.

    ``make_lane_runtime`` and ``runs`` > 1: up to ``runs`` runs at once, CPU-heavy ones
    demoted by ``demotion`` (see :func:`serve`).
    """
    # The protocol owns the real stdout; anything libraries print (or a panic
    # message) goes to stderr, which the pool logs.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    runtime = make_runtime()
    try:
        serve(
            runtime,
            sys.stdin.buffer,
            out,
            make_runtime=make_lane_runtime,
            runs=runs,
            demotion=demotion,
        )
    finally:
        runtime.close()
        sys.stderr.flush()
        # Skip interpreter teardown: engine threads (wasmtime's runtime, a
        # Deno child's readers) may still be running, and nothing is left to
        # clean up.
        os._exit(0)


def lane_workdirs(workdir: Path) -> Callable[[], Path]:
    """Each call: a fresh directory beside ``workdir`` (``<name>-r<n>``) for one more runtime.

    Beside, not inside: a runtime empties its own workdir between runs. The pool removes
    them with the worker's (``<name>-*``).
    """
    counter = itertools.count(1)
    lock = threading.Lock()

    def next_dir() -> Path:
        with lock:
            n = next(counter)
        return workdir.with_name(f"{workdir.name}-r{n}")

    return next_dir
