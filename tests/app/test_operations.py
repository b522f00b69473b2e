"""Operations against the real service process: SIGTERM drains, /metrics moves, request ids."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Artifacts, Service

pytestmark = pytest.mark.timeout(300)

_BASE = {"pool_size": "2", "build_on_start": "false", "pyodide_enabled": "false"}


def _stream(service: Service, code: str, events: list[dict[str, object]], seen: threading.Event):
    """Run ``code`` streamed in a thread; each event lands in ``events``."""

    def read() -> None:
        with (
            service.client(timeout=120) as client,
            client.stream("POST", "/v1/execute", json={"code": code, "stream": True}) as response,
        ):
            name = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name:
                    events.append({"event": name, **json.loads(line.split(":", 1)[1])})
                    if name == "stdout":
                        seen.set()

    thread = threading.Thread(target=read)
    thread.start()
    return thread


def _sample(text: str, name: str, **labels: str) -> float:
    """One sample of Prometheus text: the value of ``name`` with exactly ``labels``."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


@pytest.fixture
def draining_service(tmp_path: Path, artifacts: Artifacts) -> Iterator[Service]:
    svc = Service(tmp_path, drain_timeout_ms="20000", log_format="json", **_BASE)
    yield svc
    svc.close()


def test_sigterm_drains_a_streamed_run_refuses_new_work_and_ends_sessions(
    draining_service: Service,
) -> None:
    service = draining_service
    with service.client() as client:
        session = client.post("/v1/sessions", json={}).json()
    events: list[dict[str, object]] = []
    seen = threading.Event()
    code = "import time\nprint('started', flush=True)\ntime.sleep(2)\nprint('done')"
    reader = _stream(service, code, events, seen)
    assert seen.wait(60), events
    service.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    ready = httpx.get(f"{service.url}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    refused = httpx.post(
        f"{service.url}/v1/execute",
        json={"code": "print(1)"},
        headers={"authorization": "Bearer x"},
        timeout=5,
    )
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-request-id"]
    assert refused.json()["error"]["code"] == "shutting_down"
    reader.join(60)
    assert events[-1]["event"] == "end" and events[-1]["status"] == "ok", events
    assert "done" in "".join(str(e.get("text", "")) for e in events)
    assert service.proc.wait(30) == 0
    lines = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    assert any(line["message"] == f"session {session['id']} ended: shutdown" for line in lines), (
        service.log()
    )


def test_past_the_drain_timeout_a_streamed_run_ends_canceled_with_reason_shutdown(
    tmp_path: Path, artifacts: Artifacts
) -> None:
    service = Service(tmp_path, drain_timeout_ms="500", **_BASE)
    try:
        events: list[dict[str, object]] = []
        seen = threading.Event()
        code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
        reader = _stream(service, code, events, seen)
        answers: list[dict[str, object]] = []

        def run_json() -> None:
            with service.client(timeout=120) as client:
                answers.append(client.post("/v1/execute", json={"code": code}).json())

        json_run = threading.Thread(target=run_json)
        json_run.start()
        assert seen.wait(60), events
        time.sleep(0.5)  # the JSON run is in flight too
        service.proc.send_signal(signal.SIGTERM)
        reader.join(30)
        json_run.join(30)
        end = events[-1]
        assert end["event"] == "end", events
        assert end["status"] == "canceled" and end["reason"] == "shutdown", end
        assert answers[0]["status"] == "canceled", answers
        assert answers[0]["error"]["type"] == "Shutdown", answers  # type: ignore[index]
        assert service.proc.wait(30) == 0
    finally:
        service.close()


def test_metrics_move_and_request_ids_come_back(client: httpx.Client, service: Service) -> None:
    assert httpx.get(f"{service.url}/metrics").status_code == 401
    before = client.get("/metrics").text
    answer = client.post(
        "/v1/execute", json={"code": "print(1)"}, headers={"x-request-id": "trace-42.a"}
    )
    assert answer.json()["status"] == "ok"
    assert answer.headers["x-request-id"] == "trace-42.a"
    bad = client.get("/healthz", headers={"x-request-id": "no spaces allowed"})
    assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    labels = {"engine": "wasmtime", "kind": "execute", "status": "ok"}
    assert _sample(after.text, "sandlot_runs_total", **labels) == (
        _sample(before, "sandlot_runs_total", **labels) + 1
    )
    count = "sandlot_run_duration_seconds_count"
    assert _sample(after.text, count, engine="wasmtime") > _sample(before, count, engine="wasmtime")
    assert _sample(after.text, "sandlot_pool_workers", engine="wasmtime") == 4
    assert "sandlot_sessions_open" in after.text
    # One process on SQLite: the bus is in-process, always connected, never reconnected.
    assert "sandlot_bus_connected 1.0" in after.text.splitlines()
    assert "sandlot_bus_reconnects_total 0.0" in after.text.splitlines()
    assert "trace-42.a" in service.log()
