"""POST /v1/generate: natural language → code → sandbox run → repair; SSE or JSON.

The loop itself is app/ai/generation.py and its start (checks, target, system
prompt) app/generating.py; this module speaks HTTP for it. docs/ai.md describes
the event contract.
"""

from __future__ import annotations

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
)
from app.auth import CallerDep
from app.deps import ServicesDep
from app.errors import ApiError
from app.events import EventStream, event_payload, to_response, unless_disconnected
from app.generating import start
from app.schemas import (
    DeployOut,
    ErrorResponse,
    GenerateAttemptOut,
    GenerateErrorOut,
    GenerateRequest,
    GenerateResponse,
)
from sandbox import RunResult

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
    body: GenerateRequest, request: Request, services: ServicesDep, caller: CallerDep
) -> Response | GenerateResponse:
    """Ask the model for code that does ``task``, run it, and repair it until it works.

    With ``namespace`` and ``worker``, the code is an ``on_fetch`` worker, deployed and
    checked with one GET /. Ends in one status: ok, failed, no_code, model_error, canceled.
    """
    settings = services.settings
    model: ModelClient | None = request.app.state.model
    if model is None:
        raise ApiError(
            503,
            "model_not_configured",
            "no model is configured for /v1/generate: set "
            f"{', '.join(settings.missing_model_settings())} (docs/ai.md)",
        )
    log = PromptLog(request.app.state.prompts)
    events = await start(services, caller, body, model=model, log=log)
    if body.stream or "text/event-stream" in request.headers.get("accept", ""):
        return EventStream(_sse(events), send_timeout_ms=settings.stream_send_timeout_ms)
    answer = await _collect_unless_disconnected(events, request)
    if answer is None:
        return Response(status_code=499)
    return answer


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

    if not await unless_disconnected(gather(), request):
        return None
    return answer.response()
