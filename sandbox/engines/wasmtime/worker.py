"""A worker process: runs jobs one at a time in fresh wasmtime instances.

The pool (``sandbox/pool.py``) starts ``python -m sandbox.engines.wasmtime.worker``
and talks to it over stdin/stdout with length-prefixed JSON frames (see
``sandbox/protocol.py``). Messages in: ``run`` (a job), ``cancel`` (the
current run), ``exit``. Messages out: ``ready`` once, then per run any number
of ``out`` and ``sub`` events and one ``end``.

The process is disposable: a crash, a Rust panic or a call blocked inside
WASI is contained here, and the pool kills and replaces the process when a
run overruns its hard deadline.
"""

from __future__ import annotations

import argparse
import base64
import os
import queue
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from sandbox import protocol
from sandbox.egress import EgressPolicy, SubrequestRecord
from sandbox.engines.wasmtime.host import GuestJob, GuestRuntime, RunReport
from sandbox.events import Status
from sandbox.limits import Limits

_FLUSH_AT_BYTES = 16 * 1024


class PipeSink:
    """Coalesces output into few frames; thread-safe (the monitor thread flushes)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._pending_bytes = 0

    def output(self, stream: str, text: str) -> None:
        with self._lock:
            if self._pending and self._pending[-1][0] == stream:
                self._pending[-1] = (stream, self._pending[-1][1] + text)
            else:
                self._pending.append((stream, text))
            self._pending_bytes += len(text)
            if self._pending_bytes >= _FLUSH_AT_BYTES:
                self._flush_locked()

    def subrequest(self, record: SubrequestRecord) -> None:
        with self._lock:
            self._flush_locked()
            self._write_locked({"t": "sub", **asdict(record)})

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._flush_locked()
            self._write_locked(message)

    def _flush_locked(self) -> None:
        for stream, text in self._pending:
            self._write_locked({"t": "out", "s": stream, "d": text})
        self._pending.clear()
        self._pending_bytes = 0

    def _write_locked(self, message: dict[str, Any]) -> None:
        protocol.write_frame(self._out, message)


def job_from_message(message: dict[str, Any]) -> GuestJob:
    egress = message.get("egress") or {}
    return GuestJob(
        code=message["code"],
        limits=Limits(**message["limits"]),
        egress=EgressPolicy.from_strings(
            egress.get("allowed_hosts", []), **egress.get("options", {})
        ),
        stdin=message.get("stdin"),
        env=dict(message.get("env") or {}),
        files={name: base64.b64decode(data) for name, data in (message.get("files") or {}).items()},
    )


def end_message(report: RunReport) -> dict[str, Any]:
    return {
        "t": "end",
        "status": report.status.value,
        "usage": asdict(report.usage),
        "error": asdict(report.error) if report.error else None,
        "result": asdict(report.result) if report.result else None,
        "exit_code": report.exit_code,
        "output_truncated": report.output_truncated,
    }


def serve(runtime: GuestRuntime, inp: BinaryIO, out: BinaryIO) -> None:
    sink = PipeSink(out)
    jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()

    def read_loop() -> None:
        # Reads while the main thread is inside wasm, so cancels land at once.
        try:
            while (message := protocol.read_frame(inp)) is not None:
                if message["op"] == "cancel":
                    runtime.abort(Status.CANCELED)
                elif message["op"] == "run":
                    jobs.put(message)
                else:
                    break
        finally:
            jobs.put(None)

    threading.Thread(target=read_loop, name="sandlot-reader", daemon=True).start()
    sink.send({"t": "ready", "pid": os.getpid()})
    while (message := jobs.get()) is not None:
        try:
            job = job_from_message(message["job"])
        except (KeyError, TypeError, ValueError) as exc:
            sink.send({"t": "end", "status": Status.INTERNAL_ERROR.value, "detail": str(exc)})
            continue
        report = runtime.run(job, sink)
        sink.send(end_message(report))
        runtime.prepare()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--precompiled", type=Path, required=True)
    parser.add_argument("--stdlib", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--fuel-per-ms", type=int, required=True)
    args = parser.parse_args(argv)
    # The protocol owns the real stdout; anything printed by libraries (or a
    # panic message) goes to stderr, which the pool logs.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    runtime = GuestRuntime(
        args.precompiled, args.stdlib, args.workdir, fuel_per_ms=args.fuel_per_ms
    )
    # One throwaway run faults in the code pages every run touches, so the
    # first real job is as fast as the rest.
    runtime.run_simple("pass", cpu_ms=10_000, wall_ms=10_000)
    runtime.prepare()
    try:
        serve(runtime, sys.stdin.buffer, out)
    finally:
        runtime.close()
        sys.stderr.flush()
        # Skip interpreter teardown: wasmtime's runtime threads may panic
        # while Python finalises, and there is nothing left to clean up.
        os._exit(0)


if __name__ == "__main__":
    main()
