"""The client's control-plane calls against the live service: namespaces, keys, versions and
rollback, tags, secrets, hostnames; every result a dataclass."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator

import httpx
import pytest

from sandlot_client import (
    ApiKey,
    AsyncSandlot,
    Deployment,
    Hostname,
    Namespace,
    Sandlot,
    SandlotError,
    Version,
    Worker,
)
from tests.conftest import ADMIN_KEY, Service

ECHO = """
from workers import Response

def on_fetch(request, env):
    return Response(f"{getattr(env, 'GREETING', '-')} {getattr(env, 'TOKEN', '-')} v1")
"""


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[Sandlot]:
    with Sandlot(service.url, ADMIN_KEY, timeout=60) as sandlot:
        yield sandlot


@pytest.fixture
def namespace(client: Sandlot) -> Iterator[str]:
    name = "cp-" + secrets.token_hex(4)
    client.create_namespace(name)
    yield name
    client.delete_namespace(name, force=True)


def test_results_are_frozen_dataclasses(client: Sandlot, namespace: str) -> None:
    deployed = client.deploy_worker(namespace, "w", ECHO)
    assert isinstance(deployed, Deployment)
    assert isinstance(deployed.worker, Worker) and isinstance(deployed.version, Version)
    assert isinstance(client.get_namespace(namespace), Namespace)
    for value in (deployed, deployed.worker, deployed.version):
        assert dataclasses.is_dataclass(value)
        first = dataclasses.fields(value)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, first, None)
    detail = client.get_worker(namespace, "w")
    assert detail.modules == {"main.py": ECHO}
    assert client.list_workers(namespace)[0].modules is None  # lists carry no modules


def test_namespaces_listed_and_updated(client: Sandlot, namespace: str) -> None:
    assert namespace in [space.name for space in client.list_namespaces()]
    changed = client.update_namespace(namespace, limits={"cpu_ms": 700}, dispatch_public=False)
    assert (changed.limits, changed.dispatch_public) == ({"cpu_ms": 700}, False)
    assert client.get_namespace(namespace).limits == {"cpu_ms": 700}
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        client.update_namespace(namespace, colour="red")
    with pytest.raises(SandlotError) as refused:
        client.update_namespace(namespace, limits={"cpu_ms": 10**9})
    assert refused.value.status_code == 422


def test_keys_listed_and_revoked(client: Sandlot, namespace: str, service: Service) -> None:
    issued = client.create_key(namespace, "agent")
    assert isinstance(issued, ApiKey) and issued.key is not None
    assert issued.key.startswith("sk_")
    listed = client.list_keys(namespace)
    assert [(k.id, k.label, k.key) for k in listed] == [(issued.id, "agent", None)]
    with Sandlot(service.url, issued.key) as scoped:
        assert scoped.get_namespace(namespace).name == namespace
        client.revoke_key(namespace, issued.id)
        with pytest.raises(SandlotError) as revoked:
            scoped.get_namespace(namespace)
        assert revoked.value.status_code == 401
    assert client.list_keys(namespace) == []


def test_versions_rollback_tags_and_bulk_delete(client: Sandlot, namespace: str) -> None:
    client.deploy_worker(namespace, "w", ECHO, tags=["free"])
    client.deploy_worker(namespace, "w", ECHO.replace("v1", "v2"), tags=["free"])
    versions = client.list_versions(namespace, "w")
    assert [(v.number, v.deployed) for v in versions] == [(1, False), (2, True)]
    assert client.invoke_worker(namespace, "w").text == "- - v2"
    rolled = client.deploy_version(namespace, "w", 1)
    assert rolled.version is not None and rolled.version.number == 1
    assert client.invoke_worker(namespace, "w").text == "- - v1"
    client.deploy_version(namespace, "w", versions[1].id)
    assert client.invoke_worker(namespace, "w").text == "- - v2"

    tagged = client.set_tags(namespace, "w", ["paid", "customer-1"])
    assert tagged.tags == ["customer-1", "paid"]
    client.deploy_worker(namespace, "other", ECHO, tags=["free"])
    assert [w.name for w in client.list_workers(namespace, tags="paid:yes")] == ["w"]
    assert client.delete_workers(namespace, tags="free:yes") == ["other"]
    assert [w.name for w in client.list_workers(namespace)] == ["w"]


def test_secrets_and_kept_bindings(client: Sandlot, namespace: str) -> None:
    client.deploy_worker(namespace, "w", ECHO, vars={"GREETING": "hi"}, secrets={"TOKEN": "a"})
    client.deploy_worker(namespace, "w", ECHO)  # no vars or secrets: both kept
    assert client.invoke_worker(namespace, "w").text == "hi a v1"
    assert client.set_secret(namespace, "w", "TOKEN", "b") is False
    assert client.set_secret(namespace, "w", "OTHER", "o") is True
    assert client.list_secrets(namespace, "w") == ["OTHER", "TOKEN"]
    assert client.invoke_worker(namespace, "w").text == "hi b v1"
    client.delete_secret(namespace, "w", "TOKEN")
    assert client.list_secrets(namespace, "w") == ["OTHER"]
    with pytest.raises(SandlotError) as missing:
        client.delete_secret(namespace, "w", "TOKEN")
    assert missing.value.status_code == 404
    cleared = client.deploy_worker(namespace, "w", ECHO, vars={}, secrets={})
    assert (cleared.worker.vars, cleared.worker.secrets) == ({}, [])


def test_hostnames(client: Sandlot, namespace: str, service: Service) -> None:
    client.deploy_worker(namespace, "w", ECHO)
    host = f"{namespace}.shop.test"
    routed = client.set_hostname(namespace, host, "w")
    assert isinstance(routed, Hostname) and (routed.hostname, routed.worker) == (host, "w")
    assert [h.hostname for h in client.list_hostnames(namespace)] == [host]
    assert httpx.get(f"{service.url}/", headers={"host": host}).text == "- - v1"
    client.delete_hostname(namespace, host)
    assert client.list_hostnames(namespace) == []


def test_the_async_client_has_the_same_calls(service: Service) -> None:
    sync_calls = {name for name in vars(Sandlot) if not name.startswith("_")}
    async_calls = {name for name in vars(AsyncSandlot) if not name.startswith("_")}
    assert sync_calls == async_calls

    async def main() -> None:
        async with AsyncSandlot(service.url, ADMIN_KEY) as client:
            name = "ca-" + secrets.token_hex(4)
            await client.create_namespace(name)
            await client.deploy_worker(name, "w", ECHO, secrets={"TOKEN": "t"})
            await client.deploy_worker(name, "w", ECHO.replace("v1", "v2"))
            assert [v.deployed for v in await client.list_versions(name, "w")] == [False, True]
            await client.deploy_version(name, "w", 1)
            assert await client.set_secret(name, "w", "TOKEN", "u") is False
            assert (await client.invoke_worker(name, "w")).text == "- u v1"
            assert await client.list_secrets(name, "w") == ["TOKEN"]
            key = await client.create_key(name)
            assert [k.id for k in await client.list_keys(name)] == [key.id]
            await client.revoke_key(name, key.id)
            space = await client.update_namespace(name, version_retention=5)
            assert space.version_retention == 5
            assert name in [n.name for n in await client.list_namespaces()]
            await client.delete_namespace(name, force=True)

    asyncio.run(main())
