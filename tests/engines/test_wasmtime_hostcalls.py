"""sandbox/engines/wasmtime/hostcalls.py: a host function's exception reaches its own
thread's caller, however many guests call host functions at once."""

from __future__ import annotations

import threading

import wasmtime

from sandbox.engines.wasmtime.hostcalls import host_call, install

# Calls the host when asked (1), or traps on its own (0): both at once, in many threads.
_WAT = """
(module
  (import "host" "raise" (func $raise))
  (func (export "go") (param i32)
    local.get 0
    if
      call $raise
    else
      unreachable
    end))
"""


class _Mine(Exception):
    def __init__(self, owner: int) -> None:
        super().__init__(owner)
        self.owner = owner


def _hammer(threads: int, calls: int) -> list[str]:
    """Every call's outcome that was somebody else's (empty when each got its own)."""
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, _WAT)
    wrong: list[str] = []
    start = threading.Barrier(threads)

    def body(n: int) -> None:
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)

        def raise_mine() -> None:
            raise _Mine(n)

        linker.define_func("host", "raise", wasmtime.FuncType([], []), host_call(raise_mine))
        go = linker.instantiate(store, module).exports(store)["go"]
        assert isinstance(go, wasmtime.Func)
        start.wait()
        for i in range(calls):
            asks = (i + n) % 2
            try:
                go(store, asks)
            except _Mine as exc:
                if not asks or exc.owner != n:
                    wrong.append(f"thread {n} call {i}: got thread {exc.owner}'s exception")
            except (wasmtime.Trap, wasmtime.WasmtimeError):
                if asks:
                    wrong.append(f"thread {n} call {i}: lost its own exception")

    workers = [threading.Thread(target=body, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return wrong


def test_each_thread_gets_its_own_host_exception() -> None:
    install()
    assert _hammer(threads=6, calls=3_000) == []
