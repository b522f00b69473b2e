"""The session tools for agents: create_session, run_in_session, upload_file,
download_file and close_session (app/tools.py lists them with the others).

Each calls the same service functions as /v1/sessions (app/sessions/), as the caller's
key: a session made through a tool is the key's like any other, and its HTTP routes see it.
A session another replica holds is reached through that replica's /v1/sessions routes, as
the same caller (app/session_proxy.py).
``app/tools.py`` makes :data:`SESSION_TOOLS` into its ``Tool`` values; this module imports
it only inside the calls, so either can be imported first.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from app.auth import Principal
from app.deps import Services
from app.errors import ApiError, invalid_field
from app.events import to_response
from app.policy import caller_ceiling
from app.schemas import ExecuteResponse
from app.session_schemas import (
    CloseSessionIn,
    DownloadFileIn,
    RunInSessionIn,
    SessionCreate,
    SessionExecuteResponse,
    UploadFileIn,
)
from app.sessions import SessionManager
from sandbox import collect

if TYPE_CHECKING:
    from app.tools import ToolOutput

__all__ = ["SESSION_TOOLS"]

# What download_file hands back at most: a model reads text, not megabytes.
DOWNLOAD_MAX_BYTES = 1024 * 1024


def _manager(services: Services) -> SessionManager:
    if services.sessions is None:
        raise ApiError(503, "engine_unavailable", "sessions are not ready yet; retry shortly")
    return services.sessions


async def _elsewhere(
    services: Services,
    caller: Principal,
    session_id: str,
    method: str,
    path: str,
    **body: Any,
) -> httpx.Response | None:
    """The answer of the replica holding the session, if another one does."""
    if services.session_proxy is None:
        return None
    return await services.session_proxy.call(caller, session_id, method, path, **body)


def _file_path(path: str) -> str:
    """The files route of ``path``, quoted so that no character (``?``, ``#``, a ``..``
    segment an HTTP client would fold) changes what the owner receives."""
    return "/files/" + quote(path, safe="/").replace(".", "%2E")


async def _create_session(services: Services, caller: Principal, args: SessionCreate) -> ToolOutput:
    from app.tools import ToolOutput

    ceiling = await caller_ceiling(services.settings, services.store, caller)
    session = await _manager(services).create(caller, ceiling, args)
    described = session.describe()
    text = (
        f"session {session.id} is open ({session.runtime}, {session.memory_mb} MiB). Pass "
        f"session_id={session.id!r} to run_in_session: globals, imports and files persist "
        f"between calls. It ends after {session.idle_timeout_s} s without a call, or when a "
        "call hits a limit (cpu_limit, wall_limit, memory_limit, ...); close it with "
        "close_session when done."
    )
    return ToolOutput(described.model_dump(mode="json"), text, False)


async def _run_in_session(
    services: Services, caller: Principal, args: RunInSessionIn
) -> ToolOutput:
    from app.tools import ToolOutput, render_run

    sessions = _manager(services)
    turn = args.model_dump(mode="json", by_alias=True, exclude={"session_id"}, exclude_unset=True)
    remote = await _elsewhere(services, caller, args.session_id, "POST", "/execute", json_body=turn)
    run: ExecuteResponse
    if remote is not None:
        answer = SessionExecuteResponse.model_validate(remote.json())
        run, state = answer, answer.session
    else:
        session = sessions.get(caller, args.session_id)
        ceiling = await caller_ceiling(services.settings, services.store, caller)
        job = sessions.turn_job(session, ceiling, args, live_output=False)
        sessions.claim(session)
        run = to_response(await collect(await sessions.turn(session, job)))
        state = session.state()
    result: dict[str, Any] = run.model_dump(mode="json", by_alias=True, exclude={"session"})
    result["session"] = state.model_dump(mode="json")
    text = render_run(run)
    if state.state == "ended":
        text += (
            f"\nthe session has ended ({state.ended_reason}): its variables and files are "
            "gone; create_session makes a new one"
        )
    images = tuple(
        (output.mime_type, output.data)
        for output in run.outputs
        if output.mime_type in ("image/png", "image/jpeg", "image/gif")
    )
    return ToolOutput(result, text, False, images)


async def _upload_file(services: Services, caller: Principal, args: UploadFileIn) -> ToolOutput:
    from app.tools import ToolOutput

    sessions = _manager(services)
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except ValueError as exc:
            raise invalid_field("content", f"is not valid base64: {exc}") from None
    else:
        data = args.content.encode()
    remote = await _elsewhere(
        services, caller, args.session_id, "PUT", _file_path(args.path), content=data
    )
    if remote is None:
        await sessions.write_file(sessions.get(caller, args.session_id), args.path, data)
    text = f"wrote {len(data)} bytes to {args.path} (the code opens it as {args.path!r})"
    return ToolOutput({"path": args.path, "size": len(data)}, text, False)


async def _download_file(services: Services, caller: Principal, args: DownloadFileIn) -> ToolOutput:
    from app.tools import ToolOutput

    sessions = _manager(services)
    remote = await _elsewhere(services, caller, args.session_id, "GET", _file_path(args.path))
    if remote is not None:
        data = remote.content
        if len(data) > DOWNLOAD_MAX_BYTES:
            raise ApiError(
                413,
                "payload_too_large",
                f"{args.path} is {len(data)} bytes; download_file reads at most "
                f"{DOWNLOAD_MAX_BYTES}",
            )
    else:
        session = sessions.get(caller, args.session_id)
        data = await sessions.read_file(session, args.path, DOWNLOAD_MAX_BYTES)
    out: dict[str, Any] = {"path": args.path, "size": len(data), "text": None, "base64": None}
    try:
        out["text"] = data.decode()
        text = f"{args.path} ({len(data)} bytes):\n{out['text']}"
    except UnicodeDecodeError:
        out["base64"] = base64.b64encode(data).decode()
        text = f"{args.path}: {len(data)} bytes of binary data, in base64"
    return ToolOutput(out, text, False)


async def _close_session(services: Services, caller: Principal, args: CloseSessionIn) -> ToolOutput:
    from app.tools import ToolOutput

    sessions = _manager(services)
    if await _elsewhere(services, caller, args.session_id, "DELETE", "") is None:
        await sessions.end(sessions.get(caller, args.session_id), "closed")
    return ToolOutput(
        {"id": args.session_id, "state": "ended"}, f"session {args.session_id} closed", False
    )


# (name, description, arguments, call): app/tools.py makes each a Tool.
SESSION_TOOLS: tuple[
    tuple[str, str, type[BaseModel], Callable[[Services, Principal, Any], Awaitable[ToolOutput]]],
    ...,
] = (
    (
        "create_session",
        "Open a session: a Python interpreter (with numpy, pandas, matplotlib, scipy, "
        "scikit-learn and more) that keeps its variables, imports and files between "
        "run_in_session calls, like a notebook. Returns its id. Use it for work in steps: "
        "load data once, then look, clean, plot. Limits apply to each call; memory_mb is the "
        "whole session's. Close it with close_session when done.",
        SessionCreate,
        _create_session,
    ),
    (
        "run_in_session",
        "Run Python code in a session made by create_session: like a notebook cell, it sees "
        "everything earlier calls defined, and a trailing expression's value comes back as "
        "the result, with stdout, stderr, charts and any exception. Files are in the "
        "working directory. If a call hits a limit (status cpu_limit, wall_limit, "
        "memory_limit, output_limit, ...) the session ends and its state is lost.",
        RunInSessionIn,
        _run_in_session,
    ),
    (
        "upload_file",
        "Write a file into a session's working directory (text, or base64 with encoding "
        "'base64'), for code in run_in_session to read by its relative path.",
        UploadFileIn,
        _upload_file,
    ),
    (
        "download_file",
        "Read a file from a session's working directory (one the code wrote): text, or "
        "base64 for binary files; at most 1 MiB.",
        DownloadFileIn,
        _download_file,
    ),
    (
        "close_session",
        "Close a session made by create_session when the work is done: its interpreter, "
        "variables and files are gone, and its memory goes back to the server.",
        CloseSessionIn,
        _close_session,
    ),
)
