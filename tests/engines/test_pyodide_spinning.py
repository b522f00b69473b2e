"""Guest code can't start what Deno's terminate() can't stop: JavaScript or wasm of its
own, a backtracking RegExp, WebCrypto work on Deno's thread pool.

Deno's terminate() leaves a worker spinning outside Python burning a core (measured,
Deno 2.9.8: ``for(;;){}`` keeps its thread after it forever); the driver's one remedy is
a new Deno process, which ends every session in the old one. Each test runs tenant A's
attempt with tenant B's session open in the same Deno: A's run ends in a defined status
that names the refusal, no worker thread outlives it, Deno neither restarts nor keeps
burning CPU, and B's session answers with its state. Before the fix each attempt ended
with Deno restarted (B's session lost), or with a core busy after the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.engines.pyodide import PyodideArtifacts
from sandbox.engines.pyodide.host import PyodideRuntime
from sandbox.events import RunReport, Status
from sandbox.jobs import Job
from sandbox.limits import MIB, Limits
from tests.engines.test_pyodide_sessions import _assert_no_worker_outlives_its_run, turn, value
from tests.engines.test_stack_runtime import Sink

pytestmark = pytest.mark.slow

_CODE_FROM_STRINGS = "Code generation from strings disallowed"
_NO_WASM = "WebAssembly compilation is not available in the sandbox"
_NOT_LINEAR = "a RegExp that can't run in linear time"
# (func (export "f") loop br 0 end): spins in wasm, out of Python's signal checks.
_WASM_LOOP = [
    *b"\0asm", 1, 0, 0, 0,
    *(1, 4, 1, 0x60, 0, 0),
    *(3, 2, 1, 0),
    *(7, 5, 1, 1, ord("f"), 0, 0),
    *(10, 9, 1, 7, 0, 0x03, 0x40, 0x0C, 0, 0x0B, 0x0B),
]  # fmt: skip
_BYTES = f"import js\nfrom pyodide.ffi import to_js\nwasm = to_js(bytes({_WASM_LOOP!r}))\n"


@pytest.fixture
def runtime(pyodide_artifacts: PyodideArtifacts, tmp_path: Path) -> Iterator[PyodideRuntime]:
    rt = PyodideRuntime(pyodide_artifacts.layout, tmp_path / "deno", session_disk_bytes=16 * MIB)
    yield rt
    rt.close()


def _process_cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 10.0  # utime + stime, 100 ticks a second


def _attempt(runtime: PyodideRuntime, tmp_path: Path, code: str) -> RunReport:
    """Runs ``code`` as tenant A beside B's session; checks what must hold whatever A did."""
    runtime.open_session("b", tmp_path / "b", 256)
    turn(runtime, "b", "x = 41")
    before = runtime._pid()
    started = time.monotonic()
    report = runtime.run(Job(code=code, limits=Limits(wall_ms=3000)), Sink())
    assert time.monotonic() - started < 6.0
    time.sleep(1.2)  # past the driver's grace for a worker's thread to end
    _assert_no_worker_outlives_its_run(runtime)
    assert runtime._pid() == before  # Deno was not restarted
    # Nothing of A's goes on burning (a worker thread or Deno's thread pool).
    cpu = _process_cpu_ms(before)
    time.sleep(1.0)
    assert _process_cpu_ms(before) - cpu < 300
    again, alive, _ = turn(runtime, "b", "x + 1")
    assert value(again) == 42 and alive
    return report


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        ("from pyodide.code import run_js\nrun_js('for (;;) {}')", _CODE_FROM_STRINGS),
        ("import js\njs.eval('for (;;) {}')", _CODE_FROM_STRINGS),
        ("import js\njs.Function.new('for (;;) {}')()", _CODE_FROM_STRINGS),
        # The constructor of an async function that is there (the worker's fetch).
        (
            "import js\njs.Object.getPrototypeOf(js.fetch).constructor.new('for (;;) {}')()",
            _CODE_FROM_STRINGS,
        ),
        (
            "from pyodide.code import run_js\n"
            "await run_js('import(\"data:text/javascript,for (;;) {}\")')",
            _CODE_FROM_STRINGS,
        ),
        (_BYTES + "(await js.WebAssembly.instantiate(wasm)).instance.exports.f()", _NO_WASM),
        (
            _BYTES + "js.WebAssembly.Instance.new(js.WebAssembly.Module.new(wasm)).exports.f()",
            _NO_WASM,
        ),
        (_BYTES + "await js.WebAssembly.compile(wasm)", _NO_WASM),
        ("import js\njs.RegExp.new('(a*)*b', 'i').test('a' * 60)", _NOT_LINEAR),
        ("import js\njs.String.new('a' * 60).match('(?=(a*)*b)')", _NOT_LINEAR),
        ("import js\njs.String.new('a' * 60).split(js.RegExp.new('^(a|aa)*\\\\1b'))", _NOT_LINEAR),
        # A species constructor builds the RegExp (never our constructor): refused at exec.
        (
            "import js\nfrom pyodide.ffi import create_proxy\no = js.Object.new()\n"
            "o.toString = create_proxy(lambda *a: '(?=(a*)*b)')\no.constructor = None\n"
            "o.flags = ''\n"
            "js.Reflect.get(js.RegExp.prototype, js.Symbol.split).call(o, 'a' * 60)",
            _NOT_LINEAR,
        ),
        (
            "import js\nr = js.RegExp.new('x')\nr.compile('(a*)*b', 'i')",
            "RegExp.prototype.compile is not available in the sandbox",
        ),
        # Runs on Deno's thread pool: it went on burning after the run had ended.
        (
            "import js\nfrom pyodide.ffi import to_js\n"
            "key = await js.crypto.subtle.importKey('raw', to_js(b'pw'), 'PBKDF2', False,"
            " to_js(['deriveBits']))\n"
            "params = to_js({'name': 'PBKDF2', 'hash': 'SHA-256', 'salt': js.Uint8Array.new(8),"
            " 'iterations': 2_000_000_000}, dict_converter=js.Object.fromEntries)\n"
            "await js.crypto.subtle.deriveBits(params, key, 256)",
            "crypto.subtle.importKey is not available in the sandbox",
        ),
    ],
    ids=[
        "run_js",
        "js.eval",
        "Function.new",
        "AsyncFunction",
        "import-data-url",
        "wasm-instantiate",
        "wasm-module",
        "wasm-compile",
        "regexp-ignore-case",
        "regexp-match-string-lookahead",
        "regexp-backreference",
        "regexp-species",
        "regexp-compile",
        "webcrypto-pbkdf2",
    ],
)
def test_what_would_spin_past_terminate_is_refused(
    runtime: PyodideRuntime, tmp_path: Path, code: str, refusal: str
) -> None:
    report = _attempt(runtime, tmp_path, code)
    assert report.status is Status.ERROR, report
    assert report.error is not None and refusal in report.error.message, report.error


def test_a_backtracking_regexp_falls_back_to_linear_time(
    runtime: PyodideRuntime, tmp_path: Path
) -> None:
    # (a*)*b on 60 characters: about 2**60 steps for a backtracking engine; V8 falls back
    # to its linear-time engine after its backtrack limit.
    started = time.monotonic()
    report = _attempt(runtime, tmp_path, "import js\njs.RegExp.new('(a*)*b').test('a' * 60)")
    assert value(report) is False
    assert time.monotonic() - started < 5.0


def test_what_guest_code_still_reaches_works(runtime: PyodideRuntime) -> None:
    code = (
        "import js, os\nfrom pyodide.ffi import to_js\n"
        "[bool(js.RegExp.new('[a-z]+(?<=c)').test('abc')),"
        " js.String.new('Ab').replace(js.RegExp.new('b', 'g'), 'c'),"
        " js.crypto.getRandomValues(js.Uint8Array.new(4)).length,"
        " len(js.crypto.randomUUID()), len(os.urandom(3)),"
        " js.WebAssembly.Memory.new(to_js({'initial': 1})).buffer.byteLength]"
    )
    report = runtime.run(Job(code=code, limits=Limits(wall_ms=5000)), Sink())
    assert value(report) == [True, "Ac", 4, 36, 3, 65536]
