"""Glue every WASI guest shares (the component guest and the data-stack guest).

* :func:`line_stream`: stdout and stderr as line-buffered text over WASI fds 1 and 2,
  so output reaches the host (and the client) line by line.
* :func:`sleeper`: ``time.sleep`` as a sleep on the host, which bounds it by the run's
  wall-clock deadline (a sleep inside WASI itself can't be interrupted).
* :class:`GuestEventLoop`: asyncio's selector loop without the self-pipe (there are no
  socket pairs); its idle wait is the same host sleep. There are no threads either: the
  default executor runs a function in the caller (``asyncio.to_thread`` blocks, then
  returns), and shutting it down at the end of ``asyncio.run`` needs no thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import selectors
from asyncio import selector_events
from collections.abc import Callable, Coroutine
from typing import Any

import _sandlot_exec

_host_sleep_ms: Callable[[int], None] | None = None


def install_loop(host_sleep_ms: Callable[[int], None]) -> Callable[[float], None]:
    """Route waits to ``host_sleep_ms`` and make asyncio use :class:`GuestEventLoop`.

    Returns the ``time.sleep`` replacement.
    """
    global _host_sleep_ms
    _host_sleep_ms = host_sleep_ms
    asyncio.events.new_event_loop = GuestEventLoop  # type: ignore[assignment]
    asyncio.new_event_loop = GuestEventLoop  # type: ignore[assignment]
    policy = asyncio.events._get_event_loop_policy()
    policy._loop_factory = GuestEventLoop  # type: ignore[attr-defined]
    return sleep


def line_stream(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 8192),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def sleep(seconds: float, /) -> None:
    """time.sleep(seconds): suspend on the host, never past the run's deadline."""
    if not isinstance(seconds, int | float):
        raise TypeError(f"'{type(seconds).__name__}' object cannot be interpreted as an integer")
    if math.isnan(seconds):
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    _sandlot_exec.flush_output()
    if seconds > 0 and _host_sleep_ms is not None:
        _host_sleep_ms(min(math.ceil(seconds * 1000), 2**63 - 1))


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
            sleep(2**31)
        elif timeout > 0:
            sleep(timeout)
        return []

    def close(self) -> None:
        self._keys.clear()

    def get_map(self) -> dict[Any, selectors.SelectorKey]:
        return self._keys


class _InlineExecutor(concurrent.futures.Executor):
    """An executor without threads: ``submit`` runs the function there and then."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class GuestEventLoop(selector_events.BaseSelectorEventLoop):
    """asyncio's selector loop minus the self-pipe that needs a socket pair."""

    def __init__(self) -> None:
        super().__init__(_HostSelector())
        # set_default_executor() accepts only a ThreadPoolExecutor.
        self._default_executor = _InlineExecutor()

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        # asyncio's own joins the executor from a new thread; ours has none to join.
        self._executor_shutdown_called = True
        executor, self._default_executor = self._default_executor, None
        if executor is not None:
            executor.shutdown(wait=True)

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
