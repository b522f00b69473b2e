"""Live tail of user workers: one in-process hub that fans invocations out to subscribers.

``GET /v1/namespaces/{ns}/workers/{name}/tail`` (app/routes/tail.py) subscribes; every
finished invocation of a worker (a dispatch, an ``invoke_worker`` tool call, the GET /
that /v1/generate sends a generated worker) is turned into one :class:`Invocation` by
:func:`invocation` and handed to :meth:`TailHub.publish`.

``publish`` is the single entry point of the fan-out. In one process it delivers to this
process's tails. Connected to the replicas' bus (:meth:`TailHub.connect`, app/bus.py), it
also sends the event on channel ``tail`` when some replica has a tail of that worker open,
and delivers what other replicas send: a tail sees its worker's invocations from every
replica. Replicas with tails open say so on ``tail.watch`` (when a tail opens, then every
:data:`WATCH_EVERY_S`), so replicas nobody tails send nothing. An event's JSON stays under
:data:`EVENT_MAX_BYTES`, small enough for one bus message with its envelope.

A slow consumer never slows dispatch: ``publish`` never waits. Each subscriber has a
bounded queue; an event that finds it full is dropped and counted, and the subscriber
gets a :class:`Dropped` notice, in order, where the gap is. Tails are capped per
namespace (per process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from app.bus import MAX_MESSAGE_BYTES, Bus
from sandbox import RunResult

__all__ = [
    "EVENT_MAX_BYTES",
    "Dropped",
    "Invocation",
    "Subscription",
    "TailHub",
    "TooManyTails",
    "invocation",
]

log = logging.getLogger(__name__)

# One bus message holds an event and its envelope (the sending replica's id, the names).
EVENT_MAX_BYTES = MAX_MESSAGE_BYTES - 300
# Channels on the replicas' bus: invocations, and which workers some replica tails.
_EVENTS = "tail"
_WATCH = "tail.watch"
# How often a replica repeats which workers it tails; others send a worker's invocations
# for three times as long after they last heard of a tail of it.
WATCH_EVERY_S = 10.0
# What an invocation carries of the worker's output and exception (characters).
_LOG_LINES = 100
_LOG_LINE_CHARS = 500
_LOGS_CHARS = 3_000
_TRACEBACK_CHARS = 2_000
_MESSAGE_CHARS = 300
_SUBREQUESTS = 16
_URL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Invocation:
    """One finished invocation of a worker, as tails see it (``data`` is its JSON object)."""

    namespace: str
    worker: str
    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Dropped:
    """``count`` invocations this subscriber missed here: its queue was full."""

    count: int


class TooManyTails(Exception):
    """The namespace already has the most tails this process allows."""

    def __init__(self, namespace: str, limit: int) -> None:
        super().__init__(f"namespace {namespace!r} has {limit} tails open")
        self.namespace = namespace
        self.limit = limit


@dataclass(eq=False)
class Subscription:
    """One tail's view of the hub: a bounded queue of invocations and drop notices."""

    namespace: str
    worker: str
    size: int
    _queue: asyncio.Queue[Invocation | Dropped] = field(init=False)
    # Invocations dropped since the last notice was queued.
    _missed: int = 0
    dropped_total: int = 0

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.size)

    def offer(self, event: Invocation) -> bool:
        """Queue ``event`` (after a notice of any gap before it): True; or count it
        dropped: False."""
        room = self.size - self._queue.qsize()
        if room < (2 if self._missed else 1):
            self._missed += 1
            self.dropped_total += 1
            return False
        if self._missed:
            self._queue.put_nowait(Dropped(self._missed))
            self._missed = 0
        self._queue.put_nowait(event)
        return True

    async def next(self) -> Invocation | Dropped:
        """The next invocation or notice; waits for one."""
        if self._queue.empty() and self._missed:
            missed, self._missed = self._missed, 0
            return Dropped(missed)
        return await self._queue.get()


class TailHub:
    """Subscribers by (namespace, worker); made in the app's lifespan (one per process)."""

    def __init__(self, *, max_per_namespace: int = 10, queue_size: int = 100) -> None:
        if max_per_namespace < 1 or queue_size < 2:
            raise ValueError("max_per_namespace must be >= 1 and queue_size >= 2")
        self.max_per_namespace = max_per_namespace
        self.queue_size = queue_size
        self._subscribers: dict[tuple[str, str], set[Subscription]] = {}
        self._per_namespace: dict[str, int] = {}
        # Invocations dropped for slow tails since the start (a metric).
        self.dropped_total = 0
        # Connected to the replicas' bus (connect): this hub's id on it, which workers
        # other replicas tail (until when, monotonic), and the task repeating ours.
        self._bus: Bus | None = None
        self._origin = secrets.token_hex(8)
        self._watched: dict[tuple[str, str], float] = {}
        self._announcer: asyncio.Task[None] | None = None

    async def connect(self, bus: Bus) -> None:
        """Send and receive invocations through ``bus``, to and from every replica."""
        await bus.subscribe(_EVENTS, self._received)
        await bus.subscribe(_WATCH, self._watching)
        self._bus = bus
        self._announcer = asyncio.create_task(self._announce_forever())

    async def disconnect(self) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
            self._announcer = None
        self._bus = None

    @property
    def open_total(self) -> int:
        return sum(self._per_namespace.values())

    def open_count(self, namespace: str) -> int:
        return self._per_namespace.get(namespace, 0)

    def open(self, namespace: str, worker: str) -> Subscription:
        """A new subscription (:meth:`close` it); TooManyTails when the namespace is full."""
        if self.open_count(namespace) >= self.max_per_namespace:
            raise TooManyTails(namespace, self.max_per_namespace)
        subscription = Subscription(namespace, worker, self.queue_size)
        self._subscribers.setdefault((namespace, worker), set()).add(subscription)
        self._per_namespace[namespace] = self.open_count(namespace) + 1
        self._announce([(namespace, worker)])
        return subscription

    def close(self, subscription: Subscription) -> None:
        """End a subscription (idempotent)."""
        key = (subscription.namespace, subscription.worker)
        subscribers = self._subscribers.get(key)
        if subscribers is None or subscription not in subscribers:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[key]
        left = self.open_count(subscription.namespace) - 1
        if left > 0:
            self._per_namespace[subscription.namespace] = left
        else:
            self._per_namespace.pop(subscription.namespace, None)

    @contextmanager
    def subscribe(self, namespace: str, worker: str) -> Iterator[Subscription]:
        """A subscription for the block's duration; TooManyTails when the namespace is full."""
        subscription = self.open(namespace, worker)
        try:
            yield subscription
        finally:
            self.close(subscription)

    def publish(self, event: Invocation) -> None:
        """Hand an invocation to every tail of its worker, on every replica. Never waits."""
        self.deliver(event)
        if self._bus is not None and self._watched.get((event.namespace, event.worker), 0) > (
            time.monotonic()
        ):
            envelope = {"origin": self._origin, "namespace": event.namespace}
            self._send(_EVENTS, envelope | {"worker": event.worker, "event": event.data})

    def deliver(self, event: Invocation) -> None:
        """Queue ``event`` for this process's tails of its worker."""
        for subscription in self._subscribers.get((event.namespace, event.worker), ()):
            if not subscription.offer(event):
                self.dropped_total += 1

    def _received(self, message: dict[str, Any]) -> None:
        event, namespace, worker = (message.get(key) for key in ("event", "namespace", "worker"))
        if message.get("origin") == self._origin or not isinstance(event, dict):
            return
        if isinstance(namespace, str) and isinstance(worker, str):
            self.deliver(Invocation(namespace, worker, event))

    def _watching(self, message: dict[str, Any]) -> None:
        if message.get("origin") == self._origin:
            return
        until = time.monotonic() + 3 * WATCH_EVERY_S
        for pair in message.get("tails", ()):
            if isinstance(pair, list) and len(pair) == 2:
                self._watched[(str(pair[0]), str(pair[1]))] = until

    def _announce(self, tails: list[tuple[str, str]]) -> None:
        """Tell the other replicas that these workers are tailed here."""
        # A bus message is at most MAX_MESSAGE_BYTES: 40 pairs of names fit.
        for start in range(0, len(tails), 40):
            pairs = [list(pair) for pair in tails[start : start + 40]]
            self._send(_WATCH, {"origin": self._origin, "tails": pairs})

    async def _announce_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            self._watched = {key: until for key, until in self._watched.items() if until > now}
            self._announce(list(self._subscribers))

    def _send(self, channel: str, message: dict[str, Any]) -> None:
        if self._bus is None:
            return
        try:
            self._bus.publish_threadsafe(channel, message)
        except ValueError:
            log.warning("tail: a message for channel %r is too large for the bus", channel)


def invocation(
    namespace: str,
    worker: str,
    *,
    method: str,
    url: str,
    result: RunResult,
    outcome: str,
    status: int,
    ended_at: datetime | None = None,
) -> Invocation:
    """The tail event of one finished run of ``worker`` serving ``method url``, which
    dispatch answered with HTTP ``status`` (``outcome`` ok, or why it had no response).

    Only the path of the request (never its query, headers or body); the worker's
    stdout/stderr lines and its exception with traceback, clipped; each subrequest's
    method, host, status and whether the gate let it out.
    """
    error = result.error
    logs, logs_truncated = _log_lines(result.stdout, result.stderr)
    data: dict[str, Any] = {
        "time": (ended_at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "run_id": result.run_id,
        "namespace": namespace,
        "worker": worker,
        "outcome": outcome,
        "status": status,
        "request": {"method": method, "path": _clip(urlsplit(url).path or "/", _URL_CHARS)},
        "logs": logs,
        "logs_truncated": logs_truncated or result.output_truncated,
        "exception": (
            {
                "type": _clip(error.type, _MESSAGE_CHARS),
                "message": _clip(error.message, _MESSAGE_CHARS),
                "traceback": _clip_head(error.traceback, _TRACEBACK_CHARS),
            }
            if error is not None
            else None
        ),
        "subrequests": [
            {
                "method": sub.method,
                "host": _host(sub.url),
                "status": sub.status,
                "blocked": not sub.allowed,
                "reason": sub.reason,
            }
            for sub in result.subrequests[:_SUBREQUESTS]
        ],
        "subrequests_truncated": len(result.subrequests) > _SUBREQUESTS,
        "cpu_ms": round(result.usage.cpu_ms, 3),
        "wall_ms": round(result.usage.wall_ms, 3),
    }
    return Invocation(namespace, worker, _fit(data))


def _log_lines(stdout: str, stderr: str) -> tuple[list[dict[str, str]], bool]:
    lines: list[dict[str, str]] = []
    size = 0
    truncated = False
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        for line in text.splitlines():
            if len(lines) >= _LOG_LINES or size >= _LOGS_CHARS:
                return lines, True
            clipped = _clip(line, min(_LOG_LINE_CHARS, _LOGS_CHARS - size))
            truncated |= clipped != line
            size += len(clipped)
            lines.append({"stream": stream, "text": clipped})
    return lines, truncated


def _fit(data: dict[str, Any]) -> dict[str, Any]:
    """Clip the event until its JSON is under EVENT_MAX_BYTES (non-ASCII text is longer)."""
    while len(json.dumps(data, separators=(",", ":")).encode()) > EVENT_MAX_BYTES:
        if data["logs"]:
            data["logs"] = data["logs"][: len(data["logs"]) // 2]
            data["logs_truncated"] = True
        elif data["exception"] and len(data["exception"]["traceback"]) > 200:
            data["exception"]["traceback"] = _clip_head(data["exception"]["traceback"], 200)
        elif data["subrequests"]:
            data["subrequests"] = data["subrequests"][: len(data["subrequests"]) // 2]
            data["subrequests_truncated"] = True
        else:
            data["request"]["path"] = _clip(data["request"]["path"], 50)
            if data["exception"]:
                data["exception"]["message"] = _clip(data["exception"]["message"], 100)
            break
    return data


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _clip_head(text: str, limit: int) -> str:
    """The end of a traceback is where the exception is: keep that, clip the start."""
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1 :]
