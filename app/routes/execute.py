"""POST /v1/execute: run code once in a fresh sandbox; JSON or SSE.

The run is app/runs.py's; this route streams or gathers its events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import ServerSentEvent

from app.auth import current_caller
from app.deps import services_of
from app.events import (
    EventStream,
    close_events,
    collect_unless_disconnected,
    to_response,
    to_sse,
)
from app.policy import caller_ceiling
from app.runs import prepare_run, start_run
from app.schemas import ErrorResponse, ExecuteRequest, ExecuteResponse
from sandbox import Event, Started

router = APIRouter(tags=["execute"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
    422: {"model": ErrorResponse, "description": "Invalid request; details name the fields"},
    429: {
        "model": ErrorResponse,
        "description": "Every sandbox worker is busy, or a quota is reached; retry after "
        "Retry-After",
    },
    503: {"model": ErrorResponse, "description": "The engine is not available"},
}


@router.post(
    "/v1/execute",
    response_model=ExecuteResponse,
    responses={
        200: {
            "description": "The run's result (JSON), or its events (text/event-stream)",
            "content": {"text/event-stream": {}},
        },
        **_ERRORS,
    },
)
async def execute(body: ExecuteRequest, request: Request) -> Response | ExecuteResponse:
    """Run ``code`` in a fresh interpreter and return (or stream) what it did.

    A namespace's key runs within its namespace's limits and allowed_hosts (422 above
    them). Every run ends in one status: ok, error, cpu_limit, wall_limit,
    memory_limit, output_limit, subrequest_limit, canceled, internal_error.
    """
    # The hottest route: its services and caller are taken here, not through Depends
    # (FastAPI's dependency solving was ~0.1 ms of a ~4 ms print(1+1); BENCHMARKS.md).
    services = services_of(request.app)
    caller = await current_caller(request)
    ceiling = await caller_ceiling(services.settings, services.store, caller)
    streaming = body.stream or "text/event-stream" in request.headers.get("accept", "")
    runner, job = prepare_run(services, body, ceiling, live_output=streaming)
    metered = await start_run(
        services,
        runner,
        job,
        subjects=caller.quotas,
        kind="execute",
        namespace=caller.namespace,
    )
    events = aiter(services.drain.bounded(metered))
    # PoolBusy and quotas (429) surface here, before any response.
    first = await anext(events)
    if not isinstance(first, Started):
        raise RuntimeError(f"runner sent {first!r} before start")
    if streaming:
        return EventStream(
            _sse(first, events), send_timeout_ms=services.settings.stream_send_timeout_ms
        )
    result = await collect_unless_disconnected(first, events, request)
    if result is None:
        return Response(status_code=499)
    # Serialized here: FastAPI would validate the model against response_model again and
    # encode it twice over (the OpenAPI document still says ExecuteResponse).
    return Response(
        to_response(result).model_dump_json(by_alias=True), media_type="application/json"
    )


async def _sse(first: Started, events: AsyncIterator[Event]) -> AsyncIterator[ServerSentEvent]:
    # sse-starlette cancels this generator when the client disconnects; closing
    # `events` then cancels the run and recycles its worker.
    try:
        yield to_sse(first, first.run_id, 0)
        seq = 1
        async for event in events:
            yield to_sse(event, first.run_id, seq)
            seq += 1
    finally:
        await close_events(events)
