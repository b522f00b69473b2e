"""GET /v1/namespaces/{ns}/workers/{name}/tail on the real service and engine: a dispatch's
invocation arrives with the worker's output and traceback (which the anonymous caller never
sees), keys of other namespaces are refused, tails are capped, a silent reader loses
events with a counted notice while dispatch keeps its pace, and SIGTERM ends a tail."""

from __future__ import annotations

import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.engines.wasmtime import Artifacts
from tests.conftest import Service
from tests.rawhttp import RawConnection, request

WORKER = """
from workers import Response

def on_fetch(request, env):
    print("handling", request.method, request.path)
    if request.path.startswith("/boom"):
        raise ValueError("the order store said no: 42")
    if request.path.startswith("/noisy"):
        for n in range(100):
            print("noise", n, "€" * 60)
    return Response("hi")
"""
QUEUE = 4
MAX_TAILS = 2
HEARTBEAT_MS = 300


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("tail"),
        pool_size="2",
        pyodide_enabled="false",
        queue_timeout_ms="30000",
        build_on_start="false",
        tail_queue_events=str(QUEUE),
        tail_max_per_namespace=str(MAX_TAILS),
        tail_heartbeat_ms=str(HEARTBEAT_MS),
        stream_send_timeout_ms="30000",
        # A worker's traceback is logged at DEBUG (what a worker says may hold its secrets).
        log_level="debug",
    )
    yield svc
    svc.close()


def _namespace(service: Service) -> tuple[str, str]:
    """A namespace with the worker ``site`` and one key: both names."""
    name = "t-" + secrets.token_hex(4)
    with service.client() as admin:
        assert admin.post("/v1/namespaces", json={"name": name}).status_code == 201
        key = admin.post(f"/v1/namespaces/{name}/keys", json={}).json()["key"]
        uploaded = admin.put(
            f"/v1/namespaces/{name}/workers/site", json={"modules": {"main.py": WORKER}}
        )
        assert uploaded.status_code == 200, uploaded.text
    return name, str(key)


class Tail:
    """A tail read on a thread: its events (name, data) and comment lines as they come."""

    def __init__(self, service: Service, namespace: str, key: str, worker: str = "site") -> None:
        self.events: list[tuple[str, Any]] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.opened = threading.Event()
        self._changed = threading.Condition()
        self._client = httpx.Client(
            base_url=service.url, timeout=60, headers={"authorization": f"Bearer {key}"}
        )
        self._path = f"/v1/namespaces/{namespace}/workers/{worker}/tail"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._path) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    response.read()
                    self.opened.set()
                    return
                name = None
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and name is not None:
                        with self._changed:
                            self.events.append((name, json.loads(line.removeprefix("data: "))))
                            self._changed.notify_all()
                        if name == "open":
                            self.opened.set()
                        name = None
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()

    def wait_for(self, name: str, count: int = 1, timeout_s: float = 30) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = [data for n, data in self.events if n == name]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                assert left > 0, f"no {count} {name!r} events; got {self.events}"
                self._changed.wait(left)

    def close(self) -> None:
        self._client.close()
        self._thread.join(10)


def test_a_dispatch_arrives_with_its_output_and_traceback_which_the_public_never_sees(
    service: Service,
) -> None:
    namespace, key = _namespace(service)
    tail = Tail(service, namespace, key)
    try:
        assert tail.opened.wait(30) and tail.status == 200
        [opened] = tail.wait_for("open")
        assert opened == {"namespace": namespace, "worker": "site", "heartbeat_ms": HEARTBEAT_MS}
        # Anonymous, with a credential in the query: the public answer stays bare.
        answer = httpx.get(
            f"{service.url}/dispatch/{namespace}/site/boom/7?api_key=hunter2", timeout=60
        )
        assert answer.status_code == 500
        assert "order store" not in answer.text and "Traceback" not in answer.text
        assert answer.json()["error"]["code"] == "error"
        run_id = answer.json()["run_id"]
        assert httpx.get(f"{service.url}/dispatch/{namespace}/site/fine", timeout=60).text == "hi"

        failed, fine = tail.wait_for("invocation", 2)
        assert failed["run_id"] == run_id
        assert failed["outcome"] == "error" and failed["status"] == 500
        assert failed["request"] == {"method": "GET", "path": "/boom/7"}
        assert "hunter2" not in json.dumps(failed)
        assert {"stream": "stdout", "text": "handling GET /boom/7"} in failed["logs"]
        exception = failed["exception"]
        assert exception["type"] == "ValueError"
        assert exception["message"] == "the order store said no: 42"
        assert "main.py" in exception["traceback"]
        assert exception["traceback"].rstrip().endswith("ValueError: the order store said no: 42")
        assert failed["cpu_ms"] > 0 and failed["wall_ms"] > 0
        assert failed["time"].endswith("+00:00")
        assert fine["outcome"] == "ok" and fine["status"] == 200 and fine["exception"] is None
        # In the service's log too, at DEBUG: the run's line, with its traceback.
        deadline = time.monotonic() + 10
        while "the order store said no" not in service.log():
            assert time.monotonic() < deadline, "the traceback never reached the log"
            time.sleep(0.05)
        line = next(
            entry for entry in service.log().splitlines() if f"run {run_id} raised" in entry
        )
        assert f"namespace={namespace}" in line and f"run_id={run_id}" in line
        # A quiet tail carries heartbeat comments.
        deadline = time.monotonic() + 5
        while not tail.comments:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        assert tail.comments[0].startswith(": ping")
    finally:
        tail.close()


def test_who_may_tail(service: Service) -> None:
    namespace, key = _namespace(service)
    _, other_key = _namespace(service)
    path = f"/v1/namespaces/{namespace}/workers/site/tail"
    # Another namespace's key is refused as on every route of a namespace, and learns nothing
    # of the worker: the answer is the same for one that doesn't exist.
    for target in (path, f"/v1/namespaces/{namespace}/workers/nope/tail"):
        refused = httpx.get(
            service.url + target, headers={"authorization": f"Bearer {other_key}"}, timeout=30
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
    assert httpx.get(service.url + path, timeout=30).status_code == 401
    with service.client() as admin:
        missing = admin.get(f"/v1/namespaces/{namespace}/workers/nope/tail")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    tails = [Tail(service, namespace, key) for _ in range(MAX_TAILS)]
    try:
        for tail in tails:
            assert tail.opened.wait(30) and tail.status == 200
        # The admin's tails count too: the cap is the namespace's.
        with service.client() as admin:
            over = admin.get(path)
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "too_many_tails"
        assert "SANDLOT_TAIL_MAX_PER_NAMESPACE" in over.json()["error"]["message"]
    finally:
        for tail in tails:
            tail.close()
    # Closed tails free their places.
    deadline = time.monotonic() + 10
    while True:
        again = Tail(service, namespace, key)
        assert again.opened.wait(30)
        again.close()
        if again.status == 200:
            break
        assert time.monotonic() < deadline, "closed tails kept their places"
        time.sleep(0.2)


def _dropped_so_far(service: Service) -> float:
    with service.client() as admin:
        metrics = admin.get("/metrics").text
    match = re.search(r"^sandlot_tail_events_dropped_total (\S+)$", metrics, re.MULTILINE)
    assert match, metrics
    return float(match.group(1))


def test_a_reader_that_never_reads_loses_events_with_a_count_and_slows_no_dispatch(
    service: Service,
) -> None:
    namespace, key = _namespace(service)
    headers = [("host", "127.0.0.1"), ("authorization", f"Bearer {key}")]
    dropped_before = _dropped_so_far(service)
    with RawConnection(service.port, timeout=30, receive_buffer=4096) as silent:
        silent.send(request("GET", f"/v1/namespaces/{namespace}/workers/site/tail", headers))
        while b"event: open" not in silent._pending:
            assert silent._fill()
        # The silent client reads nothing now. Each invocation is about 7 KB (its output is
        # clipped to fit), so the socket buffers fill, then the tail's queue of QUEUE, and
        # then invocations are dropped: dispatch until the metric says so.
        took: list[float] = []
        with httpx.Client(base_url=service.url, timeout=60) as anonymous:
            while _dropped_so_far(service) - dropped_before < 5:
                assert len(took) < 1_000, "nothing was ever dropped"
                for _ in range(20):
                    started = time.monotonic()
                    assert anonymous.get(f"/dispatch/{namespace}/site/noisy").status_code == 200
                    took.append(time.monotonic() - started)
        dispatches = len(took)
        took.sort()
        # Dispatch kept its pace while the tail was stuck: no call waited on it.
        assert took[-1] < max(2.0, 10 * took[len(took) // 2]), took
        # Now read: every dispatch is accounted for, as an event or in a dropped notice.
        seen, dropped = 0, 0
        deadline = time.monotonic() + 30
        while seen + dropped < dispatches:
            assert time.monotonic() < deadline, (seen, dropped, dispatches)
            assert silent._fill()
            text = silent._pending.decode("utf-8", "replace")
            seen = text.count("event: invocation")
            dropped = sum(
                int(n) for n in re.findall(r'event: dropped\r?\ndata: {"dropped":(\d+)}', text)
            )
        assert seen + dropped == dispatches
        assert dropped == _dropped_so_far(service) - dropped_before
        assert dropped >= 5 and seen >= QUEUE


@pytest.fixture
def draining_service(tmp_path: Path, artifacts: Artifacts) -> Iterator[Service]:
    svc = Service(
        tmp_path,
        pool_size="1",
        pyodide_enabled="false",
        build_on_start="false",
        drain_timeout_ms="20000",
    )
    yield svc
    svc.close()


def test_sigterm_ends_a_tail_with_its_end_and_does_not_wait_for_it(
    draining_service: Service,
) -> None:
    service = draining_service
    namespace, key = _namespace(service)
    tail = Tail(service, namespace, key)
    try:
        assert tail.opened.wait(30) and tail.status == 200
        started = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        [end] = tail.wait_for("end", timeout_s=10)
        assert end == {"reason": "shutdown"}
        assert service.proc.wait(15) == 0
        # An open tail holds no drain: far sooner than the 20 s drain timeout.
        assert time.monotonic() - started < 10
    finally:
        tail.close()
