"""Sandlot's sandbox: run untrusted Python in WebAssembly under strict limits.

The public surface. Callers build a :class:`Job`, hand it to a :class:`Runner`
(an engine's worker pool, from ``create_runner`` of a package under
``sandbox.engines``) and consume its events; a run always ends with one
:class:`End`. Nothing here knows about HTTP, and nothing here imports an engine.
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
from sandbox.runner import RUNTIMES, Packages, Runner, RunResult, Runtime, collect

__all__ = [
    "RUNTIMES",
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
    "Packages",
    "PoolBusy",
    "ResultValue",
    "ReturnedFile",
    "RunResult",
    "Runner",
    "RunnerClosed",
    "Runtime",
    "SandboxError",
    "Started",
    "Status",
    "Subrequest",
    "Usage",
    "collect",
]
