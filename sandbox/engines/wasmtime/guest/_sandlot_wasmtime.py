"""The wasmtime guest's glue: patches that make the stdlib fit this sandbox.

Installed once, before the snapshot is taken:

* stdout and stderr are line-buffered text streams over WASI fds 1 and 2, so
  output reaches the host (and the client) line by line.
* ``time.sleep`` sleeps on the host, which bounds it by the run's wall-clock
  deadline (a sleep inside WASI itself cannot be interrupted).
* ``asyncio`` gets an event loop without a self-pipe (there are no socket
  pairs) whose idle wait is the same host sleep.
* ``sandlot.fetch`` (and with it ``urllib.request.urlopen``) goes through the
  ``fetch`` host import, the egress gate.
* Writing ``.pyc`` files is off: the standard library is mounted read-only.
"""

from __future__ import annotations

import asyncio
import io
import math
import selectors
import sys
import time
from asyncio import selector_events
from collections.abc import Coroutine
from typing import Any

import _sandlot_exec
import _sandlot_urllib
import sandlot
from componentize_py_types import Err
from wit_world.imports import host


def install() -> None:
    sys.dont_write_bytecode = True
    sys.stdout = _line_stream(1)
    sys.stderr = _line_stream(2)
    sys.__stdout__ = sys.stdout
    sys.__stderr__ = sys.stderr
    time.sleep = _sleep
    asyncio.events.new_event_loop = GuestEventLoop  # type: ignore[assignment]
    asyncio.new_event_loop = GuestEventLoop  # type: ignore[assignment]
    policy = asyncio.events._get_event_loop_policy()
    policy._loop_factory = GuestEventLoop  # type: ignore[attr-defined]
    sandlot._set_transport(_host_fetch)
    _sandlot_urllib.install()


def _line_stream(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 8192),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _sleep(seconds: float, /) -> None:
    """time.sleep(seconds): suspend on the host, never past the run's deadline."""
    if not isinstance(seconds, int | float):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    if math.isnan(seconds):
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    _sandlot_exec.flush_output()
    if seconds > 0:
        host.sleep(min(math.ceil(seconds * 1000), 2**63 - 1))


class _HostSelector(selectors.BaseSelector):
    """A selector with no file descriptors: waiting is a host sleep."""

    def __init__(self) -> None:
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise OSError("the sandbox has no file descriptors to wait on (no sockets or pipes)")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise KeyError(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # Nothing scheduled and nothing to wait for: this would block
            # forever; sleep until the run's deadline ends it.
            _sleep(2**31)
        elif timeout > 0:
            _sleep(timeout)
        return []

    def close(self) -> None:
        self._keys.clear()

    def get_map(self) -> dict[Any, selectors.SelectorKey]:
        return self._keys


class GuestEventLoop(selector_events.BaseSelectorEventLoop):
    """asyncio's selector loop minus the self-pipe that needs a socket pair."""

    def __init__(self) -> None:
        super().__init__(_HostSelector())

    def _make_self_pipe(self) -> None:
        pass

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    def _process_self_data(self, data: bytes) -> None:
        pass


def run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run top-level ``await`` code the way ``asyncio.run`` would."""
    return asyncio.run(coro)


def _host_fetch(
    method: str, url: str, headers: list[tuple[str, str]], body: bytes, timeout_ms: int
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    request = host.HttpRequest(
        method=method,
        url=url,
        headers=headers,
        body=body.decode("latin-1"),
        timeout_ms=timeout_ms,
    )
    try:
        response = host.fetch(request)
    except Err as refused:
        raise sandlot.FetchError(str(refused.value)) from None
    return response.status, response.url, response.headers, response.body.encode("latin-1")
