"""Sandlot's sandbox: run untrusted Python in WebAssembly under strict limits.

The public surface. Callers build a :class:`Job`, hand it to a :class:`Runner`
(an engine's worker pool, from ``create_runner`` of a package under
``sandbox.engines``) and consume its events; a run always ends with one
:class:`End`. A :class:`WorkerPool` whose engine keeps sessions also opens
:class:`PoolSession` instances and runs turns in them; a session's directory is a
:class:`Workspace`. Nothing here knows about HTTP, and nothing here imports an engine.
"""

from sandbox.egress import AllowEntry, EgressPolicy
from sandbox.errors import (
    BuildError,
    EngineUnavailable,
    PoolBusy,
    RunnerClosed,
    SandboxError,
    SessionEnded,
    SessionsUnsupported,
)
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
from sandbox.pool import PoolSession, WorkerPool
from sandbox.runner import RUNTIMES, Packages, Runner, RunResult, Runtime, collect
from sandbox.workspace import DiskUsage, FileEntry, FileTooLarge, QuotaExceeded, Workspace

__all__ = [
    "RUNTIMES",
    "AllowEntry",
    "BuildError",
    "DiskUsage",
    "Display",
    "EgressPolicy",
    "End",
    "EngineUnavailable",
    "Event",
    "FileCaps",
    "FileEntry",
    "FileTooLarge",
    "Files",
    "GuestError",
    "InvalidJob",
    "Job",
    "LimitExceeded",
    "Limits",
    "Output",
    "Packages",
    "PoolBusy",
    "PoolSession",
    "QuotaExceeded",
    "ResultValue",
    "ReturnedFile",
    "RunResult",
    "Runner",
    "RunnerClosed",
    "Runtime",
    "SandboxError",
    "SessionEnded",
    "SessionsUnsupported",
    "Started",
    "Status",
    "Subrequest",
    "Usage",
    "WorkerPool",
    "Workspace",
    "collect",
]
