"""Quotas and rate limits over HTTP: each one trips with 429 + Retry-After, per namespace
and per key, counted in process memory or in the real Redis on loopback (shared by two
replicas of one database)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Service

REDIS_URL = "redis://127.0.0.1:6379/0"
_SETTINGS = {"pool_size": "2", "queue_timeout_ms": "30000", "build_on_start": "false"}


@pytest.fixture(scope="module", params=["memory", "redis"])
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, Service]]:
    """memory: one service (counts in its process). redis: two services on one database
    and one Redis: what one replica counts, the other sees."""
    if request.param == "memory":
        service = Service(tmp_path_factory.mktemp("quotas"), **_SETTINGS)
        yield service, service
        service.close()
        return
    shared = tmp_path_factory.mktemp("quotas-db")
    settings = {**_SETTINGS, "redis_url": REDIS_URL, "database_url": f"sqlite:///{shared}/db"}
    first = Service(tmp_path_factory.mktemp("replica-a"), **settings)
    try:
        second = Service(tmp_path_factory.mktemp("replica-b"), **settings)
    except BaseException:
        first.close()
        raise
    yield first, second
    second.close()
    first.close()


def _namespace(
    service: Service, quotas: dict[str, int], key_quotas: dict[str, int] | None = None
) -> tuple[str, str]:
    """A fresh namespace with ``quotas`` and one key (with ``key_quotas``): both names."""
    name = "q-" + secrets.token_hex(4)
    with service.client() as admin:
        made = admin.post("/v1/namespaces", json={"name": name, "quotas": quotas})
        assert made.status_code == 201, made.text
        assert made.json()["quotas"] == {**dict.fromkeys(_NAMES), **quotas}
        issued = admin.post(f"/v1/namespaces/{name}/keys", json={"quotas": key_quotas or {}})
        assert issued.status_code == 201, issued.text
        return name, str(issued.json()["key"])


_NAMES = ("requests_per_second", "concurrent_runs", "cpu_ms_per_minute", "sessions")


def _client(service: Service, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=service.url, timeout=60, headers={"authorization": f"Bearer {key}"}
    )


def _assert_quota_429(response: httpx.Response, quota: str, value: int) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "quota_reached"
    assert f"{quota} = {value}" in error["message"]
    assert error["details"][0]["field"] == f"quotas.{quota}"


def test_requests_per_second(replicas: tuple[Service, Service]) -> None:
    first, second = replicas
    _, key = _namespace(first, {"requests_per_second": 1})
    # Three requests span at most two one-second windows: one of them is refused.
    answers = []
    for service in (first, second, first):
        with _client(service, key) as client:
            answers.append(client.post("/v1/execute", json={"code": "1"}))
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    _assert_quota_429(refused[0], "requests_per_second", 1)


def test_concurrent_runs_per_key_leave_other_keys_and_namespaces_alone(
    replicas: tuple[Service, Service],
) -> None:
    first, second = replicas
    _, key = _namespace(first, {}, {"concurrent_runs": 1})
    _, other = _namespace(first, {"concurrent_runs": 1})
    started = threading.Event()
    finished: list[int] = []

    def long_run() -> None:
        with (
            _client(first, key) as client,
            client.stream(
                "POST", "/v1/execute", json={"code": "import time; time.sleep(3)", "stream": True}
            ) as stream,
        ):
            for line in stream.iter_lines():
                if line.startswith("event: start"):
                    started.set()
            finished.append(stream.status_code)

    thread = threading.Thread(target=long_run)
    thread.start()
    try:
        assert started.wait(30)
        with _client(second, key) as client:
            _assert_quota_429(client.post("/v1/execute", json={"code": "1"}), "concurrent_runs", 1)
        with _client(second, other) as client:
            assert client.post("/v1/execute", json={"code": "1"}).json()["status"] == "ok"
    finally:
        thread.join(30)
    assert finished == [200]
    with _client(second, key) as client:
        assert client.post("/v1/execute", json={"code": "1"}).json()["status"] == "ok"


def test_cpu_ms_per_minute_counts_the_cpu_runs_used(replicas: tuple[Service, Service]) -> None:
    first, second = replicas
    _, key = _namespace(first, {"cpu_ms_per_minute": 50})
    _, other = _namespace(first, {"cpu_ms_per_minute": 50})
    busy = {"code": "n = 0\nfor i in range(3_000_000): n += i"}
    answers = []
    # A minute may turn between two runs: three are enough for a refusal within one.
    for service in (first, second, first):
        with _client(service, key) as client:
            answers.append(client.post("/v1/execute", json=busy))
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert answers[0].json()["usage"]["cpu_ms"] > 50
    _assert_quota_429(refused[0], "cpu_ms_per_minute", 50)
    assert int(refused[0].headers["retry-after"]) <= 60
    with _client(second, other) as client:
        assert client.post("/v1/execute", json={"code": "1"}).json()["status"] == "ok"


def test_sessions(replicas: tuple[Service, Service]) -> None:
    first, second = replicas
    _, key = _namespace(first, {"sessions": 1})
    with _client(first, key) as client:
        made = client.post("/v1/sessions", json={})
        assert made.status_code == 201, made.text
    with _client(second, key) as client:
        _assert_quota_429(client.post("/v1/sessions", json={}), "sessions", 1)
    with _client(first, key) as client:
        assert client.delete(f"/v1/sessions/{made.json()['id']}").status_code == 204
    with _client(second, key) as client:
        again = client.post("/v1/sessions", json={})
        assert again.status_code == 201, again.text
        client.delete(f"/v1/sessions/{again.json()['id']}")


def test_quotas_are_set_by_the_admin_only(replicas: tuple[Service, Service]) -> None:
    first, _ = replicas
    name, key = _namespace(first, {})
    with _client(first, key) as client:
        refused = client.patch(f"/v1/namespaces/{name}", json={"quotas": {}})
        assert refused.status_code == 403
    with first.client() as admin:
        key_id = admin.get(f"/v1/namespaces/{name}/keys").json()["keys"][0]["id"]
        patched = admin.patch(f"/v1/namespaces/{name}", json={"quotas": {"sessions": 3}})
        assert patched.json()["quotas"]["sessions"] == 3
        changed = admin.patch(
            f"/v1/namespaces/{name}/keys/{key_id}", json={"quotas": {"concurrent_runs": 2}}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["quotas"]["concurrent_runs"] == 2
        bad = admin.patch(f"/v1/namespaces/{name}", json={"quotas": {"sessions": 0}})
        assert bad.status_code == 422
        assert "quotas.sessions" in [d["field"] for d in bad.json()["error"]["details"]]


def test_dispatch_counts_against_the_workers_namespace(
    replicas: tuple[Service, Service],
) -> None:
    first, second = replicas
    namespace, key = _namespace(first, {"requests_per_second": 1})
    with _client(first, key) as client:
        uploaded = client.put(
            f"/v1/namespaces/{namespace}/workers/site",
            json={
                "modules": {
                    "main.py": "from workers import Response\n"
                    "def on_fetch(request, env):\n    return Response('hi')\n"
                }
            },
        )
        assert uploaded.status_code == 200, uploaded.text
    # Anonymous callers of the worker: counted against the namespace that owns it.
    answers = [
        httpx.get(f"{service.url}/dispatch/{namespace}/site/", timeout=60)
        for service in (first, second, first)
    ]
    assert any(a.status_code == 200 and a.text == "hi" for a in answers), answers
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    _assert_quota_429(refused[0], "requests_per_second", 1)
