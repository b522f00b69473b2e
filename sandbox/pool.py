"""A pool of disposable worker processes behind the Runner protocol.

Each worker process runs one job at a time (see
``sandbox/engines/wasmtime/worker.py``). The pool hands a job to an idle
worker, relays its events, and guarantees that every run ends:

* the worker reports ``end``: relayed as is;
* the run overruns ``wall_ms + kill_grace_ms`` (a guest blocked inside a WASI
  call, a wedged worker): the process is killed, the run ends ``wall_limit``;
* the worker dies mid-run (crash, panic, OOM kill): ``internal_error``;
* the caller stops listening (client went away): the worker is told to
  cancel, the run ends ``canceled``, and the worker goes back to the pool
  once it has reported, or is killed if it doesn't within the grace.

The conversation with the worker does not wait for the caller: events are
queued in this process as they arrive, so a caller that reads slowly (or not at
all) never holds a worker past its run's end.

A killed or dead worker is replaced in the background. When every worker is
busy, a caller waits at most ``queue_timeout_ms`` and then gets ``PoolBusy``.
"""

from __future__ import annotations

import asyncio
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
from sandbox.egress import redact_url
from sandbox.errors import EngineUnavailable, PoolBusy, RunnerClosed
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

__all__ = ["PoolConfig", "WorkerPool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Engine-wide settings of a worker pool.

    Attributes:
        command: argv that starts one worker (the workdir flag is appended).
        size: number of worker processes, each running one job at a time.
        scratch_dir: parent directory of the workers' private working dirs.
        queue_timeout_ms: how long a job may wait for a free worker.
        kill_grace_ms: how far past ``wall_ms`` a run may go before its
            worker process is killed.
        start_timeout_ms: how long a new worker may take to report ready.
    """

    command: tuple[str, ...]
    size: int
    scratch_dir: Path
    queue_timeout_ms: int = 2_000
    kill_grace_ms: int = 500
    start_timeout_ms: int = 60_000
    env: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("command must not be empty")
        for name in ("size", "queue_timeout_ms", "kill_grace_ms", "start_timeout_ms"):
            value = getattr(self, name)
            if value < 1 and not (name == "queue_timeout_ms" and value == 0):
                raise ValueError(f"{name} must be at least 1, got {value}")


class _WorkerDied(Exception):
    """The worker process ended (or stopped making sense) mid-conversation."""


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
        self.exited = asyncio.Event()
        self.busy = False
        self.retired = False
        self.runs = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

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
                self._inbox.put_nowait(message)
        except protocol.ProtocolError as exc:
            log.error("worker %d sent a bad frame: %s", self.id, exc)
        finally:
            self._inbox.put_nowait(None)
            self.exited.set()

    async def kill(self) -> None:
        """Kill the process and remove its workdir. Idempotent."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        for task in (self._reader_task, self._stderr_task):
            if task is not None:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(task, 1)
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)

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
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._started = False

    @property
    def ready(self) -> bool:
        return self._started and not self._closed and any(w.alive for w in self._workers)

    @property
    def size(self) -> int:
        return self._config.size

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
        await asyncio.gather(*(w.stop() for w in list(self._workers)), return_exceptions=True)
        self._workers.clear()

    async def run(self, job: Job) -> AsyncIterator[Event]:
        if self._closed:
            raise RunnerClosed(f"the {self.name} runner is closed")
        worker = await self._acquire()
        worker.busy = True
        run_id = "run_" + secrets.token_hex(8)
        log.info(
            "run %s on %s worker %d: %d bytes of code, %d files",
            run_id,
            self.name,
            worker.id,
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
            self._converse(worker, job, run_id, events),
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
        self, worker: _Worker, job: Job, run_id: str, events: asyncio.Queue[Event]
    ) -> None:
        """Run ``job`` on ``worker`` to its End, putting each event on ``events``."""
        started = time.monotonic()
        hard_deadline = started + (job.limits.wall_ms + self._config.kill_grace_ms) / 1000
        end: End | None = None
        release = True
        try:
            try:
                await worker.send({"op": "run", "job": protocol.job_message(job)})
                async with asyncio.timeout_at(_loop_time(hard_deadline)):
                    while end is None:
                        message = await worker.receive()
                        try:
                            batch = protocol.events_from_message(message)
                        except protocol.ProtocolError as exc:
                            raise _WorkerDied(str(exc)) from exc
                        for event in batch:
                            if isinstance(event, End):
                                end = event
                            elif isinstance(event, Subrequest):
                                _log_subrequest(run_id, event)
                            events.put_nowait(event)
            except TimeoutError:
                log.warning(
                    "run %s overran its hard deadline; killing worker %d", run_id, worker.id
                )
                release = False
                end = _synthetic_end(Status.WALL_LIMIT, started)
                events.put_nowait(end)
            except _WorkerDied as exc:
                log.error("run %s: worker %d died: %s", run_id, worker.id, exc)
                release = False
                end = _synthetic_end(
                    Status.INTERNAL_ERROR,
                    started,
                    GuestError("WorkerCrashed", "the sandbox worker process died during the run"),
                )
                events.put_nowait(end)
        finally:
            if end is None:
                # Canceled: the caller stopped listening. Cancel, then recycle the worker.
                log.info("run %s canceled by the caller", run_id)
                self._track(self._cancel_and_release(worker, hard_deadline))
            elif release:
                self._release(worker)
            else:
                self._track(self._replace(worker))
            log.info(
                "run %s ended: %s in %.1f ms",
                run_id,
                end.status.value if end else "canceled",
                (time.monotonic() - started) * 1000,
            )

    async def _acquire(self) -> _Worker:
        timeout = self._config.queue_timeout_ms / 1000
        waited = time.monotonic()
        while True:
            try:
                worker = await asyncio.wait_for(self._idle.get(), timeout)
            except TimeoutError:
                raise PoolBusy(self._config.queue_timeout_ms) from None
            if worker.alive and not worker.retired:
                return worker
            self._track(self._replace(worker))
            timeout = max(0.0, timeout - (time.monotonic() - waited))

    async def _spawn(self) -> None:
        worker = _Worker(self._config)
        self._workers.add(worker)
        try:
            await worker.start()
        except BaseException:
            self._workers.discard(worker)
            raise
        if self._closed:
            await worker.stop()
            self._workers.discard(worker)
            return
        self._track(self._watch(worker))
        self._idle.put_nowait(worker)

    async def _replace(self, worker: _Worker) -> None:
        if worker.retired:
            return
        worker.retired = True
        self._workers.discard(worker)
        await worker.kill()
        if not self._closed:
            await self._spawn_with_retry()

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

    async def _cancel_and_release(self, worker: _Worker, hard_deadline: float) -> None:
        try:
            await worker.send({"op": "cancel"})
            deadline = min(hard_deadline, time.monotonic() + self._config.kill_grace_ms / 1000 + 1)
            async with asyncio.timeout_at(_loop_time(deadline)):
                while (await worker.receive()).get("t") != "end":
                    pass
        except (TimeoutError, _WorkerDied):
            await self._replace(worker)
            return
        self._release(worker)

    def _release(self, worker: _Worker) -> None:
        worker.busy = False
        worker.runs += 1
        self._idle.put_nowait(worker)

    async def _watch(self, worker: _Worker) -> None:
        """Replace a worker that dies while idle, before a caller trips over it."""
        await worker.exited.wait()
        if not worker.busy and not self._closed:
            log.warning("idle %s worker %d exited; replacing it", self.name, worker.id)
            await self._replace(worker)

    def _track(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


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
