"""The service's sessions: made, found, run, expired and ended (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

from app.auth import Principal
from app.config import Settings
from app.errors import ApiError, invalid_field
from app.policy import Ceiling, allowlist_refusal, checked_hosts, checked_limits
from app.quotas import QuotaGate, Subject, run_hold_ms
from app.replicas import Replica
from app.runs import build_job, check_requirements
from app.schemas import RunIn
from app.session_schemas import SessionCreate, SessionFile, SessionFiles, SessionTurnIn
from app.sessions.record import Session
from app.store import replicas
from app.store.models import SessionOwnerRow
from app.usage import UsageMeter
from sandbox import (
    End,
    Event,
    FileTooLarge,
    Job,
    QuotaExceeded,
    Runner,
    SessionEnded,
    WorkerPool,
    Workspace,
)

__all__ = ["SessionManager"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# How long an ended session still answers 410 (then 404), and how many are remembered.
_TOMBSTONE_S = 3_600
_MAX_TOMBSTONES = 10_000
_TURN_LIMITS = ("cpu_ms", "wall_ms", "output_bytes", "subrequests")

# A place a create under way holds: the owner's key id and its memory_mb.
_Reservation = tuple[str, int]


def tenant_of(caller: Principal) -> str:
    """Whose a session is, to the engine: its namespace, or the admin's own (an engine may
    keep different tenants' sessions apart: Pyodide gives each a Deno process of its own)."""
    return f"namespace:{caller.namespace}" if caller.namespace is not None else "admin"


class SessionManager:
    """Every session of this service process; made and closed in the app's lifespan."""

    def __init__(
        self,
        settings: Settings,
        runners: dict[str, Runner],
        quotas: QuotaGate | None = None,
        replica: Replica | None = None,
        usage: UsageMeter | None = None,
    ) -> None:
        self._settings = settings
        self._runners = runners
        # None: nothing counted (tests of the manager alone).
        self._quotas = quotas
        # One of several replicas: each session is recorded where all of them read it
        # (app/store/replicas.py) and the caps count every replica's. None: this process's.
        self.replica = replica
        # Turns count to their namespace's usage (app/usage.py); None: not counted.
        self._usage = usage
        self._root = settings.scratch_dir / "sessions"
        self._sessions: dict[str, Session] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._cleanups: set[asyncio.Task[None]] = set()
        # Places taken by creates under way: (owner, memory_mb).
        self._reserved: list[_Reservation] = []

    @property
    def root(self) -> Path:
        return self._root

    async def start(self) -> None:
        """Clear what a previous process left (its sessions died with it); start expiry."""
        await asyncio.to_thread(shutil.rmtree, self._root, True)
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session in list(self._sessions.values()):
            await self.end(session, "closed")

    def holds(self, session_id: str) -> bool:
        """Whether this process has (or had, recently) the session."""
        return session_id in self._sessions

    @property
    def open_count(self) -> int:
        return sum(1 for session in self._sessions.values() if session.ended is None)

    async def end_all(self, reason: str) -> None:
        """End every open session with ``reason`` (the service is shutting down)."""
        for session in list(self._sessions.values()):
            if session.ended is None:
                await self.end(session, reason)

    # -- lifecycle ----------------------------------------------------------

    async def create(self, caller: Principal, ceiling: Ceiling, body: SessionCreate) -> Session:
        """A new session for ``caller`` within ``ceiling``; 422 naming a field, 429 naming
        the capacity setting, 503 when the engine can't make it."""
        if not caller.key_id:
            raise RuntimeError("a caller without a key id can't own a session")
        settings = self._settings
        runtime = body.runtime or settings.default_runtime
        runner = self._runners.get(runtime)
        if runner is None:
            raise invalid_field("runtime", f"the {runtime} engine is not enabled on this server")
        if not isinstance(runner, WorkerPool) or not runner.sessions:
            raise invalid_field(
                "runtime",
                f"runtime {runtime!r} keeps no sessions on this server (sessions run on "
                "pyodide and on the wasmtime engine's data-stack guest)",
            )
        limits = checked_limits(ceiling, body.limits.model_dump())
        hosts = checked_hosts(ceiling, body.allowed_hosts)
        memory_mb = body.memory_mb or ceiling.defaults.memory_mb
        if memory_mb > ceiling.maximums.memory_mb:
            raise invalid_field(
                "memory_mb",
                f"is {memory_mb}; {ceiling.who()} allows at most {ceiling.maximums.memory_mb} "
                "(its memory_mb limit)",
            )
        idle_timeout_s = body.idle_timeout_s or settings.session_idle_timeout_s
        if idle_timeout_s > settings.session_max_idle_timeout_s:
            raise invalid_field(
                "idle_timeout_s",
                f"is {idle_timeout_s}; this server allows at most "
                f"{settings.session_max_idle_timeout_s} (SANDLOT_SESSION_MAX_IDLE_TIMEOUT_S)",
            )
        max_lifetime_s = body.max_lifetime_s or settings.session_max_lifetime_s
        if max_lifetime_s > settings.session_max_lifetime_s:
            raise invalid_field(
                "max_lifetime_s",
                f"is {max_lifetime_s}; this server allows at most "
                f"{settings.session_max_lifetime_s} (SANDLOT_SESSION_MAX_LIFETIME_S)",
            )
        session_id = "ses_" + secrets.token_urlsafe(16)
        if self._quotas is not None:
            # Held until end(), or the longest it could live should this process die.
            hold_ms = (max_lifetime_s + 60) * 1000
            await self._quotas.open_session(caller.quotas, session_id, hold_ms)
        try:
            reservation = await self._make_room(caller, memory_mb, session_id, max_lifetime_s)
        except BaseException:
            await self._close_quota(caller.quotas, session_id)
            raise
        # The worker makes the directory, and on the wasmtime engine the /tmp beside it
        # (renaming a spare's into place); Pyodide's /tmp is in the instance's memory. The
        # quota counts both; removing the workspace removes both.
        workspace = Workspace.with_tmp(self._root / session_id, settings.session_disk_mb * MIB)
        try:
            instance = await runner.open_session(
                session_id, workspace.root, memory_mb, tenant=tenant_of(caller)
            )
        except BaseException:
            await asyncio.to_thread(workspace.remove)
            await self._close_quota(caller.quotas, session_id)
            await self._unclaim(session_id)
            raise
        finally:
            self._reserved.remove(reservation)
        session = Session(
            id=session_id,
            owner=caller.key_id,
            namespace=caller.namespace,
            runtime=runtime,
            runner=runner,
            instance=instance,
            workspace=workspace,
            limits={name: getattr(ceiling.defaults, name) for name in _TURN_LIMITS} | limits,
            allowed_hosts=hosts,
            memory_mb=memory_mb,
            idle_timeout_s=idle_timeout_s,
            max_lifetime_s=max_lifetime_s,
            quota_subjects=caller.quotas,
        )
        self._sessions[session_id] = session
        log.info("session %s created (%s, %d MiB)", session_id, runtime, memory_mb)
        return session

    async def _make_room(
        self, caller: Principal, memory_mb: int, session_id: str, max_lifetime_s: int
    ) -> _Reservation:
        """Room for one more session of ``caller``'s, reserved (so that creates running at
        once can't both take the last place); 429 naming the limit when there is none.

        The per-key and open-session caps count this process's sessions, or every
        replica's (a claim in the database) when it is one of several; memory is this
        process's. Over a cap, this process's longest-idle sessions make room.
        """
        settings = self._settings
        while True:
            open_sessions = [s for s in self._sessions.values() if s.ended is None]
            holders = [*((s.owner, s.memory_mb) for s in open_sessions), *self._reserved]
            memory = sum(mb for _, mb in holders)
            memory_ok = memory + memory_mb <= settings.sessions_memory_mb
            mine, count, where = 0, len(holders), "open"
            if self.replica is None:
                mine = sum(1 for owner, _ in holders if owner == caller.key_id)
                count_ok = count + 1 <= settings.sessions_max_open
                if mine >= settings.sessions_max_per_key:
                    raise self._too_many_of_key(mine)
                if count_ok and memory_ok:
                    break
            elif not memory_ok:
                count_ok = True
            else:
                claim = await self._claim(caller, memory_mb, session_id, max_lifetime_s)
                if claim is None:
                    break
                if claim.refused == "key":
                    raise self._too_many_of_key(claim.mine)
                count_ok, count, where = False, claim.count, "open on all replicas"
            now = time.monotonic()
            # Longest-idle first; only sessions idle long enough, and never one mid-turn.
            idle = [
                s
                for s in open_sessions
                if not s.busy and s.idle_s(now) >= settings.sessions_shed_idle_s
            ]
            if not idle:
                if not count_ok:
                    limit = f"SANDLOT_SESSIONS_MAX_OPEN={settings.sessions_max_open} sessions"
                else:
                    limit = f"SANDLOT_SESSIONS_MEMORY_MB={settings.sessions_memory_mb} MiB"
                raise ApiError(
                    429,
                    "too_many_sessions",
                    f"this server holds as many sessions as it may ({limit}, {count} {where}, "
                    f"{memory} MiB here) and none has been idle long enough to end; retry "
                    "later or ask for less memory_mb",
                    headers={"Retry-After": "5"},
                )
            await self.end(min(idle, key=lambda s: s.last_used), "shed")
        reservation = (caller.key_id, memory_mb)
        self._reserved.append(reservation)
        return reservation

    def _too_many_of_key(self, mine: int) -> ApiError:
        everywhere = " on all replicas" if self.replica is not None else ""
        return ApiError(
            429,
            "too_many_sessions",
            f"this API key has {mine} open sessions{everywhere}, the most this server allows "
            f"(SANDLOT_SESSIONS_MAX_PER_KEY={self._settings.sessions_max_per_key}); close one "
            "with DELETE /v1/sessions/{id}",
            headers={"Retry-After": "1"},
        )

    async def _claim(
        self, caller: Principal, memory_mb: int, session_id: str, max_lifetime_s: int
    ) -> replicas.Claim | None:
        replica = self.replica
        if replica is None:
            return None
        now = time.time()
        row = SessionOwnerRow(
            id=session_id,
            replica_id=replica.id,
            replica_url=replica.url,
            key_id=caller.key_id,
            namespace=caller.namespace,
            memory_mb=memory_mb,
            created_at=now,
            expires_at=now + max_lifetime_s,
        )
        return await asyncio.to_thread(
            replicas.claim,
            replica.store,
            row,
            max_per_key=self._settings.sessions_max_per_key,
            max_open=self._settings.sessions_max_open,
            alive_since=replica.alive_since(),
        )

    async def _unclaim(self, session_id: str) -> None:
        if self.replica is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(replicas.unclaim, self.replica.store, session_id)

    async def end(self, session: Session, reason: str) -> None:
        """End a session (idempotent): drop its instance and its files."""
        if session.ended is None:
            session.ended = reason
            session.ended_at = time.monotonic()
        if not session.released:
            # Once, also for a session get() found ended (its worker died) and marked.
            session.released = True
            log.info("session %s ended: %s", session.id, session.ended)
            await self._close_quota(session.quota_subjects, session.id)
            if self.replica is not None:
                try:
                    await asyncio.to_thread(
                        replicas.ended, self.replica.store, session.id, session.ended, time.time()
                    )
                except Exception:  # other replicas see it end when this one is lost
                    log.exception("session %s: recording its end failed", session.id)
        await session.runner.close_session(session.instance)
        await asyncio.to_thread(session.workspace.remove)

    async def _close_quota(self, subjects: tuple[Subject, ...], session_id: str) -> None:
        if self._quotas is None:
            return
        try:
            await self._quotas.close_session(subjects, session_id)
        except Exception:  # the lease lapses at its deadline anyway
            log.exception("session %s: releasing its quota failed", session_id)

    def get(self, caller: Principal, session_id: str, *, ended_ok: bool = False) -> Session:
        """The caller's session; 404 for an unknown id or another key's, 410 once ended."""
        session = self._sessions.get(session_id)
        if session is None or session.owner != caller.key_id:
            raise ApiError(
                404,
                "not_found",
                f"no session {session_id!r} for this API key (sessions belong to the key "
                "that made them; GET /v1/sessions lists yours)",
            )
        if session.ended is None and session.instance.ended is not None and not session.busy:
            # Its worker died since the last call: say so now, clean up behind.
            session.ended, session.ended_at = session.instance.ended, time.monotonic()
            task = asyncio.get_running_loop().create_task(self.end(session, session.ended))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
        if session.ended is not None and not ended_ok:
            raise ApiError(
                410,
                "session_ended",
                f"session {session_id!r} has ended ({session.ended}); create another with "
                "POST /v1/sessions",
            )
        return session

    def of(self, caller: Principal) -> list[Session]:
        """The caller's open sessions, oldest first."""
        return sorted(
            (s for s in self._sessions.values() if s.owner == caller.key_id and s.ended is None),
            key=lambda s: s.created,
        )

    def claim(self, session: Session) -> None:
        """Mark the session busy for a turn or a file call; 409 if it already is."""
        if session.busy:
            raise ApiError(
                409,
                "session_busy",
                f"a turn is running in session {session.id!r}; sessions run one call at a "
                "time: send this one after it ends",
            )
        session.busy = True

    def release(self, session: Session) -> None:
        session.busy = False
        session.last_used = time.monotonic()

    # -- turns ----------------------------------------------------------------

    def turn_job(
        self,
        session: Session,
        ceiling: Ceiling,
        body: SessionTurnIn,
        *,
        live_output: bool,
    ) -> Job:
        """The job of one turn: the session's limits under the turn's own, all within the
        caller's ceiling of today; 422 naming the field. ``live_output``: whether the turn's
        output is streamed as it comes (Job.live_output)."""
        requested = body.limits.model_dump(exclude_none=True)
        if "memory_mb" in requested:
            raise invalid_field(
                "limits.memory_mb",
                "a session's memory is set once, by memory_mb when it is created",
            )
        # The session's own limits, lowered to the ceiling if the admin has lowered it since.
        kept = {name: min(v, getattr(ceiling.maximums, name)) for name, v in session.limits.items()}
        kept["memory_mb"] = min(session.memory_mb, ceiling.maximums.memory_mb)
        if body.allowed_hosts is None:
            # The namespace's policy today: what the admin has taken away since is gone.
            hosts = [str(e) for e in session.allowed_hosts if allowlist_refusal(ceiling, e) is None]
        else:
            hosts = body.allowed_hosts
        run = RunIn.model_validate(
            {
                "code": body.code,
                "runtime": session.runtime,
                "limits": {**kept, **requested},
                "allowed_hosts": hosts,
                "stdin": body.stdin,
                "files": body.files,
                "env": body.env,
                "requirements": body.requirements,
                "figure_format": body.figure_format,
                "return_files": body.return_files,
            }
        )
        job = build_job(run, self._settings, ceiling, live_output=live_output)
        runner = self._runners.get(session.runtime)
        if runner is not None:  # gone only if the server stopped it: the turn says so
            check_requirements(job.requirements, runner, self._runners)
        return job

    async def turn(self, session: Session, job: Job) -> AsyncIterator[Event]:
        """The turn's events (the session must be claimed; released at the end, always).

        Raises (before any event) ApiError 410 if the session has ended, PoolBusy if its
        worker stays busy for the queue wait.
        """
        try:
            if self._quotas is not None:
                hold_ms = run_hold_ms(self._settings, job)
                turn = await self._quotas.run(
                    session.quota_subjects,
                    hold_ms,
                    lambda: session.runner.turn(session.instance, job),
                )
                events = aiter(turn)
            else:
                events = aiter(session.runner.turn(session.instance, job))
            if self._usage is not None:
                events = aiter(
                    self._usage.observe(events, namespace=session.namespace, kind="session")
                )
            try:
                first = await anext(events)
            except SessionEnded as exc:
                await self.end(session, exc.reason)
                raise self._gone(session) from None
        except BaseException:
            self.release(session)
            raise
        return self._follow(session, first, events)

    async def _follow(
        self, session: Session, first: Event, events: AsyncIterator[Event]
    ) -> AsyncIterator[Event]:
        try:
            yield first
            async for event in events:
                if isinstance(event, End):
                    await self._account(session, event)
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            self.release(session)
            if session.instance.ended is not None and session.ended is None:
                await self.end(session, session.instance.ended)

    async def _account(self, session: Session, end: End) -> None:
        session.turns += 1
        session.cpu_ms += end.usage.cpu_ms
        session.wall_ms += end.usage.wall_ms
        session.subrequests += end.usage.subrequests
        session.output_bytes += end.usage.output_bytes
        if session.instance.ended is not None:
            await self.end(session, session.instance.ended)
            return
        # The wasmtime engine stops a turn that goes over while it runs; Pyodide's files
        # come back after it, counted as they arrive; this catches what either let through.
        usage = await asyncio.to_thread(session.workspace.usage)
        session.files_bytes = usage.file_bytes
        if usage.over(session.workspace.quota_bytes):
            log.info(
                "session %s over its disk quota: %d bytes, %d entries%s",
                session.id,
                usage.file_bytes,
                usage.entries,
                "" if usage.complete else " (and more)",
            )
            await self.end(session, "disk_quota")

    def _gone(self, session: Session) -> ApiError:
        return ApiError(
            410,
            "session_ended",
            f"session {session.id!r} has ended ({session.ended}); create another with "
            "POST /v1/sessions",
        )

    # -- files ----------------------------------------------------------------

    async def list_files(self, session: Session) -> SessionFiles:
        """The session's regular files with their sizes; 409 while a turn runs."""
        async with self._claimed(session):
            entries = await asyncio.to_thread(session.workspace.files)
            # What the quota counts: these files and, on the wasmtime engine, its /tmp.
            session.files_bytes = await asyncio.to_thread(session.workspace.usage_bytes)
        return SessionFiles(
            files=[SessionFile(path=e.path, size=e.size) for e in entries],
            total_bytes=session.files_bytes,
            quota_bytes=session.workspace.quota_bytes,
        )

    async def write_file(self, session: Session, path: str, data: bytes) -> None:
        """Create or replace a file; 413 over the quota, 422 naming a bad path, 409 mid-turn."""
        async with self._claimed(session):
            try:
                await asyncio.to_thread(session.workspace.write, path, data)
            except QuotaExceeded as exc:
                raise ApiError(413, "quota_exceeded", str(exc)) from None
            except (ValueError, OSError) as exc:
                raise invalid_field("path", _reason(exc)) from None
            session.files_bytes = await asyncio.to_thread(session.workspace.usage_bytes)

    async def read_file(self, session: Session, path: str, max_bytes: int) -> bytes:
        """A file's bytes; 404 when there is no regular file there (a link is none), 413
        over ``max_bytes``, 422 naming a bad path, 409 mid-turn."""
        async with self._claimed(session):
            try:
                return await asyncio.to_thread(session.workspace.read, path, max_bytes)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
                raise ApiError(404, "not_found", _reason(exc)) from None
            except FileTooLarge as exc:
                raise ApiError(413, "payload_too_large", str(exc)) from None
            except (ValueError, OSError) as exc:
                raise invalid_field("path", _reason(exc)) from None

    async def delete_file(self, session: Session, path: str) -> None:
        """Remove a file or directory; 404 when there is none, 422 naming a bad path."""
        async with self._claimed(session):
            try:
                await asyncio.to_thread(session.workspace.delete, path)
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise ApiError(404, "not_found", _reason(exc)) from None
            except (ValueError, OSError) as exc:
                raise invalid_field("path", _reason(exc)) from None
            session.files_bytes = await asyncio.to_thread(session.workspace.usage_bytes)

    @contextlib.asynccontextmanager
    async def _claimed(self, session: Session) -> AsyncIterator[None]:
        self.claim(session)
        try:
            yield
        finally:
            self.release(session)

    # -- expiry ---------------------------------------------------------------

    async def sweep(self) -> None:
        """End sessions past their idle timeout or lifetime; forget old tombstones."""
        now = time.monotonic()
        for session in list(self._sessions.values()):
            if session.ended is not None:
                if now - session.ended_at > _TOMBSTONE_S:
                    del self._sessions[session.id]
                continue
            if session.instance.ended is not None and not session.busy:
                await self.end(session, session.instance.ended)  # e.g. its worker died
            elif now - session.created >= session.max_lifetime_s:
                await self.end(session, "max_lifetime")
            elif not session.busy and session.idle_s(now) >= session.idle_timeout_s:
                await self.end(session, "idle_timeout")
        ended = sorted(
            (s for s in self._sessions.values() if s.ended is not None), key=lambda s: s.ended_at
        )
        for session in ended[: max(0, len(ended) - _MAX_TOMBSTONES)]:
            del self._sessions[session.id]

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.session_sweep_ms / 1000)
            try:
                await self.sweep()
            except Exception:  # keep sweeping: one bad session must not stop expiry
                log.exception("session sweep failed")


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
