"""app/store/blobs.py: retention, quota, reference-counted artifact files (issue 11, #10, #13).

On both databases: what a namespace stores is bounded, files go when the last
version referring to them goes (also across namespaces and under concurrency), and
no answer depends on another namespace's uploads.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.store import (
    ArtifactCache,
    ArtifactStore,
    SecretBox,
    Store,
    blobs,
    migrate,
    namespaces,
    workers,
)

BOX = SecretBox([Fernet.generate_key().decode()])


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secrets=BOX)
    migrate(store)
    yield store
    store.close()


@pytest.fixture
def artifacts(store: Store, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _namespace(store: Store, name: str, **fields: object) -> None:
    namespaces.create(
        store,
        name,
        mode="untrusted",
        limits={},
        allowed_hosts=[],
        dispatch_public=True,
        **fields,  # type: ignore[arg-type]
    )


def _save(
    store: Store,
    artifacts: ArtifactStore,
    namespace: str,
    worker: str,
    content: str,
    *,
    retention: int = 20,
    quota_bytes: int = 1024 * 1024,
) -> workers.Saved:
    return workers.save_version(
        store,
        namespace,
        worker,
        workers.WorkerSpec(
            runtime="wasmtime", tags=[], limits={}, allowed_hosts=[], vars={}, secrets={}
        ),
        artifacts=artifacts,
        bundle=content.encode(),
        main_module="main.py",
        requirements=[],
        build_ms=1.0,
        warnings=[],
        defaults=workers.StorageDefaults(version_retention=retention, quota_bytes=quota_bytes),
    )


def test_retention_keeps_the_newest_versions_and_deletes_the_rest(
    store: Store, artifacts: ArtifactStore
) -> None:
    _namespace(store, "ns")
    saved = [_save(store, artifacts, "ns", "w", f"v{n}", retention=3) for n in range(1, 6)]
    assert [s.pruned for s in saved] == [0, 0, 0, 1, 1]
    assert [v.number for v in workers.versions(store, "ns", "w")] == [3, 4, 5]
    assert [artifacts.exists(_sha(f"v{n}")) for n in range(1, 6)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_the_namespace_setting_overrides_the_server_default(
    store: Store, artifacts: ArtifactStore
) -> None:
    _namespace(store, "ns", version_retention=2)
    for n in range(4):
        _save(store, artifacts, "ns", "w", f"v{n}", retention=20)
    assert len(workers.versions(store, "ns", "w")) == 2


def test_a_file_shared_by_versions_stays_until_the_last_goes(
    store: Store, artifacts: ArtifactStore
) -> None:
    _namespace(store, "ns")
    _save(store, artifacts, "ns", "w", "same", retention=1)
    _save(store, artifacts, "ns", "other", "same")
    # The retention of 'w' drops its old version; 'other' still refers to the file.
    _save(store, artifacts, "ns", "w", "new", retention=1)
    assert artifacts.exists(_sha("same"))
    workers.remove(store, "ns", "other", artifacts=artifacts)
    assert not artifacts.exists(_sha("same")) and artifacts.exists(_sha("new"))
    workers.remove(store, "ns", "w", artifacts=artifacts)
    assert list(artifacts.stored()) == []


def test_dedup_is_per_namespace_and_files_die_with_the_last_namespace(
    store: Store, artifacts: ArtifactStore
) -> None:
    _namespace(store, "a")
    _namespace(store, "b")
    first = _save(store, artifacts, "a", "w", "shared code")
    # Another namespace's identical upload learns nothing: it is "rebuilt" too.
    other = _save(store, artifacts, "b", "w", "shared code")
    again = _save(store, artifacts, "b", "w2", "shared code")
    assert (first.reused, other.reused, again.reused) == (False, False, True)
    # Each namespace is charged for what it stores, whoever else stores it too.
    size = len(b"shared code")
    assert namespaces.get(store, "a").storage_bytes == namespaces.get(store, "b").storage_bytes
    assert namespaces.get(store, "a").storage_bytes == size
    namespaces.remove(store, "a", artifacts=artifacts, force=True)
    assert artifacts.exists(_sha("shared code"))
    namespaces.remove(store, "b", artifacts=artifacts, force=True)
    assert not artifacts.exists(_sha("shared code"))


def test_the_quota_refuses_an_upload_that_would_exceed_it(
    store: Store, artifacts: ArtifactStore
) -> None:
    _namespace(store, "ns")
    _namespace(store, "small", storage_mb=1)
    _save(store, artifacts, "ns", "a", "x" * 60, quota_bytes=100)
    with pytest.raises(workers.QuotaExceeded) as refused:
        _save(store, artifacts, "ns", "b", "y" * 60, quota_bytes=100)
    assert (refused.value.quota_bytes, refused.value.used_bytes) == (100, 60)
    assert refused.value.adding_bytes == 60
    # Nothing changed: no worker, no file.
    with pytest.raises(workers.WorkerNotFound):
        workers.get(store, "ns", "b")
    assert not artifacts.exists(_sha("y" * 60))
    # Identical bytes cost nothing more; a version that replaces an old one frees it.
    _save(store, artifacts, "ns", "b", "x" * 60, quota_bytes=100)
    workers.remove(store, "ns", "b", artifacts=artifacts)
    _save(store, artifacts, "ns", "a", "z" * 90, quota_bytes=100, retention=1)
    assert namespaces.get(store, "ns").storage_bytes == 90
    with pytest.raises(workers.QuotaExceeded):
        _save(store, artifacts, "ns", "b", "w" * 20, quota_bytes=100, retention=1)
    # The namespace's own quota (1 MiB here) wins over the server default.
    _save(store, artifacts, "small", "a", "x" * 200, quota_bytes=100)


def test_concurrent_uploads_and_deletes_never_lose_a_referenced_file(
    store: Store, artifacts: ArtifactStore
) -> None:
    """Two namespaces upload and delete the same bytes at once, over and over: while a
    version refers to the file it is on disk; when none does, it is gone."""
    for name in ("a", "b"):
        _namespace(store, name)
    rounds = 25
    start = threading.Barrier(2)
    failures: list[str] = []

    def churn(namespace: str) -> None:
        start.wait()
        for round_ in range(rounds):
            saved = _save(store, artifacts, namespace, "w", "shared")
            if saved.worker.current is None or not artifacts.exists(_sha("shared")):
                failures.append(f"{namespace} round {round_}: the file is gone")
            workers.remove(store, namespace, "w", artifacts=artifacts)

    threads = [threading.Thread(target=churn, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert not artifacts.exists(_sha("shared"))


def test_sweep_removes_what_no_version_refers_to(store: Store, artifacts: ArtifactStore) -> None:
    _namespace(store, "ns")
    _save(store, artifacts, "ns", "w", "kept")
    with store.session() as session:
        orphan = blobs.hold(session, artifacts, b"left by an older version of the service")
    stale = artifacts.cache.write(b"a cached artifact the database no longer holds")
    assert blobs.sweep(store, artifacts) == [orphan]
    assert list(artifacts.stored()) == [_sha("kept")]
    assert [sha for sha, _ in artifacts.cache.stored()] == [_sha("kept")]
    assert not artifacts.cache.exists(stale)
