"""Replicas that start together on a new PostgreSQL database migrate it once, in turn."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from app.store import Store, migrate
from tests.deploy.cluster import fresh_database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def test_replicas_starting_at_once_all_reach_the_schema_head(postgres_url: str) -> None:
    stores = [Store(postgres_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def upgrade(store: Store) -> None:
        start.wait()
        try:
            migrate(store)
        except BaseException as exc:  # reported below, whatever it is
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for store in stores:
        store.close()
    assert not errors, errors
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as db:
        versions = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert len(versions) == 1
