"""GET /v1/namespaces/{ns}/workers/{name}/tail: a worker's invocations, live, over SSE.

The hub is app/tail.py's. Events, in order: ``open`` once (the tail is subscribed: what
is dispatched from now on is seen); then ``invocation`` for each finished invocation and
``dropped`` where invocations were missed because this client read too slowly; ``end``
with ``reason`` ``shutdown`` when the server drains. A heartbeat comment
(``: ping ...``) every SANDLOT_TAIL_HEARTBEAT_MS keeps proxies from closing a quiet tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette import ServerSentEvent
from starlette.background import BackgroundTask

from app.auth import CallerDep, require_namespace
from app.deps import ServicesDep
from app.draining import Drain
from app.errors import CONTROL_PLANE_ERRORS, ApiError
from app.events import EventStream
from app.routes.workers import WorkerName
from app.schemas import ErrorResponse
from app.store import workers
from app.tail import Dropped, Subscription, TailHub, TooManyTails

router = APIRouter(prefix="/v1/namespaces/{namespace}/workers", tags=["workers"])


@router.get(
    "/{name}/tail",
    responses={
        200: {
            "description": "The worker's invocations as they finish (text/event-stream)",
            "content": {"text/event-stream": {}},
        },
        **CONTROL_PLANE_ERRORS,
        429: {
            "model": ErrorResponse,
            "description": "too_many_tails: the namespace has SANDLOT_TAIL_MAX_PER_NAMESPACE "
            "tails open on this server",
        },
    },
    response_model=None,
)
async def tail(
    namespace: str, name: WorkerName, caller: CallerDep, services: ServicesDep
) -> EventStream:
    """Stream the worker's invocations live: time, outcome and HTTP status, the request's
    method and path, the worker's stdout/stderr lines and exception with traceback,
    its subrequests, cpu_ms and wall_ms (docs/operations.md, "Tail")."""
    require_namespace(caller, namespace)
    await asyncio.to_thread(workers.get, services.store, namespace, name)
    hub = services.tails
    try:
        subscription = hub.open(namespace, name)
    except TooManyTails as exc:
        raise ApiError(
            429,
            "too_many_tails",
            f"namespace {namespace!r} has {exc.limit} tails open on this server "
            "(SANDLOT_TAIL_MAX_PER_NAMESPACE); close one first",
            headers={"Retry-After": "5"},
        ) from None
    settings = services.settings
    return EventStream(
        _events(subscription, hub, services.drain, settings.tail_heartbeat_ms),
        send_timeout_ms=settings.stream_send_timeout_ms,
        ping_ms=settings.tail_heartbeat_ms,
        # Also when the stream never started (the client left at once).
        background=BackgroundTask(hub.close, subscription),
    )


async def _events(
    subscription: Subscription, hub: TailHub, drain: Drain, heartbeat_ms: int
) -> AsyncIterator[ServerSentEvent]:
    seq = 0

    def sse(name: str, data: dict[str, object] | str) -> ServerSentEvent:
        nonlocal seq
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        event = ServerSentEvent(data=text, event=name, id=str(seq))
        seq += 1
        return event

    draining = asyncio.create_task(drain.wait_started())
    following: asyncio.Task[object] | None = None
    try:
        yield sse(
            "open",
            {
                "namespace": subscription.namespace,
                "worker": subscription.worker,
                "heartbeat_ms": heartbeat_ms,
            },
        )
        while True:
            following = asyncio.create_task(subscription.next())
            await asyncio.wait({following, draining}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                yield sse("end", {"reason": "shutdown"})
                return
            item = following.result()
            if isinstance(item, Dropped):
                yield sse("dropped", {"dropped": item.count})
            else:
                yield sse("invocation", item.to_json())
    finally:
        draining.cancel()
        if following is not None and not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        hub.close(subscription)
