"""Issue 11, findings 5 and 6 over HTTP: private networks are the operator's, and a
namespace's limits and allowed_hosts are ceilings for its keys and its workers.

The service under test opens 127.0.0.0/8 (SANDLOT_EGRESS_PRIVATE_NETWORKS, tests/conftest.py)
and nothing else; every refused case points at a loopback canary that must see no request.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.app.test_mcp_server import session as mcp_session
from tests.conftest import Service
from tests.loopback import LoopbackServer

FETCH = "from sandlot import fetch\nfetch('{url}/hello').text"

WORKER = """
from sandlot import fetch
from workers import Response

def on_fetch(request, env):
    return Response(fetch(env.TARGET + "/hello").text)
"""


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


class Tenant:
    """A namespace made by the admin, and a client holding one of its keys."""

    def __init__(self, admin: httpx.Client, service: Service, **policy: Any) -> None:
        self.name = "pol-" + secrets.token_hex(4)
        made = admin.post("/v1/namespaces", json={"name": self.name, **policy})
        assert made.status_code == 201, made.text
        key = admin.post(f"/v1/namespaces/{self.name}/keys", json={}).json()["key"]
        self.client = httpx.Client(
            base_url=service.url, timeout=60, headers={"authorization": f"Bearer {key}"}
        )
        self.key = key


@pytest.fixture
def tenant_of(admin: httpx.Client, service: Service) -> Iterator[Any]:
    made: list[Tenant] = []

    def make(**policy: Any) -> Tenant:
        made.append(Tenant(admin, service, **policy))
        return made[-1]

    yield make
    for tenant in made:
        tenant.client.close()


def refusal(response: httpx.Response, field: str = "allowed_hosts") -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [detail["field"] for detail in error["details"]]
    message: str = error["message"]
    return message


# --- Finding 5: private, loopback and metadata literals ------------------------------------

PRIVATE = [
    pytest.param("169.254.169.254", "cloud metadata", id="metadata"),
    pytest.param("10.0.0.1:8080", "private", id="rfc1918"),
    pytest.param("[::1]:8000", "loopback", id="loopback-v6"),
]


@pytest.mark.parametrize(("entry", "category"), PRIVATE)
def test_namespace_key_cannot_open_private_literals_on_execute(
    tenant_of: Any, entry: str, category: str
) -> None:
    # Outside the operator's networks, so not even the admin could list it on the namespace.
    tenant = tenant_of()
    response = tenant.client.post("/v1/execute", json={"code": "1", "allowed_hosts": [entry]})
    message = refusal(response)
    assert f"allowed_hosts entry '{entry}' is a {category} address" in message


def test_namespace_key_cannot_reach_the_services_own_api(
    tenant_of: Any, canary: LoopbackServer
) -> None:
    # The canary stands in for the service's API on loopback: nothing is sent to it.
    tenant = tenant_of(allowed_hosts=[canary.host])
    body = {"code": FETCH.format(url=canary.url), "allowed_hosts": [canary.host]}
    message = refusal(tenant.client.post("/v1/execute", json=body))
    assert "is a loopback address" in message and "private_egress" in message
    assert canary.hit_count == 0


def test_namespace_key_cannot_upload_a_worker_with_private_literals(
    tenant_of: Any, canary: LoopbackServer
) -> None:
    tenant = tenant_of(allowed_hosts=[canary.host])
    for entry in (canary.host, "169.254.169.254"):
        upload = {"modules": {"main.py": WORKER}, "allowed_hosts": [entry]}
        response = tenant.client.put(f"/v1/namespaces/{tenant.name}/workers/w", json=upload)
        assert f"allowed_hosts entry '{entry}'" in refusal(response)
    assert tenant.client.get(f"/v1/namespaces/{tenant.name}").json()["workers"] == 0
    assert canary.hit_count == 0


def test_admin_may_open_only_the_operators_networks(
    admin: httpx.Client, loopback: LoopbackServer
) -> None:
    inside = admin.post(
        "/v1/execute",
        json={"code": FETCH.format(url=loopback.url), "allowed_hosts": [loopback.host]},
    )
    assert inside.json()["result"]["json"] == "hello from loopback", inside.text
    outside = admin.post("/v1/execute", json={"code": "1", "allowed_hosts": ["169.254.169.254"]})
    message = refusal(outside)
    assert "only the operator can open private networks" in message
    assert "SANDLOT_EGRESS_PRIVATE_NETWORKS, now: 127.0.0.0/8" in message


def test_private_egress_grant_opens_the_operators_networks_for_a_namespace(
    tenant_of: Any, loopback: LoopbackServer
) -> None:
    tenant = tenant_of(allowed_hosts=[loopback.host], private_egress=True)
    body = {"code": FETCH.format(url=loopback.url), "allowed_hosts": [loopback.host]}
    response = tenant.client.post("/v1/execute", json=body)
    assert response.json()["result"]["json"] == "hello from loopback", response.text
    # The grant never reaches past the operator's networks.
    metadata = tenant.client.post(
        "/v1/execute", json={"code": "1", "allowed_hosts": ["169.254.169.254"]}
    )
    assert "only the operator can open private networks" in refusal(metadata)


def test_anonymous_dispatch_follows_the_namespaces_current_grant(
    admin: httpx.Client,
    service: Service,
    tenant_of: Any,
    loopback: LoopbackServer,
) -> None:
    tenant = tenant_of(allowed_hosts=[loopback.host], private_egress=True)
    upload = {
        "modules": {"main.py": WORKER},
        "allowed_hosts": [loopback.host],
        "vars": {"TARGET": loopback.url},
    }
    put = tenant.client.put(f"/v1/namespaces/{tenant.name}/workers/w", json=upload)
    assert put.status_code == 200, put.text
    url = f"{service.url}/dispatch/{tenant.name}/w/"
    assert httpx.get(url, timeout=60).text == "hello from loopback"
    assert loopback.hit_count == 1
    revoked = admin.patch(f"/v1/namespaces/{tenant.name}", json={"private_egress": False})
    assert revoked.status_code == 200, revoked.text
    anonymous = httpx.get(url, timeout=60)
    assert anonymous.status_code == 500
    assert anonymous.headers["x-sandlot-outcome"] == "error"
    assert loopback.hit_count == 1  # nothing sent once the grant is gone


# --- Finding 6: namespace limits and allowlists are ceilings -------------------------------


def test_namespace_key_cannot_raise_its_cpu_limit(tenant_of: Any) -> None:
    tenant = tenant_of(limits={"cpu_ms": 1000})
    response = tenant.client.post("/v1/execute", json={"code": "1", "limits": {"cpu_ms": 60_000}})
    message = refusal(response, "limits.cpu_ms")
    assert f"namespace '{tenant.name}' allows at most 1000" in message
    lower = tenant.client.post("/v1/execute", json={"code": "1", "limits": {"cpu_ms": 500}})
    assert lower.json()["status"] == "ok", lower.text


def test_a_keys_next_request_runs_within_its_namespaces_new_limits(
    admin: httpx.Client, tenant_of: Any
) -> None:
    # The key and its namespace's policy are read once and kept (app/auth.py): a change
    # made by the admin must reach the key's very next request, never a later one.
    tenant = tenant_of(limits={"cpu_ms": 2000})
    body = {"code": "1", "limits": {"cpu_ms": 1500}}
    for _ in range(3):
        assert tenant.client.post("/v1/execute", json=body).json()["status"] == "ok"
    narrowed = admin.patch(f"/v1/namespaces/{tenant.name}", json={"limits": {"cpu_ms": 1000}})
    assert narrowed.status_code == 200, narrowed.text
    refused = tenant.client.post("/v1/execute", json=body)
    assert "allows at most 1000" in refusal(refused, "limits.cpu_ms")
    widened = admin.patch(f"/v1/namespaces/{tenant.name}", json={"limits": {"cpu_ms": 2000}})
    assert widened.status_code == 200, widened.text
    assert tenant.client.post("/v1/execute", json=body).json()["status"] == "ok"


def test_namespace_without_limits_gets_the_server_defaults_as_ceilings(tenant_of: Any) -> None:
    tenant = tenant_of()
    response = tenant.client.post("/v1/execute", json={"code": "1", "limits": {"cpu_ms": 60_000}})
    assert "allows at most 5000" in refusal(response, "limits.cpu_ms")


def test_namespace_defaults_apply_to_its_keys_runs(tenant_of: Any) -> None:
    tenant = tenant_of(limits={"cpu_ms": 100})
    spun = tenant.client.post("/v1/execute", json={"code": "while True: pass"})
    assert spun.json()["status"] == "cpu_limit", spun.text
    assert spun.json()["usage"]["cpu_ms"] < 1000


def test_namespace_allowlist_bounds_its_keys_allowlists(
    tenant_of: Any, canary: LoopbackServer
) -> None:
    tenant = tenant_of(allowed_hosts=["*.acme.test"])
    ok = tenant.client.post("/v1/execute", json={"code": "1", "allowed_hosts": ["api.acme.test"]})
    assert ok.status_code == 200, ok.text
    wider = tenant.client.post("/v1/execute", json={"code": "1", "allowed_hosts": ["evil.test"]})
    assert "outside the allowed_hosts of namespace" in refusal(wider)
    closed = tenant_of()  # empty allowlist: no egress
    response = closed.client.post(
        "/v1/execute", json={"code": "1", "allowed_hosts": ["api.acme.test"]}
    )
    assert "allows no egress" in refusal(response)


def test_worker_upload_is_bounded_by_its_namespace(tenant_of: Any, admin: httpx.Client) -> None:
    tenant = tenant_of(limits={"cpu_ms": 1000}, allowed_hosts=["api.acme.test"])
    at = f"/v1/namespaces/{tenant.name}/workers/w"
    too_much = {"modules": {"main.py": WORKER}, "limits": {"cpu_ms": 60_000}}
    refusal(tenant.client.put(at, json=too_much), "limits.cpu_ms")
    # The admin too: a worker always runs as its namespace; widen the namespace first.
    refusal(admin.put(at, json=too_much), "limits.cpu_ms")
    wider = {"modules": {"main.py": WORKER}, "allowed_hosts": ["api.acme.test:8443"]}
    refusal(tenant.client.put(at, json=wider))
    fits = {"modules": {"main.py": WORKER}, "limits": {"cpu_ms": 900}}
    assert tenant.client.put(at, json=fits).status_code == 200


def test_per_call_limits_may_not_exceed_the_callers_ceiling(
    tenant_of: Any, service: Service
) -> None:
    tenant = tenant_of(limits={"cpu_ms": 1000}, dispatch_public=False)
    code = "from workers import Response\ndef on_fetch(request, env):\n    return Response('hi')\n"
    put = tenant.client.put(
        f"/v1/namespaces/{tenant.name}/workers/w", json={"modules": {"main.py": code}}
    )
    assert put.status_code == 200, put.text
    url = f"/dispatch/{tenant.name}/w/"
    raised = tenant.client.get(url, headers={"x-sandlot-limits": json.dumps({"cpu_ms": 60_000})})
    message = refusal(raised, "X-Sandlot-Limits.cpu_ms")
    assert "allows at most 1000" in message
    lowered = tenant.client.get(url, headers={"x-sandlot-limits": json.dumps({"cpu_ms": 500})})
    assert lowered.text == "hi"
    tool = tenant.client.post(
        "/v1/tools/invoke_worker",
        json={"namespace": tenant.name, "worker": "w", "limits": {"cpu_ms": 60_000}},
    ).json()
    assert tool["is_error"] and tool["result"]["status"] == 422
    assert tool["result"]["error"]["details"][0]["field"] == "limits.cpu_ms"


def test_tools_run_within_the_callers_namespace(tenant_of: Any) -> None:
    tenant = tenant_of(limits={"cpu_ms": 1000})
    called = tenant.client.post(
        "/v1/tools/execute_code", json={"code": "1", "limits": {"cpu_ms": 60_000}}
    ).json()
    assert called["is_error"] and called["result"]["status"] == 422
    assert "allows at most 1000" in called["text"]
    metadata = tenant.client.post(
        "/v1/tools/execute_code", json={"code": "1", "allowed_hosts": ["169.254.169.254"]}
    ).json()
    assert metadata["is_error"] and "cloud metadata" in metadata["text"]


def test_mcp_runs_within_the_callers_namespace(tenant_of: Any, service: Service) -> None:
    tenant = tenant_of(limits={"cpu_ms": 1000})

    async def main() -> None:
        async with mcp_session(service, tenant.key) as client:
            over = await client.call_tool(
                "execute_code", {"code": "1", "limits": {"cpu_ms": 60_000}}
            )
            assert over.is_error is True
            [text] = over.content
            assert text.type == "text" and "allows at most 1000" in text.text
            metadata = await client.call_tool(
                "execute_code", {"code": "1", "allowed_hosts": ["169.254.169.254"]}
            )
            assert metadata.is_error is True

    asyncio.run(main())


# --- PATCH and DELETE /v1/namespaces/{ns} ------------------------------------------------


def test_patch_changes_only_the_fields_sent(admin: httpx.Client, tenant_of: Any) -> None:
    tenant = tenant_of(limits={"cpu_ms": 1000}, allowed_hosts=["api.acme.test"])
    at = f"/v1/namespaces/{tenant.name}"
    patched = admin.patch(at, json={"limits": {"cpu_ms": 2000}, "private_egress": True})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["limits"], body["private_egress"]) == ({"cpu_ms": 2000}, True)
    assert (body["allowed_hosts"], body["mode"], body["dispatch_public"]) == (
        ["api.acme.test"],
        "untrusted",
        True,
    )
    patched = admin.patch(at, json={"mode": "trusted", "dispatch_public": False})
    assert (patched.json()["mode"], patched.json()["dispatch_public"]) == ("trusted", False)
    assert admin.get(at).json() == patched.json()
    # The new ceiling applies to the key's next request.
    raised = tenant.client.post("/v1/execute", json={"code": "1", "limits": {"cpu_ms": 1500}})
    assert raised.status_code == 200, raised.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"limits": {"cpu_ms": 10**9}}, "limits.cpu_ms", id="over-server-max"),
        pytest.param({"allowed_hosts": ["http://x"]}, "allowed_hosts", id="bad-host"),
        pytest.param({"allowed_hosts": ["169.254.169.254"]}, "allowed_hosts", id="metadata"),
        pytest.param({"mode": "open"}, "mode", id="bad-mode"),
        pytest.param({"private_egress": None}, "private_egress", id="null"),
        pytest.param({"name": "renamed"}, "name", id="name-is-fixed"),
    ],
)
def test_patch_is_validated_like_create(
    admin: httpx.Client, tenant_of: Any, body: dict[str, Any], field: str
) -> None:
    tenant = tenant_of()
    refusal(admin.patch(f"/v1/namespaces/{tenant.name}", json=body), field)


def test_patch_needs_the_admin_key(admin: httpx.Client, tenant_of: Any) -> None:
    tenant = tenant_of()
    at = f"/v1/namespaces/{tenant.name}"
    response = tenant.client.patch(at, json={"private_egress": True, "limits": {"cpu_ms": 60_000}})
    assert response.status_code == 403
    assert admin.get(at).json()["private_egress"] is False
    assert admin.patch("/v1/namespaces/nowhere-at-all", json={}).status_code == 404


def test_deleting_a_namespace_with_workers_needs_force(admin: httpx.Client, tenant_of: Any) -> None:
    tenant = tenant_of()
    code = "from workers import Response\ndef on_fetch(request, env):\n    return Response('x')\n"
    at = f"/v1/namespaces/{tenant.name}"
    assert admin.put(f"{at}/workers/w", json={"modules": {"main.py": code}}).status_code == 200
    refused = tenant.client.delete(at)
    assert refused.status_code == 409
    assert "?force=true" in refused.json()["error"]["message"]
    assert admin.get(f"{at}/workers/w").status_code == 200
    assert tenant.client.delete(at, params={"force": "true"}).status_code == 204
    assert admin.get(at).status_code == 404
