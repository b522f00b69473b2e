"""Escape attempts and isolation between runs: each must fail or leave no trace."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import execute


@pytest.mark.parametrize(
    ("code", "expected_error"),
    [
        ("open('/etc/passwd').read()", "FileNotFoundError"),
        ("open('/proc/self/environ').read()", "FileNotFoundError"),
        ("import os\nos.listdir('/')", "FileNotFoundError"),
        ("open('../../etc/hostname').read()", "PermissionError"),
        ("import os\nos.symlink('/etc/passwd', 'p')\nopen('p').read()", "PermissionError"),
        ("open('/python/os.py', 'a').write('x')", "PermissionError"),
        ("import os\nos.remove('/python/os.py')", "PermissionError"),
        ("import subprocess\nsubprocess.run(['id'])", "OSError"),
        ("import os\nos.system('id')", "AttributeError"),
        ("import os\nos.fork()", "AttributeError"),
        ("import ctypes", "ModuleNotFoundError"),
        ("import _ctypes", "ModuleNotFoundError"),
        ("import socket\nsocket.socket()", "PermissionError"),
        ("import threading\nthreading.Thread(target=print).start()", "RuntimeError"),
        ("import mmap", "ModuleNotFoundError"),
    ],
    ids=[
        "read-host-file",
        "proc-environ",
        "list-root",
        "dotdot-out-of-workdir",
        "symlink-out",
        "append-to-stdlib",
        "delete-from-stdlib",
        "spawn-process",
        "os-system",
        "fork",
        "ctypes",
        "_ctypes",
        "raw-socket",
        "threads",
        "mmap",
    ],
)
def test_escape_attempt_fails(client: httpx.Client, code: str, expected_error: str) -> None:
    body = execute(client, code)
    assert body["status"] == "error", body
    assert body["error"]["type"] == expected_error, body["error"]


def test_only_the_workdir_and_the_read_only_stdlib_are_visible(client: httpx.Client) -> None:
    code = (
        "import os\n"
        "found = []\n"
        "for top in ('/work', '/python', '/tmp', '/home', '/root', '/etc', '/proc', '/dev'):\n"
        "    found.append((top, os.path.isdir(top)))\n"
        "found"
    )
    visible = dict(execute(client, code)["result"]["json"])
    assert visible == {
        "/work": True,
        "/python": True,
        "/tmp": False,
        "/home": False,
        "/root": False,
        "/etc": False,
        "/proc": False,
        "/dev": False,
    }


def test_environment_holds_nothing_of_the_host(client: httpx.Client) -> None:
    body = execute(client, "import os\ndict(os.environ)")
    assert body["result"]["json"] == {}


def test_interpreter_state_does_not_leak_between_runs(client: httpx.Client) -> None:
    poison = (
        "import builtins, json, sys, os\n"
        "builtins.LEAK = 1\n"
        "json.dumps = lambda *a, **k: 'poisoned'\n"
        "sys.modules['leaky'] = sys\n"
        "sys.path.insert(0, '/work/evil')\n"
        "os.environ['LEAK'] = '1'\n"
        "open('left-behind.txt', 'w').write('x')\n"
        "GLOBAL_LEAK = 1\n"
    )
    probe = (
        "import builtins, json, sys, os\n"
        "[hasattr(builtins, 'LEAK'), json.dumps(1), 'leaky' in sys.modules,\n"
        " '/work/evil' in sys.path, 'LEAK' in os.environ, os.listdir('.'),\n"
        " 'GLOBAL_LEAK' in globals()]"
    )
    # Enough rounds that every worker of the pool has served a poisoned run.
    for _ in range(8):
        assert execute(client, poison)["status"] == "ok"
        body = execute(client, probe)
        assert body["result"]["json"] == [False, "1", False, False, False, [], False]


def test_random_state_differs_between_runs(client: httpx.Client) -> None:
    code = "import random, uuid, os\n[random.random(), str(uuid.uuid4()), os.urandom(8).hex()]"
    first = execute(client, code)["result"]["json"]
    second = execute(client, code)["result"]["json"]
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_guest_cannot_reach_host_functions_beyond_the_gate(client: httpx.Client) -> None:
    # The raw host import is reachable, but it is the same gate: no allowlist, no request.
    code = (
        "from wit_world.imports import host\n"
        "from componentize_py_types import Err\n"
        "try:\n"
        "    host.fetch(host.HttpRequest('GET', 'http://127.0.0.1:1/', [], '', 0))\n"
        "except Err as e:\n"
        "    print('refused:', e.value)\n"
    )
    body = execute(client, code)
    assert body["status"] == "ok", body
    assert body["stdout"].startswith("refused: ")
    assert body["subrequests"][0]["allowed"] is False
