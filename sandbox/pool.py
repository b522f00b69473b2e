"""A pool of disposable worker processes behind the Runner protocol.

Each worker process takes up to ``runs_per_worker`` jobs at once (wasmtime: each on its
own thread in its own runtime, see ``sandbox/engines/serving.py``; one for the others).
The pool hands a job to the least busy worker with a free slot, names it (``id``) on every
frame both ways, relays its events, and guarantees that every run ends:

* the worker reports ``end``: relayed as is;
* the run overruns ``wall_ms + kill_grace_ms`` (a guest blocked inside a WASI
  call, a wedged worker, or a run thread the cores reached late): the run ends
  ``wall_limit`` and its process is retired: a replacement starts at once, the old one
  takes no new run once the replacement is ready, and it is killed when the other runs in
  it have ended (each by its own end or hard deadline), so they don't pay for their
  neighbour;
* the worker dies mid-run (crash, panic, OOM kill): ``internal_error``;
* the caller stops listening (client went away): the worker is told to
  cancel, the run ends ``canceled``, and the worker goes back to the pool
  once it has reported, or is killed if it doesn't within the grace.

The conversation with the worker does not wait for the caller: events are
queued in this process as they arrive, so a caller that reads slowly (or not at
all) never holds a worker past its run's end.

A dead worker is replaced in the background, and the runs it held end
``internal_error``. When every slot is
taken, a caller waits at most ``queue_timeout_ms`` and then gets ``PoolBusy``.

Sessions (engines whose worker keeps instances between calls): :meth:`WorkerPool.open_session`
makes an instance in the worker process with the fewest sessions (with ``session_tenants``:
in an idle process that already holds the tenant's sessions, when there is one), and each
:meth:`WorkerPool.turn` is routed to that process (affinity), where it waits for the
process like any run: one queue, first come first served; opens and turns then run one at
a time in their process (its session lane). A session pins no process:
an idle session is memory in its worker, nothing more. A turn ending anything but
``ok`` or ``error`` ends the session (the worker drops its instance); a worker that dies,
or is killed at a turn's or a run's hard deadline, takes its sessions with it
(``crashed``, or the turn's own status for the session whose turn overran).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sandbox import protocol
from sandbox.budget import MemoryBudget
from sandbox.egress import redact_url
from sandbox.errors import (
    EngineUnavailable,
    PoolBusy,
    RunnerClosed,
    SessionEnded,
    SessionsUnsupported,
)
from sandbox.events import (
    End,
    Event,
    GuestError,
    Started,
    Status,
    Subrequest,
    Usage,
)
from sandbox.jobs import Job
from sandbox.runner import Packages

__all__ = ["PoolConfig", "PoolSession", "WorkerPool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Engine-wide settings of a worker pool.

    Attributes:
        command: argv that starts one worker (the workdir flag is appended).
        size: number of worker processes.
        scratch_dir: parent directory of the workers' private working dirs.
        queue_timeout_ms: how long a job may wait for a free worker.
        kill_grace_ms: how far past ``wall_ms`` a run may go before its
            worker process is killed.
        start_timeout_ms: how long a new worker may take to report ready.
        sessions: whether the workers keep sessions (the ``open``/``turn``/``close``
            frames); pools of engines without them refuse :meth:`WorkerPool.open_session`.
        runs_per_worker: runs one worker process takes at once (each on its own thread
            in its own instance; the worker must have been started to take as many).
            Session turns and opens stay one at a time per process.
        memory_budget_mb: what the runs in progress may ask for together (the sum of
            their ``memory_mb``); a run past it waits like one past the slots, then
            ``PoolBusy`` (reason ``memory``). None: no budget. Sessions are not counted
            (the service budgets their memory apart).
        session_tenants: place a tenant's new session in a process that holds (or held
            within ``_TENANT_AFFINITY_S``) that tenant's sessions, when one is idle: for
            engines that keep each tenant's sessions apart at a cost per tenant and
            process (Pyodide: a Deno process each).
    """

    command: tuple[str, ...]
    size: int
    scratch_dir: Path
    queue_timeout_ms: int = 2_000
    kill_grace_ms: int = 2_000
    start_timeout_ms: int = 60_000
    env: Mapping[str, str] | None = None
    sessions: bool = False
    runs_per_worker: int = 1
    memory_budget_mb: int | None = None
    session_tenants: bool = False

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("command must not be empty")
        if self.memory_budget_mb is not None and self.memory_budget_mb < 1:
            raise ValueError(f"memory_budget_mb must be at least 1, got {self.memory_budget_mb}")
        for name in (
            "size",
            "queue_timeout_ms",
            "kill_grace_ms",
            "start_timeout_ms",
            "runs_per_worker",
        ):
            value = getattr(self, name)
            if value < 1 and not (name == "queue_timeout_ms" and value == 0):
                raise ValueError(f"{name} must be at least 1, got {value}")


class _WorkerDied(Exception):
    """The worker process ended (or stopped making sense) mid-conversation."""


# How long a worker may take to make a session's instance (instantiate + a warm-up turn,
# milliseconds when the machine is calm).
_OPEN_TIMEOUT_S = 30.0
# How long after a tenant's last session in a process ended that process is still
# preferred for the tenant's next one (the Pyodide worker stops a tenant's Deno 30 s after).
_TENANT_AFFINITY_S = 30.0


@dataclass(eq=False, slots=True)
class PoolSession:
    """A session's instance, living in one worker process of the pool.

    ``ended`` is None while the instance lives, then why it is gone: the status of the
    turn that ended it (``cpu_limit``, ``wall_limit``, ``memory_limit``, ``output_limit``,
    ``subrequest_limit``, ``canceled``), ``crashed`` (its worker process died), or
    ``closed``. ``memory_bytes``: its linear memory after its last turn, when the engine
    says.
    """

    id: str
    worker: _Worker
    ended: str | None = None
    turning: bool = False
    memory_bytes: int | None = None
    tenant: str | None = None


class _Worker:
    """Parent-side handle of one worker process."""

    _ids = itertools.count(1)

    def __init__(self, config: PoolConfig) -> None:
        self.id = next(self._ids)
        self.workdir = config.scratch_dir / f"w{self.id}-{secrets.token_hex(4)}"
        self._config = config
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        # Whole frames only: a reader task owns the pipe, so a caller
        # cancelled mid-wait never leaves half a frame behind.
        self._inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        # Frames naming a run (``id``) go to that run's channel.
        self._channels: dict[str, asyncio.Queue[dict[str, Any] | None]] = {}
        self.exited = asyncio.Event()
        self.slots = config.runs_per_worker
        # Runs, turns and opens claimed on this process (at most ``slots``).
        self.active = 0
        # Session opens and turns run one at a time in the process: held for each.
        self.session_lane = asyncio.Lock()
        self.retired = False
        # Slots given up on (a run that overran its hard deadline, a cancel never
        # answered): they never come back, and a retired worker doesn't wait for them.
        self.abandoned = 0
        # Set whenever a slot comes back (a retired worker waits for its runs to end).
        self.slot_freed = asyncio.Event()
        self.runs = 0
        # When it last gave a slot back (monotonic): a worker that has just answered is
        # making its next instance, so a tie goes to the one that answered longest ago.
        self.released_at = 0.0
        self.sessions: dict[str, PoolSession] = {}
        # Tenant -> when its last session here ended (monotonic).
        self.tenants_left: dict[str, float] = {}

    def holds_tenant(self, tenant: str, now: float) -> bool:
        """Whether this process holds the tenant's sessions, or did a moment ago."""
        if any(s.tenant == tenant for s in self.sessions.values()):
            return True
        left = self.tenants_left.get(tenant)
        return left is not None and now - left < _TENANT_AFFINITY_S

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def busy(self) -> bool:
        return self.active > 0

    def open_channel(self, run_id: str) -> None:
        channel: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        if self.exited.is_set():
            channel.put_nowait(None)
        self._channels[run_id] = channel

    def close_channel(self, run_id: str) -> None:
        self._channels.pop(run_id, None)

    async def receive_for(self, run_id: str) -> dict[str, Any]:
        """The next frame of run ``run_id`` (its channel must be open)."""
        channel = self._channels[run_id]
        message = await channel.get()
        if message is None:
            channel.put_nowait(None)
            raise _WorkerDied("worker closed its output")
        return message

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._config.command,
                "--workdir",
                str(self.workdir),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(self._config.env) if self._config.env is not None else None,
                limit=protocol.MAX_FRAME_BYTES,
            )
        except OSError as exc:
            raise EngineUnavailable(f"can't start a sandbox worker: {exc}") from exc
        self._stderr_task = asyncio.create_task(self._log_stderr())
        self._reader_task = asyncio.create_task(self._read_frames())
        try:
            async with asyncio.timeout(self._config.start_timeout_ms / 1000):
                ready = await self.receive()
        except (TimeoutError, _WorkerDied) as exc:
            await self.kill()
            raise EngineUnavailable(
                f"sandbox worker {self.id} did not start (see the log for its stderr)"
            ) from exc
        if ready.get("t") != "ready":
            await self.kill()
            raise EngineUnavailable(f"sandbox worker {self.id} sent {ready!r} instead of ready")
        log.debug("worker %d ready (pid %s)", self.id, ready.get("pid"))

    async def send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or not self.alive:
            raise _WorkerDied("worker is not running")
        try:
            proc.stdin.write(protocol.encode(message))
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise _WorkerDied(str(exc)) from exc

    async def receive(self) -> dict[str, Any]:
        message = await self._inbox.get()
        if message is None:
            self._inbox.put_nowait(None)  # stay dead for later receivers
            raise _WorkerDied("worker closed its output")
        return message

    async def _read_frames(self) -> None:
        proc = self._proc
        try:
            if proc is None or proc.stdout is None:
                return
            while (message := await protocol.read_frame_async(proc.stdout)) is not None:
                run_id = message.get("id")
                if run_id is None:
                    self._inbox.put_nowait(message)
                elif (channel := self._channels.get(str(run_id))) is not None:
                    channel.put_nowait(message)
                # else: a late frame of a run nobody follows any more
        except protocol.ProtocolError as exc:
            log.error("worker %d sent a bad frame: %s", self.id, exc)
        finally:
            self._inbox.put_nowait(None)
            for channel in self._channels.values():
                channel.put_nowait(None)
            self.exited.set()

    async def kill(self) -> None:
        """Kill the process and remove its workdir. Idempotent."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()  # now, not when the loop may be gone (its __del__ warns)
        for task in (self._reader_task, self._stderr_task):
            if task is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 1)
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)
        # Where an engine keeps a run's /tmp and a spare session instance's directories
        # (GuestRuntime: <name>-tmp, <name>-spare, <name>-spare-tmp).
        # And each further runtime's, when it runs several at once (serving.lane_workdirs).
        for extra in self.workdir.parent.glob(self.workdir.name + "-*"):
            await asyncio.to_thread(shutil.rmtree, extra, True)

    async def stop(self) -> None:
        """Ask the worker to exit; kill it if it doesn't within a second."""
        with contextlib.suppress(_WorkerDied):
            await self.send({"op": "exit"})
        if self._proc is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self._proc.wait()
        await self.kill()

    async def _log_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        while line := await proc.stderr.readline():
            log.warning("worker %d: %s", self.id, line.decode(errors="replace").rstrip())


class WorkerPool:
    """A Runner backed by worker processes of one engine."""

    def __init__(self, name: str, config: PoolConfig, packages: Packages | None = None) -> None:
        self.name = name
        self.packages = packages
        self._config = config
        # Idle workers, and callers waiting for one (any, or a session's own) in order.
        self._idle: list[_Worker] = []
        self._waiters: collections.deque[tuple[_Worker | None, asyncio.Future[_Worker]]] = (
            collections.deque()
        )
        self._workers: set[_Worker] = set()
        # Retired workers with runs still going in them (killed when those end).
        self._retiring: set[_Worker] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._started = False
        self._memory = MemoryBudget(config.memory_budget_mb)

    @property
    def ready(self) -> bool:
        return self._started and not self._closed and any(w.alive for w in self._workers)

    @property
    def size(self) -> int:
        return self._config.size

    @property
    def sessions(self) -> bool:
        """Whether this pool's workers keep sessions."""
        return self._config.sessions

    async def start(self) -> None:
        """Start every worker; raise EngineUnavailable if none can start."""
        if self._started:
            return
        self._config.scratch_dir.mkdir(parents=True, exist_ok=True)
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self._config.size)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if len(failures) == len(results):
            raise EngineUnavailable(f"no {self.name} worker could start: {failures[0]}")
        for failure in failures:
            log.error("a %s worker failed to start: %s", self.name, failure)
            self._respawn_later()
        self._started = True
        log.info("%s pool started with %d workers", self.name, len(self._workers))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(
            *(w.stop() for w in list(self._workers)),
            *(w.kill() for w in list(self._retiring)),
            return_exceptions=True,
        )
        self._workers.clear()
        self._retiring.clear()

    async def run(self, job: Job) -> AsyncIterator[Event]:
        if self._closed:
            raise RunnerClosed(f"the {self.name} runner is closed")
        memory_mb = job.limits.memory_mb
        deadline = asyncio.get_running_loop().time() + self._config.queue_timeout_ms / 1000
        await self._memory.reserve(memory_mb, deadline, self._config.queue_timeout_ms)
        try:
            worker = await self._acquire(deadline=deadline)
        except BaseException:
            self._memory.release(memory_mb)
            raise
        request = {"op": "run", "job": protocol.job_message(job)}
        async for event in self._relay(worker, job, request, None, None, memory_mb):
            yield event

    @property
    def memory_in_use_mb(self) -> int:
        """The ``memory_mb`` of the runs in progress, together."""
        return self._memory.in_use_mb

    # -- sessions ----------------------------------------------------------

    async def open_session(
        self, session_id: str, workdir: Path, memory_mb: int, *, tenant: str | None = None
    ) -> PoolSession:
        """Make a session's instance in the worker process holding the fewest sessions
        (with ``session_tenants``, one holding ``tenant``'s first, when one is idle).

        ``workdir`` (the worker makes it; it must not exist) is mounted at /work for every
        turn (and, on the wasmtime engine, ``<workdir>-tmp`` beside it at /tmp);
        ``memory_mb`` caps the instance's linear memory for its whole life (on top of the
        guest's own image). ``tenant`` (who owns it: a namespace, say) goes to the
        worker, which may keep different tenants' sessions apart.
        Waits for a worker like a run. Raises SessionsUnsupported, PoolBusy, RunnerClosed,
        or EngineUnavailable when the worker could not make it.
        """
        if not self._config.sessions:
            raise SessionsUnsupported(f"the {self.name} engine keeps no sessions")
        if self._closed:
            raise RunnerClosed(f"the {self.name} runner is closed")
        worker = await self._acquire(fewest_sessions=True, tenant=tenant)
        try:
            await self._enter_lane(worker)
        except BaseException:  # PoolBusy, or the caller gave up while waiting
            self._release(worker, ran=False)
            raise
        release = False
        try:
            opening: dict[str, Any] = {
                "op": "open",
                "session": session_id,
                "workdir": str(workdir),
                "memory_mb": memory_mb,
            }
            if tenant is not None:
                opening["tenant"] = tenant
            await worker.send(opening)
            async with asyncio.timeout(_OPEN_TIMEOUT_S):
                answer = await worker.receive()
            if answer.get("t") != "opened" or answer.get("session") != session_id:
                release = answer.get("t") == "open_failed"
                raise EngineUnavailable(
                    f"a {self.name} worker could not open a session: "
                    f"{answer.get('detail') or answer.get('t')!r}"
                )
            release = True
        except (TimeoutError, _WorkerDied) as exc:
            raise EngineUnavailable(
                f"a {self.name} worker failed while opening a session ({exc or 'timed out'})"
            ) from exc
        finally:
            worker.session_lane.release()
            if release:
                self._release(worker)
            else:
                self._track(self._replace(worker))
        session = PoolSession(session_id, worker, tenant=tenant)
        worker.sessions[session_id] = session
        log.info("session %s opened on %s worker %d", session_id, self.name, worker.id)
        return session

    async def turn(self, session: PoolSession, job: Job) -> AsyncIterator[Event]:
        """Events of one turn in ``session``: like :meth:`run`, on the session's process.

        ``job.limits.memory_mb`` is not used (the session's own cap is). After the End,
        ``session.ended`` says whether the turn ended the session. Raises SessionEnded
        (before any event) if the session has ended, PoolBusy if its process stays busy
        for the whole queue wait.
        """
        if self._closed:
            raise RunnerClosed(f"the {self.name} runner is closed")
        if session.ended is not None:
            raise SessionEnded(session.ended)
        worker = await self._acquire(session=session)
        try:
            await self._enter_lane(worker)
        except BaseException:  # PoolBusy, or the caller gave up while waiting
            self._release(worker, ran=False)
            raise
        request = {"op": "turn", "session": session.id, "job": protocol.job_message(job)}
        async for event in self._relay(worker, job, request, session, worker.session_lane):
            yield event

    async def close_session(self, session: PoolSession) -> None:
        """Drop the session's instance. Idempotent; never waits for its process to be idle.

        A turn under way is canceled (it ends ``canceled``); the worker reads the close
        after it.
        """
        if session.ended is None:
            session.ended = "closed"
        if session.turning and session.worker.alive:
            with contextlib.suppress(_WorkerDied):
                await session.worker.send({"op": "cancel", "session": session.id})
        await self._forget(session)

    async def _forget(self, session: PoolSession) -> None:
        worker = session.worker
        if worker.sessions.pop(session.id, None) is None:
            return
        if session.tenant is not None:
            now = time.monotonic()
            left = worker.tenants_left
            for gone in [t for t, at in left.items() if now - at >= _TENANT_AFFINITY_S]:
                del left[gone]
            left[session.tenant] = now
        if worker.alive:
            with contextlib.suppress(_WorkerDied):
                await worker.send({"op": "close", "session": session.id})

    def _end_session(self, session: PoolSession | None, reason: str) -> None:
        if session is not None and session.ended is None:
            session.ended = reason
            log.info("session %s ended: %s", session.id, reason)
        if session is not None:
            self._track(self._forget(session))

    async def _enter_lane(self, worker: _Worker) -> None:
        """Take the worker's session lane, waiting at most the queue wait (PoolBusy)."""
        try:
            async with asyncio.timeout(self._config.queue_timeout_ms / 1000):
                await worker.session_lane.acquire()
        except TimeoutError:
            raise PoolBusy(self._config.queue_timeout_ms) from None

    async def _relay(
        self,
        worker: _Worker,
        job: Job,
        request: dict[str, Any],
        session: PoolSession | None,
        lane: asyncio.Lock | None,
        memory_mb: int = 0,
    ) -> AsyncIterator[Event]:
        """Relay one run or turn on ``worker`` (claimed); ``lane`` (held) and the run's
        ``memory_mb`` (reserved) are released at its end."""
        run_id = "run_" + secrets.token_hex(8)
        request = {**request, "id": run_id}
        log.info(
            "run %s on %s worker %d%s: %d bytes of code, %d files",
            run_id,
            self.name,
            worker.id,
            f" (session {session.id})" if session is not None else "",
            len(job.code),
            len(job.files),
        )
        # The conversation with the worker runs apart from the caller, so the worker goes
        # back to the pool at its End (at the latest wall_ms + kill_grace_ms) however slowly
        # the caller reads. The events wait here meanwhile: at most the run's output cap
        # (the worker enforces it), the result and the subrequest log.
        events: asyncio.Queue[Event] = asyncio.Queue()
        # Started eagerly, so it is inside its try block before anyone can cancel it: a
        # task canceled before its first step would never run the finally that frees
        # the worker.
        conversation = asyncio.Task(
            self._converse(worker, job, request, run_id, events, session, lane, memory_mb),
            loop=asyncio.get_running_loop(),
            eager_start=True,
        )
        self._background.add(conversation)
        conversation.add_done_callback(self._background.discard)
        try:
            yield Started(run_id=run_id, engine=self.name)
            while True:
                event = await events.get()
                yield event
                if isinstance(event, End):
                    return
        finally:
            # The caller stopped listening before the End: cancel the run (a no-op once
            # the worker has reported its end).
            conversation.cancel()

    async def _converse(
        self,
        worker: _Worker,
        job: Job,
        request: dict[str, Any],
        run_id: str,
        events: asyncio.Queue[Event],
        session: PoolSession | None,
        lane: asyncio.Lock | None,
        memory_mb: int,
    ) -> None:
        """Run ``request`` on ``worker`` to its End, putting each event on ``events``."""
        started = time.monotonic()
        hard_deadline = started + (job.limits.wall_ms + self._config.kill_grace_ms) / 1000
        end: End | None = None
        release = True
        overran = False
        if session is not None:
            session.turning = True
        worker.open_channel(run_id)
        try:
            try:
                await worker.send(request)
                async with asyncio.timeout_at(_loop_time(hard_deadline)):
                    while end is None:
                        message = await worker.receive_for(run_id)
                        try:
                            batch = protocol.events_from_message(message)
                        except protocol.ProtocolError as exc:
                            raise _WorkerDied(str(exc)) from exc
                        for event in batch:
                            if isinstance(event, End):
                                end = event
                                if session is not None and not message.get("session_alive"):
                                    self._end_session(
                                        session, _ended_by(end.status, message.get("session_ended"))
                                    )
                                elif session is not None:
                                    memory = message.get("session_memory_bytes")
                                    if isinstance(memory, int):
                                        session.memory_bytes = memory
                            elif isinstance(event, Subrequest):
                                _log_subrequest(run_id, event)
                            events.put_nowait(event)
            except TimeoutError:
                log.warning(
                    "run %s overran its hard deadline; retiring worker %d", run_id, worker.id
                )
                release = False
                overran = True
                self._end_session(session, Status.WALL_LIMIT.value)
                end = _synthetic_end(Status.WALL_LIMIT, started)
                events.put_nowait(end)
            except _WorkerDied as exc:
                log.error("run %s: worker %d died: %s", run_id, worker.id, exc)
                release = False
                self._end_session(session, "crashed")
                end = _synthetic_end(
                    Status.INTERNAL_ERROR,
                    started,
                    GuestError("WorkerCrashed", "the sandbox worker process died during the run"),
                )
                events.put_nowait(end)
        finally:
            if session is not None:
                session.turning = False
            if end is None:
                # Canceled: the caller stopped listening. Cancel, then recycle the worker.
                # A canceled turn ends its session (the instance stopped mid-way).
                log.info("run %s canceled by the caller", run_id)
                self._end_session(session, Status.CANCELED.value)
                self._track(
                    self._cancel_and_release(
                        worker, run_id, session, lane, hard_deadline, memory_mb
                    )
                )
            else:
                self._memory.release(memory_mb)
                worker.close_channel(run_id)
                if lane is not None:
                    lane.release()
                if release:
                    self._release(worker)
                elif overran:
                    self._retire(worker)
                else:
                    self._track(self._replace(worker))
            log.info(
                "run %s ended: %s in %.1f ms",
                run_id,
                end.status.value if end else "canceled",
                (time.monotonic() - started) * 1000,
            )

    async def _acquire(
        self,
        *,
        session: PoolSession | None = None,
        fewest_sessions: bool = False,
        tenant: str | None = None,
        deadline: float | None = None,
    ) -> _Worker:
        """An idle worker (the session's own, when given), waiting at most the queue wait.

        Callers are served in arrival order, whichever worker they wait for. Raises PoolBusy
        at the end of the wait, SessionEnded if the session's worker dies meanwhile.
        """
        want = session.worker if session is not None else None
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self._config.queue_timeout_ms / 1000
        while True:
            worker = self._take_idle(want, fewest_sessions, tenant)
            if worker is None:
                worker = await self._wait_for_worker(want, deadline)
            if worker.alive and not worker.retired:
                return worker
            # A retired worker was never claimed (only handed back to say it is gone).
            self._track(self._replace(worker, abandon=False))
            if session is not None:
                raise SessionEnded(session.ended or "crashed")

    def _take_idle(
        self, want: _Worker | None, fewest_sessions: bool, tenant: str | None = None
    ) -> _Worker | None:
        # Every worker with a free slot is one no waiting caller wants (_offer hands slots
        # out first), so taking one here jumps no queue.
        if not self._idle:
            return None
        if want is not None:
            if want not in self._idle:
                return None
            worker = want
        elif fewest_sessions:
            now = time.monotonic()
            together = tenant is not None and self._config.session_tenants
            worker = min(
                self._idle,
                key=lambda w: (
                    together and not w.holds_tenant(tenant or "", now),
                    len(w.sessions),
                    w.active,
                ),
            )
        else:
            # Spread the load; among equals, not the worker still preparing its next
            # instance after the last answer (it would share its GIL with this run).
            worker = min(self._idle, key=lambda w: (w.active, w.released_at))
        self._claim(worker)
        return worker

    def _claim(self, worker: _Worker) -> None:
        worker.active += 1
        if worker.active >= worker.slots:
            with contextlib.suppress(ValueError):
                self._idle.remove(worker)

    async def _wait_for_worker(self, want: _Worker | None, deadline: float) -> _Worker:
        if want is not None and (want.retired or not want.alive):
            return want  # the caller sees it is gone
        future: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        entry = (want, future)
        self._waiters.append(entry)
        handed = False
        try:
            async with asyncio.timeout_at(deadline):
                worker = await future
            handed = True
            return worker
        except TimeoutError:
            raise PoolBusy(self._config.queue_timeout_ms) from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)
            if not handed and future.done() and not future.cancelled():
                # Handed a slot just as we gave up: pass it on.
                self._release(future.result(), ran=False)

    def _offer(self, worker: _Worker) -> None:
        """Give the worker's free slots to the first callers waiting for it; keep the rest."""
        for entry in list(self._waiters):
            if worker.active >= worker.slots:
                return
            want, future = entry
            if future.done() or (want is not None and want is not worker):
                continue
            self._waiters.remove(entry)
            self._claim(worker)
            future.set_result(worker)
        if worker.active < worker.slots and worker not in self._idle:
            self._idle.append(worker)

    async def _spawn(self) -> None:
        worker = _Worker(self._config)
        self._workers.add(worker)
        try:
            await worker.start()
        except BaseException:
            # Also when the pool closes mid-start (the task is canceled): no process of
            # ours outlives the pool.
            self._workers.discard(worker)
            await worker.kill()
            raise
        if self._closed:
            await worker.stop()
            self._workers.discard(worker)
            return
        self._track(self._watch(worker))
        self._offer(worker)

    def _retire(self, worker: _Worker) -> None:
        """Give up a claimed slot of ``worker`` whose run overran, and retire the worker:
        a replacement starts now; once it is ready the worker takes no new run, and it is
        killed when the runs still going in it have ended (make before break: the pool
        never has fewer processes taking runs than before)."""
        worker.abandoned += 1
        worker.slot_freed.set()
        if worker in self._retiring or worker.retired:
            return
        # Before the task starts: close() kills what is in here, even a task never run.
        self._retiring.add(worker)
        self._track(self._retire_when_replaced(worker))

    async def _retire_when_replaced(self, worker: _Worker) -> None:
        try:
            if not self._closed:
                await self._spawn_with_retry()
            if not worker.retired:
                self._withdraw(worker)
            while worker.active > worker.abandoned and not worker.exited.is_set():
                worker.slot_freed.clear()
                await worker.slot_freed.wait()
            log.info("retired %s worker %d has no runs left; killing it", self.name, worker.id)
            await worker.kill()
        finally:
            self._retiring.discard(worker)

    async def _replace(self, worker: _Worker, *, abandon: bool = True) -> None:
        """Kill ``worker`` and start another; ``abandon``: a slot the caller claimed on it
        is given up (on a retired worker, that is all: its retirement kills it)."""
        if worker.retired:
            if abandon:
                worker.abandoned += 1
                worker.slot_freed.set()
            return
        # A worker being retired already has its replacement coming (_retire_when_replaced).
        replaced = worker in self._retiring
        self._withdraw(worker)
        await worker.kill()
        if not self._closed and not replaced:
            await self._spawn_with_retry()

    def _withdraw(self, worker: _Worker) -> None:
        """Take the worker out of the pool: no new runs, its sessions end."""
        worker.retired = True
        self._workers.discard(worker)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        for session in list(worker.sessions.values()):
            if session.ended is None:
                session.ended = "crashed"
                log.warning("session %s ended: its worker %d was lost", session.id, worker.id)
        worker.sessions.clear()
        # Callers waiting for this very worker (turns of its sessions) learn it is gone.
        for entry in list(self._waiters):
            if entry[0] is worker and not entry[1].done():
                self._waiters.remove(entry)
                entry[1].set_result(worker)

    async def _spawn_with_retry(self) -> None:
        delay = 0.5
        while not self._closed:
            try:
                await self._spawn()
                return
            except EngineUnavailable as exc:
                log.error(
                    "replacing a %s worker failed (retrying in %.1f s): %s", self.name, delay, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)

    def _respawn_later(self) -> None:
        self._track(self._spawn_with_retry())

    async def _cancel_and_release(
        self,
        worker: _Worker,
        run_id: str,
        session: PoolSession | None,
        lane: asyncio.Lock | None,
        hard_deadline: float,
        memory_mb: int,
    ) -> None:
        cancel: dict[str, Any] = {"op": "cancel", "id": run_id}
        if session is not None:
            cancel["session"] = session.id
        try:
            await worker.send(cancel)
            deadline = min(hard_deadline, time.monotonic() + self._config.kill_grace_ms / 1000 + 1)
            async with asyncio.timeout_at(_loop_time(deadline)):
                while (await worker.receive_for(run_id)).get("t") != "end":
                    pass
        except (TimeoutError, _WorkerDied):
            await self._replace(worker)
            return
        finally:
            self._memory.release(memory_mb)
            worker.close_channel(run_id)
            if lane is not None:
                lane.release()
        self._release(worker)

    def _release(self, worker: _Worker, *, ran: bool = True) -> None:
        """Give back one claimed slot."""
        worker.active -= 1
        worker.runs += ran
        worker.released_at = time.monotonic()
        worker.slot_freed.set()
        if worker.retired:
            return
        self._offer(worker)

    async def _watch(self, worker: _Worker) -> None:
        """Replace a worker that dies while idle, before a caller trips over it."""
        await worker.exited.wait()
        if not worker.busy and not self._closed:
            log.warning("idle %s worker %d exited; replacing it", self.name, worker.id)
            await self._replace(worker, abandon=False)

    def _track(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# Why a turn ended its session, when the worker says and the status alone doesn't.
_WORKER_REASONS = frozenset({"crashed", "disk_quota", "cpu_limit"})


def _ended_by(status: Status, said: object = None) -> str:
    """Why a turn with this status ended its session (``said``: the worker's reason)."""
    if isinstance(said, str) and said in _WORKER_REASONS:
        return said
    if status is Status.INTERNAL_ERROR:
        return "crashed"
    if status in (Status.OK, Status.ERROR):
        return "exited"  # os._exit(): the instance stopped where it was
    return status.value


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a time.monotonic() deadline to the event loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _log_subrequest(run_id: str, event: Subrequest) -> None:
    # The origin only at INFO: paths and queries can carry the user's tokens. The gate's
    # records are redacted already; redacting again costs little and guards every source.
    url = redact_url(event.url)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' in a refused URL
        parts = urlsplit("")
    log.info(
        "run %s subrequest %s %s://%s -> %s, %d bytes, %.1f ms%s",
        run_id,
        event.method,
        parts.scheme,
        parts.netloc,
        event.status if event.status is not None else "-",
        event.bytes,
        event.ms,
        "" if event.allowed else f", refused: {event.reason}",
    )
    log.debug("run %s subrequest url %s", run_id, url)


def _synthetic_end(status: Status, started: float, error: GuestError | None = None) -> End:
    wall_ms = round((time.monotonic() - started) * 1000, 3)
    return End(status=status, usage=Usage(wall_ms=wall_ms), error=error)


def worker_command(module: str, *args: str) -> tuple[str, ...]:
    """argv that runs ``python -m module args`` with this interpreter, isolated from user site."""
    return (sys.executable, "-s", "-m", module, *args)
