"""The closed vocabulary of a run: what a runner yields, in order.

A run yields ``Started``, then any number of ``Output``, ``Display`` and
``Subrequest`` events as they happen, at most one ``ResultValue``, at most one
``Files`` (when the job asked for files back), and always exactly one ``End``
last, also on limits, crashes and cancellation. ``End.status`` is one of
:class:`Status`; guest failures are data here, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "Display",
    "End",
    "Event",
    "Files",
    "GuestError",
    "Output",
    "ResultValue",
    "ReturnedFile",
    "RunReport",
    "Started",
    "Status",
    "Subrequest",
    "Usage",
]


class Status(StrEnum):
    """How a run ended. Exactly one per run."""

    OK = "ok"
    ERROR = "error"  # uncaught guest exception or non-zero sys.exit
    CPU_LIMIT = "cpu_limit"
    WALL_LIMIT = "wall_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SUBREQUEST_LIMIT = "subrequest_limit"
    CANCELED = "canceled"  # the caller went away or canceled the run
    INTERNAL_ERROR = "internal_error"  # a host fault; details are in the service log


@dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    engine: str


@dataclass(frozen=True, slots=True)
class Output:
    stream: Literal["stdout", "stderr"]
    text: str


@dataclass(frozen=True, slots=True)
class Display:
    """One rich output (a chart, a table): ``data`` is base64 for image/png, jpeg and
    gif, text for the text types (image/svg+xml, text/html, ...)."""

    mime_type: str
    data: str


@dataclass(frozen=True, slots=True)
class ReturnedFile:
    """A file of the run's work dir that matched ``return_files``.

    ``data`` is base64, or None with ``truncated`` when the file was over the caps.
    """

    path: str
    size: int
    mime_type: str
    data: str | None
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Files:
    """The files a job asked for (``return_files``), once, just before ``End``."""

    files: tuple[ReturnedFile, ...]


@dataclass(frozen=True, slots=True)
class Subrequest:
    """One outbound HTTP request (one redirect hop) and the gate's verdict.

    ``bytes``: the response body read; ``sent_bytes``: what the gate wrote (request line,
    headers, body).
    """

    method: str
    url: str
    status: int | None
    bytes: int
    ms: float
    allowed: bool
    reason: str | None = None
    sent_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ResultValue:
    """The value of the code's trailing expression, like a notebook cell."""

    repr: str
    json: Any = None
    has_json: bool = False
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class GuestError:
    """An exception raised by guest code; the traceback shows the user's lines only."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_ms: float = 0.0
    wall_ms: float = 0.0
    memory_peak_bytes: int = 0
    subrequests: int = 0
    output_bytes: int = 0


@dataclass(frozen=True, slots=True)
class End:
    status: Status
    usage: Usage
    error: GuestError | None = None
    exit_code: int | None = None
    output_truncated: bool = False


Event = Started | Output | Display | Subrequest | ResultValue | Files | End


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a run ended, as a worker reports it: the ``End`` plus the trailing value."""

    status: Status
    usage: Usage
    error: GuestError | None = None
    result: ResultValue | None = None
    exit_code: int | None = None
    output_truncated: bool = False
    files: tuple[ReturnedFile, ...] | None = None  # None: the job asked for none
