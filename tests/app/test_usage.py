"""GET /v1/namespaces/{ns}/usage on the real service: a namespace's runs, session turns and
dispatches (anonymous ones too) add up per day with their CPU, subrequests and egress bytes;
the admin's own runs count nowhere; the counts survive a restart (flushed at shutdown);
bad ranges are 422s naming the field; another namespace's key is refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sandbox.engines.wasmtime import Artifacts
from tests.conftest import Service
from tests.loopback import LoopbackServer, reply

WORKER = """
from workers import Response

def on_fetch(request, env):
    return Response("hi from " + request.path)
"""
PAYLOAD = b'{"items": [1, 2, 3]}' * 50


def _service(data_dir: Path) -> Service:
    # Flushed only at shutdown here: what a restart shows was written by the drain.
    return Service(
        data_dir,
        pool_size="1",
        pyodide_enabled="false",
        build_on_start="false",
        usage_flush_ms="3600000",
    )


@pytest.fixture
def data_dir(tmp_path: Path, artifacts: Artifacts) -> Path:
    return tmp_path


def _client(service: Service, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=service.url, timeout=60, headers={"authorization": f"Bearer {key}"}
    )


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    server = LoopbackServer(routes={"/items": reply(200, PAYLOAD)})
    yield server
    server.close()


def test_usage_adds_up_and_survives_a_restart(data_dir: Path, loopback: LoopbackServer) -> None:
    namespace = "u-" + secrets.token_hex(4)
    today = datetime.now(UTC).date().isoformat()
    service = _service(data_dir)
    try:
        with service.client() as admin:
            made = admin.post(
                "/v1/namespaces",
                json={
                    "name": namespace,
                    "private_egress": True,
                    "allowed_hosts": [f"127.0.0.1:{loopback.port}"],
                },
            )
            assert made.status_code == 201, made.text
            key = admin.post(f"/v1/namespaces/{namespace}/keys", json={}).json()["key"]
            other = admin.post("/v1/namespaces", json={"name": namespace + "-b"})
            assert other.status_code == 201
            other_key = admin.post(f"/v1/namespaces/{namespace}-b/keys", json={}).json()["key"]
            # The admin's own run belongs to no namespace.
            assert admin.post("/v1/execute", json={"code": "1"}).json()["status"] == "ok"
        cpu_ms = 0.0
        with _client(service, key) as client:
            fetched = client.post(
                "/v1/execute",
                json={
                    "code": "import requests\n"
                    f"len(requests.get('{loopback.at('/items')}', timeout=5).content)",
                    "allowed_hosts": [f"127.0.0.1:{loopback.port}"],
                },
            ).json()
            assert fetched["status"] == "ok", fetched
            assert fetched["result"]["json"] == len(PAYLOAD)
            [hop] = fetched["subrequests"]
            assert hop["bytes"] == len(PAYLOAD) and hop["sent_bytes"] > 0
            failing = client.post("/v1/execute", json={"code": "1/0"}).json()
            assert failing["status"] == "error"
            session = client.post("/v1/sessions", json={}).json()["id"]
            turn = client.post(f"/v1/sessions/{session}/execute", json={"code": "x = 2"}).json()
            client.delete(f"/v1/sessions/{session}")
            cpu_ms = sum(run["usage"]["cpu_ms"] for run in (fetched, failing, turn))
            uploaded = client.put(
                f"/v1/namespaces/{namespace}/workers/site", json={"modules": {"main.py": WORKER}}
            )
            assert uploaded.status_code == 200, uploaded.text
        # Anonymous callers' dispatches count to the worker's namespace.
        for _ in range(2):
            assert httpx.get(f"{service.url}/dispatch/{namespace}/site/x", timeout=60).text == (
                "hi from /x"
            )
        expected = {
            "runs": 5,
            "dispatches": 2,
            "subrequests": 1,
            "egress_received_bytes": len(PAYLOAD),
            "egress_sent_bytes": hop["sent_bytes"],
            "egress_bytes": len(PAYLOAD) + hop["sent_bytes"],
        }
        with _client(service, key) as client:
            before = client.get(f"/v1/namespaces/{namespace}/usage").json()
            assert client.get(f"/v1/namespaces/{namespace}-b/usage").status_code == 403
        assert before["namespace"] == namespace and before["to"] == today
        [day] = before["days"]
        assert day["day"] == today
        assert {k: day[k] for k in expected} == expected
        assert day["cpu_ms"] >= cpu_ms > 0 and day["wall_ms"] >= day["cpu_ms"] * 0.5
        assert before["total"] == {k: v for k, v in day.items() if k != "day"}
        with _client(service, other_key) as client:
            empty = client.get(f"/v1/namespaces/{namespace}-b/usage").json()
        assert empty["days"] == [] and empty["total"]["runs"] == 0
    finally:
        service.close()
    again = _service(data_dir)
    try:
        with _client(again, key) as client:
            after = client.get(
                f"/v1/namespaces/{namespace}/usage", params={"from": today, "to": today}
            ).json()
        assert after["days"] == before["days"], "the shutdown flush lost counts"
    finally:
        again.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Service]:
    service = _service(tmp_path_factory.mktemp("usage"))
    yield service
    service.close()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-02-30"}, "from"),
        ({"to": "12/05/2026"}, "to"),
        ({"from": "2026-12-06", "to": "2026-12-05"}, "from"),
        ({"from": "2024-01-01", "to": "2026-12-05"}, "from"),
    ],
    ids=["no-such-day", "not-iso", "from-after-to", "over-366-days"],
)
def test_bad_ranges_are_422_naming_the_field(
    shared: Service, params: dict[str, str], field: str
) -> None:
    with shared.client() as admin:
        assert admin.post("/v1/namespaces", json={"name": "acme"}).status_code in (201, 409)
        answer = admin.get("/v1/namespaces/acme/usage", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["field"] == field


def test_a_full_year_and_an_unknown_namespace(shared: Service) -> None:
    last = datetime.now(UTC).date()
    first = last - timedelta(days=365)
    with shared.client() as admin:
        assert admin.post("/v1/namespaces", json={"name": "acme"}).status_code in (201, 409)
        year = admin.get("/v1/namespaces/acme/usage", params={"from": str(first), "to": str(last)})
        assert year.status_code == 200, year.text
        assert year.json()["from"] == str(first)
        assert admin.get("/v1/namespaces/nope/usage").status_code == 404
