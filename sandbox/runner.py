"""The Runner protocol, and the whole-result view of a run's event stream.

A runner turns a :class:`~sandbox.jobs.Job` into a stream of events that
always ends with exactly one :class:`~sandbox.events.End`. Engines differ in
how they isolate and what they can do; callers see only this protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

from sandbox.events import (
    Display,
    End,
    Event,
    Files,
    GuestError,
    Output,
    ResultValue,
    ReturnedFile,
    Started,
    Status,
    Subrequest,
    Usage,
)
from sandbox.jobs import Job

__all__ = ["RUNTIMES", "Packages", "RunResult", "Runner", "Runtime", "collect"]

# The engines a job can run on, by the name callers choose them with (``Runner.name``).
Runtime = Literal["wasmtime", "pyodide"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)


class Packages(Protocol):
    """What an engine can load for a job's ``requirements`` (installed ahead, by an operator)."""

    def installed(self) -> dict[str, str]:
        """Normalised name → version of every package an operator installed (beyond what
        the engine has built in, which a job may require too)."""
        ...

    def missing(self, requirements: Iterable[str]) -> list[str]:
        """The requirements neither built in nor installed (empty when the job can run)."""
        ...


class Runner(Protocol):
    """Runs jobs. ``run`` raises only host faults (``SandboxError``), before the first event.

    ``packages`` is None for an engine that loads no packages (a job with ``requirements``
    can't run on it).
    """

    name: str
    packages: Packages | None

    async def start(self) -> None:
        """Start workers; raises EngineUnavailable if the engine can't run."""

    def run(self, job: Job) -> AsyncIterator[Event]:
        """Events of one run: ``Started`` first, ``End`` last, always.

        Raises ``PoolBusy`` (before any event) when no worker frees up within
        the queue wait. Closing the iterator early cancels the run.
        """
        ...

    @property
    def ready(self) -> bool:
        """True when at least one worker can take a job."""
        ...

    async def close(self) -> None:
        """Stop every worker. Idempotent."""


@dataclass(slots=True)
class RunResult:
    """Everything a run produced, gathered from its events."""

    run_id: str = ""
    engine: str = ""
    status: Status = Status.INTERNAL_ERROR
    stdout_parts: list[str] = field(default_factory=list)
    stderr_parts: list[str] = field(default_factory=list)
    result: ResultValue | None = None
    error: GuestError | None = None
    exit_code: int | None = None
    output_truncated: bool = False
    usage: Usage = field(default_factory=Usage)
    subrequests: list[Subrequest] = field(default_factory=list)
    outputs: list[Display] = field(default_factory=list)
    files: list[ReturnedFile] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return "".join(self.stdout_parts)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_parts)

    def add(self, event: Event) -> None:
        match event:
            case Started(run_id=run_id, engine=engine):
                self.run_id, self.engine = run_id, engine
            case Output(stream="stdout", text=text):
                self.stdout_parts.append(text)
            case Output(text=text):
                self.stderr_parts.append(text)
            case Subrequest():
                self.subrequests.append(event)
            case Display():
                self.outputs.append(event)
            case Files(files=files):
                self.files.extend(files)
            case ResultValue():
                self.result = event
            case End():
                self.status = event.status
                self.error = event.error
                self.exit_code = event.exit_code
                self.output_truncated = event.output_truncated
                self.usage = event.usage


async def collect(events: AsyncIterator[Event]) -> RunResult:
    """Consume a run's events into one :class:`RunResult`."""
    result = RunResult()
    async for event in events:
        result.add(event)
    return result
