"""/v1/namespaces over HTTP: admin key required, names validated, data kept across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Service


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def test_lifecycle(admin: httpx.Client) -> None:
    created = admin.post(
        "/v1/namespaces",
        json={"name": "acme-1", "limits": {"cpu_ms": 500}, "allowed_hosts": ["api.acme.test"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["mode"], body["workers"]) == ("acme-1", "untrusted", 0)
    assert body["limits"] == {"cpu_ms": 500}
    assert admin.get("/v1/namespaces/acme-1").json()["allowed_hosts"] == ["api.acme.test"]
    names = [n["name"] for n in admin.get("/v1/namespaces").json()["namespaces"]]
    assert "acme-1" in names
    assert admin.delete("/v1/namespaces/acme-1").status_code == 204
    missing = admin.get("/v1/namespaces/acme-1")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "namespace 'acme-1' was not found"


def test_duplicate_name_is_a_409(admin: httpx.Client) -> None:
    assert admin.post("/v1/namespaces", json={"name": "twice"}).status_code == 201
    again = admin.post("/v1/namespaces", json={"name": "twice"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


def test_listing_pages_with_a_cursor(admin: httpx.Client) -> None:
    for name in ("page-a", "page-b", "page-c"):
        admin.post("/v1/namespaces", json={"name": name})
    first = admin.get("/v1/namespaces", params={"limit": 2, "cursor": "page"}).json()
    assert [n["name"] for n in first["namespaces"]] == ["page-a", "page-b"]
    rest = admin.get("/v1/namespaces", params={"limit": 2, "cursor": first["next_cursor"]})
    assert rest.json()["namespaces"][0]["name"] == "page-c"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Upper"}, "name"),
        ({"name": "-dash"}, "name"),
        ({"name": "dash-"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"name": "ok", "mode": "open"}, "mode"),
        ({"name": "ok", "limits": {"cpu_ms": 10**9}}, "limits.cpu_ms"),
        ({"name": "ok", "allowed_hosts": ["http://x"]}, "allowed_hosts"),
    ],
    ids=["uppercase", "leading-dash", "trailing-dash", "too-long", "mode", "limit", "hosts"],
)
def test_bad_namespaces_name_the_field(
    admin: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = admin.post("/v1/namespaces", json=body)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {ADMIN_KEY}"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_control_plane_needs_the_admin_key(service: Service, headers: dict[str, str]) -> None:
    response = httpx.get(f"{service.url}/v1/namespaces", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_namespaces_survive_a_restart(tmp_path: Path) -> None:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    first = Service(tmp_path, pool_size="1", pyodide_enabled="false", build_on_start="false")
    try:
        assert (
            httpx.post(
                f"{first.url}/v1/namespaces", json={"name": "durable"}, headers=headers
            ).status_code
            == 201
        )
    finally:
        first.close()
    second = Service(tmp_path, pool_size="1", pyodide_enabled="false", build_on_start="false")
    try:
        got = httpx.get(f"{second.url}/v1/namespaces/durable", headers=headers)
        assert got.status_code == 200
    finally:
        second.close()


def test_scoped_keys_run_code_and_manage_only_their_namespace(
    admin: httpx.Client, service: Service
) -> None:
    for name in ("key-home", "key-other"):
        assert admin.post("/v1/namespaces", json={"name": name}).status_code == 201
    issued = admin.post("/v1/namespaces/key-home/keys", json={"label": "ci"})
    assert issued.status_code == 201, issued.text
    key = issued.json()["key"]
    assert key.startswith("sk_")
    scoped = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=service.url, timeout=60, headers=scoped) as client:
        assert client.get("/v1/namespaces/key-home").status_code == 200
        assert client.post("/v1/execute", json={"code": "1 + 1"}).json()["result"]["json"] == 2
        other = client.get("/v1/namespaces/key-other")
        assert other.status_code == 403
        assert "key-home" in other.json()["error"]["message"]
        assert client.post("/v1/namespaces", json={"name": "mine"}).status_code == 403
        assert client.post("/v1/namespaces/key-home/keys", json={}).status_code == 403
        listed = client.get("/v1/namespaces/key-home/keys").json()["keys"]
        assert [k["label"] for k in listed] == ["ci"]
        assert key not in str(listed)
        assert client.delete(f"/v1/namespaces/key-home/keys/{listed[0]['id']}").status_code == 204
        assert client.get("/v1/namespaces/key-home").status_code == 401


def test_keys_die_with_their_namespace(admin: httpx.Client, service: Service) -> None:
    admin.post("/v1/namespaces", json={"name": "short-lived"})
    key = admin.post("/v1/namespaces/short-lived/keys", json={}).json()["key"]
    assert admin.delete("/v1/namespaces/short-lived").status_code == 204
    response = httpx.post(
        f"{service.url}/v1/execute", json={"code": "1"}, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 401


def test_execute_needs_a_key(service: Service) -> None:
    response = httpx.post(f"{service.url}/v1/execute", json={"code": "1"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_keys_are_stored_as_digests_only(admin: httpx.Client, service: Service) -> None:
    admin.post("/v1/namespaces", json={"name": "digests"})
    key = admin.post("/v1/namespaces/digests/keys", json={}).json()["key"]
    database = Path(service.data_dir) / "sandlot.db"
    assert key.encode() not in database.read_bytes()
    assert key not in service.log()
