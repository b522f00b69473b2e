"""Quotas and rate limits of namespaces and keys: the one place they are checked.

A namespace and each of its keys may carry a ``quotas`` object (set by the admin key):

* ``requests_per_second``: requests that run code (a run, a dispatch, a session's
  creation or turn, a tool call that runs code), counted in one-second windows;
* ``concurrent_runs``: runs in flight at once (session turns included);
* ``cpu_ms_per_minute``: CPU the runs actually used (their ``usage.cpu_ms``), in
  one-minute windows: a run is admitted while the minute's total is under the quota;
* ``sessions``: sessions open at once.

A request is checked against every subject it belongs to (its namespace, and its key
when a namespace key sent it); the first quota it would exceed answers 429 with
``Retry-After`` and the quota's name and value. The counts live in :class:`Counters`:
Redis when ``SANDLOT_REDIS_URL`` is set (shared by every replica), this process's memory
otherwise, behind the same calls. In-flight runs and open sessions are held as leases that
lapse at their deadline, so a replica that dies holding some frees them on its own.

Routes, tools, dispatch and sessions call :class:`QuotaGate`; nothing else counts.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from app.config import Settings
from app.errors import ApiError
from app.schemas import ErrorDetail
from sandbox import End, Event, Job

__all__ = [
    "QUOTA_NAMES",
    "Counters",
    "LocalCounters",
    "QuotaGate",
    "Quotas",
    "RedisCounters",
    "Subject",
    "dispatch_subjects",
    "quota_exceeded",
    "run_hold_ms",
]


@dataclass(frozen=True, slots=True)
class Quotas:
    """One subject's quotas; None: no quota on that (the default)."""

    requests_per_second: int | None = None
    concurrent_runs: int | None = None
    cpu_ms_per_minute: int | None = None
    sessions: int | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{item.name} must be a positive integer or None")

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Quotas:
        """From the stored JSON object (unknown names ignored: a downgrade keeps working)."""
        stored = stored or {}
        return cls(**{name: stored.get(name) for name in QUOTA_NAMES})

    def set(self) -> dict[str, int]:
        """The quotas that are set, by name (what is stored and shown)."""
        return {name: value for name in QUOTA_NAMES if (value := getattr(self, name)) is not None}


QUOTA_NAMES = tuple(item.name for item in fields(Quotas))


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a quota belongs to: ``kind`` "namespace" (``ident`` its name) or "key" (its id)."""

    kind: str
    ident: str
    quotas: Quotas

    def describe(self) -> str:
        return f"{self.kind} {self.ident!r}"


def quota_exceeded(subject: Subject, name: str, retry_after_s: int) -> ApiError:
    """The 429 of one quota: its name and value in the message and in ``details``."""
    value = getattr(subject.quotas, name)
    message = (
        f"{subject.describe()} is at its quota {name} = {value}; retry after "
        f"{retry_after_s} s, or ask the admin to raise quotas.{name}"
    )
    return ApiError(
        429,
        "quota_reached",
        message,
        [ErrorDetail(field=f"quotas.{name}", message=f"{name} = {value} for {subject.describe()}")],
        headers={"Retry-After": str(retry_after_s)},
    )


class Counters(Protocol):
    """Where the counts live. Times are milliseconds since the epoch, given by the caller."""

    async def hit(self, key: str, amount: int, ttl_ms: int) -> int:
        """Add ``amount`` to a counter (created with ``ttl_ms`` to live); its new value."""
        ...

    async def value(self, key: str) -> int:
        """A counter's value (0 when absent or expired)."""
        ...

    async def lease(self, key: str, member: str, limit: int, now_ms: int, until_ms: int) -> bool:
        """Hold ``member`` in the set ``key`` until ``until_ms`` if fewer than ``limit``
        unexpired members are held (expired ones are dropped first); whether it is held."""
        ...

    async def release(self, key: str, member: str) -> None: ...

    async def close(self) -> None: ...


class LocalCounters:
    """Counters in this process's memory: one replica's view (no SANDLOT_REDIS_URL)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[int, float]] = {}
        self._leases: dict[str, dict[str, int]] = {}

    def _prune(self, now: float) -> None:
        # Counters are per window: drop the lapsed ones so the dict stays small.
        if len(self._counters) > 10_000:
            self._counters = {k: v for k, v in self._counters.items() if v[1] > now}

    async def hit(self, key: str, amount: int, ttl_ms: int) -> int:
        now = self._clock()
        self._prune(now)
        count, expires = self._counters.get(key, (0, 0.0))
        if expires <= now:
            count, expires = 0, now + ttl_ms / 1000
        self._counters[key] = (count + amount, expires)
        return count + amount

    async def value(self, key: str) -> int:
        count, expires = self._counters.get(key, (0, 0.0))
        return count if expires > self._clock() else 0

    async def lease(self, key: str, member: str, limit: int, now_ms: int, until_ms: int) -> bool:
        held = {m: t for m, t in self._leases.get(key, {}).items() if t > now_ms}
        self._leases[key] = held
        if len(held) >= limit:
            return False
        held[member] = until_ms
        return True

    async def release(self, key: str, member: str) -> None:
        held = self._leases.get(key)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self._leases[key]

    async def close(self) -> None:
        self._counters.clear()
        self._leases.clear()


# One round trip, atomic: drop lapsed leases, count, add if there is room.
_LEASE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
local wanted = tonumber(ARGV[3]) - tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < wanted then
  redis.call('PEXPIRE', KEYS[1], wanted)
end
return 1
"""
# A counter's time to live is set when the window's first hit creates it.
_HIT_SCRIPT = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""


class RedisCounters:
    """Counters in Redis (``SANDLOT_REDIS_URL``): every replica shares them."""

    def __init__(self, url: str, prefix: str = "sandlot:quota:") -> None:
        import redis.asyncio as aioredis  # only when configured

        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix
        self._lease = self._redis.register_script(_LEASE_SCRIPT)
        self._hit = self._redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, amount: int, ttl_ms: int) -> int:
        return int(await self._hit(keys=[self._prefix + key], args=[amount, ttl_ms]))

    async def value(self, key: str) -> int:
        found = await self._redis.get(self._prefix + key)
        return int(found) if found is not None else 0

    async def lease(self, key: str, member: str, limit: int, now_ms: int, until_ms: int) -> bool:
        # The set lives as long as its longest lease: a replica that died holding leases
        # leaves nothing behind for longer than their deadlines.
        held = await self._lease(keys=[self._prefix + key], args=[now_ms, limit, until_ms, member])
        return bool(held)

    async def release(self, key: str, member: str) -> None:
        await self._redis.zrem(self._prefix + key, member)

    async def close(self) -> None:
        await self._redis.aclose()


_SECOND_MS = 1_000
_MINUTE_MS = 60_000


class QuotaGate:
    """Admits requests, runs and sessions against their subjects' quotas."""

    def __init__(self, counters: Counters, clock: Callable[[], float] = time.time) -> None:
        self.counters = counters
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def request(self, subjects: tuple[Subject, ...]) -> None:
        """Count one request against ``requests_per_second``; 429 when over it."""
        now_ms = self._now_ms()
        second = now_ms // _SECOND_MS
        for subject in subjects:
            limit = subject.quotas.requests_per_second
            if limit is None:
                continue
            count = await self.counters.hit(_key(subject, f"rps:{second}"), 1, 2 * _SECOND_MS)
            if count > limit:
                raise quota_exceeded(subject, "requests_per_second", 1)

    async def _check_cpu(self, subjects: tuple[Subject, ...]) -> None:
        now_ms = self._now_ms()
        minute = now_ms // _MINUTE_MS
        for subject in subjects:
            limit = subject.quotas.cpu_ms_per_minute
            if limit is None:
                continue
            if await self.counters.value(_key(subject, f"cpu:{minute}")) >= limit:
                wait_s = math.ceil(((minute + 1) * _MINUTE_MS - now_ms) / 1000)
                raise quota_exceeded(subject, "cpu_ms_per_minute", max(1, wait_s))

    async def _charge_cpu(self, subjects: tuple[Subject, ...], cpu_ms: float) -> None:
        minute = self._now_ms() // _MINUTE_MS
        for subject in subjects:
            if subject.quotas.cpu_ms_per_minute is not None and cpu_ms > 0:
                key = _key(subject, f"cpu:{minute}")
                await self.counters.hit(key, math.ceil(cpu_ms), 2 * _MINUTE_MS)

    async def _lease(
        self, subjects: tuple[Subject, ...], name: str, member: str, hold_ms: int
    ) -> list[Subject]:
        """Leases on every subject with quota ``name``, or none and a 429."""
        held: list[Subject] = []
        now_ms = self._now_ms()
        try:
            for subject in subjects:
                limit = getattr(subject.quotas, name)
                if limit is None:
                    continue
                if not await self.counters.lease(
                    _key(subject, name), member, limit, now_ms, now_ms + hold_ms
                ):
                    raise quota_exceeded(subject, name, 1)
                held.append(subject)
        except BaseException:
            await self._release(held, name, member)
            raise
        return held

    async def _release(self, held: list[Subject], name: str, member: str) -> None:
        for subject in held:
            await self.counters.release(_key(subject, name), member)

    async def run(
        self, subjects: tuple[Subject, ...], hold_ms: int, start: Callable[[], AsyncIterator[Event]]
    ) -> AsyncIterator[Event]:
        """``start()``'s events, admitted against every quota of ``subjects``.

        Raises the 429 at the first ``anext`` (before the run starts). The run holds a
        concurrent-run lease until its last event (or ``hold_ms``, its longest possible
        life, should this process die), and its ``End``'s CPU is charged to the minute.
        """
        await self.request(subjects)
        return self._admitted(subjects, hold_ms, start)

    async def _admitted(
        self, subjects: tuple[Subject, ...], hold_ms: int, start: Callable[[], AsyncIterator[Event]]
    ) -> AsyncIterator[Event]:
        await self._check_cpu(subjects)
        member = "run_" + secrets.token_hex(8)
        held = await self._lease(subjects, "concurrent_runs", member, hold_ms)
        events = start()
        try:
            async for event in events:
                if isinstance(event, End):
                    await self._charge_cpu(subjects, event.usage.cpu_ms)
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            await self._release(held, "concurrent_runs", member)

    async def open_session(
        self, subjects: tuple[Subject, ...], session_id: str, hold_ms: int
    ) -> None:
        """Count a new session (429 when one of ``sessions`` is reached) until
        :meth:`close_session` or ``hold_ms`` (its longest possible life)."""
        await self.request(subjects)
        await self._lease(subjects, "sessions", session_id, hold_ms)

    async def close_session(self, subjects: tuple[Subject, ...], session_id: str) -> None:
        held = [s for s in subjects if s.quotas.sessions is not None]
        await self._release(held, "sessions", session_id)

    async def close(self) -> None:
        await self.counters.close()


def dispatch_subjects(
    namespace: str, namespace_quotas: Mapping[str, Any], caller: tuple[Subject, ...] = ()
) -> tuple[Subject, ...]:
    """A worker call's subjects: the worker's namespace, and the caller's key if it sent one
    (a key of that namespace: dispatch checks that first)."""
    keys = tuple(subject for subject in caller if subject.kind == "key")
    return (Subject("namespace", namespace, Quotas.of(namespace_quotas)), *keys)


# Past a run's deadline: the pool's kill grace and the time to report the end.
_RUN_SLACK_MS = 30_000


def run_hold_ms(settings: Settings, job: Job) -> int:
    """The longest a run can hold its concurrent-run lease: queue wait, run, kill grace."""
    return settings.queue_timeout_ms + job.limits.wall_ms + _RUN_SLACK_MS


def _key(subject: Subject, what: str) -> str:
    return f"{subject.kind}:{subject.ident}:{what}"
