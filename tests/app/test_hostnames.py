"""Hostname routing: {worker}.{namespace}.<dispatch domain> and custom hostnames.

Every request goes to the service on 127.0.0.1 with the hostname in its Host
header; nothing is resolved through DNS.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from app.hostnames import hostname_problem, normalize_host
from tests.conftest import API_HOSTNAME, DISPATCH_DOMAIN, Service

ECHO = """
from workers import Response

def on_fetch(request, env):
    return Response.json({
        "worker": env.NAME,
        "path": request.path,
        "query": request.query,
        "headers": dict(request.headers),
        "metadata": request.metadata,
    })
"""


@pytest.fixture
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def _namespace(admin: httpx.Client, **fields: object) -> str:
    name = "h-" + secrets.token_hex(4)
    response = admin.post("/v1/namespaces", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return name


def _deploy(admin: httpx.Client, namespace: str, worker: str, runtime: str = "wasmtime") -> None:
    response = admin.put(
        f"/v1/namespaces/{namespace}/workers/{worker}",
        json={"modules": {"main.py": ECHO}, "runtime": runtime, "vars": {"NAME": worker}},
    )
    assert response.status_code == 200, response.text


def _key_client(admin: httpx.Client, service: Service, namespace: str) -> httpx.Client:
    key = admin.post(f"/v1/namespaces/{namespace}/keys", json={}).json()["key"]
    return httpx.Client(
        base_url=service.url, headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def _get(service: Service, host: str, path: str = "/", **headers: str) -> httpx.Response:
    return httpx.get(f"{service.url}{path}", headers={"host": host, **headers}, timeout=60)


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("Site.Shop.Workers.Test", "site.shop.workers.test"),
        ("site.shop.workers.test:8443", "site.shop.workers.test"),
        ("shop.example.com.", "shop.example.com"),
        ("[::1]:8000", "::1"),
        ("127.0.0.1:8000", "127.0.0.1"),
    ],
)
def test_normalize_host(header: str, host: str) -> None:
    assert normalize_host(header) == host


@pytest.mark.parametrize(
    ("hostname", "problem"),
    [
        ("shop.example.com", None),
        ("a-b.c.example", None),
        ("Shop.example.com", "lower case"),
        ("shop.example.com.", "trailing dot"),
        ("example", "DNS name"),
        ("-shop.example.com", "DNS name"),
        ("shop..example.com", "DNS name"),
        ("shop_1.example.com", "DNS name"),
        ("10.0.0.1", "IP addresses"),
        ("app.localhost", "localhost"),
        ("x.site.workers.test", "already route"),
        ("workers.test", "already route"),
        ("a" * 64 + ".example.com", "DNS name"),
    ],
)
def test_hostname_rules(hostname: str, problem: str | None) -> None:
    found = hostname_problem(hostname, DISPATCH_DOMAIN)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
def test_worker_hostname_routes_to_the_worker(
    admin: httpx.Client, service: Service, runtime: str
) -> None:
    namespace = _namespace(admin)
    _deploy(admin, namespace, "site", runtime)
    host = f"site.{namespace}.{DISPATCH_DOMAIN}"
    response = _get(service, host.upper() + ":80", "/cart/7?x=1", cookie="sid=abc")
    assert response.status_code == 200, response.text
    assert response.headers["x-sandlot-outcome"] == "ok"
    seen = response.json()
    assert seen["worker"] == "site"
    assert (seen["path"], seen["query"]) == ("/cart/7", "x=1")
    # The worker's own origin: its Host and cookies are the customer's, so they pass.
    assert seen["headers"]["host"] == host.upper() + ":80"
    assert seen["headers"]["cookie"] == "sid=abc"
    assert seen["metadata"] == {}


def test_the_api_is_not_reachable_through_a_worker_hostname(
    admin: httpx.Client, service: Service
) -> None:
    namespace = _namespace(admin)
    _deploy(admin, namespace, "site")
    response = httpx.get(
        f"{service.url}/v1/namespaces",
        headers={"host": f"site.{namespace}.{DISPATCH_DOMAIN}", **admin.headers},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["path"] == "/v1/namespaces"  # the worker answered
    assert "authorization" not in response.json()["headers"]


@pytest.mark.parametrize(
    "host",
    [f"only-one.{DISPATCH_DOMAIN}", f"a.b.c.{DISPATCH_DOMAIN}", f"ghost.nowhere.{DISPATCH_DOMAIN}"],
)
def test_unknown_worker_hostnames_are_404(service: Service, host: str) -> None:
    response = _get(service, host)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "worker_not_found"
    assert "worker" in error["message"]


def test_the_dispatch_domain_itself_serves_the_api(service: Service) -> None:
    assert _get(service, DISPATCH_DOMAIN, "/readyz").status_code == 200


def test_custom_hostname_lifecycle(admin: httpx.Client, service: Service) -> None:
    namespace = _namespace(admin)
    _deploy(admin, namespace, "site")
    _deploy(admin, namespace, "blog")
    hostname = f"shop-{namespace}.example.test"
    path = f"/v1/namespaces/{namespace}/hostnames/{hostname}"

    made = admin.put(path, json={"worker": "site"})
    assert made.status_code == 201, made.text
    assert made.json()["worker"] == "site"
    assert _get(service, hostname, "/a").json()["worker"] == "site"

    moved = admin.put(path, json={"worker": "blog"})
    assert moved.status_code == 200
    seen = _get(service, hostname + ":443", "/b").json()
    assert (seen["worker"], seen["path"]) == ("blog", "/b")

    listed = admin.get(f"/v1/namespaces/{namespace}/hostnames").json()["hostnames"]
    assert [(h["hostname"], h["worker"]) for h in listed] == [(hostname, "blog")]

    assert admin.delete(path).status_code == 204
    assert admin.delete(path).status_code == 404
    # No longer a worker's: the hostname reaches the API again.
    assert _get(service, hostname, "/readyz").status_code == 200


def test_custom_hostname_for_a_missing_worker_is_a_404(
    admin: httpx.Client, service: Service
) -> None:
    namespace = _namespace(admin)
    hostname = f"soon-{namespace}.example.test"
    assert (
        admin.put(
            f"/v1/namespaces/{namespace}/hostnames/{hostname}", json={"worker": "later"}
        ).status_code
        == 201
    )
    response = _get(service, hostname)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "worker_not_found"
    assert "'later'" in response.json()["error"]["message"]


def test_a_hostname_belongs_to_one_namespace(admin: httpx.Client, service: Service) -> None:
    first, second = _namespace(admin), _namespace(admin)
    hostname = f"taken-{first}.example.test"
    assert admin.put(
        f"/v1/namespaces/{first}/hostnames/{hostname}", json={"worker": "site"}
    ).is_success
    clash = admin.put(f"/v1/namespaces/{second}/hostnames/{hostname}", json={"worker": "site"})
    assert clash.status_code == 409
    assert "another namespace" in clash.json()["error"]["message"]
    # The second namespace can't remove it either.
    assert admin.delete(f"/v1/namespaces/{second}/hostnames/{hostname}").status_code == 404

    key = admin.post(f"/v1/namespaces/{second}/keys", json={}).json()["key"]
    with httpx.Client(
        base_url=service.url, headers={"authorization": f"Bearer {key}"}, timeout=30
    ) as scoped:
        assert scoped.get(f"/v1/namespaces/{first}/hostnames").status_code == 403
        assert scoped.delete(f"/v1/namespaces/{first}/hostnames/{hostname}").status_code == 403

    # Deleting the namespace frees its hostnames.
    assert admin.delete(f"/v1/namespaces/{first}").status_code == 204
    assert (
        admin.put(
            f"/v1/namespaces/{second}/hostnames/{hostname}", json={"worker": "site"}
        ).status_code
        == 201
    )


@pytest.mark.parametrize(
    "hostname",
    ["Shop.example.com", "localhost", "127.0.0.1", "nodots", f"x.y.{DISPATCH_DOMAIN}"],
)
def test_invalid_hostnames_are_422(admin: httpx.Client, hostname: str) -> None:
    namespace = _namespace(admin)
    response = admin.put(f"/v1/namespaces/{namespace}/hostnames/{hostname}", json={"worker": "w"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "hostname"


def test_hostname_needs_a_worker_name(admin: httpx.Client) -> None:
    namespace = _namespace(admin)
    response = admin.put(
        f"/v1/namespaces/{namespace}/hostnames/a.example.test", json={"worker": "No Such"}
    )
    assert response.status_code == 422
    assert "worker" in response.text


def test_untrusted_workers_learn_nothing_of_the_platform(
    admin: httpx.Client, service: Service
) -> None:
    namespace = _namespace(admin)
    _deploy(admin, namespace, "site")
    response = httpx.get(
        f"{service.url}/dispatch/{namespace}/site/",
        headers={
            "cookie": "platform_session=secret",
            "x-forwarded-for": "203.0.113.9",
            "forwarded": "for=203.0.113.9",
            "x-real-ip": "203.0.113.9",
            "x-custom": "kept",
        },
        timeout=60,
    )
    seen = response.json()
    assert seen["metadata"] == {}
    assert seen["headers"]["x-custom"] == "kept"
    for header in ("cookie", "host", "x-forwarded-for", "forwarded", "x-real-ip"):
        assert header not in seen["headers"], header


def test_trusted_namespaces_get_request_metadata(admin: httpx.Client, service: Service) -> None:
    namespace = _namespace(admin, mode="trusted")
    _deploy(admin, namespace, "site")
    by_path = httpx.get(
        f"{service.url}/dispatch/{namespace}/site/x",
        headers={"x-forwarded-for": "203.0.113.9"},
        timeout=60,
    ).json()
    assert by_path["metadata"] == {
        "client_address": "127.0.0.1",
        "original_host": f"127.0.0.1:{service.port}",
        "routed_by": "path",
    }
    assert by_path["headers"]["x-forwarded-for"] == "203.0.113.9"

    host = f"site.{namespace}.{DISPATCH_DOMAIN}"
    by_name = _get(service, host).json()
    assert by_name["metadata"] == {
        "client_address": "127.0.0.1",
        "original_host": host,
        "routed_by": "hostname",
    }

    custom = f"t-{namespace}.example.test"
    admin.put(f"/v1/namespaces/{namespace}/hostnames/{custom}", json={"worker": "site"})
    assert _get(service, custom).json()["metadata"]["routed_by"] == "custom_hostname"


def test_a_namespace_key_claims_only_hostnames_under_its_granted_suffixes(
    admin: httpx.Client, service: Service
) -> None:
    """Issue 11, #4: a namespace's key claimed any hostname, e.g. another customer's domain."""
    own = f"{secrets.token_hex(4)}.example.test"
    namespace = _namespace(admin, custom_hostname_suffixes=[own])
    assert admin.get(f"/v1/namespaces/{namespace}").json()["custom_hostname_suffixes"] == [own]
    bare = _namespace(admin)
    with (
        _key_client(admin, service, namespace) as scoped,
        _key_client(admin, service, bare) as unscoped,
    ):
        for hostname in (own, f"shop.{own}"):
            made = scoped.put(
                f"/v1/namespaces/{namespace}/hostnames/{hostname}", json={"worker": "w"}
            )
            assert made.status_code == 201, made.text
        # Another customer's domain, and a name that merely ends like the suffix.
        for hostname in (f"shop-{secrets.token_hex(3)}.customer.test", f"evil{own}"):
            refused = scoped.put(
                f"/v1/namespaces/{namespace}/hostnames/{hostname}", json={"worker": "w"}
            )
            assert refused.status_code == 403, refused.text
            error = refused.json()["error"]
            assert own in error["message"] and error["details"][0]["field"] == "hostname"
            assert _get(service, hostname, "/readyz").status_code == 200  # still the API's
        # A namespace granted nothing can claim nothing, and is told who grants.
        refused = unscoped.put(
            f"/v1/namespaces/{bare}/hostnames/shop.{secrets.token_hex(3)}.test",
            json={"worker": "w"},
        )
        assert refused.status_code == 403
        assert "custom_hostname_suffixes" in refused.json()["error"]["message"]
        # Nor move one another namespace holds.
        moved = unscoped.put(
            f"/v1/namespaces/{bare}/hostnames/{own}?reassign=true", json={"worker": "w"}
        )
        assert moved.status_code == 403


@pytest.mark.parametrize("hostname", [API_HOSTNAME, f"x.{API_HOSTNAME}"])
def test_no_one_claims_the_api_hostnames(
    admin: httpx.Client, service: Service, hostname: str
) -> None:
    """Issue 11, #4: a namespace claimed the API's own hostname, taking over its origin."""
    parent = API_HOSTNAME.split(".", 1)[1]
    namespace = _namespace(admin, custom_hostname_suffixes=[parent])
    with _key_client(admin, service, namespace) as scoped:
        for client in (scoped, admin):
            refused = client.put(
                f"/v1/namespaces/{namespace}/hostnames/{hostname}", json={"worker": "w"}
            )
            assert refused.status_code == 422, refused.text
            assert "SANDLOT_API_HOSTNAMES" in refused.json()["error"]["message"]
    assert _get(service, hostname, "/readyz").status_code == 200


@pytest.mark.parametrize(
    "suffix", [API_HOSTNAME, f"a.{API_HOSTNAME}", DISPATCH_DOMAIN, "localhost", "Upper.test"]
)
def test_suffixes_that_cover_the_api_are_refused(admin: httpx.Client, suffix: str) -> None:
    response = admin.post(
        "/v1/namespaces",
        json={"name": "h-" + secrets.token_hex(4), "custom_hostname_suffixes": [suffix]},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "custom_hostname_suffixes[0]"


def test_the_admin_claims_any_hostname_and_reassigns_it(
    admin: httpx.Client, service: Service
) -> None:
    first, second = _namespace(admin), _namespace(admin)
    _deploy(admin, first, "site")
    _deploy(admin, second, "site")
    hostname = f"moving-{first}.example.test"
    assert (
        admin.put(
            f"/v1/namespaces/{first}/hostnames/{hostname}", json={"worker": "site"}
        ).status_code
        == 201
    )
    assert _get(service, hostname).json()["worker"] == "site"
    clash = admin.put(f"/v1/namespaces/{second}/hostnames/{hostname}", json={"worker": "site"})
    assert clash.status_code == 409 and "reassign=true" in clash.json()["error"]["message"]
    moved = admin.put(
        f"/v1/namespaces/{second}/hostnames/{hostname}?reassign=true", json={"worker": "site"}
    )
    assert moved.status_code == 200 and moved.json()["namespace"] == second
    assert admin.get(f"/v1/namespaces/{first}/hostnames").json()["hostnames"] == []
    assert [
        h["hostname"] for h in admin.get(f"/v1/namespaces/{second}/hostnames").json()["hostnames"]
    ] == [hostname]
