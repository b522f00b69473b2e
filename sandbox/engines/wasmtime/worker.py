"""A worker process: runs jobs one at a time in fresh wasmtime instances.

The pool (``sandbox/pool.py``) starts ``python -m sandbox.engines.wasmtime.worker``
and talks to it over stdin/stdout with length-prefixed JSON frames (see
``sandbox/protocol.py``).

The process is disposable: a crash, a Rust panic or a call blocked inside
WASI is contained here, and the pool kills and replaces the process when a
run overruns its hard deadline.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO

from sandbox import protocol
from sandbox.engines.wasmtime.host import GuestRuntime
from sandbox.events import Status


def serve(runtime: GuestRuntime, inp: BinaryIO, out: BinaryIO) -> None:
    sink = protocol.FrameSink(out)
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
            job = protocol.job_from_message(message["job"])
        except (KeyError, TypeError, ValueError) as exc:
            sink.send({"t": "end", "status": Status.INTERNAL_ERROR.value, "detail": str(exc)})
            continue
        report = runtime.run(job, sink)
        sink.send(protocol.end_message(report))
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
