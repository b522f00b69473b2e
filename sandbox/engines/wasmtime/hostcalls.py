"""Exceptions raised by host functions, handed back to the thread whose guest called them.

wasmtime-py passes a Python exception raised inside a host function (our ``_Abort`` for a
limit, ``_HardExit`` for ``os._exit``) back to the caller of the wasm call through one
module-level variable (``wasmtime._func.LAST_EXCEPTION``; ``wasmtime.component._enter``
has its own). A worker process that runs several guests at once, each on its own thread,
shares that variable: one run's ``_Abort(WALL_LIMIT)`` surfaced in another run that trapped
at the same moment (an ``os._exit(3)`` ended ``wall_limit``), and the run that raised it
found nothing and ended ``internal_error`` (the load test, bench/load.py, found both).

:func:`host_call` wraps every host function we register: what it raises is also kept for
the calling thread; :func:`install` makes wasmtime-py look there (per thread) instead of
its shared variable. The shared variable is still written, and never read.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import wasmtime._func
import wasmtime.component._enter

__all__ = ["host_call", "install"]

_pending = threading.local()
_installed = threading.Lock()


def host_call[F: Callable[..., Any]](function: F) -> F:
    """``function`` as a host function: what it raises reaches its own caller's thread."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BaseException as exc:
            _pending.exception = exc
            raise

    return call  # type: ignore[return-value]


def _raise_pending() -> None:
    exception = getattr(_pending, "exception", None)
    if exception is None:
        return
    _pending.exception = None
    raise exception


def install() -> None:
    """Make wasmtime-py raise host functions' exceptions in their own thread. Idempotent."""
    with _installed:
        for module in (wasmtime._func, wasmtime.component._enter):
            if getattr(module, "maybe_raise_last_exn", None) is not _raise_pending:
                module.maybe_raise_last_exn = _raise_pending  # type: ignore[attr-defined]
