"""Calls of a wasm export that takes and returns i32s, without wasmtime-py's per-call work.

``wasmtime.Func.__call__`` looks the function's type up and builds a ``FuncType``, a list
of ``ValType``s and a ``Val`` per argument on every call: about 45 us, where the call into
wasm itself is a few (measured with the data-stack guest's ``host_alloc``, BENCHMARKS.md).
A run makes two such calls on its path (``host_alloc`` for the turn's source, ``turn``),
and one more per door answer (``host_alloc``). :class:`I32Call` calls
``wasmtime_func_call`` with argument and result arrays it keeps, raising what
``Func.__call__`` raises (a ``Trap``, a ``WasmtimeError``, or the exception a host function
raised, through ``wasmtime._func.maybe_raise_last_exn``, which hostcalls.py makes per
thread).

The export's type is checked once per module (:meth:`arity_of`): checking it per instance
cost ~30 us of each run's preparation. One I32Call per export and instance; not for
concurrent use (its arrays are its own), which a store's one-call-at-a-time rule already
gives. It may be called from inside a host function with the ``Caller`` as the store, as
``Func`` may.
"""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime
import wasmtime._func
from wasmtime import _ffi as ffi

__all__ = ["I32Call"]

_I32 = wasmtime.ValType.i32()


class I32Call:
    """``func`` (``arity`` i32 parameters, one i32 result, as :meth:`arity_of` found) as a
    plain callable: ``call(store, *ints)``."""

    @staticmethod
    def arity_of(func: wasmtime.Func, store: wasmtime.Store) -> int:
        """How many i32 parameters ``func`` takes; TypeError unless it is (i32...) -> i32.
        Every instance of one module has the same: ask once."""
        ty = func.type(store)
        params, results = ty.params, ty.results
        if any(p != _I32 for p in params) or len(results) != 1 or results[0] != _I32:
            raise TypeError(f"not an (i32...) -> i32 function: {params} -> {results}")
        return len(params)

    def __init__(self, func: wasmtime.Func, arity: int) -> None:
        self._func = func._func
        self._nparams = arity
        self._params = (ffi.wasmtime_val_t * max(1, self._nparams))()
        for value in self._params:
            value.kind = ffi.WASMTIME_I32.value  # type: ignore[assignment]  # a c_uint8 field
        self._results = (ffi.wasmtime_val_t * 1)()

    def __call__(self, store: Any, *args: int) -> int:
        if len(args) != self._nparams:
            raise wasmtime.WasmtimeError(f"expected {self._nparams} arguments, got {len(args)}")
        params = self._params
        for i, arg in enumerate(args):
            params[i].of.i32 = arg
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call(
            store._context(),
            ctypes.byref(self._func),
            params,
            self._nparams,
            self._results,
            1,
            ctypes.byref(trap),
        )
        if error:
            wasmtime._func.maybe_raise_last_exn()
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            trap_obj = wasmtime.Trap._from_ptr(trap)
            wasmtime._func.maybe_raise_last_exn()
            raise trap_obj
        return int(self._results[0].of.i32)
