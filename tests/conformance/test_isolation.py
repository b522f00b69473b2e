"""Escape attempts and isolation between runs: each must fail or leave no trace."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Run, engine_gap

IN_MEMORY_FS = "the file system is the instance's own in-memory one; changes die with it"

# id, code, what each engine must answer: an exception type, or a gap (why not).
ESCAPES: list[tuple[str, str, dict[str, str]]] = [
    ("read-host-file", "open('/etc/passwd').read()", {"*": "FileNotFoundError"}),
    ("proc-environ", "open('/proc/self/environ').read()", {"*": "FileNotFoundError"}),
    (
        "list-root",
        "import os\nos.listdir('/')",
        {"wasmtime": "FileNotFoundError", "pyodide": "gap: " + IN_MEMORY_FS},
    ),
    (
        "dotdot-out-of-workdir",
        "open('../../etc/hostname').read()",
        {"wasmtime": "PermissionError", "pyodide": "FileNotFoundError"},
    ),
    (
        "symlink-out",
        "import os\nos.symlink('/etc/passwd', 'p')\nopen('p').read()",
        {"wasmtime": "PermissionError", "pyodide": "FileNotFoundError"},
    ),
    (
        # /tmp is a host directory of the run's own on wasmtime: a link out of it is
        # made (relative), but no lookup through it leaves /tmp.
        "symlink-out-of-tmp",
        "import os\nos.symlink('..', '/tmp/up')\nopen('/tmp/up/etc/hostname').read()",
        {"wasmtime": "PermissionError", "pyodide": "FileNotFoundError"},
    ),
    (
        "dotdot-out-of-tmp",
        "open('/tmp/../etc/hostname').read()",
        {"wasmtime": "PermissionError", "pyodide": "FileNotFoundError"},
    ),
    (
        "append-to-stdlib",
        "import os, json\nopen(os.path.dirname(json.__file__) + '/x.py', 'a').write('x')",
        {"wasmtime": "PermissionError", "pyodide": "gap: " + IN_MEMORY_FS},
    ),
    ("spawn-process", "import subprocess\nsubprocess.run(['id'])", {"*": "OSError"}),
    # Runs nothing and returns the status of a missing shell (tests/conformance/test_os.py).
    ("os-system", "import os\nassert os.system('id') == 0", {"*": "AssertionError"}),
    ("fork", "import os\nos.fork()", {"wasmtime": "AttributeError", "pyodide": "OSError"}),
    (
        "ctypes",
        "import ctypes\nctypes.CDLL(None)",
        {
            "component": "ModuleNotFoundError",
            "wasmtime": "OSError",  # 'ctypes is unavailable on wasm32-wasi'
            "pyodide": "gap: Pyodide's ctypes reaches only the instance's own wasm memory",
        },
    ),
    (
        "raw-socket",
        "import socket\nsocket.socket()",
        {
            "component": "PermissionError",
            "wasmtime": "OSError",  # WASI preview 1 has no socket creation: 'Not supported'
            "pyodide": "gap: emscripten emulates sockets; connecting is refused (test_egress)",
        },
    ),
    (
        "threads",
        "import threading\nthreading.Thread(target=print).start()",
        {"*": "RuntimeError"},
    ),
]


@pytest.mark.parametrize(
    ("code", "expected"), [(c, e) for _, c, e in ESCAPES], ids=[name for name, _, _ in ESCAPES]
)
def test_escape_attempt_fails(run: Run, engine: str, code: str, expected: dict[str, str]) -> None:
    # The data-stack guest sits in the same WASI sandbox: wasmtime's answers are its own.
    answer = expected.get(engine) or expected.get(
        "wasmtime" if engine == "component" else engine, expected.get("*", "")
    )
    if answer.startswith("gap: "):
        engine_gap(engine, engine, answer.removeprefix("gap: "))
    body = run(code)
    assert body["status"] == "error", body
    assert body["error"]["type"] == answer, body["error"]


def test_none_of_the_hosts_directories_are_visible(run: Run, engine: str) -> None:
    code = (
        "import os\n"
        "found = {}\n"
        "for top in ('/work', '/python', '/tmp', '/home', '/root', '/etc', '/proc', '/dev'):\n"
        "    found[top] = os.path.isdir(top)\n"
        "found['/etc/passwd'] = os.path.exists('/etc/passwd')\n"
        "found['cwd'] = os.getcwd()\n"
        "found"
    )
    visible = run(code)["result"]["json"]
    # Neither engine shows the host's /etc, /root or the files in them.
    assert (visible["/etc"], visible["/root"], visible["/etc/passwd"]) == (False, False, False)
    assert visible["cwd"] == "/work"
    if engine != "pyodide":
        # WASI preopens only: the workdir, the run's /tmp and the read-only stdlib (the
        # component's /python; the stack's zip lives under /usr/local/lib, not listed here).
        expected = ["/work", "/python", "/tmp"] if engine == "component" else ["/work", "/tmp"]
        assert [top for top, seen in visible.items() if seen is True] == expected


def test_environment_holds_nothing_of_the_host(run: Run) -> None:
    body = run("import os\ndict(os.environ)")
    # Only the run's defaults, the same on every engine and host.
    assert body["result"]["json"] == {"HOME": "/work", "PATH": "/usr/local/bin:/usr/bin:/bin"}


def test_interpreter_state_does_not_leak_between_runs(run: Run) -> None:
    # Each run looks for what runs before it left, then leaves all of that itself: so
    # whichever worker of the pool serves it, it follows a poisoned run there (bar each
    # worker's first). A probe run after a poison run could go to another worker each
    # time (the pool serves back-to-back runs round the workers) and find nothing.
    code = (
        "import builtins, json, sys, os\n"
        "print([hasattr(builtins, 'LEAK'), json.dumps(1), 'leaky' in sys.modules,\n"
        " '/work/evil' in sys.path, 'LEAK' in os.environ, os.listdir('.'),\n"
        " 'GLOBAL_LEAK' in globals(), os.listdir('/tmp')])\n"
        "builtins.LEAK = 1\n"
        "json.dumps = lambda *a, **k: 'poisoned'\n"
        "sys.modules['leaky'] = sys\n"
        "sys.path.insert(0, '/work/evil')\n"
        "os.environ['LEAK'] = '1'\n"
        "open('left-behind.txt', 'w').write('x')\n"
        "open('/tmp/left-behind.txt', 'w').write('x')\n"
        "os.makedirs('/tmp/left/behind', exist_ok=True)\n"
        "GLOBAL_LEAK = 1\n"
    )
    # Enough runs that every worker of the pool (4 at most) has served several.
    for _ in range(12):
        body = run(code)
        assert body["status"] == "ok", body
        assert body["stdout"] == "[False, '1', False, False, False, [], False, []]\n"


def test_random_state_differs_between_runs(run: Run) -> None:
    code = "import random, uuid, os\n[random.random(), str(uuid.uuid4()), os.urandom(8).hex()]"
    first = run(code)["result"]["json"]
    second = run(code)["result"]["json"]
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_the_stacks_door_is_the_same_gate(run: Run, engine: str) -> None:
    if engine != "wasmtime":
        pytest.skip("the door (host.call) is the data-stack guest's")
    # The raw door is reachable, but a fetch through it meets the same gate.
    code = (
        "import _host, json\n"
        "frame = {'op': 'fetch', 'method': 'GET', 'url': 'http://127.0.0.1:1/', 'headers': [],\n"
        "         'body': '', 'timeout_ms': 0}\n"
        "json.loads(_host.call(json.dumps(frame).encode()))"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert set(body["result"]["json"]) == {"error"}  # refused: no status, no body
    assert body["subrequests"][0]["allowed"] is False
    assert body["subrequests"][0]["reason"] == "not_allowlisted"


def test_guest_cannot_reach_host_functions_beyond_the_gate(run: Run, engine: str) -> None:
    engine_gap(engine, "pyodide", "no WIT host imports; its JS bridge is test_pyodide_escapes'")
    engine_gap(
        engine, "wasmtime", "no WIT host imports; its door is test_the_stacks_door_is_the_same_gate"
    )
    # The raw host import is reachable, but it is the same gate: no allowlist, no request.
    code = (
        "from wit_world.imports import host\n"
        "from componentize_py_types import Err\n"
        "try:\n"
        "    host.fetch(host.HttpRequest('GET', 'http://127.0.0.1:1/', [], '', 0, True))\n"
        "except Err as e:\n"
        "    print('refused:', e.value)\n"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert body["stdout"].startswith("refused: ")
    assert body["subrequests"][0]["allowed"] is False
