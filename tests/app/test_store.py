"""app/store: the same data layer on SQLite and PostgreSQL, migrated, surviving restarts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet
from sqlalchemy import inspect, select, text

from app.store import (
    ArtifactCache,
    ArtifactStore,
    SecretBox,
    SecretsUnreadable,
    Store,
    hostnames,
    keys,
    migrate,
    namespaces,
    workers,
)
from app.store.db import MIGRATIONS
from app.store.models import WorkerRow

BOX_KEYS = [Fernet.generate_key().decode()]
BOX = SecretBox(BOX_KEYS)
DEFAULTS = workers.StorageDefaults(version_retention=20, quota_bytes=1024 * 1024)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secrets=BOX)
    migrate(store)
    yield store
    store.close()


@pytest.fixture
def artifacts(store: Store, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))


def test_migrations_create_the_schema_and_are_idempotent(store: Store) -> None:
    migrate(store)
    tables = set(inspect(store.engine).get_table_names())
    assert {"namespaces", "alembic_version"} <= tables


def _make(store: Store, name: str) -> namespaces.Namespace:
    return namespaces.create(
        store,
        name,
        mode="untrusted",
        limits={"cpu_ms": 100},
        allowed_hosts=["api.example.com"],
        dispatch_public=True,
    )


def test_namespace_round_trip(store: Store) -> None:
    made = _make(store, "shop")
    got = namespaces.get(store, "shop")
    assert got == made
    assert (got.limits, got.allowed_hosts, got.workers) == ({"cpu_ms": 100}, ["api.example.com"], 0)


def test_names_are_unique(store: Store) -> None:
    _make(store, "shop")
    with pytest.raises(namespaces.NamespaceExists):
        _make(store, "shop")


def test_pages_follow_the_cursor(store: Store) -> None:
    for name in ["c", "a", "e", "b", "d"]:
        _make(store, name)
    first, cursor = namespaces.page(store, limit=2, after=None)
    second, cursor2 = namespaces.page(store, limit=2, after=cursor)
    last, end = namespaces.page(store, limit=2, after=cursor2)
    assert [n.name for n in first + second + last] == ["a", "b", "c", "d", "e"]
    assert end is None


def test_delete_and_missing(store: Store, artifacts: ArtifactStore) -> None:
    _make(store, "gone")
    namespaces.remove(store, "gone", artifacts=artifacts)
    with pytest.raises(namespaces.NamespaceNotFound):
        namespaces.get(store, "gone")
    with pytest.raises(namespaces.NamespaceNotFound):
        namespaces.remove(store, "gone", artifacts=artifacts)


def test_data_survives_a_new_engine(database_url: str) -> None:
    first = Store(database_url)
    migrate(first)
    _make(first, "kept")
    first.close()
    second = Store(database_url)
    migrate(second)
    assert namespaces.get(second, "kept").name == "kept"
    second.close()


def test_keys_authenticate_to_their_namespace_and_cascade(
    store: Store, artifacts: ArtifactStore
) -> None:
    _make(store, "keyed")
    record, key = keys.issue(store, "keyed", "ci")
    assert keys.authenticate(store, key) == "keyed"
    assert keys.authenticate(store, key + "x") is None
    assert keys.authenticate(store, "not-a-key") is None
    assert [k.id for k in keys.list_keys(store, "keyed")] == [record.id]
    namespaces.remove(store, "keyed", artifacts=artifacts)
    assert keys.authenticate(store, key) is None


def test_revoking_a_key(store: Store) -> None:
    _make(store, "revoke")
    record, key = keys.issue(store, "revoke", "")
    keys.revoke(store, "revoke", record.id)
    assert keys.authenticate(store, key) is None
    with pytest.raises(keys.KeyNotFound):
        keys.revoke(store, "revoke", record.id)


def _spec(tags: list[str]) -> workers.WorkerSpec:
    return workers.WorkerSpec(
        runtime="wasmtime", tags=tags, limits={}, allowed_hosts=[], vars={}, secrets={"K": "v"}
    )


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _save_in(
    store: Store,
    namespace: str,
    name: str,
    content: str,
    tags: list[str] | None = None,
    *,
    artifacts: ArtifactStore,
    defaults: workers.StorageDefaults = DEFAULTS,
) -> workers.Saved:
    return workers.save_version(
        store,
        namespace,
        name,
        _spec(tags or []),
        artifacts=artifacts,
        bundle=content.encode(),
        main_module="main.py",
        requirements=[],
        build_ms=1.0,
        warnings=[],
        defaults=defaults,
    )


def _save(
    store: Store,
    name: str,
    content: str,
    tags: list[str] | None = None,
    *,
    artifacts: ArtifactStore,
) -> workers.Worker:
    return _save_in(store, "ns", name, content, tags, artifacts=artifacts).worker


def test_worker_versions_deploy_and_cascade(store: Store, artifacts: ArtifactStore) -> None:
    _make(store, "ns")
    first = _save(store, "w", "a", artifacts=artifacts)
    second = _save(store, "w", "b", artifacts=artifacts)
    assert second.current is not None and first.current is not None
    assert (first.current.number, second.current.number) == (1, 2)
    assert second.secret_names == ["K"]
    rolled = workers.deploy(store, "ns", "w", first.current.id)
    assert rolled.current is not None and rolled.current.sha256 == _sha("a")
    with pytest.raises(workers.VersionNotFound):
        workers.deploy(store, "ns", "w", "ver_nope")
    assert namespaces.get(store, "ns").workers == 1
    with pytest.raises(namespaces.NamespaceHasWorkers):
        namespaces.remove(store, "ns", artifacts=artifacts)
    assert workers.get(store, "ns", "w").name == "w"  # a refused delete deletes nothing
    namespaces.remove(store, "ns", force=True, artifacts=artifacts)
    _make(store, "ns")
    with pytest.raises(workers.WorkerNotFound):
        workers.get(store, "ns", "w")


def test_worker_tag_filters(store: Store, artifacts: ArtifactStore) -> None:
    _make(store, "ns")
    _save(store, "a", "a", ["paid"], artifacts=artifacts)
    _save(store, "b", "b", ["free"], artifacts=artifacts)
    _save(store, "c", "c", ["free", "eu"], artifacts=artifacts)
    found, _ = workers.page(store, "ns", tags={"free": True, "eu": False}, limit=10, after=None)
    assert [w.name for w in found] == ["b"]
    assert workers.delete_by_tags(store, "ns", {"free": True}, artifacts=artifacts) == ["b", "c"]
    assert [artifacts.exists(_sha(content)) for content in "abc"] == [True, False, False]
    assert [w.name for w in workers.page(store, "ns", tags={}, limit=10, after=None)[0]] == ["a"]


def test_hostnames_route_belong_to_one_namespace_and_cascade(
    store: Store, artifacts: ArtifactStore
) -> None:
    _make(store, "ns")
    _make(store, "other")
    made, created = hostnames.put(store, "ns", "shop.example.com", "site")
    assert created and made.namespace == "ns"
    assert hostnames.route(store, "shop.example.com") == ("ns", "site")
    moved, created = hostnames.put(store, "ns", "shop.example.com", "blog")
    assert not created and moved.worker == "blog"
    with pytest.raises(hostnames.HostnameTaken):
        hostnames.put(store, "other", "shop.example.com", "site")
    with pytest.raises(hostnames.HostnameNotFound):
        hostnames.remove(store, "other", "shop.example.com")
    assert [h.hostname for h in hostnames.list_for(store, "ns")] == ["shop.example.com"]
    assert hostnames.route(store, "nope.example.com") is None
    with pytest.raises(namespaces.NamespaceNotFound):
        hostnames.put(store, "ghost", "a.example.com", "w")
    namespaces.remove(store, "ns", artifacts=artifacts)
    assert hostnames.route(store, "shop.example.com") is None
    hostnames.put(store, "other", "shop.example.com", "site")
    hostnames.remove(store, "other", "shop.example.com")
    assert hostnames.list_for(store, "other") == []


def test_dispatch_target_is_one_read_of_namespace_worker_and_version(
    store: Store, artifacts: ArtifactStore
) -> None:
    _make(store, "ns")
    first = _save(store, "w", "a", artifacts=artifacts)
    _save(store, "w", "b", artifacts=artifacts)
    found = workers.target(store, "ns", "w")
    assert (found.namespace_mode, found.namespace_limits) == ("untrusted", {"cpu_ms": 100})
    assert found.namespace_allowed_hosts == ["api.example.com"] and found.dispatch_public
    assert found.worker.current is not None and found.worker.current.sha256 == _sha("b")
    assert found.worker.current.number == 2
    assert found.worker == workers.get(store, "ns", "w")
    assert found.bindings == {"K": "v"} and found.worker.secret_names == ["K"]
    assert first.current is not None
    workers.deploy(store, "ns", "w", first.current.id)
    rolled = workers.target(store, "ns", "w").worker.current
    assert rolled is not None and rolled.sha256 == _sha("a")
    with pytest.raises(workers.WorkerNotFound):
        workers.target(store, "ns", "nope")
    with pytest.raises(namespaces.NamespaceNotFound):
        workers.target(store, "nope", "w")


def test_update_changes_only_what_it_is_given(store: Store) -> None:
    made = _make(store, "patched")
    assert made.private_egress is False  # closed unless the admin opens it
    changed = namespaces.update(
        store, "patched", {"allowed_hosts": ["*.example.com"], "private_egress": True}
    )
    assert (changed.allowed_hosts, changed.private_egress) == (["*.example.com"], True)
    assert (changed.limits, changed.mode, changed.created_at) == (
        made.limits,
        made.mode,
        made.created_at,
    )
    assert namespaces.get(store, "patched") == changed
    with pytest.raises(ValueError, match="name"):
        namespaces.update(store, "patched", {"name": "renamed"})
    with pytest.raises(namespaces.NamespaceNotFound):
        namespaces.update(store, "ghost", {"private_egress": True})


def test_dispatch_target_carries_private_egress(store: Store, artifacts: ArtifactStore) -> None:
    _make(store, "grant")
    _save_in(store, "grant", "w", "a", artifacts=artifacts)
    assert workers.target(store, "grant", "w").namespace_private_egress is False
    namespaces.update(store, "grant", {"private_egress": True})
    assert workers.target(store, "grant", "w").namespace_private_egress is True


def _raw_secrets(store: Store) -> list[dict[str, str]]:
    with store.engine.connect() as connection:
        # The column as stored (JSON), without the store's unsealing.
        return list(connection.scalars(select(WorkerRow.secrets)))


def test_worker_secrets_are_sealed_at_rest(store: Store, artifacts: ArtifactStore) -> None:
    _make(store, "ns")
    _save(store, "w", "a", artifacts=artifacts)
    (sealed,) = _raw_secrets(store)
    assert list(sealed) == ["K"] and sealed["K"] != "v"
    assert workers.target(store, "ns", "w").bindings == {"K": "v"}
    # Another key (a lost or wrong SANDLOT_SECRETS_KEY) reads nothing.
    stranger = Store(store.url, secrets=SecretBox([Fernet.generate_key().decode()]))
    with pytest.raises(SecretsUnreadable):
        workers.target(stranger, "ns", "w")
    stranger.close()
    # Rotation: a new key first, the old one after it.
    rotated = Store(store.url, secrets=SecretBox([Fernet.generate_key().decode(), *BOX_KEYS]))
    assert workers.target(rotated, "ns", "w").bindings == {"K": "v"}
    rotated.close()


def test_the_migration_seals_secrets_stored_in_clear(database_url: str) -> None:
    old = Store(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(
            text(
                "INSERT INTO namespaces (name, mode, limits, allowed_hosts, dispatch_public,"
                " created_at) VALUES ('ns', 'untrusted', '{}', '[]', true, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO workers (namespace_id, name, runtime, tags, limits, allowed_hosts,"
                " vars, secrets, created_at, updated_at) SELECT id, 'w', 'wasmtime', '[]', '{}',"
                " '[]', '{}', '{\"K\": \"in-clear\"}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP"
                " FROM namespaces"
            )
        )
    # Without a key the upgrade refuses rather than leave secrets in clear.
    with pytest.raises(RuntimeError, match="SANDLOT_SECRETS_KEY"):
        migrate(old)
    old.close()
    store = Store(database_url, secrets=BOX)
    migrate(store)
    (sealed,) = _raw_secrets(store)
    assert sealed["K"] != "in-clear"
    assert workers.target(store, "ns", "w").bindings == {"K": "in-clear"}
    store.close()


def test_quotas_are_stored_for_namespaces_and_keys(store: Store) -> None:
    namespaces.create(
        store,
        "quoted",
        mode="untrusted",
        limits={},
        allowed_hosts=[],
        dispatch_public=True,
        quotas={"concurrent_runs": 2},
    )
    record, key = keys.issue(store, "quoted", "ci", {"requests_per_second": 5})
    assert record.quotas == {"requests_per_second": 5}
    holder = keys.holder(store, key)
    policy = namespaces.Policy(limits={}, allowed_hosts=[], private_egress=False)
    assert holder == keys.KeyHolder(
        "quoted", record.id, {"concurrent_runs": 2}, {"requests_per_second": 5}, policy
    )
    changed = keys.update(store, "quoted", record.id, {"quotas": {"sessions": 1}})
    assert changed.quotas == {"sessions": 1}
    namespaces.update(store, "quoted", {"quotas": {}})
    namespaces.update(store, "quoted", {"limits": {"cpu_ms": 500}, "allowed_hosts": ["a.test"]})
    assert keys.holder(store, key) == keys.KeyHolder(
        "quoted",
        record.id,
        {},
        {"sessions": 1},
        namespaces.Policy(limits={"cpu_ms": 500}, allowed_hosts=["a.test"], private_egress=False),
    )
    assert keys.holder(store, key + "x") is None
    with pytest.raises(keys.KeyNotFound):
        keys.update(store, "quoted", "key_missing", {"label": "x"})
