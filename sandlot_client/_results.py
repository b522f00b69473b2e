"""What calls return: a run's result and a generation's (each gathered from its stream), and a
worker's response."""

from __future__ import annotations

import base64
import json as jsonlib
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sandlot_client._errors import SandlotConnectionError, SandlotError
from sandlot_client._sse import ServerSentEvent

__all__ = [
    "DeployCheck",
    "Event",
    "File",
    "Generation",
    "GenerationBuilder",
    "Output",
    "ResultValue",
    "RunBuilder",
    "RunError",
    "RunResult",
    "Status",
    "Subrequest",
    "Usage",
    "WorkerResponse",
]

Status = Literal[
    "ok",
    "error",
    "cpu_limit",
    "wall_limit",
    "memory_limit",
    "output_limit",
    "subrequest_limit",
    "canceled",
    "internal_error",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a run's stream: ``name`` is start, stdout, stderr, display, subrequest,
    result, files or end (always last); ``data`` is its JSON object (docs/api.md lists
    the fields)."""

    name: str
    data: dict[str, Any]
    seq: int


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_ms: float = 0.0
    wall_ms: float = 0.0
    memory_peak_bytes: int = 0
    subrequests: int = 0
    output_bytes: int = 0


@dataclass(frozen=True, slots=True)
class RunError:
    """The exception the code raised: its type, message and traceback."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class ResultValue:
    """The value of the code's trailing expression: ``repr`` always, ``json`` when
    ``has_json`` (the value was JSON-serialisable)."""

    repr: str
    json: Any = None
    has_json: bool = False
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Subrequest:
    method: str
    url: str
    status: int | None
    bytes: int
    ms: float
    allowed: bool
    reason: str | None = None
    # What the server's egress gate wrote for it (request line, headers, body).
    sent_bytes: int = 0

    @classmethod
    def of(cls, data: dict[str, Any]) -> Subrequest:
        """From a ``subrequest`` event; fields a newer server adds are ignored."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Output:
    """One rich output (a chart, a table): ``data`` is base64 for image/png, image/jpeg and
    image/gif, text for the text types (image/svg+xml, text/html, ...)."""

    mime_type: str
    data: str

    @property
    def content(self) -> bytes:
        """The output's bytes: decoded from base64 for images, UTF-8 for text."""
        if self.mime_type in ("image/png", "image/jpeg", "image/gif"):
            return base64.b64decode(self.data)
        return self.data.encode()


@dataclass(frozen=True, slots=True)
class File:
    """A file of the run's working directory that matched ``return_files``; ``data`` is
    base64, or None when ``truncated`` (over the server's size caps)."""

    path: str
    size: int
    mime_type: str
    data: str | None
    truncated: bool = False

    @property
    def content(self) -> bytes | None:
        """The file's bytes, or None when it was truncated."""
        return None if self.data is None else base64.b64decode(self.data)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did. ``status`` is ok, or says how it ended (error, cpu_limit, ...)."""

    id: str
    engine: str
    status: Status
    stdout: str
    stderr: str
    result: ResultValue | None
    error: RunError | None
    exit_code: int | None
    output_truncated: bool
    usage: Usage
    subrequests: list[Subrequest] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    files: list[File] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, slots=True)
class WorkerResponse:
    """A worker's answer. ``outcome`` is ok, or the run's status when the worker raised
    (``status_code`` 500) or hit a limit (503); then ``json()`` holds the error."""

    status_code: int
    headers: dict[str, str]
    content: bytes
    outcome: str

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class RunBuilder:
    """Gathers a run's stream into a RunResult."""

    def __init__(self) -> None:
        self._seq = 0
        self._id = ""
        self._engine = ""
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._result: ResultValue | None = None
        self._subrequests: list[Subrequest] = []
        self._outputs: list[Output] = []
        self._files: list[File] = []
        self._end: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self._end is not None

    def add(self, sse: ServerSentEvent) -> Event:
        """Take one SSE event; SandlotError if it isn't one of the API's."""
        data = _object(sse)
        event = Event(sse.event, data, self._seq)
        self._seq += 1
        match sse.event:
            case "start":
                self._id, self._engine = str(data["id"]), str(data["engine"])
            case "stdout":
                self._stdout.append(str(data["text"]))
            case "stderr":
                self._stderr.append(str(data["text"]))
            case "subrequest":
                self._subrequests.append(Subrequest.of(data))
            case "display":
                self._outputs.append(Output(str(data["mime_type"]), str(data["data"])))
            case "files":
                self._files.extend(File(**item) for item in data["files"])
            case "result":
                self._result = ResultValue(**data)
            case "end":
                self._end = data
        return event

    def result(self) -> RunResult:
        """The run; SandlotConnectionError if the stream ended before its ``end`` event."""
        end = self._end
        if end is None:
            raise SandlotConnectionError(
                "incomplete_stream", f"the stream of run {self._id or '?'} ended before its end"
            )
        error = end.get("error")
        return RunResult(
            id=self._id,
            engine=self._engine,
            status=cast(Status, end["status"]),
            stdout="".join(self._stdout),
            stderr="".join(self._stderr),
            result=self._result,
            error=RunError(**error) if error else None,
            exit_code=end.get("exit_code"),
            output_truncated=bool(end.get("output_truncated")),
            usage=Usage(**end.get("usage", {})),
            subrequests=self._subrequests,
            outputs=self._outputs,
            files=self._files,
        )


GenerationStatus = Literal["ok", "failed", "no_code", "model_error", "canceled"]


@dataclass(frozen=True, slots=True)
class DeployCheck:
    """Worker mode: an attempt's upload and its check request. ``version`` and ``status``
    (the HTTP status ``GET /`` answered) are None when the build failed; ``error`` says why."""

    attempt: int
    namespace: str
    worker: str
    version: str | None
    status: int | None
    error: RunError | None


@dataclass(frozen=True, slots=True)
class Generation:
    """What ``generate`` did. ``status`` is ok, failed, no_code, model_error or canceled;
    ``code`` the last code extracted; ``runs`` the run of each attempt that ran (in worker
    mode, of its check request); ``deploys`` worker mode's uploads."""

    status: GenerationStatus
    code: str | None
    attempts: int
    run_status: str | None
    error: RunError | None
    prompt_version: str
    runs: list[RunResult] = field(default_factory=list)
    deploys: list[DeployCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def run(self) -> RunResult | None:
        """The last attempt's run, if it ran."""
        return self.runs[-1] if self.runs else None


def _error(data: Any) -> RunError | None:
    if not isinstance(data, dict):
        return None
    return RunError(str(data.get("type", "")), str(data.get("message", "")))


class GenerationBuilder:
    """Gathers a /v1/generate stream into a Generation; each attempt's ``run`` events
    into a RunResult (through RunBuilder)."""

    def __init__(self) -> None:
        self._seq = 0
        self._run: RunBuilder | None = None
        self._runs: list[RunResult] = []
        self._deploys: list[DeployCheck] = []
        self._end: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self._end is not None

    def add(self, sse: ServerSentEvent) -> tuple[Event, Event | None]:
        """Take one SSE event: the event, and for ``run`` events the run's own event."""
        data = _object(sse)
        event = Event(sse.event, data, self._seq)
        self._seq += 1
        inner: Event | None = None
        match sse.event:
            case "attempt":
                self._run = None
            case "run":
                if self._run is None:
                    self._run = RunBuilder()
                inner = self._run.add(
                    ServerSentEvent(event=str(data["event"]), data=jsonlib.dumps(data["data"]))
                )
                if self._run.ended:
                    self._runs.append(self._run.result())
                    self._run = None
            case "deploy":
                self._deploys.append(
                    DeployCheck(
                        attempt=int(data["attempt"]),
                        namespace=str(data["namespace"]),
                        worker=str(data["worker"]),
                        version=data.get("version"),
                        status=data.get("status"),
                        error=_error(data.get("error")),
                    )
                )
            case "end":
                self._end = data
        return event, inner

    def result(self) -> Generation:
        """The generation; SandlotConnectionError if the stream ended before its end."""
        end = self._end
        if end is None:
            raise SandlotConnectionError(
                "incomplete_stream", "the generation's stream ended before its end event"
            )
        return Generation(
            status=cast(GenerationStatus, end["status"]),
            code=end.get("code"),
            attempts=int(end.get("attempts", 0)),
            run_status=end.get("run_status"),
            error=_error(end.get("error")),
            prompt_version=str(end.get("prompt_version", "")),
            runs=self._runs,
            deploys=self._deploys,
        )


def _object(sse: ServerSentEvent) -> dict[str, Any]:
    """An event's JSON object; SandlotError if it isn't one."""
    try:
        data = jsonlib.loads(sse.data)
    except ValueError:
        raise SandlotError(None, "bad_stream", f"event {sse.event!r} is not JSON") from None
    if not isinstance(data, dict):
        raise SandlotError(None, "bad_stream", f"event {sse.event!r} is not an object")
    return data
