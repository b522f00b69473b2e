"""app/bus.py: publish/subscribe between replicas, on the real PostgreSQL and in process.

Messages reach every subscriber (the publisher's own replica too); a store commit
announces what it wrote, and only if it committed; a lost connection comes back and
says so, so callers can drop what missed messages would have invalidated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url

from app.bus import Bus, LocalBus, PostgresBus
from app.store import SecretBox, Store, migrate, namespaces

BOX = SecretBox([Fernet.generate_key().decode()])


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secrets=BOX)
    migrate(store)
    yield store
    store.close()


async def _until(predicate: Any, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time")
        await asyncio.sleep(0.005)


def test_messages_reach_every_replica_including_the_publisher(store: Store) -> None:
    async def scenario() -> None:
        a = Bus.for_database(store.url)
        # One process's bus on SQLite (no other replica can share it): both ends are it.
        b = Bus.for_database(store.url) if isinstance(a, PostgresBus) else a
        await a.start()
        await b.start()
        seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        await a.subscribe("tail.ns", seen["a"].append)
        off = await b.subscribe("tail.ns", seen["b"].append)
        await b.subscribe("other", lambda m: seen["b"].append({"wrong": m}))
        for n in range(3):
            await a.publish("tail.ns", {"n": n})
        if isinstance(a, PostgresBus):
            await _until(lambda: len(seen["a"]) == 3 and len(seen["b"]) == 3)
        assert seen["a"] == seen["b"] == [{"n": 0}, {"n": 1}, {"n": 2}]
        await off()
        await a.publish("tail.ns", {"n": 3})
        if isinstance(a, PostgresBus):
            await _until(lambda: len(seen["a"]) == 4)
            await asyncio.sleep(0.3)
            assert len(seen["b"]) == 3  # b unsubscribed
        await a.close()
        await b.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("channel", "message"),
    [("Bad Channel", {}), ("", {}), ("x" * 49, {}), ("ok", {"big": "x" * 7_900})],
    ids=["spaces", "empty", "too-long", "too-big"],
)
def test_bad_channels_and_messages_are_refused(channel: str, message: dict[str, Any]) -> None:
    async def scenario() -> None:
        bus = LocalBus()
        await bus.start()
        with pytest.raises(ValueError):
            await bus.publish(channel, message)

    asyncio.run(scenario())


def test_a_commit_announces_the_tables_it_wrote_and_a_rollback_nothing(store: Store) -> None:
    async def scenario() -> None:
        bus = Bus.for_database(store.url)
        await bus.start()
        store.on_notify = bus.publish_threadsafe
        seen: list[dict[str, Any]] = []
        await bus.subscribe("cache", seen.append)
        create = {"mode": "untrusted", "limits": {}, "allowed_hosts": [], "dispatch_public": True}
        await asyncio.to_thread(namespaces.create, store, "ns", **create)  # type: ignore[arg-type]
        await _until(lambda: len(seen) == 1)
        assert seen == [{"tables": ["namespaces"]}]
        with pytest.raises(namespaces.NamespaceExists):
            await asyncio.to_thread(namespaces.create, store, "ns", **create)  # type: ignore[arg-type]
        await asyncio.to_thread(namespaces.get, store, "ns")  # a read announces nothing
        await asyncio.sleep(0.5)
        assert seen == [{"tables": ["namespaces"]}]
        await bus.close()

    asyncio.run(scenario())


def test_the_listener_reconnects_and_says_so(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a connection to lose: PostgreSQL only")
    database = make_url(database_url).database

    async def scenario() -> None:
        bus = Bus.for_database(database_url)
        reconnected: list[float] = []
        bus.on_reconnect(lambda: reconnected.append(time.monotonic()))
        seen: list[dict[str, Any]] = []
        await bus.subscribe("cache", seen.append)
        await bus.start()
        admin = "postgresql://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        assert killed
        await _until(lambda: not bus.connected, within_s=10)
        await _until(lambda: len(reconnected) == 1, within_s=10)
        assert bus.connected and bus.reconnects == 1
        # Listening again: a message after the reconnection arrives.
        await bus.publish("cache", {"tables": ["workers"]})
        await _until(lambda: seen == [{"tables": ["workers"]}])
        await bus.close()

    asyncio.run(scenario())
