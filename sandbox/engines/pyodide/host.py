"""Host side of the Pyodide engine: drives one Deno process, one run at a time.

A :class:`PyodideRuntime` lives in a worker process (``worker.py``). It starts
Deno (``pyodide-runtime/src/host.mjs``) with the permissions of
:func:`~sandbox.engines.pyodide.deno.host_argv`, keeps the egress gate's
loopback server (:class:`~sandbox.engines.pyodide.gateway.GateServer`) and the
control channel to Deno (:class:`~sandbox.engines.pyodide.control.ControlChannel`,
never Deno's stdio, which guests can reach), and for each job: registers the
run with the gate, hands the job to a pre-restored Pyodide worker inside Deno,
meters its output and enforces its limits.

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

Nothing a guest starts may outlive its run. The worker takes away every way found to
make what Deno's ``terminate()`` can't end (a thread blocked in a wait, a thread of its
own) or to kill Deno itself before guest code runs (``pyodide-runtime/src/lockdown.mjs``,
the import map), and a loop that swallows the interrupt is stopped by the interpreter's
own signal check. The backstops for what that misses: a Web Worker thread the host did
not create ends the run as an ``error`` (``SandboxViolation``) and takes the whole Deno
process with it; so does anything on the control channel that the host never sends;
every worker the host lets go is looked for at each :meth:`PyodideRuntime.prepare`, and
one whose thread is still there ``_WORKER_EXIT_S`` after its end restarts Deno.

Sessions (docs/sessions.md): :meth:`PyodideRuntime.open_session` keeps a spare
worker for the session instead of throwing it away. A turn runs in it like a run
(same limits, same metering of its thread), and ends with the worker parking its
own thread in ``Atomics.wait`` on a buffer only the host holds: nothing the guest
left scheduled runs until the next turn, where it is metered with that turn. The
thread's CPU time while parked is the backstop: a session whose worker used more
than ``_PARKED_CPU_MS`` between turns is ended (``cpu_limit``), by the next turn or
by a watchdog thread, whichever looks first. The worker's in-memory ``/work`` is
kept in step with the session's directory on the host (``mirror.py``). Many idle
sessions share one Deno process (in a worker process, one namespace's: ``tenants.py``); a
turn takes the process like a run does.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import itertools
import json
import logging
import queue
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from sandbox.engines.pyodide import proc
from sandbox.engines.pyodide.control import ControlChannel, HostMessage, ProtocolViolation
from sandbox.engines.pyodide.deno import RuntimeLayout, deno_env, host_argv, host_config
from sandbox.engines.pyodide.gateway import GateServer
from sandbox.engines.pyodide.mirror import DirectoryMirror
from sandbox.errors import EngineUnavailable
from sandbox.events import GuestError, RunReport, Status, Usage
from sandbox.jobs import Job
from sandbox.limits import MIB
from sandbox.outcome import OutputMeter, deliver_outputs, parse_outcome, report
from sandbox.outputs import check_display, guest_files
from sandbox.protocol import FrameSink

__all__ = ["PyodideRuntime"]

log = logging.getLogger(__name__)

_TICK_S = 0.02
_INTERRUPT_GRACE_MS = 500
_KILL_AFTER_S = 2.0
_START_TIMEOUT_S = 60
_STDERR_LINES = 20
# A parked session worker's thread may use this much CPU between turns (it should use
# none: it is blocked in Atomics.wait); more, and the session is ended.
_PARKED_CPU_MS = 50.0
_WATCH_S = 0.5
# What one idle session adds to its Deno process beyond its wasm heap (a V8 isolate with
# Pyodide's JS side: about 38 MiB of JS heap, 80-90 MiB in all, measured; BENCHMARKS.md):
# the memory backstop grows by this plus the session's memory cap.
_SESSION_OVERHEAD_BYTES = 128 * MIB
# A worker the host let go (a run's, a closed session's) has this long for its thread to
# end. Deno's terminate() reaches neither a thread blocked in Atomics.wait nor one
# spinning in a loop (both measured, Deno 2.9.8): one still there after this is
# unreachable, and only a new Deno process frees it (docs/security.md).
_WORKER_EXIT_S = 1.0


@dataclass(slots=True)
class _Session:
    """A session's worker in the Deno host, kept between turns."""

    id: str
    worker: int
    mirror: DirectoryMirror
    memory_cap_bytes: int
    thread: Path | None = None
    parked_cpu_ms: float = 0.0
    memory_bytes: int | None = None


@dataclass(slots=True)
class _RunState:
    id: int
    job: Job
    sink: FrameSink
    meter: OutputMeter
    deadline: float
    abort_status: Status | None = None
    aborted_at: float | None = None
    subrequests: int = 0
    worker: int = 0
    thread: Path | None = None
    created: int = 0
    tasks: int = 0
    cpu_start_ms: float = 0.0
    cpu_ms: float = 0.0
    rss_peak: int = 0
    display_error: str | None = None  # an output the guest sent was malformed
    session: _Session | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
        refill: bool = True,
        memory_backstop_bytes: int = 4096 * MIB,
        session_disk_bytes: int = 512 * MIB,
    ) -> None:
        """``refill`` False: a spare Deno restores at its start is not replaced once taken;
        each later open or run restores its worker then (a tenant's Deno: ``tenants.py``).
        """
        if spares < 1:
            raise ValueError(f"spares must be at least 1, got {spares}")
        self._layout = layout
        self._deno_dir = deno_dir
        self._spares = spares
        self._refill = refill
        self._backstop = memory_backstop_bytes
        self._session_disk_bytes = session_disk_bytes
        # Sessions' workers in the current Deno process; why those that ended since
        # their last turn ended (told to their next turn). Guarded by _sessions_lock:
        # the watchdog thread reads and ends parked ones.
        self._sessions: dict[str, _Session] = {}
        self._ended: dict[str, str] = {}
        self._sessions_lock = threading.Lock()
        self._turning: str | None = None
        self._closed = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._end_reason: str | None = None
        # Workers let go (number -> when), until their threads are seen gone.
        self._letting_go: dict[int, float] = {}
        self._gate = GateServer()
        self._run: _RunState | None = None
        self._run_ids = itertools.count(1)
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: ControlChannel | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._start_deno()

    # -- lifecycle ---------------------------------------------------------

    def _start_deno(self) -> None:
        self._deno_dir.mkdir(parents=True, exist_ok=True)
        channel = ControlChannel()
        self._channel = channel
        argv = host_argv(self._layout, self._gate.address, channel.address)
        config = host_config(
            self._layout, self._gate.address, self._spares, channel.port, channel.nonce
        )
        try:
            self._proc = started = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                # Guests can write to Deno's stdout and stderr: neither carries anything
                # of ours. stderr is kept (last lines) for when Deno itself fails.
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=deno_env(self._deno_dir),
                cwd=self._deno_dir,
            )
        except OSError as exc:
            channel.close()
            raise EngineUnavailable(f"can't start deno: {exc}") from exc
        self._stderr = collections.deque(maxlen=_STDERR_LINES)
        self._letting_go = {}  # worker numbers start again at 1
        if started.stderr is not None:
            threading.Thread(
                target=_keep_tail, args=(started.stderr, self._stderr), daemon=True
            ).start()
        try:
            if started.stdin is not None:
                # Closed at once: a worker that reads stdin later finds nothing.
                with started.stdin as stdin:
                    stdin.write(json.dumps(config).encode())
            channel.accept(_START_TIMEOUT_S, alive=lambda: started.poll() is None)
            channel.start()
            ready: object = channel.messages.get(timeout=_START_TIMEOUT_S)
        except (OSError, ProtocolViolation, TimeoutError, queue.Empty) as exc:
            ready = exc
        if not isinstance(ready, dict) or ready.get("t") != "ready":
            self._kill_deno()
            raise EngineUnavailable(
                f"the Deno host did not start ({ready!r}); its last stderr lines: "
                f"{' | '.join(self._stderr) or '(none)'}"
            )

    def _kill_deno(self) -> None:
        started = self._proc
        if started is not None and started.poll() is None:
            started.kill()
            started.wait()
        if self._channel is not None:
            self._channel.close()

    def _restart_deno(self, why: str) -> None:
        log.warning("restarting the Deno host: %s", why)
        self._kill_deno()
        self._lose_sessions()
        self._start_deno()

    def _lose_sessions(self) -> None:
        """The Deno process is gone: so are its sessions' workers (``crashed``)."""
        with self._sessions_lock:
            for session_id in self._sessions:
                self._ended.setdefault(session_id, "crashed")
            if self._sessions:
                log.warning("%d sessions lost with their Deno process", len(self._sessions))
            self._sessions.clear()

    def prepare(self) -> None:
        """Deno keeps its own spare workers; restart it if it died or kept a run's memory.

        A terminated worker's memory is not always returned at once: a Deno over
        its backstop before a run starts is restarted, so that no run pays for
        the one before it.
        """
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                log.warning("the Deno host exited; last stderr lines: %s", " | ".join(self._stderr))
                self._kill_deno()  # closes its control channel
                self._lose_sessions()
            self._start_deno()
        elif self._rss() > self._backstop_bytes():
            self._restart_deno(f"it kept {self._rss() >> 20} MB after a run")
        elif self._unending_workers():
            self._restart_deno("a worker it let go kept its thread")

    def _unending_workers(self) -> bool:
        """Whether a worker let go still has its thread ``_WORKER_EXIT_S`` after its end.

        Never waits: a thread still ending (usual right after a run: a few ms) is
        looked at again by the next ``prepare``, so at most that second's runs share
        the process with a thread that will never end, before Deno is restarted.
        """
        if not self._letting_go:
            return False
        alive = proc.worker_threads(self._pid())
        for number in [n for n in list(self._letting_go) if n not in alive]:
            self._letting_go.pop(number, None)  # the watchdog may add one meanwhile
        now = time.monotonic()
        stuck = sorted(n for n, t in list(self._letting_go.items()) if now - t >= _WORKER_EXIT_S)
        if stuck:
            log.error(
                "worker threads %s outlived their end by %.1f s; Deno can't end them",
                stuck,
                _WORKER_EXIT_S,
            )
        return bool(stuck)

    def _backstop_bytes(self) -> int:
        """The process's memory backstop: the engine's, plus what its sessions may hold."""
        with self._sessions_lock:
            caps = [s.memory_cap_bytes for s in self._sessions.values()]
        return self._backstop + sum(caps) + len(caps) * _SESSION_OVERHEAD_BYTES

    def close(self) -> None:
        self._closed.set()
        started, channel = self._proc, self._channel
        if channel is not None:
            channel.send({"op": "exit"})
        if started is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                started.wait(timeout=2)
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
        self._send(
            {"op": "abort", "id": run.id, "status": status.value, "graceMs": _INTERRUPT_GRACE_MS}
        )

    def run(self, job: Job, sink: FrameSink) -> RunReport:
        self.prepare()
        report, _ = self._execute(job, sink, None)
        return report

    # -- sessions ----------------------------------------------------------

    def open_session(
        self, session_id: str, workdir: Path, memory_mb: int, *, tenant: str | None = None
    ) -> None:
        """Keep a worker for the session, its ``/work`` mirrored to ``workdir`` (made
        here; it must not exist yet), its wasm heap capped at ``memory_mb`` for life.
        ``tenant`` is not used here: :class:`~sandbox.engines.pyodide.tenants.TenantRuntimes`
        gives each tenant a runtime of its own.

        Raises ValueError for a session id in use or a directory that exists,
        EngineUnavailable when the Deno host can't give a worker.
        """
        if session_id in self._sessions:
            raise ValueError(f"session {session_id} is already open")
        try:
            workdir.mkdir(mode=0o700)
        except FileExistsError:
            raise ValueError(f"session directory {workdir} exists already") from None
        try:
            self.prepare()
            request_id = next(self._run_ids)
            self._send(
                {
                    "op": "open",
                    "id": request_id,
                    "session": session_id,
                    "memoryBytes": memory_mb * MIB,
                }
            )
            opened = self._reply(request_id)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        # The spare it took is replaced now (no guest code has run in it yet).
        self._refill_spares()
        session = _Session(
            id=session_id,
            worker=int(opened["worker"]),
            mirror=DirectoryMirror(workdir, self._session_disk_bytes),
            memory_cap_bytes=memory_mb * MIB,
        )
        session.thread = proc.worker_threads(self._pid()).get(session.worker)
        session.parked_cpu_ms = proc.thread_cpu_ms(session.thread)
        with self._sessions_lock:
            self._sessions[session_id] = session
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch_parked, name="sandlot-parked-watch", daemon=True
            )
            self._watchdog.start()

    def _reply(self, request_id: int) -> HostMessage:
        """The host's ``opened`` for ``request_id``; raises EngineUnavailable otherwise."""
        channel = self._channel
        if channel is None:
            raise EngineUnavailable("the Deno host is not running")
        try:
            message = channel.messages.get(timeout=_START_TIMEOUT_S)
        except queue.Empty:
            message = ProtocolViolation("no answer to an open in time")
        if isinstance(message, dict) and message.get("id") == request_id:
            if message["t"] == "opened":
                return message
            if message["t"] == "end" and message.get("failed"):
                raise EngineUnavailable(f"no Pyodide worker for the session: {message['failed']}")
        log.error("the Deno host answered an open with %s", message)
        self._restart_deno("it did not answer an open")
        raise EngineUnavailable("the Pyodide host failed while opening a session")

    def run_turn(self, session_id: str, job: Job, sink: FrameSink) -> tuple[RunReport, bool]:
        """One turn in the session's worker (``job.limits.memory_mb`` aside: the session's
        cap holds): the report, and whether the session lives on (if not,
        :meth:`session_end_reason` may say why)."""
        self._end_reason = None
        with self._sessions_lock:
            session = self._sessions.get(session_id)
            self._turning = session_id if session is not None else None
        try:
            return self._turn(session_id, session, job, sink)
        finally:
            # Only now: the watchdog must not read this turn's CPU time as parked time.
            self._turning = None

    def _turn(
        self, session_id: str, session: _Session | None, job: Job, sink: FrameSink
    ) -> tuple[RunReport, bool]:
        if session is not None and self._burned_while_parked(session):
            self._drop_session(session, "cpu_limit", close=True)
            session = None
        if session is not None:
            self.prepare()  # a Deno restarted here takes the session with it
            if session_id not in self._sessions:
                session = None
        if session is None:
            reason = self._ended.pop(session_id, "crashed")
            self._end_reason = reason
            return _ended_before(session_id, reason), False
        report, end = self._execute(job, sink, session)
        kept = end.get("kept") is True and session.id in self._sessions
        alive = kept and report.status in (Status.OK, Status.ERROR)
        if alive and session.mirror.over_quota:
            alive, self._end_reason = False, "disk_quota"
        elif report.status in (Status.OK, Status.ERROR) and (
            end.get("violation") or end.get("crashed") or end.get("failed")
        ):
            self._end_reason = "crashed"  # not the code's own os._exit()
        if not alive:
            self._drop_session(session, None, close=kept)
            return report, False
        session.mirror.settle()
        memory = end.get("memoryBytes")
        session.memory_bytes = memory if isinstance(memory, int) and memory > 0 else None
        if session.thread is None:
            session.thread = proc.worker_threads(self._pid()).get(session.worker)
        session.parked_cpu_ms = proc.thread_cpu_ms(session.thread)
        return report, True

    def session_end_reason(self, session_id: str) -> str | None:
        """Why the last turn ended its session, when its status alone doesn't say
        (``crashed``, ``disk_quota``, ``cpu_limit`` used while parked); else None."""
        return self._end_reason

    def close_session(self, session_id: str) -> None:
        """Drop the session's worker. Idempotent."""
        self._ended.pop(session_id, None)
        with self._sessions_lock:
            session = self._sessions.get(session_id)
        if session is not None:
            self._drop_session(session, None, close=True)

    def session_memory_bytes(self, session_id: str) -> int | None:
        """The session's wasm heap after its last turn, bytes (None when unknown)."""
        session = self._sessions.get(session_id)
        return session.memory_bytes if session is not None else None

    def _drop_session(self, session: _Session, reason: str | None, *, close: bool) -> None:
        with self._sessions_lock:
            if self._sessions.pop(session.id, None) is None:
                return
            if reason is not None:
                self._ended[session.id] = reason
        if close:
            self._send({"op": "close", "session": session.id})
            self._let_go(session.worker)

    def _burned_while_parked(self, session: _Session) -> bool:
        used = proc.thread_cpu_ms(session.thread) - session.parked_cpu_ms
        if used > _PARKED_CPU_MS:
            log.warning(
                "session %s: its parked worker used %.0f ms of CPU between turns; ending it",
                session.id,
                used,
            )
            return True
        return False

    def _watch_parked(self) -> None:
        """The backstop between turns: end sessions whose parked worker uses the CPU."""
        while not self._closed.wait(_WATCH_S):
            with self._sessions_lock:
                parked = [s for s in self._sessions.values() if s.id != self._turning]
            for session in parked:
                if not self._burned_while_parked(session):
                    continue
                with self._sessions_lock:
                    # A turn may have begun since: it reads the clock itself.
                    if session.id == self._turning or self._sessions.get(session.id) is not session:
                        continue
                    del self._sessions[session.id]
                    self._ended[session.id] = "cpu_limit"
                self._send({"op": "close", "session": session.id})
                self._let_go(session.worker)

    def _let_go(self, worker: int) -> None:
        """The host ends ``worker`` now: its thread must be gone by the next ``prepare``."""
        if worker:
            self._letting_go[worker] = time.monotonic()

    def _execute(
        self, job: Job, sink: FrameSink, session: _Session | None
    ) -> tuple[RunReport, HostMessage]:
        """Run ``job`` (a turn of ``session``, when given): its report and the host's end."""
        started = time.monotonic()
        run = _RunState(
            id=next(self._run_ids),
            job=job,
            sink=sink,
            meter=OutputMeter(job.limits.output_bytes, sink.output),
            deadline=started + job.limits.wall_ms / 1000,
            session=session,
        )
        token = secrets.token_urlsafe(24)
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
                if session is not None:
                    for change in session.mirror.inbound():
                        self._send({"op": "sync", "session": session.id, **change})
                    request: dict[str, Any] = {"op": "turn", "session": session.id}
                else:
                    request = {"op": "run", "memoryBytes": job.limits.memory_mb * MIB}
                self._send(
                    {
                        **request,
                        "id": run.id,
                        "token": token,
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
                            "figure_format": job.figure_format,
                            "return_files": list(job.return_files),
                            "return_files_max_bytes": job.file_caps.max_bytes,
                            "return_file_max_bytes": job.file_caps.max_file_bytes,
                            "return_files_max_count": job.file_caps.max_count,
                            # What os.statvfs and shutil.disk_usage report as the run's
                            # room: a run's files live in its memory, a session's are
                            # kept in step with its directory on the host.
                            "disk_bytes": (
                                self._session_disk_bytes
                                if session is not None
                                else job.limits.memory_mb * MIB
                            ),
                        },
                    }
                )
                end = self._follow(run)
        finally:
            self._run = None
            run.meter.close()
            sink.flush()
        outcome = parse_outcome(end["outcome"]) if isinstance(end.get("outcome"), str) else None
        aborted = run.abort_status
        files = None
        if outcome is not None and aborted is None and run.display_error is not None:
            outcome = {
                "status": "error",
                "error": {
                    "type": "SandboxOutputError",
                    "message": f"an output was refused: {run.display_error}",
                    "traceback": "",
                },
            }
        if outcome is not None and aborted is None and not end.get("violation"):
            # The guest's file system is in memory: it gathered the files, we check them.
            if job.return_files:
                files = guest_files(outcome.pop("files", None), job.return_files, job.file_caps)
            outcome, aborted = deliver_outputs(outcome, run.meter, sink.display)
        usage = Usage(
            cpu_ms=round(run.cpu_ms, 3),
            wall_ms=round((time.monotonic() - started) * 1000, 3),
            memory_peak_bytes=int(end.get("heapBytes") or 0),
            subrequests=run.subrequests,
            output_bytes=run.meter.used_bytes,
        )
        error = None
        if end.get("violation"):
            # The guest broke a rule of the sandbox: that is the run's error, whatever else.
            outcome, aborted = None, Status.ERROR
            error = GuestError("SandboxViolation", str(end["violation"]))
        elif outcome is None and aborted is None:
            if end.get("crashed"):
                # The guest's code brought its own interpreter down.
                aborted, error = Status.ERROR, _crash_error(str(end["crashed"]))
            else:
                detail = str(end.get("failed") or "the Pyodide worker died")
                error = GuestError("WorkerCrashed", detail)
        ended = report(
            outcome,
            usage,
            aborted=aborted,
            error=error,
            output_truncated=run.meter.truncated,
        )
        if job.return_files:
            ended = replace(ended, files=files or ())
        return ended, end

    def _follow(self, run: _RunState) -> HostMessage:
        """Relay the run's messages until it ends; enforce the limits on every tick."""
        channel = self._channel
        if channel is None:
            raise EngineUnavailable("the Deno host is not running")
        while True:
            try:
                message = channel.messages.get(timeout=_TICK_S)
            except queue.Empty:
                message = {"t": "tick", "id": run.id}
            if message is None:  # Deno died
                self._restart_deno("it exited during a run")
                return {"t": "end"}
            if isinstance(message, ProtocolViolation) or message.get("id") != run.id:
                log.error("the Deno host broke the control protocol: %s", message)
                self._restart_deno("it broke the control protocol")
                return {"t": "end", "failed": "the Pyodide host broke protocol and was restarted"}
            kind = message["t"]
            if kind == "end":
                self._measure(run)
                if run.abort_status is None and time.monotonic() >= run.deadline:
                    # It ended, but after its wall time (a request cut at the deadline).
                    run.abort_status = Status.WALL_LIMIT
                return self._checked_end(run, message)
            if kind == "started":
                if not self._begin(run, message["worker"], message["created"]):
                    return {"t": "end", "violation": _WORKER_VIOLATION}
            elif kind == "out":
                stream = "stderr" if message["s"] == "stderr" else "stdout"
                if not run.meter.write(stream, message["d"].encode()):
                    self.abort(Status.OUTPUT_LIMIT)
            elif kind == "display":
                self._display(run, message["m"], message["d"])
            elif kind in ("file", "dir", "gone"):
                self._changed(run, message)
            if self._foreign_workers(run):
                self._restart_deno("guest code started a Worker")
                return {"t": "end", "violation": _WORKER_VIOLATION}
            self._tick(run)
            if run.aborted_at is not None and time.monotonic() - run.aborted_at > _KILL_AFTER_S:
                # Deno itself did not answer the abort: take the whole process down.
                self._restart_deno("it did not answer an abort")
                return {"t": "end"}

    def _display(self, run: _RunState, mime_type: str, data: str) -> None:
        """One rich output, as the guest made it: checked, counted, sent on."""
        if run.display_error is not None or run.abort_status is not None:
            return
        try:
            output, size = check_display(mime_type, data)
        except ValueError as exc:
            # Guest code can post anything: a malformed output ends the run as its error.
            run.display_error = str(exc)
            return
        if not run.meter.count(size):
            self.abort(Status.OUTPUT_LIMIT)
            return
        run.sink.flush()
        run.sink.display(output)

    def _changed(self, run: _RunState, message: HostMessage) -> None:
        """A file change a turn made under /work: copied to the session's directory."""
        if run.session is None or run.abort_status is not None:
            return  # a run's worker has no business sending these: ignored
        mirror = run.session.mirror
        if message["t"] == "file":
            mirror.receive_file(message["p"], message["d"], message.get("a") is True)
        elif message["t"] == "dir":
            mirror.receive_dir(message["p"])
        else:
            mirror.receive_gone(message["p"])

    def _begin(self, run: _RunState, worker: int, created: int) -> bool:
        """Note the run's worker; False (and a fresh Deno) if its guest already started one.

        The worker's thread may be gone already (a short run ends before its
        ``started`` is read) or not named yet (a spare started just now): then
        ``_measure`` keeps looking for it.
        """
        pid = self._pid()
        threads = proc.worker_threads(pid)
        foreign = proc.foreign_workers(threads, created)
        if foreign:
            # Numbered above every worker the host started, so started after this run's
            # own (an earlier run's would be numbered below): this run's code did it
            # before its ``started`` was read (seen on a loaded machine).
            log.warning(
                "run %d: worker threads %s; the host started workers 1-%d only",
                run.id,
                sorted(threads),
                created,
            )
            self._restart_deno("guest code started a Worker")
            return False
        run.worker, run.created, run.tasks = worker, created, proc.task_count(pid)
        self._find_thread(run, threads)
        return True

    def _find_thread(self, run: _RunState, threads: dict[int, Path] | None = None) -> None:
        if threads is None:
            threads = proc.worker_threads(self._pid())
        run.thread = threads.get(run.worker)
        run.cpu_start_ms = proc.thread_cpu_ms(run.thread)

    def _foreign_workers(self, run: _RunState) -> bool:
        """Whether a worker thread the host did not start exists (scanned when threads change)."""
        if not run.created:
            return False
        pid = self._pid()
        tasks = proc.task_count(pid)
        if tasks == run.tasks:
            return False
        run.tasks = tasks
        foreign = proc.foreign_workers(proc.worker_threads(pid), run.created)
        if foreign:
            log.warning("run %d: worker threads the host did not start: %s", run.id, foreign)
        return bool(foreign)

    def _checked_end(self, run: _RunState, end: HostMessage) -> HostMessage:
        # A Worker started just before the end: its thread exists by now (Deno
        # spawns it inside `new Worker`), so one last full scan catches it. The
        # host starts the next spare only when told to, after this scan.
        pid = self._pid()
        if run.created and proc.foreign_workers(proc.worker_threads(pid), run.created):
            self._restart_deno("guest code started a Worker")
            return {**end, "violation": _WORKER_VIOLATION}
        if run.session is None or end.get("kept") is not True:
            self._let_go(run.worker)  # the host terminated it (a run's, a dropped turn's)
        self._refill_spares()
        return end

    def _tick(self, run: _RunState) -> None:
        run.sink.flush()
        self._measure(run)
        if time.monotonic() >= run.deadline:
            self.abort(Status.WALL_LIMIT)
        elif run.cpu_ms > run.job.limits.cpu_ms:
            self.abort(Status.CPU_LIMIT)
        elif run.rss_peak > self._backstop_bytes():
            log.warning("the Deno host is over its memory backstop; killing it")
            run.abort_status = run.abort_status or Status.MEMORY_LIMIT
            run.aborted_at = 0.0  # restart on this tick's check

    def _measure(self, run: _RunState) -> None:
        if run.thread is None and run.worker:
            self._find_thread(run)
        if run.thread is not None:
            run.cpu_ms = max(run.cpu_ms, proc.thread_cpu_ms(run.thread) - run.cpu_start_ms)
        run.rss_peak = max(run.rss_peak, self._rss())

    def _refill_spares(self) -> None:
        if self._refill:
            self._send({"op": "refill"})

    @property
    def session_count(self) -> int:
        """How many sessions' workers this Deno holds now."""
        with self._sessions_lock:
            return len(self._sessions)

    def _pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    def _rss(self) -> int:
        return proc.rss_bytes(self._pid()) if self._proc is not None else 0

    def _send(self, message: dict[str, Any]) -> None:
        if self._channel is not None:
            self._channel.send(message)


_WORKER_VIOLATION = (
    "the code started a Worker (not allowed: it would outlive the run); "
    "the run was stopped and its interpreter discarded"
)


def _ended_before(session_id: str, reason: str) -> RunReport:
    """The report of a turn for a session that had ended before it began."""
    status = Status(reason) if reason in Status._value2member_map_ else Status.INTERNAL_ERROR
    error = GuestError(
        "SessionEnded", f"session {session_id} ended before this turn began ({reason})"
    )
    return RunReport(status=status, usage=Usage(), error=error)


def _crash_error(detail: str) -> GuestError:
    if "Maximum call stack size exceeded" in detail:
        return GuestError(
            "StackOverflow", "the interpreter's stack was exhausted (recursion too deep)"
        )
    first = detail.strip().splitlines()[0] if detail.strip() else "the interpreter crashed"
    return GuestError("InterpreterCrashed", first)


def _keep_tail(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Drain Deno's stderr, keeping its last lines (guests can write here: never trusted)."""
    with stream:
        for line in stream:
            text = line[:300].decode("utf-8", "replace").rstrip()
            tail.append(text)
            log.debug("deno stderr: %s", text)
