"""Dispatch's caches: parsed bundles by content address, and store reads (ReadCache)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url, update

from app.bundles import BundleCache, WorkerBundle
from app.store import (
    ArtifactCache,
    ArtifactStore,
    ReadCache,
    SecretBox,
    Store,
    blobs,
    hostnames,
    migrate,
    namespaces,
    workers,
)
from app.store.models import WorkerRow

BOX = SecretBox([Fernet.generate_key().decode()])


def _bundle(text: str, bytecode: bool = True) -> bytes:
    body: dict[str, object] = {
        "format": 2 if bytecode else 1,
        "main_module": "main.py",
        "modules": {"main.py": text},
        "requirements": ["requests"],
    }
    if bytecode:
        body["bytecode"] = {"__pycache__/main.x.pyc": base64.b64encode(b"\x00pyc").decode()}
    return json.dumps(body).encode()


def test_parse_gives_sources_and_bytecode() -> None:
    parsed = WorkerBundle.parse(_bundle("x = 1"))
    assert parsed.files == {"main.py": b"x = 1", "__pycache__/main.x.pyc": b"\x00pyc"}
    assert (parsed.main_module, parsed.requirements) == ("main.py", ("requests",))
    assert WorkerBundle.parse(_bundle("x = 1", bytecode=False)).files == {"main.py": b"x = 1"}


def test_the_cache_reads_each_artifact_once_and_keeps_to_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bundles.db'}", secrets=BOX)
    migrate(store)
    artifacts = ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))
    with store.session() as session:
        shas = [blobs.hold(session, artifacts, _bundle(f"x = {'1' * 100}{n}")) for n in range(3)]
    reads: list[str] = []
    real_get = artifacts.get

    def counting_get(sha256: str) -> bytes:
        reads.append(sha256)
        return real_get(sha256)

    monkeypatch.setattr(artifacts, "get", counting_get)
    size = len(real_get(shas[0]))
    cache = BundleCache(artifacts, budget_bytes=2 * size)

    async def scenario() -> None:
        first = await cache.get(shas[0])
        assert await cache.get(shas[0]) is first
        await cache.get(shas[1])
        await cache.get(shas[0])  # now the most recently used
        await cache.get(shas[2])  # over budget: shas[1] goes
        await cache.get(shas[0])
        await cache.get(shas[1])

    asyncio.run(scenario())
    assert reads == [shas[0], shas[1], shas[2], shas[1]]
    store.close()


def _target_store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'targets.db'}", secrets=BOX)
    migrate(store)
    namespaces.create(
        store, "ns", mode="untrusted", limits={}, allowed_hosts=[], dispatch_public=True
    )
    _deploy(store, "a" * 64)
    return store


def _artifacts(store: Store) -> ArtifactStore:
    return ArtifactStore(
        store, ArtifactCache(Path(str(make_url(store.url).database)).parent / "artifacts")
    )


def _deploy(store: Store, content: str) -> None:
    spec = workers.WorkerSpec("wasmtime", [], {}, [], {}, {"TOKEN": content[:4]})
    workers.save_version(
        store,
        "ns",
        "w",
        spec,
        artifacts=_artifacts(store),
        bundle=content.encode(),
        main_module="main.py",
        requirements=[],
        build_ms=1,
        warnings=[],
        defaults=workers.StorageDefaults(version_retention=20, quota_bytes=1024 * 1024),
    )


def _hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


Targets = ReadCache[tuple[str, str], workers.Target]


def _lookup(cache: Targets, store: Store) -> workers.Target:
    return asyncio.run(cache.get(("ns", "w"), lambda: workers.target(store, "ns", "w")))


def _sha(target: workers.Target) -> str:
    assert target.worker.current is not None
    return target.worker.current.sha256


def test_reads_are_reused_until_this_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _target_store(tmp_path)
    lookups: list[str] = []
    real = workers.target

    def counting(*args: object) -> workers.Target:
        lookups.append(str(args[2]))
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(workers, "target", counting)
    cache: Targets = ReadCache(store, ttl_ms=60_000)
    assert _sha(_lookup(cache, store)) == _hash("a" * 64)
    assert _sha(_lookup(cache, store)) == _hash("a" * 64)
    assert lookups == ["w"]
    _deploy(store, "b" * 64)  # a write: the next lookup must see it
    found = _lookup(cache, store)
    assert _sha(found) == _hash("b" * 64) and found.bindings == {"TOKEN": "bbbb"}
    workers.remove(store, "ns", "w", artifacts=_artifacts(store))
    for _ in range(2):  # a read that raises keeps nothing
        with pytest.raises(workers.WorkerNotFound):
            _lookup(cache, store)
    assert lookups == ["w", "w", "w", "w"]
    store.close()


def test_entries_expire_for_other_processes_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _target_store(tmp_path)
    other = Store(store.url, secrets=BOX)  # another service process on the same database
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    cache: Targets = ReadCache(store, ttl_ms=1_000)
    assert _sha(_lookup(cache, store)) == _hash("a" * 64)
    _deploy(other, "c" * 64)  # unseen by this process's store
    clock[0] += 0.5
    assert _sha(_lookup(cache, store)) == _hash("a" * 64)
    clock[0] += 0.6
    assert _sha(_lookup(cache, store)) == _hash("c" * 64)
    _deploy(other, "d" * 64)
    assert _sha(_lookup(ReadCache(store, ttl_ms=0), store)) == _hash("d" * 64)
    other.close()
    store.close()


def test_misses_are_kept_and_dropped_by_a_write(tmp_path: Path) -> None:
    store = _target_store(tmp_path)
    routes: ReadCache[str, tuple[str, str] | None] = ReadCache(store, ttl_ms=60_000)
    reads: list[str] = []

    def route() -> tuple[str, str] | None:
        reads.append("shop.example.com")
        return hostnames.route(store, "shop.example.com")

    assert asyncio.run(routes.get("shop.example.com", route)) is None
    assert asyncio.run(routes.get("shop.example.com", route)) is None
    assert len(reads) == 1
    hostnames.put(store, "ns", "shop.example.com", "w")
    assert asyncio.run(routes.get("shop.example.com", route)) == ("ns", "w")
    store.close()


def test_a_read_during_an_uncommitted_write_is_not_kept(tmp_path: Path) -> None:
    store = _target_store(tmp_path)
    cache: Targets = ReadCache(store, ttl_ms=60_000)
    rows = WorkerRow.__table__
    with store.engine.connect() as writer:
        writer.execute(update(rows).values(vars={"V": "new"}))
        # Read while the write is uncommitted: the old data, kept...
        assert _lookup(cache, store).bindings == {"TOKEN": "aaaa"}
        writer.commit()
    # ...and dropped when the write commits.
    assert _lookup(cache, store).bindings == {"V": "new", "TOKEN": "aaaa"}
    store.close()
