"""Issue 11, findings 1 and 2: a Pyodide guest can't touch the host's channel or outlive its run.

The attacks of the red team, replayed against one service with exactly one Deno
process, so that the attacker's run and the victims' runs share it:

* forged protocol lines written to Deno's stdout (every route a worker has to fd 1)
  must not reach any later run: each victim gets its own events only;
* reading Deno's stdin finds nothing (it once carried other runs' jobs);
* messages a guest posts to the host are checked: odd ones end its own run only;
* a Worker started by guest code ends that run as a ``SandboxViolation`` and dies
  with it, and the next run's ``cpu_ms`` is still enforced on its own thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.engines.wasmtime import Artifacts
from tests.conftest import Service, execute


@pytest.fixture(scope="module")
def one_deno(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("one-deno"),
        pool_size="1",
        pyodide_pool_size="1",
        queue_timeout_ms="30000",
        build_on_start="false",
    )
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(one_deno: Service) -> Iterator[httpx.Client]:
    with one_deno.client() as c:
        yield c


def run_js(client: httpx.Client, code: str, **fields: object) -> dict[str, Any]:
    return execute(client, code, runtime="pyodide", **fields)


def assert_victims_get_their_own(client: httpx.Client, count: int = 3) -> None:
    for n in range(count):
        secret = f"tenant-secret-{n}-{time.monotonic_ns()}"
        body = run_js(
            client,
            f"import os\nprint('victim {n}')\nos.environ['SECRET'][-6:]",
            env={"SECRET": secret},
        )
        assert body["status"] == "ok", body
        assert body["stdout"] == f"victim {n}\n", body
        assert body["result"]["json"] == secret[-6:], body
        assert "pwned" not in json.dumps(body)


# Lines shaped like the host's messages (old and new protocol), and attacker HTML.
_END = {"t": "end", "outcome": json.dumps({"status": "ok", "result": {"repr": "'pwned'"}})}
FORGED = "".join(
    json.dumps(line) + "\n"
    for line in (
        {**_END, "heapBytes": 0},
        {**_END, "id": 2, "heapBytes": 0},
        {"t": "out", "s": "stdout", "d": "<script>pwned</script>"},
        {"t": "out", "id": 3, "s": "stdout", "d": "pwned"},
    )
)

FORGERIES = {
    "deno-stdout": "js.Deno.stdout.writeSync(js.TextEncoder.new().encode(LINES))",
    "deno-stderr": "js.Deno.stderr.writeSync(js.TextEncoder.new().encode(LINES))",
    "process-stdout": "js.process.stdout.write(LINES)",
    "console-log": "js.console.log(LINES)",
    # node:fs needs an import() of the guest's own: refused (no code from strings), and
    # the import map refuses node:fs too. Tried anyway, in case either ever gives way.
    "node-fs-fd1": (
        "try:\n    (await js.eval('import(\"node:fs\")')).writeSync(1, LINES)\n"
        "except Exception as e:\n    assert 'Code generation' in str(e), e"
    ),
    "node-fs-every-fd": (
        "try:\n    fs = await js.eval('import(\"node:fs\")')\n"
        "except Exception as e:\n    assert 'Code generation' in str(e), e\n    fs = None\n"
        "for fd in range(256 if fs else 0):\n"
        "    try:\n"
        "        fs.writeSync(fd, LINES)\n"
        "    except Exception:\n"
        "        pass"
    ),
}


@pytest.mark.parametrize("attack", FORGERIES.values(), ids=FORGERIES.keys())
def test_lines_written_to_denos_stdio_reach_no_run(client: httpx.Client, attack: str) -> None:
    code = f"import js\nLINES = {FORGED!r} * 3\n{attack}\n'attacker done'"
    body = run_js(client, code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == "attacker done"
    assert_victims_get_their_own(client)


@pytest.mark.parametrize(
    "read",
    [
        "n = js.Deno.stdin.readSync(buf)\n'eof' if not n else n",
        "try:\n    n = (await js.eval('import(\"node:fs\")')).readSync(0, buf)\n"
        "except Exception as e:\n    n = 0 if 'Code generation' in str(e) else str(e)\n"
        "'eof' if not n else n",
    ],
    ids=["deno-stdin", "node-fs-fd0"],
)
def test_denos_stdin_carries_nothing(client: httpx.Client, read: str) -> None:
    # It used to carry every job (code, env with secrets, gate tokens): a read
    # blocked until the next run's job arrived, then returned it.
    run_js(client, "print('a job before the thief')", env={"SECRET": "earlier"})
    body = run_js(client, f"import js\nbuf = js.Uint8Array.new(65536)\n{read}")
    assert body["status"] == "ok", body
    assert body["result"]["json"] == "eof"
    assert_victims_get_their_own(client, count=1)


def test_a_forged_end_posted_to_the_host_ends_only_the_forgers_run(client: httpx.Client) -> None:
    forged = json.dumps({**_END, "heapBytes": 10**30})
    body = run_js(
        client, f"import js\njs.postMessage(js.JSON.parse({forged!r}))\nimport time\ntime.sleep(1)"
    )
    assert body["usage"]["memory_peak_bytes"] == 0  # not the forged number
    assert_victims_get_their_own(client)


@pytest.mark.parametrize(
    "message",
    ['{"t": "ready"}', '{"t": "out", "s": "stdin", "d": "x"}', '{"t": "out", "s": "stdout"}', "42"],
    ids=["ready", "bad-stream", "no-data", "not-an-object"],
)
def test_an_unexpected_message_to_the_host_is_a_violation(
    client: httpx.Client, message: str
) -> None:
    body = run_js(
        client, f"import js\njs.postMessage(js.JSON.parse({message!r}))\nimport time\ntime.sleep(5)"
    )
    assert body["status"] == "error", body
    assert body["error"]["type"] == "SandboxViolation"
    assert body["usage"]["wall_ms"] < 4000
    assert_victims_get_their_own(client, count=1)


def _deno_pids(service: Service) -> set[int]:
    pids = set()
    for pid in _descendants(service.proc.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "deno":
                pids.add(pid)
        except OSError:
            continue
    return pids


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def test_the_worker_global_is_gone(client: httpx.Client) -> None:
    body = run_js(client, "import js\nhasattr(js, 'Worker')")
    assert body["result"]["json"] is False


WORKER_THREADS = (
    "m = await js.eval('import(\"node:worker_threads\")')\n"
    "opts = js.JSON.parse('{\"eval\": true}')\n"
    "w = js.Reflect.construct(m.Worker, js.Array.of('for (;;) {}', opts))\n"
)


@pytest.mark.parametrize(
    "tail",
    ["import time\ntime.sleep(3)\n", "'returned at once'\n"],
    ids=["while-running", "just-before-the-end"],
)
def test_a_worker_the_guest_asks_for_is_refused_and_its_deno_lives_on(
    client: httpx.Client, one_deno: Service, tail: str
) -> None:
    # Reaching node:worker_threads takes an import() of the guest's own: refused (no code
    # from strings; the module behind it refuses too, pyodide-runtime/src/imports.json).
    # Before, the guest got its thread, and the driver restarted the whole Deno process
    # (every session in it) to end it.
    run_js(client, "'warm'")
    denos = _deno_pids(one_deno)
    assert denos
    body = run_js(client, "import js\n" + WORKER_THREADS + tail, limits={"wall_ms": 5_000})
    assert body["status"] == "error", body
    assert "Code generation from strings disallowed" in body["error"]["message"]
    assert body["usage"]["wall_ms"] < 2_500

    alive = {pid for pid in denos if Path(f"/proc/{pid}").exists()}
    assert alive == set(denos), "the Deno process was restarted"

    # The next run's cpu_ms is enforced on its own thread (not only by the wall limit).
    spin = run_js(client, "while True: pass", limits={"cpu_ms": 300, "wall_ms": 20_000})
    assert spin["status"] == "cpu_limit", spin
    assert spin["usage"]["wall_ms"] < 5_000
    assert_victims_get_their_own(client, count=1)
