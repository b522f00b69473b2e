"""sandbox/engines/wasmtime/i32call.py: an i32 export called like Func, minus its per-call work."""

from __future__ import annotations

import pytest
import wasmtime

from sandbox.engines.wasmtime import hostcalls
from sandbox.engines.wasmtime.i32call import I32Call

WAT = """
(module
  (import "host" "twice" (func $twice (param i32) (result i32)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "via_host") (param i32) (result i32) (call $twice (local.get 0)))
  (func (export "seven") (result i32) (i32.const 7))
  (func (export "wide") (param i64) (result i64) (local.get 0))
)
"""


class HostFault(Exception):
    pass


@pytest.fixture
def instance() -> tuple[wasmtime.Store, wasmtime.Instance]:
    hostcalls.install()
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()

    def twice(value: int) -> int:
        if value < 0:
            raise HostFault(f"refused {value}")
        return value * 2

    linker.define_func("host", "twice", wasmtime.FuncType([i32], [i32]), hostcalls.host_call(twice))
    return store, linker.instantiate(store, wasmtime.Module(engine, WAT))


def _export(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> wasmtime.Func:
    func = instance.exports(store)[name]
    assert isinstance(func, wasmtime.Func)
    return func


def test_it_returns_what_func_returns(instance: tuple[wasmtime.Store, wasmtime.Instance]) -> None:
    store, inst = instance
    add = _export(store, inst, "add")
    fast = I32Call(add, I32Call.arity_of(add, store))
    for a, b in [(2, 3), (-5, 1), (2**31 - 1, 1), (0, 0)]:
        assert fast(store, a, b) == add(store, a, b)
    seven = _export(store, inst, "seven")
    assert I32Call(seven, I32Call.arity_of(seven, store))(store) == 7


def test_traps_and_host_exceptions_surface_as_with_func(
    instance: tuple[wasmtime.Store, wasmtime.Instance],
) -> None:
    store, inst = instance
    with pytest.raises(wasmtime.Trap, match="divide by zero"):
        I32Call(_export(store, inst, "div"), 2)(store, 1, 0)
    via_host = I32Call(_export(store, inst, "via_host"), 1)
    assert via_host(store, 21) == 42
    with pytest.raises(HostFault, match="refused -1"):
        via_host(store, -1)
    assert via_host(store, 4) == 8  # nothing left over from the fault


def test_other_signatures_and_argument_counts_are_refused(
    instance: tuple[wasmtime.Store, wasmtime.Instance],
) -> None:
    store, inst = instance
    with pytest.raises(TypeError, match="not an"):
        I32Call.arity_of(_export(store, inst, "wide"), store)
    add = I32Call(_export(store, inst, "add"), 2)
    with pytest.raises(wasmtime.WasmtimeError, match="expected 2 arguments"):
        add(store, 1)
