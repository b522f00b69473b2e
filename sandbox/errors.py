"""Host faults raised by the sandbox.

What guest code does wrong is never raised: it is data in the run's ``End``
event (``status``, ``error``). Only faults of the host side raise, from one tree::

    SandboxError
     ├── EngineUnavailable   an engine's artifacts are missing or its workers can't start
     ├── BuildError          building a guest artifact failed
     ├── PoolBusy            no run could start within the queue wait (slots or memory)
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
    """No run could start within the queue wait.

    ``reason``: ``slots`` (every worker process held as many runs as it takes) or
    ``memory`` (the runs in progress hold the pool's memory budget; ``detail`` says how
    much).
    """

    def __init__(self, waited_ms: int, *, reason: str = "slots", detail: str = "") -> None:
        if reason == "memory":
            message = f"the sandbox is out of memory for more runs: {detail}"
        else:
            message = "all sandbox workers are busy"
        super().__init__(f"{message} (waited {waited_ms} ms)")
        self.waited_ms = waited_ms
        self.reason = reason


class RunnerClosed(SandboxError):
    """The runner was closed; no more jobs are accepted."""


class SessionsUnsupported(SandboxError):
    """The engine (or its guest) can't keep an interpreter between turns."""


class SessionEnded(SandboxError):
    """A session's instance is gone: ``reason`` is why (a turn's status, ``crashed``, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the session has ended ({reason})")
        self.reason = reason
