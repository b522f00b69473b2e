"""/v1/sessions: interpreters kept between calls, with their files (app/sessions/)."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from sse_starlette import ServerSentEvent

from app.auth import CallerDep, Principal
from app.deps import ServicesDep
from app.events import (
    EventStream,
    close_events,
    collect_unless_disconnected,
    to_response,
    to_sse,
)
from app.policy import caller_ceiling
from app.schemas import ErrorResponse
from app.session_proxy import SessionProxy
from app.session_schemas import (
    SessionCreate,
    SessionExecuteRequest,
    SessionExecuteResponse,
    SessionFiles,
    SessionList,
    SessionOut,
)
from app.sessions import Session, SessionManager
from sandbox import End, Event, Started

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


async def get_sessions(request: Request) -> SessionManager:
    manager: SessionManager = request.app.state.sessions
    return manager


SessionsDep = Annotated[SessionManager, Depends(get_sessions)]


async def _elsewhere(request: Request, caller: Principal, session_id: str) -> Response | None:
    """The owner's answer when another replica holds the session (app/session_proxy.py)."""
    proxy: SessionProxy | None = getattr(request.app.state, "session_proxy", None)
    if proxy is None:
        return None
    return await proxy.route(request, caller, session_id)


SessionId = Annotated[str, Path(description="The session's id (ses_...)", max_length=64)]
FilePath = Annotated[str, Path(description="Relative to the session's directory (/work)")]

_401 = {"model": ErrorResponse, "description": "Missing or unknown API key"}
_404 = {"model": ErrorResponse, "description": "No such session for this key"}
_409 = {"model": ErrorResponse, "description": "A turn is running in the session"}
_410 = {"model": ErrorResponse, "description": "The session has ended; the message says why"}
_422 = {"model": ErrorResponse, "description": "Invalid request; details name the fields"}
_503 = {
    "model": ErrorResponse,
    "description": "Another replica holds the session and did not answer; retry",
}


@router.post(
    "",
    status_code=201,
    response_model=SessionOut,
    responses={
        401: _401,
        422: _422,
        429: {"model": ErrorResponse, "description": "Too many sessions; names the limit"},
        503: {"model": ErrorResponse, "description": "The engine is not available"},
    },
)
async def create_session(
    body: SessionCreate, services: ServicesDep, sessions: SessionsDep, caller: CallerDep
) -> SessionOut:
    """Open a session: an interpreter that keeps its globals and files between turns.

    Owned by this API key (other keys get 404). Ends when closed, idle for
    ``idle_timeout_s``, past ``max_lifetime_s``, or after a turn ending anything but
    ``ok`` or ``error``.
    """
    ceiling = await caller_ceiling(services.settings, services.store, caller)
    return (await sessions.create(caller, ceiling, body)).describe()


@router.get("", response_model=SessionList, responses={401: _401})
async def list_sessions(request: Request, sessions: SessionsDep, caller: CallerDep) -> SessionList:
    """This key's open sessions (on every replica)."""
    found = [s.describe() for s in sessions.of(caller)]
    proxy: SessionProxy | None = getattr(request.app.state, "session_proxy", None)
    if proxy is not None:
        found += [
            SessionOut.model_validate(body) for body in await proxy.described(request, caller)
        ]
        found.sort(key=lambda s: s.created_at)
    return SessionList(sessions=found)


@router.get(
    "/{session_id}",
    response_model=SessionOut,
    responses={401: _401, 404: _404, 410: _410, 503: _503},
)
async def get_session(
    session_id: SessionId, request: Request, sessions: SessionsDep, caller: CallerDep
) -> SessionOut | Response:
    """The session: state (an ended one says why), usage so far, expiry, limits."""
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    return sessions.get(caller, session_id, ended_ok=True).describe()


@router.delete(
    "/{session_id}", status_code=204, responses={401: _401, 404: _404, 410: _410, 503: _503}
)
async def delete_session(
    session_id: SessionId, request: Request, sessions: SessionsDep, caller: CallerDep
) -> Response:
    """Close the session: its interpreter and files are gone (a running turn is ended)."""
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    await sessions.end(sessions.get(caller, session_id), "closed")
    return Response(status_code=204)


@router.post(
    "/{session_id}/execute",
    response_model=SessionExecuteResponse,
    responses={
        200: {
            "description": "The turn's result (JSON), or its events (text/event-stream)",
            "content": {"text/event-stream": {}},
        },
        401: _401,
        404: _404,
        409: _409,
        410: _410,
        422: _422,
        429: {"model": ErrorResponse, "description": "The session's worker stayed busy; retry"},
        503: {
            "model": ErrorResponse,
            "description": "The engine is not available, or the replica holding the session"
            " did not answer",
        },
    },
)
async def execute_in_session(
    session_id: SessionId,
    body: SessionExecuteRequest,
    request: Request,
    services: ServicesDep,
    sessions: SessionsDep,
    caller: CallerDep,
) -> Response | SessionExecuteResponse:
    """Run a turn: ``code`` in the session's ``__main__``, like a notebook cell.

    Same answers as /v1/execute, plus ``session`` (JSON): a turn ending anything but ok or
    error (cpu_limit, wall_limit, memory_limit, ...) ends the session. One turn at a time:
    another call while one runs gets 409.
    """
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    session = sessions.get(caller, session_id)
    ceiling = await caller_ceiling(services.settings, services.store, caller)
    streaming = body.stream or "text/event-stream" in request.headers.get("accept", "")
    job = sessions.turn_job(session, ceiling, body, live_output=streaming)
    sessions.claim(session)
    turn = services.metrics.observe(
        await sessions.turn(session, job),
        engine=session.runner.name,
        kind="session",
        namespace=caller.namespace,
    )
    events = aiter(services.drain.bounded(turn))
    first = await anext(events)
    if not isinstance(first, Started):
        raise RuntimeError(f"runner sent {first!r} before start")
    if streaming:
        return EventStream(
            _sse(first, events, session), send_timeout_ms=services.settings.stream_send_timeout_ms
        )
    result = await collect_unless_disconnected(first, events, request)
    if result is None:
        return Response(status_code=499)
    return SessionExecuteResponse(
        **to_response(result).model_dump(by_alias=True), session=session.state()
    )


@router.get(
    "/{session_id}/files",
    response_model=SessionFiles,
    responses={401: _401, 404: _404, 409: _409, 410: _410, 503: _503},
)
async def list_files(
    session_id: SessionId, request: Request, sessions: SessionsDep, caller: CallerDep
) -> SessionFiles | Response:
    """The session's files with their sizes (what /work holds; links are left out)."""
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    return await sessions.list_files(sessions.get(caller, session_id))


@router.put(
    "/{session_id}/files/{path:path}",
    status_code=204,
    responses={
        401: _401,
        404: _404,
        409: _409,
        410: _410,
        413: {"model": ErrorResponse, "description": "Over the session's disk quota"},
        422: _422,
        503: _503,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_file(
    session_id: SessionId,
    path: FilePath,
    request: Request,
    sessions: SessionsDep,
    caller: CallerDep,
) -> Response:
    """Write the raw body to ``path`` in the session's directory (replacing any file)."""
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    session = sessions.get(caller, session_id)
    await sessions.write_file(session, path, await request.body())
    return Response(status_code=204)


@router.get(
    "/{session_id}/files/{path:path}",
    responses={
        200: {"description": "The file's bytes", "content": {"application/octet-stream": {}}},
        401: _401,
        404: {"model": ErrorResponse, "description": "No such session, or no file there"},
        409: _409,
        410: _410,
        413: {"model": ErrorResponse, "description": "Larger than one answer may carry"},
        422: _422,
        503: _503,
    },
)
async def get_file(
    session_id: SessionId,
    path: FilePath,
    request: Request,
    services: ServicesDep,
    sessions: SessionsDep,
    caller: CallerDep,
) -> Response:
    """The file's bytes (a regular file; a link the code made is never followed)."""
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    session = sessions.get(caller, session_id)
    data = await sessions.read_file(session, path, services.settings.max_request_bytes)
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return Response(data, media_type=media)


@router.delete(
    "/{session_id}/files/{path:path}",
    status_code=204,
    responses={401: _401, 404: _404, 409: _409, 410: _410, 422: _422, 503: _503},
)
async def delete_file(
    session_id: SessionId,
    path: FilePath,
    request: Request,
    sessions: SessionsDep,
    caller: CallerDep,
) -> Response:
    """Remove the file (or directory) at ``path``."""
    if (answer := await _elsewhere(request, caller, session_id)) is not None:
        return answer
    await sessions.delete_file(sessions.get(caller, session_id), path)
    return Response(status_code=204)


async def _sse(
    first: Started, events: AsyncIterator[Event], session: Session
) -> AsyncIterator[ServerSentEvent]:
    """/v1/execute's events, and a ``session`` event (``id``, ``state``, ``ended_reason``)
    just before ``end``: whether the turn left the session open."""
    # Closing `events` (the client left) cancels the turn, which ends the session.
    try:
        yield to_sse(first, first.run_id, 0)
        seq = 1
        async for event in events:
            if isinstance(event, End):
                state = session.state().model_dump()
                yield ServerSentEvent(data=json.dumps(state), event="session", id=str(seq))
                seq += 1
            yield to_sse(event, first.run_id, seq)
            seq += 1
    finally:
        await close_events(events)
