"""A platform's whole day over HTTP, on SQLite and on PostgreSQL, across a restart.

namespace → key → upload → dispatch (path, hostname, custom hostname) → new
version → failed build → rollback → a second worker → tag filter → restart →
bulk delete → namespace delete; and a secret that must never come back out.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, DISPATCH_DOMAIN, Service

SITE = """
from workers import Response

def on_fetch(request, env):
    return Response(f"{VERSION} {request.path} {env.PLAN}")
"""

# Tries every way a worker might find another worker's secret.
SNOOP = """
import os
from workers import Response

def on_fetch(request, env):
    found = {"env_names": sorted(vars(env)), "os_environ": dict(os.environ)}
    try:
        found["files"] = sorted(os.listdir("/work"))
    except OSError as exc:
        found["files"] = str(exc)
    return Response.json(found)
"""


def _start(data_dir: Path, database_url: str) -> Service:
    return Service(
        data_dir,
        pool_size="2",
        pyodide_enabled="false",
        build_on_start="false",
        database_url=database_url,
        dispatch_domain=DISPATCH_DOMAIN,
        log_level="debug",
    )


class Seen:
    """Every response body the test received, to search for the secret at the end."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")


@pytest.fixture
def seen() -> Seen:
    return Seen()


class Clients:
    """HTTP clients that record every response in ``seen``; all closed at teardown."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.opened: list[httpx.Client] = []

    def __call__(self, service: Service, key: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(
            base_url=service.url, headers=headers, timeout=60, event_hooks={"response": [self.seen]}
        )
        self.opened.append(client)
        return client


@pytest.fixture
def clients(seen: Seen) -> Iterator[Clients]:
    made = Clients(seen)
    yield made
    for client in made.opened:
        client.close()


def test_the_whole_lifecycle_survives_a_restart(
    tmp_path: Path, database_url: str, seen: Seen, clients: Clients
) -> None:
    secret = "sk-live-" + secrets.token_hex(16)
    service = _start(tmp_path, database_url)
    try:
        admin = clients(service, ADMIN_KEY)
        public = clients(service)

        # The admin grants the customer's domain: its key may then route it (issue 11, #4).
        made = admin.post(
            "/v1/namespaces",
            json={"name": "shop", "custom_hostname_suffixes": ["shop.example.test"]},
        )
        assert made.status_code == 201
        key = admin.post("/v1/namespaces/shop/keys", json={"label": "deploys"}).json()["key"]
        owner = clients(service, key)

        def upload(name: str, source: str, tags: list[str]) -> httpx.Response:
            return owner.put(
                f"/v1/namespaces/shop/workers/{name}",
                json={
                    "modules": {"main.py": source},
                    "tags": tags,
                    "vars": {"PLAN": "free"},
                    "secrets": {"STRIPE_KEY": secret},
                },
            )

        def site(via: str = "path") -> httpx.Response:
            if via == "path":
                return public.get("/dispatch/shop/site/cart")
            host = f"site.shop.{DISPATCH_DOMAIN}" if via == "hostname" else "shop.example.test"
            return public.get("/cart", headers={"host": host})

        first = upload("site", 'VERSION = "v1"\n' + SITE, ["customer-1", "free"])
        assert first.status_code == 200, first.text
        v1 = first.json()["version"]["id"]
        assert site().text == "v1 /cart free"
        assert site("hostname").text == "v1 /cart free"
        hostname = "/v1/namespaces/shop/hostnames/shop.example.test"
        routed = owner.put(hostname, json={"worker": "site"})
        assert routed.status_code == 201
        assert site("custom").text == "v1 /cart free"

        assert upload("site", 'VERSION = "v2"\n' + SITE, ["customer-1", "free"]).status_code == 200
        assert site().text == "v2 /cart free"
        broken = upload("site", "def on_fetch(:\n", ["customer-1", "free"])
        assert broken.status_code == 422
        assert broken.json()["error"]["details"][0]["message"].startswith("line 1")
        assert site().text == "v2 /cart free"  # a failed build keeps the old version serving

        rollback = owner.post(f"/v1/namespaces/shop/workers/site/versions/{v1}/deploy")
        assert rollback.status_code == 200
        assert site().text == "v1 /cart free"

        other = owner.put(
            "/v1/namespaces/shop/workers/snoop",
            json={"modules": {"main.py": SNOOP}, "tags": ["customer-2", "paid"]},
        )
        assert other.status_code == 200
        snooped = public.get("/dispatch/shop/snoop/").json()
        assert snooped["env_names"] == []
        assert snooped["files"] == ["__pycache__", "main.py"]  # its own module and bytecode

        def names(filter_: str) -> list[str]:
            listed = owner.get("/v1/namespaces/shop/workers", params={"tags": filter_})
            return [worker["name"] for worker in listed.json()["workers"]]

        assert names("free:yes") == ["site"]
        assert names("customer-2:yes,free:no") == ["snoop"]
        versions = owner.get("/v1/namespaces/shop/workers/site/versions").json()["versions"]
        assert [version["number"] for version in versions] == [1, 2]
    finally:
        service.close()

    # A restart keeps namespaces, keys, workers, versions, hostnames and artifacts.
    service = _start(tmp_path, database_url)
    try:
        public = clients(service)
        owner = clients(service, key)
        assert site().text == "v1 /cart free"
        assert site("hostname").text == "v1 /cart free"
        assert site("custom").text == "v1 /cart free"
        assert owner.get("/v1/namespaces/shop").json()["workers"] == 2

        deleted = owner.delete("/v1/namespaces/shop/workers", params={"tags": "free:yes"})
        assert deleted.json() == {"deleted": ["site"]}
        gone = site()
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "worker_not_found"
        assert public.get("/dispatch/shop/snoop/").status_code == 200

        assert owner.delete("/v1/namespaces/shop").status_code == 409  # snoop is still there
        assert owner.delete("/v1/namespaces/shop", params={"force": "true"}).status_code == 204
        assert public.get("/dispatch/shop/snoop/").status_code == 404
        assert site("hostname").status_code == 404
        assert public.get("/readyz", headers={"host": "shop.example.test"}).status_code == 200
        assert owner.get("/v1/namespaces/shop").status_code == 401  # its key died with it
        log = service.log()
    finally:
        service.close()

    assert len(seen.bodies) > 20
    leaks = [body for body in seen.bodies if secret in body]
    assert leaks == []
    assert secret not in log
    assert "STRIPE_KEY" not in log
