"""POST /v1/execute: run code once in a fresh sandbox; JSON or SSE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import ServerSentEvent

from app.auth import CallerDep
from app.config import Settings
from app.deps import Services, ServicesDep
from app.errors import invalid_field
from app.events import EventStream, to_response, to_sse
from app.policy import Ceiling, caller_ceiling, checked_hosts, egress_policy, run_limits
from app.schemas import ErrorResponse, ExecuteRequest, ExecuteResponse, RunIn
from sandbox import Event, InvalidJob, Job, Runner, RunResult, Started
from sandbox.engines.pyodide import packages
from sandbox.engines.stack import packages as stack_packages
from sandbox.outputs import FileCaps

router = APIRouter(tags=["execute"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
    422: {"model": ErrorResponse, "description": "Invalid request; details name the fields"},
    429: {"model": ErrorResponse, "description": "Every sandbox worker is busy; retry"},
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
async def execute(
    body: ExecuteRequest, request: Request, services: ServicesDep, caller: CallerDep
) -> Response | ExecuteResponse:
    """Run ``code`` in a fresh interpreter and return (or stream) what it did.

    A namespace's key runs within its namespace's limits and allowed_hosts (422 above
    them). Every run ends in one status: ok, error, cpu_limit, wall_limit,
    memory_limit, output_limit, subrequest_limit, canceled, internal_error.
    """
    ceiling = await caller_ceiling(services.settings, services.store, caller)
    runner, job = prepare_run(services, body, ceiling)
    events = aiter(runner.run(job))
    first = await anext(events)  # PoolBusy (429) surfaces here, before any response
    if not isinstance(first, Started):
        raise RuntimeError(f"runner sent {first!r} before start")
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        return EventStream(
            _sse(first, events), send_timeout_ms=services.settings.stream_send_timeout_ms
        )
    result = await _collect_unless_disconnected(first, events, request)
    if result is None:
        return Response(status_code=499)
    return to_response(result)


def prepare_run(services: Services, body: RunIn, ceiling: Ceiling) -> tuple[Runner, Job]:
    """The runner and the job for a run within the caller's ``ceiling``; 422 naming the
    field when the request can't run.

    Shared by /v1/execute and the execute_code tool (app/tools.py).
    """
    runtime = body.runtime or services.settings.default_runtime
    runner = services.runners.get(runtime)
    if runner is None:
        raise invalid_field("runtime", f"the {runtime} engine is not enabled on this server")
    job = build_job(body, services.settings, ceiling)
    check_requirements(job.requirements, runtime, services.settings, services.pyodide_lock_file)
    return runner, job


def check_requirements(
    requirements: Sequence[str], runtime: str, settings: Settings, lock_file: Path | None
) -> None:
    """422 unless every requirement is there for the runtime (installed or built in).

    Shared by runs and worker uploads (app/routes/workers.py).
    """
    if not requirements:
        return
    if runtime == "pyodide" and lock_file is not None:
        missing = packages.check_requirements(requirements, lock_file)
    elif runtime == "wasmtime" and settings.wasmtime_guest == "stack":
        missing = stack_packages.check_requirements(requirements, settings.artifact_dir)
    else:
        raise invalid_field(
            "requirements",
            f"this server's {runtime} runtime loads no packages (the component guest); "
            "packages load on runtime pyodide and on wasmtime's data-stack guest",
        )
    if missing:
        raise invalid_field(
            "requirements",
            f"not installed on this server for runtime {runtime}: {', '.join(missing)}; an "
            "operator adds pure-Python packages with `make packages PACKAGES=...` "
            "(compiled packages can't be added; docs/engines.md lists what each engine has)",
        )


def build_job(body: RunIn, settings: Settings, ceiling: Ceiling) -> Job:
    """Validate a request against the caller's ceiling (app/policy.py) and make it a Job."""
    limits = run_limits(ceiling, body.limits.model_dump())
    egress = egress_policy(settings, ceiling, checked_hosts(ceiling, body.allowed_hosts))
    files: dict[str, bytes] = {}
    for path, item in body.files.items():
        try:
            files[path] = item.encode() if isinstance(item, str) else item.data()
        except ValueError as exc:
            raise invalid_field(f"files.{path}", str(exc)) from None
    try:
        return Job(
            code=body.code,
            limits=limits,
            egress=egress,
            stdin=body.stdin,
            files=files,
            env=body.env,
            requirements=tuple(body.requirements),
            figure_format=body.figure_format,
            return_files=tuple(body.return_files),
            file_caps=FileCaps(
                max_bytes=settings.return_files_max_bytes,
                max_file_bytes=settings.return_file_max_bytes,
            ),
        )
    except InvalidJob as exc:
        raise invalid_field(exc.field, exc.message) from None


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
        await _close(events)


async def _collect_unless_disconnected(
    first: Started, events: AsyncIterator[Event], request: Request
) -> RunResult | None:
    """Gather the run; if the client goes away first, cancel the run and return None."""
    result = RunResult()
    result.add(first)

    async def gather() -> None:
        async for event in events:
            result.add(event)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    run_task = asyncio.create_task(gather())
    watch_task = asyncio.create_task(disconnected())
    try:
        done, _ = await asyncio.wait({run_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch_task.cancel()
        if not run_task.done():
            run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run_task
        await _close(events)
    if run_task not in done:
        return None
    run_task.result()
    return result


async def _close(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
