"""/dispatch: a request runs the worker's on_fetch in a fresh sandbox, on both engines."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Service
from tests.loopback import LoopbackServer

HANDLER = """
import time
from workers import Response

def on_fetch(request, env):
    if request.path == "/sleep":
        time.sleep(1.5)
        return Response("slept")
    if request.path == "/boom":
        raise ValueError("kaput")
    if request.path == "/spin":
        while True:
            pass
    body = request.json() if request.method == "POST" else None
    seen = {"path": request.path, "query": request.query, "method": request.method}
    seen["body"] = body
    seen["greeting"] = env.GREETING
    seen["has_secret"] = env.TOKEN == "s3cret"
    seen["ua"] = request.headers["user-agent"]
    return Response.json(seen, status=201 if body else 200, headers={"x-worker": "yes"})
"""


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(params=["wasmtime", "pyodide"])
def deployed(admin: httpx.Client, request: pytest.FixtureRequest) -> str:
    namespace = "d-" + secrets.token_hex(4)
    assert admin.post("/v1/namespaces", json={"name": namespace}).status_code == 201
    response = admin.put(
        f"/v1/namespaces/{namespace}/workers/site",
        json={
            "modules": {"main.py": HANDLER},
            "runtime": request.param,
            "vars": {"GREETING": "hello"},
            "secrets": {"TOKEN": "s3cret"},
            "limits": {"cpu_ms": 500},
        },
    )
    assert response.status_code == 200, response.text
    return namespace


def test_dispatch_runs_on_fetch(service: Service, deployed: str) -> None:
    response = httpx.post(
        f"{service.url}/dispatch/{deployed}/site/items/1?x=2",
        json={"n": 1},
        headers={"user-agent": "tester"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-worker"] == "yes"
    assert response.headers["x-sandlot-outcome"] == "ok"
    assert response.json() == {
        "path": "/items/1",
        "query": "x=2",
        "method": "POST",
        "body": {"n": 1},
        "greeting": "hello",
        "has_secret": True,
        "ua": "tester",
    }


def test_worker_exception_is_a_500_with_the_outcome(service: Service, deployed: str) -> None:
    response = httpx.get(
        f"{service.url}/dispatch/{deployed}/site/boom",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=60,
    )
    assert response.status_code == 500
    assert response.headers["x-sandlot-outcome"] == "error"
    assert response.json()["error"]["message"] == "ValueError: kaput"
    # Anonymous callers get the outcome and the run id, not the worker's message.
    anonymous = httpx.get(f"{service.url}/dispatch/{deployed}/site/boom", timeout=60)
    assert anonymous.status_code == 500
    assert "kaput" not in anonymous.text


def test_worker_over_its_limit_is_a_503(service: Service, deployed: str) -> None:
    response = httpx.get(f"{service.url}/dispatch/{deployed}/site/spin", timeout=60)
    assert response.status_code == 503
    assert response.headers["x-sandlot-outcome"] == "cpu_limit"


def test_per_call_limits_lower_the_workers(service: Service, deployed: str) -> None:
    url = f"{service.url}/dispatch/{deployed}/site/sleep"
    assert httpx.get(url, timeout=60).text == "slept"
    lowered = {
        "x-sandlot-limits": json.dumps({"wall_ms": 300}),
        "authorization": f"Bearer {ADMIN_KEY}",
    }
    response = httpx.get(url, headers=lowered, timeout=60)
    assert response.headers["x-sandlot-outcome"] == "wall_limit"
    # Per-call limits can only lower: asking for more than the worker has changes nothing.
    raised = {**lowered, "x-sandlot-limits": json.dumps({"cpu_ms": 60_000})}
    spin = httpx.get(f"{service.url}/dispatch/{deployed}/site/spin", headers=raised, timeout=60)
    assert spin.headers["x-sandlot-outcome"] == "cpu_limit"


def test_per_call_limits_need_a_key(service: Service, deployed: str) -> None:
    # Without a key the header is not even read: anonymous callers can't change limits.
    headers = {"x-sandlot-limits": json.dumps({"wall_ms": 300})}
    response = httpx.get(
        f"{service.url}/dispatch/{deployed}/site/sleep", headers=headers, timeout=60
    )
    assert response.text == "slept"


def test_unknown_worker_is_a_404_naming_it(service: Service) -> None:
    response = httpx.get(f"{service.url}/dispatch/nowhere/nothing/", timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["message"] == (
        "worker 'nothing' was not found in namespace 'nowhere'"
    )


def test_private_namespace_needs_its_key(
    admin: httpx.Client, service: Service, loopback: LoopbackServer
) -> None:
    namespace = "p-" + secrets.token_hex(4)
    admin.post("/v1/namespaces", json={"name": namespace, "dispatch_public": False})
    admin.put(f"/v1/namespaces/{namespace}/workers/w", json={"modules": {"main.py": HANDLER}})
    url = f"{service.url}/dispatch/{namespace}/w/"
    assert httpx.get(url, timeout=30).status_code == 401
    key = admin.post(f"/v1/namespaces/{namespace}/keys", json={}).json()["key"]
    ok = httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=60)
    assert ok.status_code == 500  # no GREETING var: the handler raises, but it ran
    assert ok.headers["x-sandlot-outcome"] == "error"


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
def test_async_on_fetch(admin: httpx.Client, service: Service, runtime: str) -> None:
    namespace = "a-" + secrets.token_hex(4)
    admin.post("/v1/namespaces", json={"name": namespace})
    code = (
        "import asyncio\nfrom workers import Response\n\n"
        "async def on_fetch(request, env):\n"
        "    await asyncio.sleep(0.01)\n"
        "    return Response(request.headers['X-Name'] + ' ' + request.text())\n"
    )
    put = admin.put(
        f"/v1/namespaces/{namespace}/workers/w",
        json={"modules": {"main.py": code}, "runtime": runtime},
    )
    assert put.status_code == 200, put.text
    response = httpx.post(
        f"{service.url}/dispatch/{namespace}/w/",
        content="body",
        headers={"x-name": "async"},
        timeout=60,
    )
    assert (response.status_code, response.text) == (200, "async body")
