"""The SSE vocabulary of /v1/execute, and the JSON view of a finished run.

Events, in order: ``start`` once; ``stdout``, ``stderr``, ``display`` and
``subrequest`` as they happen; ``result`` at most once; ``files`` once when the
request had ``return_files``; ``end`` always, last (with ``reason`` ``shutdown`` when
the service canceled the run as it shut down: app/draining.py). Every ``data`` is a
JSON object; ``id`` counts from 0 within the stream.

:class:`EventStream` sends them, and drops a client that stops taking them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app.schemas import (
    ErrorOut,
    ExecuteResponse,
    FileOut,
    OutputOut,
    ResultOut,
    SubrequestOut,
    UsageOut,
)
from sandbox import (
    Display,
    End,
    Event,
    Files,
    GuestError,
    Output,
    ResultValue,
    RunResult,
    Started,
    Status,
    Subrequest,
    Usage,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShutdownEnd(End):
    """The end of a run the service canceled because it was shutting down."""

    reason: str = "shutdown"

    @classmethod
    def now(cls) -> ShutdownEnd:
        return cls(
            status=Status.CANCELED,
            usage=Usage(),
            error=GuestError(
                type="Shutdown",
                message="the server shut down before the run finished "
                "(SANDLOT_DRAIN_TIMEOUT_MS passed); run it again",
            ),
        )


class EventStream(EventSourceResponse):
    """A text/event-stream response that disconnects a client which can't keep up.

    Every send (an event, or the ping comment every ``ping_ms``) must be taken by the client within
    ``send_timeout_ms``; one that isn't ends the response: the event generator is
    closed (a run still going is canceled) and the connection is dropped without the
    final chunk, so the client sees a cut stream, never a complete one without ``end``.
    The run's worker never waits for the client: it was released at the run's end.
    """

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent],
        *,
        send_timeout_ms: int,
        ping_ms: int = 15_000,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            content, ping=ping_ms / 1000, send_timeout=send_timeout_ms / 1000, background=background
        )
        self.send_timeout_ms = send_timeout_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except* SendTimeoutError:
            log.warning(
                "%s %s: the client took no data for %d ms (SANDLOT_STREAM_SEND_TIMEOUT_MS); "
                "dropping the stream",
                scope.get("method"),
                scope.get("path"),
                self.send_timeout_ms,
            )


def event_payload(event: Event, run_id: str) -> tuple[str, dict[str, Any]]:
    """The SSE event name and JSON data for one sandbox event."""
    match event:
        case Started():
            return "start", {"id": event.run_id, "engine": event.engine}
        case Output():
            return event.stream, {"text": event.text}
        case Subrequest():
            return "subrequest", asdict(event)
        case Display():
            return "display", {"mime_type": event.mime_type, "data": event.data}
        case Files():
            return "files", {"files": [asdict(item) for item in event.files]}
        case ResultValue():
            return "result", asdict(event)
        case End():
            reason = {"reason": event.reason} if isinstance(event, ShutdownEnd) else {}
            return "end", {
                "id": run_id,
                **reason,
                "status": event.status.value,
                "error": asdict(event.error) if event.error else None,
                "exit_code": event.exit_code,
                "output_truncated": event.output_truncated,
                "usage": asdict(event.usage),
            }
    raise TypeError(f"unknown event {event!r}")


def to_sse(event: Event, run_id: str, seq: int) -> ServerSentEvent:
    name, data = event_payload(event, run_id)
    return ServerSentEvent(data=json.dumps(data), event=name, id=str(seq))


def to_response(result: RunResult) -> ExecuteResponse:
    return ExecuteResponse(
        id=result.run_id,
        engine=result.engine,
        status=result.status,
        stdout=result.stdout,
        stderr=result.stderr,
        result=ResultOut.model_validate(asdict(result.result)) if result.result else None,
        error=ErrorOut.model_validate(asdict(result.error)) if result.error else None,
        exit_code=result.exit_code,
        output_truncated=result.output_truncated,
        usage=UsageOut.model_validate(asdict(result.usage)),
        subrequests=[SubrequestOut.model_validate(asdict(s)) for s in result.subrequests],
        outputs=[OutputOut.model_validate(asdict(o)) for o in result.outputs],
        files=[FileOut.model_validate(asdict(f)) for f in result.files],
    )


async def unless_disconnected(work: Coroutine[Any, Any, None], request: Request) -> bool:
    """Run ``work`` while watching the client: True when it finished, False (and ``work``
    cancelled) when the client went away first. ``work``'s own exception propagates."""
    work_task = asyncio.create_task(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch_task = asyncio.create_task(disconnected())
    try:
        done, _ = await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch_task.cancel()
        if not work_task.done():
            work_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work_task
    if work_task not in done:
        return False
    work_task.result()
    return True


async def collect_unless_disconnected(
    first: Started, events: AsyncIterator[Event], request: Request
) -> RunResult | None:
    """Gather a run's events; None (the run cancelled) if the client goes away first."""
    result = RunResult()
    result.add(first)

    async def gather() -> None:
        async for event in events:
            result.add(event)

    try:
        finished = await unless_disconnected(gather(), request)
    finally:
        await close_events(events)
    return result if finished else None


async def close_events(events: AsyncIterator[Event]) -> None:
    """Close a run's event stream (cancelling the run if it is still going)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
