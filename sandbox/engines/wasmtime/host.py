"""Host side of the wasmtime engine: one fresh component instance per run.

A :class:`GuestRuntime` lives in a worker process (see ``worker.py``). It loads
the precompiled guest once, then for every job creates a new ``Store``,
instantiates the component, calls its ``run`` export and drops everything.
Nothing survives from one run to the next except the read-only stdlib mount.

Each run has two writable directories: its working directory at ``/work`` and a scratch
directory at ``/tmp``, a second host directory beside the first (``<workdir>-tmp``:
never inside ``/work``, where code listing its files would find it). ``prepare`` empties
both before the next instance is made; the run's disk limit counts both.

Sessions are the exception, by request: :meth:`GuestRuntime.open_session` makes a Store
and instance that stay (with the session's own directory at ``/work``, its own ``/tmp``
beside it and its memory cap for life), and each :meth:`GuestRuntime.run_turn` calls into
it again with a job marked ``session``, so the guest keeps its ``__main__``. Limits apply
per turn as per run. A turn that doesn't return normally (a trap: CPU, wall, output,
subrequests, cancel, ``os._exit``) or ends ``memory_limit`` drops the instance: it may
have stopped anywhere.

How each limit is enforced:

==============  ===============================================================
cpu_ms          the CPU clock of the thread running the guest, watched by a
                monitor thread that wakes when the budget could first be spent
                (CPU time never runs ahead of wall time) and interrupts the
                guest through the epoch once it is. Not fuel: metering every
                instruction made CPython code 1.2-2x slower (docs/engines.md)
wall_ms         epoch interruption: the monitor bumps the engine's epoch at
                the deadline; host sleeps and fetches end at the deadline
                too. A call blocked inside WASI is the worker pool's to kill.
memory_mb       ``Store.set_limits(memory_size=...)``: growth fails, the guest
                gets ``MemoryError``
output_bytes    counted in the stdout/stderr callbacks and for each rich
                output (decoded bytes, the ``display`` host import); over the
                cap the run is interrupted and the output kept up to it
subrequests     counted per redirect hop by the egress gate's budget callback;
                over the cap the run ends at once (a host-function trap)
disk            the run's (a session's) directory and its /tmp, counted while the
                guest runs by the disk watch (``diskwatch.py``); over its limit the
                guest is interrupted through the epoch and the run (turn) ends
                ``error`` (DiskQuotaExceeded); a session then ends ``disk_quota``
==============  ===============================================================
"""

from __future__ import annotations

import json
import shutil
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import wasmtime
from wasmtime import component as wc

from sandbox.egress import EgressPolicy, EgressRequest, EgressResponse, Gate, SubrequestRecord
from sandbox.engines.wasmtime.diskwatch import DiskWatch
from sandbox.engines.wasmtime.engine import (
    engine_fingerprint,
    make_engine,
    precompile,
    wasmtime_version,
)
from sandbox.engines.wasmtime.hostcalls import host_call, install
from sandbox.engines.wasmtime.monitor import CpuBudget, Monitor
from sandbox.engines.wasmtime.procfs import ProcMemory
from sandbox.engines.wasmtime.workdir import empty_dir, seed_files
from sandbox.errors import EngineUnavailable
from sandbox.events import Display, GuestError, RunReport, Status, Usage
from sandbox.jobs import Job
from sandbox.limits import MIB, Limits
from sandbox.outcome import OutputMeter, deliver_outputs, parse_outcome, report
from sandbox.outputs import check_display, collect_files
from sandbox.workspace import DiskUsage, Workspace, tmp_beside

# The engine's configuration lives in engine.py; re-exported for the guests' hosts.
__all__ = [
    "GuestRuntime",
    "Sink",
    "engine_fingerprint",
    "make_engine",
    "precompile",
    "wasmtime_version",
]

HOST_INTERFACE = "sandlot:sandbox/host@0.1.0"
GUEST_WORKDIR = "/work"
GUEST_TMP = "/tmp"


class Sink(Protocol):
    """Where a run's streamed events go (the worker's pipe to the pool)."""

    def output(self, stream: str, text: str) -> None: ...

    def subrequest(self, record: SubrequestRecord) -> None: ...

    def display(self, output: Display) -> None: ...

    def flush(self) -> None: ...


class _HttpResponse(wc.Record):
    """The WIT ``http-response`` record handed back to the guest (fields by WIT name)."""

    def __init__(self, status: int, url: str, headers: list[tuple[str, str]], body: str) -> None:
        self.status = status
        self.url = url
        self.headers = headers
        self.body = body


class _Abort(Exception):
    """Raised inside a host function to end the run at once with ``status``."""

    def __init__(self, status: Status) -> None:
        super().__init__(status.value)
        self.status = status


class _HardExit(Exception):
    """Raised inside the ``hard-exit`` host function: the guest called ``os._exit(code)``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class _RunState:
    limits: Limits
    egress: EgressPolicy
    sink: Sink
    deadline: float
    meter: OutputMeter
    abort_event: threading.Event = field(default_factory=threading.Event)
    abort_status: Status | None = None
    subrequests: int = 0
    gate: Gate | None = None
    # Set by the disk watch: the count that found the directory over its quota.
    disk_over: DiskUsage | None = None
    # The run's CPU clock and budget, once armed.
    cpu: CpuBudget | None = None


@dataclass(slots=True)
class _Session:
    """A session's instance, kept between turns."""

    store: wasmtime.Store
    call: Callable[[wasmtime.Store, str], str]
    workdir: Path
    memory: wasmtime.Memory | None = None
    # Its directory and disk quota, once opened (a spare has none yet).
    workspace: Workspace | None = None


# A turn with one of these statuses leaves the instance as the guest left it: kept.
_KEEPS_SESSION = frozenset({Status.OK, Status.ERROR})


@dataclass(frozen=True, slots=True)
class SimpleOutcome:
    status: str
    stdout: str
    detail: str


class GuestRuntime:
    """The loaded guest plus everything needed to run jobs in fresh instances.

    Not thread-safe: one run at a time (a worker process that takes several runs at once
    has one runtime per run thread). ``abort`` may be called from another thread.
    """

    def __init__(
        self,
        precompiled: Path,
        stdlib: Path,
        workdir: Path,
        *,
        stdlib_writable: bool = False,
        resolver: Callable[[str, int], Any] | None = None,
        session_disk_bytes: int | None = None,
        run_disk_bytes: int | None = None,
    ) -> None:
        """``session_disk_bytes``: the most a session's directory may hold while its turns
        run (past it the turn is stopped and the session ends ``disk_quota``); None: not
        watched (the service still counts after each turn). ``run_disk_bytes``: the same
        for a run's working directory (past it the run is stopped); None: not watched."""
        install()  # several runtimes, one per thread, in one process (hostcalls.py)
        self._engine = self._make_engine()
        self._stdlib = str(stdlib)
        self._workdir = workdir
        self._tmp = tmp_beside(workdir)
        for directory in (workdir, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
            empty_dir(directory)
        self._stdlib_writable = stdlib_writable
        self._resolver = resolver
        self._load(precompiled)
        self._monitor = Monitor(self._engine)
        self._session_disk_bytes = session_disk_bytes
        self._run_disk = (
            None if run_disk_bytes is None else Workspace.with_tmp(workdir, run_disk_bytes)
        )
        self._disk_watch = DiskWatch()
        # Why the last turn ended its session, when its status doesn't say (disk_quota).
        self._end_reason: str | None = None
        self._proc_memory = ProcMemory()
        self._run: _RunState | None = None
        self._next: tuple[wasmtime.Store, Callable[[wasmtime.Store, str], str]] | None = None
        # The last run's instance, stopped: dropped by prepare(), after the run is reported
        # (unmapping its pages takes 0.5-0.8 ms).
        self._finished: tuple[wasmtime.Store, Callable[[wasmtime.Store, str], str]] | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._sessions: dict[str, _Session] = {}
        self._sessions_used = False
        self._spare: _Session | None = None

    # -- what differs between guests (sandbox/engines/stack/host.py has the other) --

    def _make_engine(self) -> wasmtime.Engine:
        return make_engine()

    def _load(self, precompiled: Path) -> None:
        """Load the precompiled guest and link its imports."""
        try:
            self._component = wc.Component.deserialize_file(self._engine, str(precompiled))
        except wasmtime.WasmtimeError as exc:
            raise EngineUnavailable(f"can't load {precompiled}: {exc}") from exc
        self._linker = wc.Linker(self._engine)
        self._linker.add_wasip2()
        with self._linker.root() as root, root.add_instance(HOST_INTERFACE) as iface:
            iface.add_func("fetch", host_call(self._host_fetch))
            iface.add_func("sleep", host_call(self._host_sleep))
            iface.add_func("hard-exit", host_call(self._host_hard_exit))
            iface.add_func("display", host_call(self._host_display))

    def _instantiate(self, store: wasmtime.Store) -> Callable[[wasmtime.Store, str], str]:
        """A fresh instance in ``store``, as the call that runs one job (JSON in, JSON out)."""
        instance = self._linker.instantiate(store, self._component)
        func = instance.get_func(store, "run")
        if func is None:
            raise EngineUnavailable("the guest component has no 'run' export")

        def call(store: wasmtime.Store, payload: str) -> str:
            raw: str = func(store, payload)
            func.post_return(store)
            return raw

        return call

    def _memory_limit_bytes(self, limits: Limits) -> int:
        return limits.memory_mb * MIB

    def _mounts(self, wasi: wasmtime.WasiConfig) -> None:
        wasi.preopen_dir(self._stdlib, "/python", self._stdlib_writable)

    def close(self) -> None:
        """Stop the monitor thread and drop the prepared instance and sessions. Idempotent."""
        self._next = self._finished = None
        self._sessions.clear()
        if self._spare is not None:
            _remove_session_dirs(self._spare.workdir)
            self._spare = None
        self._monitor.close()
        self._disk_watch.close()
        self._proc_memory.close()

    def abort(self, status: Status) -> None:
        """End the current run (if any) as soon as possible with ``status``."""
        run = self._run
        if run is None or run.abort_status is not None:
            return
        run.abort_status = status
        run.abort_event.set()
        self._monitor.interrupt()

    def run(self, job: Job, sink: Sink) -> RunReport:
        """Run one job in a fresh instance, with ``job.files`` seeded into the workdir.

        Call :meth:`prepare` after reporting the result so that the next run
        starts at the call.
        """
        started = time.monotonic()
        store, func = self._take_instance()
        seeding_error = seed_files(self._workdir, job.files)
        if seeding_error is not None:
            # The run's error, not the worker's crash; prepare() empties the workdir.
            del store, func
            wall_ms = round((time.monotonic() - started) * 1000, 3)
            return report(seeding_error, Usage(wall_ms=wall_ms))
        store.set_limits(memory_size=self._memory_limit_bytes(job.limits))
        ended, _ = self._call(store, func, job, sink, started, session=False, disk=self._run_disk)
        # Kept until prepare() (close() at the latest): a trapped store alive at interpreter
        # exit makes wasmtime's runtime thread panic.
        self._finished = (store, func)
        if not job.return_files:
            return ended
        # The instance has stopped for good: nothing in the guest can change the workdir
        # while we read.
        return replace(ended, files=collect_files(self._workdir, job.return_files, job.file_caps))

    # -- sessions ----------------------------------------------------------

    def open_session(
        self, session_id: str, workdir: Path, memory_mb: int, *, tenant: str | None = None
    ) -> None:
        """Make a session's instance with ``workdir`` at /work and ``<workdir>-tmp`` at /tmp
        (both made here; neither may exist yet), its linear memory capped at ``memory_mb``
        (on top of the guest's image) for its whole life. ``tenant`` is not used: every
        instance is a Store of its own.

        Once a worker has opened one session it keeps a spare ready, off the request path
        (:meth:`prepare`): an instance already warmed up over directories of its own, which
        an open renames into place (the instance holds the directories open, not their
        names).

        Raises ValueError for a session id in use or a directory that exists,
        EngineUnavailable when the instance can't be made.
        """
        if session_id in self._sessions:
            raise ValueError(f"session {session_id} is already open")
        tmp = tmp_beside(workdir)
        for directory in (workdir, tmp):
            if directory.exists():
                raise ValueError(f"session directory {directory} exists already")
        self._sessions_used = True
        session, self._spare = self._spare, None
        if session is not None:
            spare_dir = session.workdir
            try:
                spare_dir.rename(workdir)
                tmp_beside(spare_dir).rename(tmp)
                session.workdir = workdir
            except OSError:  # another file system: make them the slow way
                _remove_session_dirs(spare_dir)
                _remove_session_dirs(workdir)
                session = None
        if session is None:
            workdir.mkdir(mode=0o700)
            tmp.mkdir(mode=0o700)
            session = self._new_session(workdir)
        session.store.set_limits(memory_size=self._memory_limit_bytes(Limits(memory_mb=memory_mb)))
        if self._session_disk_bytes is not None:
            session.workspace = Workspace.with_tmp(workdir, self._session_disk_bytes)
        self._sessions[session_id] = session

    def _new_session(self, workdir: Path) -> _Session:
        store = wasmtime.Store(self._engine)
        store.set_epoch_deadline(2**62)
        store.set_wasi(self._wasi(workdir))
        try:
            call = self._instantiate(store)
        except wasmtime.WasmtimeError as exc:
            raise EngineUnavailable(f"can't make the session's instance: {exc}") from exc
        return _Session(store, call, workdir, self._memory_export(store))

    def _live_output(self, job: Job) -> bool:
        """Whether the guest must write its output as it comes (else it may hold it back
        until the turn's end, where the host reads it)."""
        return True

    def _memory_export(self, store: wasmtime.Store) -> wasmtime.Memory | None:
        """The linear memory of the instance last made in ``store``, if the guest exports one."""
        return None

    def session_memory_bytes(self, session_id: str) -> int | None:
        """The session's linear memory now, bytes (None when unknown or gone)."""
        session = self._sessions.get(session_id)
        if session is None or session.memory is None:
            return None
        return int(session.memory.data_len(session.store))

    def _prepare_spare(self) -> None:
        spare_dir = self._workdir.with_name(self._workdir.name + "-spare")
        _remove_session_dirs(spare_dir)
        spare_dir.mkdir(mode=0o700)
        tmp_beside(spare_dir).mkdir(mode=0o700)
        self._spare = self._new_session(spare_dir)

    def run_turn(self, session_id: str, job: Job, sink: Sink) -> tuple[RunReport, bool]:
        """One turn in the session's instance (``job.limits.memory_mb`` aside: the session's
        cap holds): the report, and whether the session lives on (if not,
        :meth:`session_end_reason` may say why)."""
        started = time.monotonic()
        self._end_reason = None
        session = self._sessions.get(session_id)
        if session is None:
            error = GuestError("SessionEnded", f"no session {session_id} in this worker")
            return RunReport(Status.INTERNAL_ERROR, Usage(), error=error), False
        seeding_error = seed_files(session.workdir, job.files)
        if seeding_error is not None:
            wall_ms = round((time.monotonic() - started) * 1000, 3)
            return report(seeding_error, Usage(wall_ms=wall_ms)), True
        workdir = session.workdir
        ended, returned = self._call(
            session.store, session.call, job, sink, started, session=True, disk=session.workspace
        )
        alive = returned and ended.status in _KEEPS_SESSION
        if not alive:
            # Dropped at once: a trapped store kept alive makes wasmtime's runtime thread
            # panic at interpreter exit.
            del self._sessions[session_id], session
        if job.return_files:
            # Between turns nothing runs in the guest: the directory holds still while we read.
            ended = replace(ended, files=collect_files(workdir, job.return_files, job.file_caps))
        return ended, alive

    def session_end_reason(self, session_id: str) -> str | None:
        """Why the last turn ended its session when its status alone doesn't say
        (``disk_quota``); else None."""
        return self._end_reason

    def close_session(self, session_id: str) -> None:
        """Drop a session's instance. Idempotent."""
        self._sessions.pop(session_id, None)

    # -- one call into an instance -------------------------------------------

    def _call(
        self,
        store: wasmtime.Store,
        func: Callable[[wasmtime.Store, str], str],
        job: Job,
        sink: Sink,
        started: float,
        *,
        session: bool,
        disk: Workspace | None = None,
    ) -> tuple[RunReport, bool]:
        """Run ``job`` in the instance: its report, and whether the guest returned (no trap).

        ``disk``: a directory the disk watch keeps under its quota while the guest runs.
        """
        limits = job.limits
        run = _RunState(
            limits=limits,
            egress=job.egress,
            sink=sink,
            deadline=started + limits.wall_ms / 1000,
            meter=OutputMeter(limits.output_bytes, sink.output),
        )
        payload = json.dumps(
            {
                "code": job.code,
                "stdin": job.stdin,
                "env": dict(job.env),
                "cwd": GUEST_WORKDIR,
                "result_max_bytes": job.result_bytes,
                "figure_format": job.figure_format,
                "session": session,
                "live": self._live_output(job),
                # What os.statvfs and shutil.disk_usage report as the run's room.
                "disk_bytes": None if disk is None else disk.quota_bytes,
            }
        )
        outcome: dict[str, Any] | None = None
        status: Status | None = None
        crash = ""
        returned = False
        self._run = run
        memory_base = self._proc_memory.reset_peak()
        cpu_started = time.thread_time()
        try:
            store.set_epoch_deadline(1)
            run.cpu = CpuBudget.for_this_thread(limits.cpu_ms)
            self._monitor.arm(run.deadline, sink, run.cpu, lambda: _spent(run))
            if disk is not None:
                self._disk_watch.arm(disk, lambda usage: self._over_disk(run, usage))
            try:
                outcome = parse_outcome(func(store, payload))
                returned = True
            except _Abort as exc:
                status = exc.status
            except (_HardExit, wasmtime.ExitTrap) as exc:
                # os._exit(n) (the guest flushed its output first): exit code n.
                outcome = _exit_outcome(exc.code)
            except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
                status, crash = self._classify_trap(run, exc)
        finally:
            self._disk_watch.disarm()
            self._monitor.disarm()
            cpu_ms = (time.thread_time() - cpu_started) * 1000
            if returned:
                # Kept (a session): no deadline until the next turn arms one.
                store.set_epoch_deadline(2**62)
            self._run = None
            run.meter.close()
            # What output is still buffered leaves with the run's end frame (FrameSink.send).
        if outcome is not None and status is None and run.abort_status is None:
            # Guests without a door for them (the component) hand outputs back at the end.
            outcome, run.abort_status = deliver_outputs(outcome, run.meter, sink.display)
        peak = max(0, self._proc_memory.peak() - memory_base)
        usage = Usage(
            cpu_ms=round(cpu_ms, 3),
            wall_ms=round((time.monotonic() - started) * 1000, 3),
            memory_peak_bytes=peak,
            subrequests=run.subrequests,
            output_bytes=run.meter.used_bytes,
        )
        ended = _report(run, outcome, status, crash, usage)
        if run.disk_over is not None and run.abort_status is Status.ERROR:
            error = _disk_quota_error(run.disk_over, disk, session=session)
            ended = RunReport(Status.ERROR, usage, error, output_truncated=run.meter.truncated)
            if session:
                self._end_reason = "disk_quota"
        return ended, returned and run.abort_status is None

    def _over_disk(self, run: _RunState, usage: DiskUsage) -> None:
        """The disk watch found the directory over its quota: stop the guest (an ``error``
        whose GuestError says why; see _call)."""
        if run.abort_status is None:
            run.disk_over = usage
            self.abort(Status.ERROR)

    def prepare(self) -> None:
        """Get ready for the next run, off the request path: empty the workdir and /tmp,
        instantiate (and, once sessions are used here, make a spare session instance).

        Called by the worker after it has reported a run's end; ``run`` calls it itself
        if it wasn't.
        """
        self._finished = None
        empty_dir(self._workdir)
        empty_dir(self._tmp)
        if self._next is None:
            self._next = self._prepare()
        if self._sessions_used and self._spare is None:
            self._prepare_spare()

    def _take_instance(self) -> tuple[wasmtime.Store, Callable[[wasmtime.Store, str], str]]:
        if self._next is None:
            self.prepare()
        prepared, self._next = self._next, None
        if prepared is None:
            raise EngineUnavailable("the guest instance could not be prepared")
        return prepared

    def _prepare(self) -> tuple[wasmtime.Store, Callable[[wasmtime.Store, str], str]]:
        store = wasmtime.Store(self._engine)
        store.set_epoch_deadline(2**62)
        store.set_wasi(self._wasi())
        return store, self._instantiate(store)

    def run_simple(self, code: str, *, cpu_ms: int, wall_ms: int) -> SimpleOutcome:
        """Run code with no egress and collect stdout (used by the builder)."""
        sink = _CollectingSink()
        limits = Limits(cpu_ms=cpu_ms, wall_ms=wall_ms, memory_mb=1024, output_bytes=MIB)
        job = Job(code=code, limits=limits)
        report = self.run(job, sink)
        detail = report.error.traceback if report.error else "".join(sink.stderr)
        return SimpleOutcome(report.status.value, "".join(sink.stdout), detail)

    # -- per-run plumbing -------------------------------------------------

    def _wasi(self, workdir: Path | None = None) -> wasmtime.WasiConfig:
        """A run's (or, given ``workdir``, a session's) WASI: its directory at /work and
        the one beside it at /tmp, writable; the guest's own mounts."""
        wasi = wasmtime.WasiConfig()
        wasi.stdout_custom = self._on_stdout
        wasi.stderr_custom = self._on_stderr
        wasi.preopen_dir(str(workdir or self._workdir), GUEST_WORKDIR, True)
        wasi.preopen_dir(
            str(self._tmp if workdir is None else tmp_beside(workdir)), GUEST_TMP, True
        )
        self._mounts(wasi)
        return wasi

    def _on_stdout(self, data: bytes) -> int:
        return self._on_output(1, data)

    def _on_stderr(self, data: bytes) -> int:
        return self._on_output(2, data)

    def _on_output(self, fd: int, data: bytes) -> int:
        # Called from inside wasm through C: must never raise.
        run = self._run
        if run is not None and not run.meter.write("stdout" if fd == 1 else "stderr", data):
            self.abort(Status.OUTPUT_LIMIT)
        return len(data)

    def _host_sleep(self, _store: Any, ms: int) -> None:
        run = self._current()
        run.sink.flush()
        now = time.monotonic()
        wanted = now + ms / 1000
        if run.abort_event.wait(max(0.0, min(wanted, run.deadline) - now)):
            raise _Abort(run.abort_status or Status.CANCELED)
        if wanted > run.deadline:
            raise _Abort(Status.WALL_LIMIT)

    def _host_hard_exit(self, _store: Any, code: int) -> None:
        self._current()
        raise _HardExit(code)

    def _host_display(self, _store: Any, mime_type: str, data: str) -> str | None:
        """One rich output: None when sent, or why it was refused (the guest's error).

        Raises _Abort when it would take the run over ``output_bytes``.
        """
        run = self._current()
        try:
            output, size = check_display(mime_type, data)
        except ValueError as exc:
            return str(exc)
        if not run.meter.count(size):
            raise _Abort(Status.OUTPUT_LIMIT)
        run.sink.display(output)
        return None

    def _budget_left(self) -> dict[str, int]:
        """What is left of the current run's CPU and wall time (ms) and output (bytes)."""
        run = self._current()
        cpu_s = run.cpu.left() if run.cpu is not None else 0.0
        return {
            "cpu_ms": max(0, int(cpu_s * 1000)),
            "wall_ms": max(0, int((run.deadline - time.monotonic()) * 1000)),
            "output_bytes": max(0, run.meter.limit_bytes - run.meter.used_bytes),
        }

    def _host_fetch(self, _store: Any, request: Any) -> Any:
        try:
            egress_request = EgressRequest(
                method=request.method,
                url=request.url,
                headers=tuple((str(k), str(v)) for k, v in request.headers),
                body=request.body.encode("latin-1"),
                timeout_ms=getattr(request, "timeout-ms") or None,
                follow_redirects=bool(getattr(request, "follow-redirects")),
            )
        except ValueError as exc:
            return f"invalid request: {exc}"
        response = self._fetch(egress_request)
        if isinstance(response, str):
            return response
        return _HttpResponse(
            status=response.status,
            url=response.url,
            headers=list(response.headers),
            body=response.body.decode("latin-1"),
        )

    def _fetch(self, egress_request: EgressRequest) -> EgressResponse | str:
        """One request through the run's gate: the response, or why it failed.

        Raises _Abort when the run must end (a limit, an abort).
        """
        run = self._current()
        run.sink.flush()
        exceeded = False

        def budget() -> bool:
            nonlocal exceeded
            if run.subrequests >= run.limits.subrequests:
                exceeded = True
                return False
            run.subrequests += 1
            return True

        if run.gate is None:
            run.gate = self._gate(run.egress)
        outcome = run.gate.fetch(egress_request, budget=budget, deadline=run.deadline)
        for record in outcome.records:
            run.sink.subrequest(record)
        if exceeded:
            raise _Abort(Status.SUBREQUEST_LIMIT)
        if run.abort_status is not None:
            raise _Abort(run.abort_status)
        if outcome.response is None:
            if time.monotonic() >= run.deadline:
                raise _Abort(Status.WALL_LIMIT)
            return outcome.error or "request failed"
        return outcome.response

    def _gate(self, policy: EgressPolicy) -> Gate:
        # Loading the CA bundle costs tens of ms: once per worker, not per run.
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        kwargs: dict[str, Any] = {"ssl_context": self._ssl_context}
        if self._resolver is not None:
            kwargs["resolver"] = self._resolver
        return Gate(policy, **kwargs)

    def _current(self) -> _RunState:
        run = self._run
        if run is None:
            raise RuntimeError("host function called outside a run")
        return run

    @staticmethod
    def _classify_trap(
        run: _RunState, exc: wasmtime.WasmtimeError | wasmtime.Trap
    ) -> tuple[Status, str]:
        message = str(exc)
        if run.abort_status is not None:
            return run.abort_status, message
        if "interrupt" in message:
            return Status.WALL_LIMIT, message
        if "call stack exhausted" in message:
            return Status.ERROR, message
        return Status.INTERNAL_ERROR, message


def _disk_quota_error(usage: DiskUsage, disk: Workspace | None, *, session: bool) -> GuestError:
    quota = disk.quota_bytes if disk is not None else 0
    if usage.complete:
        found = f"{usage.file_bytes} bytes in files"
    else:
        found = f"more than {usage.entries} files and directories (or deeper than 32 levels)"
    if session:
        return GuestError(
            "DiskQuotaExceeded",
            f"the session's files (/work and /tmp) went over its disk quota of {quota} bytes "
            f"(SANDLOT_SESSION_DISK_MB) while the turn ran: {found}; the turn was stopped "
            "and the session ended",
        )
    return GuestError(
        "DiskQuotaExceeded",
        f"the run's files (/work and /tmp) went over its disk limit of {quota} bytes "
        f"(SANDLOT_RUN_DISK_MB) while it ran: {found}; the run was stopped",
    )


def _remove_session_dirs(workdir: Path) -> None:
    """Remove a session's (or the spare's) directory and its /tmp, where they exist."""
    for directory in (workdir, tmp_beside(workdir)):
        shutil.rmtree(directory, ignore_errors=True)


def _spent(run: _RunState) -> None:
    """The run's CPU budget is spent (called by the monitor, which then interrupts it)."""
    if run.abort_status is None:
        run.abort_status = Status.CPU_LIMIT
        run.abort_event.set()


def _exit_outcome(code: int) -> dict[str, Any]:
    """A run ended by ``os._exit(code)``: like ``sys.exit(code)``, ``ok`` only for 0."""
    if code == 0:
        return {"status": "ok", "result": None, "exit_code": 0}
    return {
        "status": "error",
        "exit_code": code,
        "error": {"type": "SystemExit", "message": f"exit code {code}", "traceback": ""},
    }


def _report(
    run: _RunState, outcome: dict[str, Any] | None, trap: Status | None, crash: str, usage: Usage
) -> RunReport:
    error = None
    if trap is Status.ERROR and "call stack exhausted" in crash:
        error = GuestError(
            "StackOverflow", "the WebAssembly call stack was exhausted (recursion too deep)"
        )
    elif trap is Status.INTERNAL_ERROR:
        error = GuestError("GuestCrash", crash.strip().splitlines()[-1] if crash else "")
    return report(
        outcome,
        usage,
        aborted=trap or run.abort_status,
        error=error,
        output_truncated=run.meter.truncated,
    )


class _CollectingSink:
    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def output(self, stream: str, text: str) -> None:
        (self.stdout if stream == "stdout" else self.stderr).append(text)

    def subrequest(self, record: SubrequestRecord) -> None:
        pass

    def display(self, output: Display) -> None:
        pass

    def flush(self) -> None:
        pass
