"""Host side of the Pyodide engine: drives one Deno process, one run at a time.

A :class:`PyodideRuntime` lives in a worker process (``worker.py``). It starts
Deno (``pyodide-runtime/src/host.mjs``) with the permissions of
:func:`~sandbox.engines.pyodide.deno.host_argv`, keeps the egress gate's
loopback server (:class:`~sandbox.engines.pyodide.gateway.GateServer`), and for
each job: registers the run with the gate, hands the job to a pre-restored
Pyodide worker inside Deno, meters its output and enforces its limits.

==============  ===============================================================
cpu_ms          the CPU time of the run's Deno worker thread (read from
                /proc every tick); over the limit the run is interrupted
wall_ms         checked every tick; interrupt at the deadline
memory_mb       the worker's wasm heap cannot grow past it (MemoryError);
                the Deno process's resident memory is a backstop (kill)
output_bytes    metered here; over the cap the run is interrupted
subrequests     counted by the gate's budget; one too many ends the run
==============  ===============================================================

"Interrupt" is a KeyboardInterrupt delivered through Pyodide's interrupt
buffer; code that swallows it loses its worker (terminated) after a short
grace; if even Deno does not answer, the whole Deno process is killed and
restarted.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sandbox.engines.pyodide.deno import RuntimeLayout, deno_env, host_argv
from sandbox.engines.pyodide.gateway import GateServer
from sandbox.errors import EngineUnavailable
from sandbox.events import GuestError, RunReport, Status, Usage
from sandbox.jobs import Job
from sandbox.limits import MIB
from sandbox.outcome import OutputMeter, parse_outcome, report
from sandbox.protocol import FrameSink

__all__ = ["PyodideRuntime"]

log = logging.getLogger(__name__)

_TICK_S = 0.02
_INTERRUPT_GRACE_MS = 500
_KILL_AFTER_S = 2.0
_START_TIMEOUT_S = 60
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class _RunState:
    job: Job
    sink: FrameSink
    meter: OutputMeter
    deadline: float
    abort_status: Status | None = None
    aborted_at: float | None = None
    subrequests: int = 0
    thread: Path | None = None
    cpu_start_ms: float = 0.0
    cpu_ms: float = 0.0
    rss_peak: int = 0


class PyodideRuntime:
    """Deno + pre-restored Pyodide workers + the gate; one run at a time.

    ``abort`` may be called from another thread (the worker's reader).
    """

    def __init__(
        self,
        layout: RuntimeLayout,
        deno_dir: Path,
        *,
        spares: int = 1,
        memory_backstop_bytes: int = 4096 * MIB,
    ) -> None:
        if spares < 1:
            raise ValueError(f"spares must be at least 1, got {spares}")
        self._layout = layout
        self._deno_dir = deno_dir
        self._spares = spares
        self._backstop = memory_backstop_bytes
        self._gate = GateServer()
        self._send_lock = threading.Lock()
        self._run: _RunState | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._messages: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._start_deno()

    # -- lifecycle ---------------------------------------------------------

    def _start_deno(self) -> None:
        self._deno_dir.mkdir(parents=True, exist_ok=True)
        argv = host_argv(self._layout, self._gate.address, self._spares)
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=deno_env(self._deno_dir),
                cwd=self._deno_dir,
            )
        except OSError as exc:
            raise EngineUnavailable(f"can't start deno: {exc}") from exc
        self._messages = queue.SimpleQueue()
        stdout = self._proc.stdout
        if stdout is None:
            raise EngineUnavailable("deno was started without a stdout pipe")
        threading.Thread(target=_read_lines, args=(stdout, self._messages), daemon=True).start()
        try:
            ready = self._messages.get(timeout=_START_TIMEOUT_S)
        except queue.Empty:
            ready = None
        if ready is None or ready.get("t") != "ready":
            self._kill_deno()
            raise EngineUnavailable(f"the Deno host did not start (sent {ready!r})")

    def _kill_deno(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def _restart_deno(self) -> None:
        log.warning("restarting the Deno host")
        self._kill_deno()
        self._start_deno()

    def prepare(self) -> None:
        """Deno keeps its own spare workers; restart it if it died or kept a run's memory.

        A terminated worker's memory is not always returned at once: a Deno over
        its backstop before a run starts is restarted, so that no run pays for
        the one before it.
        """
        if self._proc is None or self._proc.poll() is not None:
            self._start_deno()
        elif self._rss() > self._backstop:
            log.warning("the Deno host kept %d MB after a run; restarting it", self._rss() >> 20)
            self._restart_deno()

    def close(self) -> None:
        with self._send_lock:
            proc = self._proc
            if proc is not None and proc.stdin is not None and proc.poll() is None:
                try:
                    proc.stdin.write(b'{"op":"exit"}\n')
                    proc.stdin.flush()
                except OSError:
                    pass
        if proc is not None:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._kill_deno()
        self._gate.close()

    # -- runs --------------------------------------------------------------

    def abort(self, status: Status) -> None:
        """End the current run (if any) soon with ``status``."""
        run = self._run
        if run is None or run.abort_status is not None:
            return
        run.abort_status = status
        run.aborted_at = time.monotonic()
        self._send({"op": "abort", "status": status.value, "graceMs": _INTERRUPT_GRACE_MS})

    def run(self, job: Job, sink: FrameSink) -> RunReport:
        started = time.monotonic()
        run = _RunState(
            job=job,
            sink=sink,
            meter=OutputMeter(job.limits.output_bytes, sink.output),
            deadline=started + job.limits.wall_ms / 1000,
        )
        token = secrets.token_urlsafe(24)
        self.prepare()
        self._run = run

        def budget() -> bool:
            if run.subrequests >= job.limits.subrequests:
                self.abort(Status.SUBREQUEST_LIMIT)
                return False
            run.subrequests += 1
            return True

        try:
            with self._gate.register(
                token, job.egress, deadline=run.deadline, budget=budget, on_record=sink.subrequest
            ):
                self._send(
                    {
                        "op": "run",
                        "token": token,
                        "memoryBytes": job.limits.memory_mb * MIB,
                        "job": {
                            "code": job.code,
                            "stdin": job.stdin,
                            "env": dict(job.env),
                            "files": {
                                name: base64.b64encode(data).decode()
                                for name, data in job.files.items()
                            },
                            "result_max_bytes": job.result_bytes,
                            "requirements": list(job.requirements),
                        },
                    }
                )
                end = self._follow(run)
        finally:
            self._run = None
            run.meter.close()
            sink.flush()
        usage = Usage(
            cpu_ms=round(run.cpu_ms, 3),
            wall_ms=round((time.monotonic() - started) * 1000, 3),
            memory_peak_bytes=int(end.get("heapBytes") or 0),
            subrequests=run.subrequests,
            output_bytes=run.meter.used_bytes,
        )
        outcome = parse_outcome(end["outcome"]) if end.get("outcome") else None
        aborted = run.abort_status
        error = None
        if outcome is None and aborted is None:
            if end.get("crashed"):
                # The guest's code brought its own interpreter down.
                aborted, error = Status.ERROR, _crash_error(str(end["crashed"]))
            else:
                detail = str(end.get("detail") or "the Pyodide worker died")
                error = GuestError("WorkerCrashed", detail)
        return report(
            outcome,
            usage,
            aborted=aborted,
            error=error,
            output_truncated=run.meter.truncated,
        )

    def _follow(self, run: _RunState) -> dict[str, Any]:
        """Relay the run's messages until it ends; enforce the limits on every tick."""
        while True:
            try:
                message = self._messages.get(timeout=_TICK_S)
            except queue.Empty:
                message = {"t": "tick"}
            if message is None:  # Deno died
                self._start_deno()
                return {"t": "end", "status": Status.INTERNAL_ERROR.value, "detail": "Deno exited"}
            kind = message.get("t")
            if kind == "end":
                self._measure(run)
                if run.abort_status is None and time.monotonic() >= run.deadline:
                    # It ended, but after its wall time (a request cut at the deadline).
                    run.abort_status = Status.WALL_LIMIT
                return message
            if kind == "started":
                run.thread = self._worker_thread(int(message["worker"]))
                run.cpu_start_ms = _thread_cpu_ms(run.thread)
            elif kind == "out":
                stream = "stderr" if message.get("s") == "stderr" else "stdout"
                if not run.meter.write(stream, str(message.get("d", "")).encode()):
                    self.abort(Status.OUTPUT_LIMIT)
            self._tick(run)
            if run.aborted_at is not None and time.monotonic() - run.aborted_at > _KILL_AFTER_S:
                # Deno itself did not answer the abort: take the whole process down.
                self._restart_deno()
                return {"t": "end", "status": run.abort_status.value if run.abort_status else ""}

    def _tick(self, run: _RunState) -> None:
        run.sink.flush()
        self._measure(run)
        if time.monotonic() >= run.deadline:
            self.abort(Status.WALL_LIMIT)
        elif run.cpu_ms > run.job.limits.cpu_ms:
            self.abort(Status.CPU_LIMIT)
        elif run.rss_peak > self._backstop:
            log.warning("the Deno host is over its memory backstop; killing it")
            run.abort_status = run.abort_status or Status.MEMORY_LIMIT
            run.aborted_at = 0.0  # restart on this tick's check

    def _measure(self, run: _RunState) -> None:
        if run.thread is not None:
            run.cpu_ms = max(run.cpu_ms, _thread_cpu_ms(run.thread) - run.cpu_start_ms)
        run.rss_peak = max(run.rss_peak, self._rss())

    def _worker_thread(self, number: int) -> Path | None:
        # Deno names its worker threads worker-1, worker-2, ... in creation order.
        proc = self._proc
        if proc is None:
            return None
        wanted = f"worker-{number}"
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            try:
                if (task / "comm").read_text().strip() == wanted:
                    return task
            except OSError:
                continue
        return None

    def _rss(self) -> int:
        proc = self._proc
        if proc is None:
            return 0
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _send(self, message: dict[str, Any]) -> None:
        with self._send_lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                return
            try:
                proc.stdin.write(json.dumps(message).encode() + b"\n")
                proc.stdin.flush()
            except OSError:
                pass  # Deno died; the reader reports it


def _crash_error(detail: str) -> GuestError:
    if "Maximum call stack size exceeded" in detail:
        return GuestError(
            "StackOverflow", "the interpreter's stack was exhausted (recursion too deep)"
        )
    first = detail.strip().splitlines()[0] if detail.strip() else "the interpreter crashed"
    return GuestError("InterpreterCrashed", first)


def _read_lines(stream: IO[bytes], messages: queue.SimpleQueue[dict[str, Any] | None]) -> None:
    try:
        for line in stream:
            try:
                messages.put(json.loads(line))
            except ValueError:
                log.error("the Deno host wrote a line that is not JSON: %.200r", line)
    finally:
        messages.put(None)


def _thread_cpu_ms(task: Path | None) -> float:
    if task is None:
        return 0.0
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) * 1000 / _CLOCK_TICKS
