"""The main loop of every engine's worker process.

The pool (``sandbox/pool.py``) starts ``python -m sandbox.engines.<engine>.worker``
and talks to it over stdin/stdout with the frames of ``sandbox/protocol.py``.
:func:`serve_process` owns that conversation; an engine supplies the
:class:`Runtime` that runs one job at a time.

The process is disposable: a crash, a panic or a call blocked inside the
engine is contained here, and the pool kills and replaces the process when a
run overruns its hard deadline.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from sandbox import protocol
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

    def open_session(self, session_id: str, workdir: Path, memory_mb: int) -> None:
        """Make the session's instance with ``workdir`` (made here) at /work; raises on a
        host fault."""

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


_QUEUED_OPS = frozenset({"run", "open", "turn", "close"})


def serve(runtime: Runtime, inp: BinaryIO, out: BinaryIO) -> None:
    """Answer the pool until it says exit or closes the pipe."""
    sink = protocol.FrameSink(out)
    jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    # The session whose turn runs now: a cancel naming a session ends only its turn.
    turning: list[str | None] = [None]

    def read_loop() -> None:
        # Reads while the main thread runs a job, so cancels land at once.
        try:
            while (message := protocol.read_frame(inp)) is not None:
                if message["op"] == "cancel":
                    named = message.get("session")
                    if named is None or named == turning[0]:
                        runtime.abort(Status.CANCELED)
                elif message["op"] in _QUEUED_OPS:
                    jobs.put(message)
                else:
                    break
        finally:
            jobs.put(None)

    threading.Thread(target=read_loop, name="sandlot-reader", daemon=True).start()
    sink.send({"t": "ready", "pid": os.getpid()})
    while (message := jobs.get()) is not None:
        op = message["op"]
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
            if alive and isinstance(runtime, SessionRuntime):
                memory = runtime.session_memory_bytes(session_id)
            sink.send(
                {
                    **protocol.end_message(report),
                    "session_alive": alive,
                    "session_memory_bytes": memory,
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
    try:
        runtime.open_session(session_id, Path(str(message["workdir"])), int(message["memory_mb"]))
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


def serve_process(make_runtime: Callable[[], Runtime]) -> None:
    """Run a worker process: protocol on stdout, everything else printed to stderr."""
    # The protocol owns the real stdout; anything libraries print (or a panic
    # message) goes to stderr, which the pool logs.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    runtime = make_runtime()
    try:
        serve(runtime, sys.stdin.buffer, out)
    finally:
        runtime.close()
        sys.stderr.flush()
        # Skip interpreter teardown: engine threads (wasmtime's runtime, a
        # Deno child's readers) may still be running, and nothing is left to
        # clean up.
        os._exit(0)
