"""The SSE vocabulary of /v1/execute, and the JSON view of a finished run.

Events, in order: ``start`` once; ``stdout``, ``stderr`` and ``subrequest`` as
they happen; ``result`` at most once; ``end`` always, last. Every ``data`` is a
JSON object; ``id`` counts from 0 within the stream.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from sse_starlette import ServerSentEvent

from app.schemas import ErrorOut, ExecuteResponse, ResultOut, SubrequestOut, UsageOut
from sandbox import End, Event, Output, ResultValue, RunResult, Started, Subrequest


def event_payload(event: Event, run_id: str) -> tuple[str, dict[str, Any]]:
    """The SSE event name and JSON data for one sandbox event."""
    match event:
        case Started():
            return "start", {"id": event.run_id, "engine": event.engine}
        case Output():
            return event.stream, {"text": event.text}
        case Subrequest():
            return "subrequest", asdict(event)
        case ResultValue():
            return "result", asdict(event)
        case End():
            return "end", {
                "id": run_id,
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
        status=result.status.value,
        stdout=result.stdout,
        stderr=result.stderr,
        result=ResultOut.model_validate(asdict(result.result)) if result.result else None,
        error=ErrorOut.model_validate(asdict(result.error)) if result.error else None,
        exit_code=result.exit_code,
        output_truncated=result.output_truncated,
        usage=UsageOut.model_validate(asdict(result.usage)),
        subrequests=[SubrequestOut.model_validate(asdict(s)) for s in result.subrequests],
    )
