"""Worker processes: crashes are contained, replaced, and never hang a caller."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Service, execute


def _wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def small_service(tmp_path: Path) -> Iterator[Service]:
    """A service of its own (one worker process taking two runs at once), so killing
    workers disturbs no other test."""
    svc = Service(
        tmp_path,
        pool_size="1",
        runs_per_worker="2",
        queue_timeout_ms="300",
        build_on_start="false",
        pyodide_enabled="false",
    )
    yield svc
    svc.close()


def test_killed_idle_worker_is_replaced(small_service: Service) -> None:
    with small_service.client(60) as client:
        assert execute(client, "1")["status"] == "ok"
        [pid] = small_service.worker_pids()
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: small_service.worker_pids() not in ([], [pid]))
        answers: list[httpx.Response] = []

        def replacement_answers() -> bool:
            # The new process exists before it has loaded the guest: until then
            # a caller gets the pool's 429 (retry shortly), never a hang or a 500.
            response = client.post("/v1/execute", json={"code": "print('after')"})
            assert response.status_code in (200, 429), response.text
            answers.append(response)
            return response.status_code == 200

        _wait_for(replacement_answers)
        body = answers[-1].json()
        assert body["status"] == "ok"
        assert body["stdout"] == "after\n"


def test_worker_killed_mid_run_ends_the_run_and_is_replaced(small_service: Service) -> None:
    with small_service.client(60) as client:
        [pid] = small_service.worker_pids()
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        body = execute(client, "while True: pass", limits={"cpu_ms": 20_000, "wall_ms": 20_000})
        assert body["status"] == "internal_error"
        assert body["error"]["type"] == "WorkerCrashed"
        _wait_for(lambda: small_service.worker_pids() not in ([], [pid]))

        def replacement_runs() -> bool:
            # A 429 while the new worker loads the guest (slow on a loaded machine) is fine.
            response = client.post("/v1/execute", json={"code": "2 + 2"})
            return response.status_code == 200 and response.json()["result"]["json"] == 4

        _wait_for(replacement_runs)


def test_full_pool_answers_429_within_the_queue_wait(small_service: Service) -> None:
    # Both slots of the one process sleep: the next run is the first over the maximum.
    with (
        small_service.client(60) as client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        sleepers = [pool.submit(execute, client, "import time\ntime.sleep(2)") for _ in "ab"]
        time.sleep(0.5)
        started = time.monotonic()
        response = client.post("/v1/execute", json={"code": "1"})
        waited = time.monotonic() - started
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "busy"
        assert waited < 1.5
        assert [busy.result()["status"] for busy in sleepers] == ["ok", "ok"]


def test_disconnecting_client_cancels_its_run(small_service: Service) -> None:
    code = "print('started', flush=True)\nwhile True: pass"
    limits = {"cpu_ms": 30_000, "wall_ms": 30_000}
    with small_service.client(60) as client:
        with client.stream(
            "POST", "/v1/execute", json={"code": code, "stream": True, "limits": limits}
        ) as response:
            for line in response.iter_lines():
                if "started" in line:
                    break
        # The only worker must be free again long before the run's 30 s limits.
        started = time.monotonic()
        body = execute(client, "'free'")
        assert body["result"]["json"] == "free"
        assert time.monotonic() - started < 5
    _wait_for(lambda: "canceled by the caller" in small_service.log(), timeout=5)


def test_disconnecting_json_client_cancels_its_run(small_service: Service) -> None:
    code = "while True: pass"
    limits = {"cpu_ms": 30_000, "wall_ms": 30_000}
    with (
        small_service.client(0.5) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.post("/v1/execute", json={"code": code, "limits": limits})
    with small_service.client(60) as client:
        started = time.monotonic()
        assert execute(client, "'free'")["result"]["json"] == "free"
        assert time.monotonic() - started < 5


def test_worker_processes_inherit_none_of_the_services_secrets(tmp_path: Path) -> None:
    svc = Service(
        tmp_path,
        pool_size="1",
        build_on_start="false",
        admin_key="s3cret-admin-key",
        pyodide_enabled="false",
    )
    try:
        [pid] = svc.worker_pids()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {item.split(b"=", 1)[0].decode() for item in environ if item}
        assert not any(name.startswith("SANDLOT_") for name in names), names
        assert b"s3cret-admin-key" not in b"\0".join(environ)
    finally:
        svc.close()


@contextlib.contextmanager
def pyodide_service(tmp_path: Path, **settings: str) -> Iterator[tuple[Service, httpx.Client]]:
    """A service of its own running one Pyodide worker process (the default runtime)."""
    svc = Service(
        tmp_path,
        pool_size="1",
        pyodide_pool_size="1",
        default_runtime="pyodide",
        build_on_start="false",
        **settings,
    )
    try:
        with svc.client(60) as client:
            yield svc, client
    finally:
        svc.close()


def test_pyodide_deno_killed_mid_run_is_restarted(tmp_path: Path) -> None:
    with pyodide_service(tmp_path) as (svc, client):
        assert execute(client, "1 + 1")["result"]["json"] == 2
        deno = [
            pid
            for pid in _descendants(svc.proc.pid)
            if b"deno" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ]
        assert len(deno) == 1
        threading.Timer(0.5, os.kill, (deno[0], signal.SIGKILL)).start()
        body = execute(client, "while True: pass", limits={"cpu_ms": 20_000, "wall_ms": 20_000})
        assert body["status"] == "internal_error"
        assert execute(client, "2 + 2")["result"]["json"] == 4


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = [int(child) for child in children]
    for child in list(found):
        found += _descendants(child)
    return found


def test_pyodide_js_heap_bomb_ends_and_spares_the_next_run(tmp_path: Path) -> None:
    # The wasm heap is capped per run; a JS-side bomb is caught by the Deno
    # process's resident-memory backstop, and the next run starts clean.
    with pyodide_service(tmp_path, pyodide_memory_backstop_mb="1500") as (_, client):
        bomb = (
            "import js\na = js.Array.new()\n"
            "while True:\n    a.push(js.Array.new(1_000_000).fill(1.5))"
        )
        body = execute(client, bomb, limits={"cpu_ms": 20_000, "wall_ms": 30_000})
        assert body["status"] in {"memory_limit", "cpu_limit"}, body
        assert execute(client, "print('clean')")["stdout"] == "clean\n"
