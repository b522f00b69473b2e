"""A publish/subscribe bus between the replicas of one service (issue 15, item 2).

Replicas tell each other what changed: a write that makes cached reads stale
(channel ``cache``), artifacts deleted (``artifacts``), and whatever else needs to
reach every replica (tail uses its own channels). The API::

    bus = Bus.for_database(database_url)   # PostgresBus on PostgreSQL, LocalBus otherwise
    await bus.start()                       # in the app's lifespan; ``await bus.close()``
    off = await bus.subscribe("cache", handler)   # handler(message: dict) -> None | Awaitable
    bus.on_reconnect(callback)              # callback() after the link was lost and is back
    await bus.publish("cache", {"tables": ["workers"]})   # every replica's subscribers
    bus.publish_threadsafe(channel, message)      # the same, from another thread
    await off()                             # stop receiving (idempotent)

* **Channels** are names of 1-48 characters ``[a-z0-9_.:-]`` starting with a letter or
  digit. **Messages** are JSON objects of at most 7,900 bytes encoded (compact separators;
  NOTIFY's payload limit is 8,000): send ids and short texts, not bodies. Bad names
  or messages raise ValueError.
* **Delivery** reaches every subscriber of the channel on every replica, this one
  included, in the order each publisher sent, at most once. Handlers run in the event
  loop, one message at a time: keep them short (hand work to a queue or a task).
* **Transactional messages**: ``Store.notify`` (app/store/db.py) sends a message when,
  and only if, its transaction commits (``pg_notify`` in the transaction); the store
  also announces every commit that wrote the tables read caches keep on ``cache``.
* **Loss**: a replica whose connection drops reconnects with back-off (0.1 s doubling to
  2 s) and, once back, calls every ``on_reconnect`` callback, since messages sent
  meanwhile are gone: callers drop what such messages would have invalidated.

:class:`PostgresBus` uses LISTEN/NOTIFY (one connection listening, one publishing);
:class:`LocalBus` serves one process (SQLite), where no other replica can write.
Redis pub/sub is not used: NOTIFY rides in the writing transaction, so a message can't
be sent for a write that rolled back or be lost between commit and publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import make_url

from app.store.db import pg_channel

__all__ = ["Bus", "Handler", "LocalBus", "PostgresBus", "checked_channel", "encoded"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,47}")
MAX_MESSAGE_BYTES = 7_900
_BACKOFF_S = (0.1, 2.0)
# How long the listener waits for notifications before it looks for new channels.
_POLL_S = 0.2


def checked_channel(channel: str) -> str:
    if not _CHANNEL.fullmatch(channel):
        raise ValueError(
            f"bus channel {channel!r}: 1-48 characters of a-z, 0-9, '_', '.', ':', '-'"
        )
    return channel


def encoded(message: dict[str, Any]) -> str:
    """The message as sent; ValueError if it is not a JSON object within the limit."""
    if not isinstance(message, dict):
        raise ValueError("a bus message is a JSON object")
    payload = json.dumps(message, separators=(",", ":"))
    if len(payload.encode()) > MAX_MESSAGE_BYTES:
        raise ValueError(f"a bus message is at most {MAX_MESSAGE_BYTES} bytes encoded")
    return payload


class Bus:
    """What both buses share: subscribers by channel, delivery, reconnect callbacks."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._reconnected: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Times the link came back after it was lost (a metric: app/metrics.py).
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Whether messages from other replicas arrive now (always, in one process)."""
        return True

    @staticmethod
    def for_database(url: str) -> Bus:
        """The bus for a service on this database URL."""
        if make_url(url).get_backend_name() == "postgresql":
            return PostgresBus(url)
        return LocalBus()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        return None

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], Awaitable[None]]:
        """Call ``handler`` with every message on ``channel`` from now on; returns the
        coroutine function that stops it."""
        handlers = self._handlers.setdefault(checked_channel(channel), [])
        handlers.append(handler)
        await self._listen(channel)

        async def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)
                if not handlers:
                    del self._handlers[channel]
                    await self._unlisten(channel)

        return unsubscribe

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the bus is back after losing messages."""
        self._reconnected.append(callback)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def publish_threadsafe(self, channel: str, message: dict[str, Any]) -> None:
        """``publish`` from a thread that isn't the event loop's (fire and forget)."""
        checked_channel(channel)
        encoded(message)
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._publish_soon, channel, message)

    def _publish_soon(self, channel: str, message: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.publish(channel, message))
        task.add_done_callback(_log_failure)

    async def _listen(self, channel: str) -> None:
        return None

    async def _unlisten(self, channel: str) -> None:
        return None

    async def _deliver(self, channel: str, message: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(channel, ())):
            try:
                done = handler(message)
                if inspect.isawaitable(done):
                    await done
            except Exception:
                log.exception("bus: a handler of %r failed", channel)

    def _reconnect_callbacks(self) -> None:
        for callback in self._reconnected:
            try:
                callback()
            except Exception:
                log.exception("bus: a reconnect callback failed")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("bus: publishing failed: %s", task.exception())


class LocalBus(Bus):
    """One process: messages go straight to this process's subscribers."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        checked_channel(channel)
        await self._deliver(channel, json.loads(encoded(message)))


class PostgresBus(Bus):
    """LISTEN/NOTIFY on the service's PostgreSQL database."""

    def __init__(self, url: str) -> None:
        super().__init__()
        # psycopg's own URL: without SQLAlchemy's driver suffix. Keepalives notice a
        # link that died without a word within about 10 s.
        parsed = make_url(url).set(drivername="postgresql")
        self._conninfo = make_conninfo(
            parsed.render_as_string(hide_password=False),
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            connect_timeout=5,
        )
        self._listener: asyncio.Task[None] | None = None
        self._publisher: psycopg.AsyncConnection[Any] | None = None
        self._publish_lock = asyncio.Lock()
        # Channels the listening connection LISTENs to, and changes it has yet to make.
        self._listening: set[str] = set()
        self._changes: asyncio.Queue[tuple[str, bool, asyncio.Future[None]]] = asyncio.Queue()
        self._connected = asyncio.Event()

    async def start(self) -> None:
        await super().start()
        self._listener = asyncio.create_task(self._listen_forever(), name="bus-listener")
        # Start-up waits for the first connection (a wrong URL fails the migration first).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=10)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._publisher is not None:
            await self._publisher.close()
            self._publisher = None

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send now (not in a transaction); raises psycopg.Error if the database can't be
        reached twice in a row."""
        payload = encoded(message)
        name = pg_channel(checked_channel(channel))
        async with self._publish_lock:
            for attempt in (1, 2):
                try:
                    if self._publisher is None or self._publisher.closed:
                        self._publisher = await psycopg.AsyncConnection.connect(
                            self._conninfo, autocommit=True
                        )
                    await self._publisher.execute("SELECT pg_notify(%s, %s)", (name, payload))
                    return
                except psycopg.OperationalError:
                    if self._publisher is not None:
                        await self._publisher.close()
                    self._publisher = None
                    if attempt == 2:
                        raise

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def _listen(self, channel: str) -> None:
        await self._change(channel, True)

    async def _unlisten(self, channel: str) -> None:
        await self._change(channel, False)

    async def _change(self, channel: str, listen: bool) -> None:
        if self._listener is None:  # not started: the first connection listens to it
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._changes.put((channel, listen, done))
        # Made by the listener within _POLL_S when connected; when not, it is made on
        # reconnecting (then callers hear of it through on_reconnect).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout=5)

    async def _listen_forever(self) -> None:
        delay = _BACKOFF_S[0]
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    self._listening = set()
                    for channel in list(self._handlers):
                        await self._execute_listen(conn, channel, True)
                    self._connected.set()
                    if not first:
                        log.info("bus: reconnected; dropping what missed messages would have")
                        self.reconnects += 1
                        self._reconnect_callbacks()
                    first, delay = False, _BACKOFF_S[0]
                    await self._receive(conn)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                if self._connected.is_set() or first:
                    log.warning("bus: connection lost (%s); reconnecting", exc)
                self._connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_S[1])

    async def _receive(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while True:
            async for notice in conn.notifies(timeout=_POLL_S):
                channel = notice.channel.removeprefix("sandlot.")
                try:
                    message = json.loads(notice.payload)
                except ValueError:
                    log.warning("bus: a message on %r is not JSON; dropped", channel)
                    continue
                if isinstance(message, dict):
                    await self._deliver(channel, message)
            while not self._changes.empty():
                channel, listen, done = self._changes.get_nowait()
                await self._execute_listen(conn, channel, listen)
                if not done.done():
                    done.set_result(None)
            if conn.closed:
                raise psycopg.OperationalError("the listening connection closed")

    async def _execute_listen(
        self, conn: psycopg.AsyncConnection[Any], channel: str, listen: bool
    ) -> None:
        wanted = listen and channel in self._handlers
        if wanted == (channel in self._listening):
            return
        verb = sql.SQL("LISTEN {}" if wanted else "UNLISTEN {}")
        await conn.execute(verb.format(sql.Identifier(pg_channel(channel))))
        if wanted:
            self._listening.add(channel)
        else:
            self._listening.discard(channel)
