"""Sandlot's sandbox: run untrusted Python in WebAssembly under strict limits.

The public surface. Callers build a :class:`Job`, hand it to a :class:`Runner`
(today the wasmtime engine's worker pool, from
``sandbox.engines.wasmtime.create_runner``) and consume its events; a run
always ends with one :class:`End`. Nothing here knows about HTTP.
"""

from sandbox.egress import AllowEntry, EgressPolicy
from sandbox.errors import BuildError, EngineUnavailable, PoolBusy, RunnerClosed, SandboxError
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
from sandbox.jobs import InvalidJob, Job
from sandbox.limits import LimitExceeded, Limits
from sandbox.outputs import FileCaps
from sandbox.runner import Runner, RunResult, collect

__all__ = [
    "AllowEntry",
    "BuildError",
    "Display",
    "EgressPolicy",
    "End",
    "EngineUnavailable",
    "Event",
    "FileCaps",
    "Files",
    "GuestError",
    "InvalidJob",
    "Job",
    "LimitExceeded",
    "Limits",
    "Output",
    "PoolBusy",
    "ResultValue",
    "ReturnedFile",
    "RunResult",
    "Runner",
    "RunnerClosed",
    "SandboxError",
    "Started",
    "Status",
    "Subrequest",
    "Usage",
    "collect",
]
