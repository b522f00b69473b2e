"""Host faults raised by the sandbox.

What guest code does wrong is never raised: it is data in the run's ``End``
event (``status``, ``error``). Only faults of the host side raise, from one tree::

    SandboxError
     ├── EngineUnavailable   an engine's artifacts are missing or its workers can't start
     ├── BuildError          building a guest artifact failed
     ├── PoolBusy            no worker became free within the queue wait
     ├── RunnerClosed        the runner was closed
     ├── SessionsUnsupported this engine keeps no sessions
     └── SessionEnded        the session's instance is gone (its reason says why)

Foreign exceptions (``wasmtime.WasmtimeError``, ``OSError`` from spawning
processes, ``subprocess.CalledProcessError``) are translated where they occur,
with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "EngineUnavailable",
    "PoolBusy",
    "RunnerClosed",
    "SandboxError",
    "SessionEnded",
    "SessionsUnsupported",
]


class SandboxError(Exception):
    """Base of every host fault raised by the sandbox package."""


class EngineUnavailable(SandboxError):
    """An engine can't run jobs: artifacts missing, or its worker processes fail to start."""


class BuildError(SandboxError):
    """Building a guest artifact failed; the message carries the builder's output."""


class PoolBusy(SandboxError):
    """Every worker stayed busy for the whole queue wait."""

    def __init__(self, waited_ms: int) -> None:
        super().__init__(f"all sandbox workers are busy (waited {waited_ms} ms)")
        self.waited_ms = waited_ms


class RunnerClosed(SandboxError):
    """The runner was closed; no more jobs are accepted."""


class SessionsUnsupported(SandboxError):
    """The engine (or its guest) can't keep an interpreter between turns."""


class SessionEnded(SandboxError):
    """A session's instance is gone: ``reason`` is why (a turn's status, ``crashed``, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session has ended ({reason})")
        self.reason = reason
