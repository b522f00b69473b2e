"""app/store/workers.py: bindings belong to the worker (kept across uploads, set one at a
time, moved to the newest key), versions by number; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.store import (
    ArtifactCache,
    ArtifactStore,
    SecretBox,
    SecretsUnreadable,
    Store,
    migrate,
    namespaces,
    workers,
)

OLD_KEY = Fernet.generate_key().decode()
DEFAULTS = workers.StorageDefaults(version_retention=20, quota_bytes=1024 * 1024)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secrets=SecretBox([OLD_KEY]))
    migrate(store)
    namespaces.create(
        store,
        "ns",
        mode="untrusted",
        limits={},
        allowed_hosts=[],
        dispatch_public=True,
    )
    yield store
    store.close()


def _save(
    store: Store,
    content: str,
    artifacts: ArtifactStore,
    *,
    vars: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
) -> workers.Worker:
    spec = workers.WorkerSpec(
        runtime="wasmtime", tags=[], limits={}, allowed_hosts=[], vars=vars, secrets=secrets
    )
    return workers.save_version(
        store,
        "ns",
        "w",
        spec,
        artifacts=artifacts,
        bundle=content.encode(),
        main_module="main.py",
        requirements=[],
        build_ms=1.0,
        warnings=[],
        defaults=DEFAULTS,
    ).worker


def _bindings(store: Store) -> dict[str, str]:
    return workers.target(store, "ns", "w").bindings


def test_none_keeps_bindings_and_a_dict_replaces_them(store: Store, tmp_path: Path) -> None:
    artifacts = ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))
    new = _save(store, "a", artifacts)  # a new worker with none sent has none
    assert (new.vars, new.secret_names) == ({}, [])
    _save(store, "b", artifacts, vars={"V": "1"}, secrets={"S": "s"})
    _save(store, "c", artifacts)
    assert _bindings(store) == {"V": "1", "S": "s"}
    _save(store, "d", artifacts, secrets={"T": "t"})
    assert _bindings(store) == {"V": "1", "T": "t"}
    _save(store, "e", artifacts, vars={})
    assert _bindings(store) == {"T": "t"}


def test_secrets_one_at_a_time(store: Store, tmp_path: Path) -> None:
    artifacts = ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))
    with pytest.raises(workers.WorkerNotFound):
        workers.set_secret(store, "ns", "w", "S", "x")
    with pytest.raises(namespaces.NamespaceNotFound):
        workers.set_secret(store, "ghost", "w", "S", "x")
    _save(store, "a", artifacts, vars={"V": "1"})
    assert workers.set_secret(store, "ns", "w", "S", "one") is True
    assert workers.set_secret(store, "ns", "w", "S", "two") is False
    assert workers.set_secret(store, "ns", "w", "T", "t") is True
    assert _bindings(store) == {"V": "1", "S": "two", "T": "t"}
    assert workers.get(store, "ns", "w").secret_names == ["S", "T"]
    workers.delete_secret(store, "ns", "w", "S")
    with pytest.raises(workers.SecretNotFound):
        workers.delete_secret(store, "ns", "w", "S")
    assert _bindings(store) == {"V": "1", "T": "t"}
    assert len(workers.versions(store, "ns", "w")) == 1  # secrets make no version


@pytest.mark.parametrize("how", ["upload", "set_secret"])
def test_kept_secrets_move_to_the_newest_key(store: Store, tmp_path: Path, how: str) -> None:
    """Rotation says: keep the old key until every worker with secrets is uploaded again.
    An upload that keeps the secrets, or setting one of them, reseals all with the new key."""
    artifacts = ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))
    _save(store, "a", artifacts, secrets={"S": "s", "U": "u"})
    new_key = Fernet.generate_key().decode()
    rotated = Store(store.url, secrets=SecretBox([new_key, OLD_KEY]))
    new_only = Store(store.url, secrets=SecretBox([new_key]))
    try:
        with pytest.raises(SecretsUnreadable):
            _bindings(new_only)
        if how == "upload":
            _save(rotated, "b", artifacts)  # no secrets sent: kept
            expected = {"S": "s", "U": "u"}
        else:
            workers.set_secret(rotated, "ns", "w", "T", "t")
            expected = {"S": "s", "U": "u", "T": "t"}
        assert _bindings(new_only) == expected
        with pytest.raises(SecretsUnreadable):
            _bindings(store)  # the old key alone no longer reads them
    finally:
        rotated.close()
        new_only.close()


def test_deploy_by_id_or_number(store: Store, tmp_path: Path) -> None:
    artifacts = ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))
    first = _save(store, "a", artifacts)
    _save(store, "b", artifacts)
    assert first.current is not None
    history = workers.history(store, "ns", "w")
    assert [v.number for v in history.versions] == [1, 2]
    assert history.deployed == history.versions[1].id
    assert workers.deploy(store, "ns", "w", "1").current == first.current
    assert workers.history(store, "ns", "w").deployed == first.current.id
    assert workers.deploy(store, "ns", "w", history.versions[1].id).current is not None
    for missing in ("3", "0", "ver_nope"):
        with pytest.raises(workers.VersionNotFound):
            workers.deploy(store, "ns", "w", missing)
