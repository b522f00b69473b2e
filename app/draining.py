"""Graceful shutdown: on SIGTERM the service drains before it exits.

Draining, in order (``Drain.shut_down``):

1. ``/readyz`` answers 503 at once, so load balancers stop sending. For
   ``SANDLOT_DRAIN_DELAY_MS`` (0 by default) new requests are still served: those a load
   balancer sends before its next health check would otherwise get a 503. Then every new
   request except ``/healthz``, ``/readyz`` and ``/metrics`` gets 503 ``shutting_down``
   with ``Retry-After`` (:class:`DrainGate`).
2. Requests in flight (JSON and streamed runs, dispatches) finish, for up to
   ``SANDLOT_DRAIN_TIMEOUT_MS``.
3. Past it, runs still going are canceled: a JSON caller gets status ``canceled``, a
   streamed one its ``end`` with status ``canceled`` and reason ``shutdown``
   (:meth:`Drain.bounded`).
4. Open sessions are ended with reason ``shutdown``; then the server exits.

A second SIGTERM or SIGINT exits at once (app/__main__.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from app import request_context
from app.events import ShutdownEnd
from sandbox import Event

__all__ = ["Drain", "DrainGate"]

log = logging.getLogger(__name__)

# Answered while draining: probes, and the metrics that watch the drain.
_ALWAYS_ANSWERED = frozenset({"/healthz", "/readyz", "/metrics"})
# After the drain timeout: how long canceled runs get to send their end and close.
_CANCEL_GRACE_S = 5.0


class Drain:
    """The service's drain state: made in create_app, started by SIGTERM.

    ``draining``: not ready (set by the signal handler at once). ``refusing``: new
    requests are refused, from ``delay_ms`` after the drain started.
    """

    def __init__(self, timeout_ms: int = 30_000, *, delay_ms: int = 0) -> None:
        self.timeout_ms = timeout_ms
        self.delay_ms = delay_ms
        self.draining = False
        self.refusing = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._expired = asyncio.Event()
        self._started = asyncio.Event()
        self._on_drained: list[Callable[[], Awaitable[None]]] = []

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    async def wait_started(self) -> None:
        """Return once draining has started (streams that never end on their own, like a
        tail, end then instead of holding the drain up)."""
        await self._started.wait()

    def on_drained(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` once requests are done, before the server exits."""
        self._on_drained.append(callback)

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def shut_down(self) -> None:
        """Steps 1-4 of the module docstring; returns when the server may exit."""
        self.draining = True
        self._started.set()
        if self.delay_ms:
            log.info(
                "draining: not ready; new requests served for %d ms more (SANDLOT_DRAIN_DELAY_MS)",
                self.delay_ms,
            )
            await asyncio.sleep(self.delay_ms / 1000)
        self.refusing = True
        log.info(
            "draining: %d requests in flight, up to %d ms (SANDLOT_DRAIN_TIMEOUT_MS)",
            self.in_flight,
            self.timeout_ms,
        )
        if not await self._wait_idle(self.timeout_ms / 1000):
            log.warning(
                "drain timeout passed with %d requests in flight; canceling their runs",
                self.in_flight,
            )
            self._expired.set()
            await self._wait_idle(_CANCEL_GRACE_S)
        for callback in self._on_drained:
            try:
                await callback()
            except Exception:
                log.exception("shutdown step failed")
        log.info("drained; exiting")

    async def _wait_idle(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def bounded(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """``events`` until the drain timeout passes; then the run is canceled and a
        :class:`ShutdownEnd` ends it. Closing this closes ``events``."""
        # One context for every step, so what the run puts in the log context stays.
        context = contextvars.copy_context()
        expired = asyncio.create_task(self._expired.wait())
        step: asyncio.Task[Event | None] | None = None
        try:
            while True:
                step = asyncio.create_task(_next(events), context=context)
                await asyncio.wait({step, expired}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    yield ShutdownEnd.now()
                    return
                request_context.adopt(context)
                event = step.result()
                if event is None:
                    return
                yield event
        finally:
            expired.cancel()
            if step is not None and not step.done():
                # Closed mid-step (the client went away): the run stops with it.
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


async def _next(events: AsyncIterator[Event]) -> Event | None:
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


class DrainGate:
    """ASGI middleware: counts requests in flight, and refuses new ones while draining."""

    def __init__(self, app: ASGIApp, drain: Drain, on_refused: Callable[[], None]) -> None:
        self.app = app
        self.drain = drain
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _ALWAYS_ANSWERED:
            await self.app(scope, receive, send)
            return
        if self.drain.refusing:
            self.on_refused()
            await _refuse(send)
            return
        self.drain.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.leave()


async def _refuse(send: Send) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "shutting_down",
                "message": "this server is shutting down; retry (another replica, or this "
                "one once restarted, will answer)",
                "details": [],
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
