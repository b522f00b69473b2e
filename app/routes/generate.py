"""POST /v1/generate: natural language → code → sandbox run → repair; SSE or JSON.

The loop itself is app/ai/generation.py; this module checks the request, picks
the target (a one-shot run like /v1/execute, or a user worker deployed and
called like PUT .../workers/{name} and /dispatch do, through the same
functions) and speaks HTTP. docs/ai.md describes the event contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sse_starlette import ServerSentEvent

from app.ai import (
    Attempt,
    Code,
    Deployed,
    Finished,
    GenerationEvent,
    ModelClient,
    PromptLog,
    RunEvent,
    Token,
    generate,
)
from app.auth import CallerDep, require_namespace
from app.deps import ArtifactsDep, RunnersDep, SettingsDep, StoreDep
from app.errors import ApiError, invalid_field
from app.events import EventStream, event_payload, to_response
from app.policy import caller_ceiling
from app.routes.execute import build_job
from app.schemas import (
    DeployOut,
    ErrorResponse,
    ExecuteRequest,
    GenerateAttemptOut,
    GenerateErrorOut,
    GenerateRequest,
    GenerateResponse,
)
from app.targets import RunTarget, Runtime, WorkerTarget
from sandbox import Limits, RunResult
from sandbox.engines.pyodide import packages
from sandbox.engines.stack import packages as stack_packages

router = APIRouter(tags=["generate"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "A key of another namespace"},
    404: {"model": ErrorResponse, "description": "The namespace was not found"},
    422: {"model": ErrorResponse, "description": "Invalid request; details name the fields"},
    503: {"model": ErrorResponse, "description": "No model is configured; the message says how"},
}


@router.post(
    "/v1/generate",
    response_model=GenerateResponse,
    responses={
        200: {
            "description": "The generation's outcome (JSON), or its events (text/event-stream)",
            "content": {"text/event-stream": {}},
        },
        **_ERRORS,
    },
)
async def generate_code(
    body: GenerateRequest,
    request: Request,
    runners: RunnersDep,
    settings: SettingsDep,
    store: StoreDep,
    artifacts: ArtifactsDep,
    caller: CallerDep,
) -> Response | GenerateResponse:
    """Ask the model for code that does ``task``, run it, and repair it until it works.

    With ``namespace`` and ``worker``, the code is an ``on_fetch`` worker, deployed and
    checked with one GET /. Ends in one status: ok, failed, no_code, model_error, canceled.
    """
    model: ModelClient | None = request.app.state.model
    if model is None:
        raise ApiError(
            503,
            "model_not_configured",
            "no model is configured for /v1/generate: set "
            f"{', '.join(settings.missing_model_settings())} (docs/ai.md)",
        )
    runtime: Runtime = body.runtime or settings.default_runtime
    runner = runners.get(runtime)
    if runner is None:
        raise invalid_field("runtime", f"the {runtime} engine is not enabled on this server")
    max_attempts = body.max_attempts or settings.generate_attempts
    if max_attempts > settings.max_generate_attempts:
        raise invalid_field(
            "max_attempts",
            f"{max_attempts}; this server allows at most {settings.max_generate_attempts} "
            "(SANDLOT_MAX_GENERATE_ATTEMPTS)",
        )
    # The same checks as /v1/execute, within the caller's ceiling, before any stream starts.
    ceiling = await caller_ceiling(settings, store, caller)
    probe = ExecuteRequest(
        code="pass", runtime=runtime, limits=body.limits, allowed_hosts=body.allowed_hosts
    )
    limits = build_job(probe, settings, ceiling).limits
    log = PromptLog(request.app.state.prompts)
    lock_file = request.app.state.pyodide_lock_file
    component = runtime == "wasmtime" and settings.wasmtime_guest == "component"
    installed: list[str] = []
    if runtime == "pyodide" and lock_file:
        installed = sorted(packages.installed(lock_file))
    elif runtime == "wasmtime" and not component:
        installed = sorted(stack_packages.installed(stack_packages.site_dir(settings.artifact_dir)))
    engine_notes = log.render(
        "engine_wasmtime_component" if component else f"engine_{runtime}",
        **({} if component else {"packages": ", ".join(installed) or "none"}),
    )
    target: RunTarget | WorkerTarget
    if body.namespace is None and body.worker is None:
        target = RunTarget(runner, settings, probe, ceiling)
        system = log.render(
            "system",
            runtime=runtime,
            engine_notes=engine_notes,
            allowed_hosts=_hosts(body.allowed_hosts),
            **_limit_values(limits),
        )
    elif body.namespace is None or body.worker is None:
        missing = "namespace" if body.namespace is None else "worker"
        raise invalid_field(missing, "give both namespace and worker to deploy a worker")
    else:
        require_namespace(caller, body.namespace)
        target = await WorkerTarget.prepare(
            body,
            runtime,
            store=store,
            settings=settings,
            runners=runners,
            artifacts=artifacts,
            lock_file=lock_file,
        )
        system = log.render(
            "worker",
            runtime=runtime,
            engine_notes=engine_notes,
            env_names=", ".join(sorted({*target.vars, *target.secrets})) or "none",
            allowed_hosts=_hosts(target.allowed_hosts),
            **_limit_values(target.limits),
        )
    events = generate(
        model=model,
        log=log,
        system=system,
        task=body.task,
        target=target,
        max_attempts=max_attempts,
    )
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        return EventStream(_sse(events), send_timeout_ms=settings.stream_send_timeout_ms)
    answer = await _collect_unless_disconnected(events, request)
    if answer is None:
        return Response(status_code=499)
    return answer


def _hosts(allowed: list[str]) -> str:
    return ", ".join(allowed) if allowed else "none (the code has no network access)"


def _limit_values(limits: Limits) -> dict[str, str]:
    names = ("cpu_ms", "wall_ms", "memory_mb", "output_bytes", "subrequests")
    return {name: str(getattr(limits, name)) for name in names}


def event_data(event: GenerationEvent) -> tuple[str, dict[str, Any]]:
    """The SSE event name and JSON data of one generation event (docs/ai.md)."""
    match event:
        case Attempt():
            return "attempt", {"attempt": event.attempt, "kind": event.kind}
        case Token():
            return "token", {"attempt": event.attempt, "text": event.text}
        case Code():
            return "code", {"attempt": event.attempt, "code": event.code}
        case RunEvent():
            name, data = event_payload(event.event, event.run_id)
            return "run", {"attempt": event.attempt, "event": name, "data": data}
        case Deployed():
            return "deploy", {
                "attempt": event.attempt,
                "namespace": event.namespace,
                "worker": event.worker,
                "version": event.version,
                "status": event.status,
                "error": event.error,
            }
        case Finished():
            return "end", {
                "status": event.status,
                "code": event.code,
                "attempts": event.attempts,
                "run_status": event.run_status,
                "error": event.error,
                "prompt_version": event.prompt_version,
            }
    raise TypeError(f"unknown event {event!r}")


async def _sse(events: AsyncGenerator[GenerationEvent]) -> AsyncIterator[ServerSentEvent]:
    # sse-starlette cancels this generator when the client disconnects; closing the
    # generation then stops the model's stream and cancels the run.
    async with contextlib.aclosing(events):
        seq = 0
        async for event in events:
            name, data = event_data(event)
            yield ServerSentEvent(data=json.dumps(data), event=name, id=str(seq))
            seq += 1


class _Answer:
    """The JSON answer, gathered from the events."""

    def __init__(self) -> None:
        self.history: list[GenerateAttemptOut] = []
        self.runs: list[RunResult | None] = []
        self.tokens: list[list[str]] = []
        self.finished: Finished | None = None

    def add(self, event: GenerationEvent) -> None:
        match event:
            case Attempt():
                entry = GenerateAttemptOut(
                    attempt=event.attempt, kind=event.kind, answer="", code=None, run=None
                )
                self.history.append(entry)
                self.runs.append(None)
                self.tokens.append([])
            case Token():
                self.tokens[-1].append(event.text)
            case Code():
                self.history[-1].code = event.code
            case RunEvent():
                if self.runs[-1] is None:
                    self.runs[-1] = RunResult()
                run = self.runs[-1]
                if run is not None:
                    run.add(event.event)
            case Deployed():
                self.history[-1].deploy = DeployOut(
                    namespace=event.namespace,
                    worker=event.worker,
                    version=event.version,
                    status=event.status,
                    error=GenerateErrorOut(**event.error) if event.error else None,
                )
            case Finished():
                self.finished = event

    def response(self) -> GenerateResponse:
        finished = self.finished
        if finished is None:
            raise RuntimeError("the generation ended without its end event")
        for entry, run, tokens in zip(self.history, self.runs, self.tokens, strict=True):
            entry.answer = "".join(tokens)
            entry.run = to_response(run) if run is not None else None
        return GenerateResponse(
            status=finished.status,
            code=finished.code,
            attempts=finished.attempts,
            run_status=finished.run_status,
            error=GenerateErrorOut(**finished.error) if finished.error else None,
            prompt_version=finished.prompt_version,
            history=self.history,
        )


async def _collect_unless_disconnected(
    events: AsyncGenerator[GenerationEvent], request: Request
) -> GenerateResponse | None:
    """Gather the generation; if the client goes away first, cancel it and return None."""
    answer = _Answer()

    async def gather() -> None:
        async with contextlib.aclosing(events):
            async for event in events:
                answer.add(event)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    work = asyncio.create_task(gather())
    watch = asyncio.create_task(disconnected())
    try:
        done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not work.done():
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
    if work not in done:
        return None
    work.result()
    return answer.response()
