"""app/store/artifacts.py: artifacts in the database, read through each replica's cache.

On both databases: bytes written through one replica are read by another with an
empty cache; what comes from a cache or the database is checked against its hash;
and an upgrade moves the files of the old layout into the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from cryptography.fernet import Fernet
from sqlalchemy import insert, select, update

from app.store import (
    ArtifactCache,
    ArtifactMissing,
    ArtifactStore,
    SecretBox,
    Store,
    blobs,
    migrate,
    namespaces,
)
from app.store.db import MIGRATIONS
from app.store.models import BlobRow, NamespaceRow, WorkerRow, WorkerVersionRow

BOX = SecretBox([Fernet.generate_key().decode()])


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secrets=BOX)
    yield store
    store.close()


def _stored(store: Store, tmp_path: Path, data: bytes) -> tuple[ArtifactStore, str]:
    writer = ArtifactStore(store, ArtifactCache(tmp_path / "a"))
    with store.session() as session:
        return writer, blobs.hold(session, writer, data)


def test_another_replica_reads_what_one_wrote(store: Store, tmp_path: Path) -> None:
    migrate(store)
    data = b'{"modules": {"main.py": "x = 1"}}'
    writer, sha256 = _stored(store, tmp_path, data)
    reader = ArtifactStore(store, ArtifactCache(tmp_path / "b"))
    assert not reader.cache.exists(sha256)
    assert reader.get(sha256) == data
    assert reader.cache.exists(sha256)  # read through: cached now
    assert writer.cache.exists(sha256)  # the writer kept its own copy


def test_a_damaged_cached_file_is_read_again_from_the_database(
    store: Store, tmp_path: Path
) -> None:
    migrate(store)
    data = b"the real bytes"
    writer, sha256 = _stored(store, tmp_path, data)
    path = tmp_path / "a" / sha256[:2] / sha256
    path.write_bytes(b"tampered")
    assert writer.get(sha256) == data
    assert path.read_bytes() == data


def test_bytes_that_do_not_match_their_hash_are_refused(store: Store, tmp_path: Path) -> None:
    migrate(store)
    _, sha256 = _stored(store, tmp_path, b"the real bytes")
    with store.session() as session:
        session.execute(update(BlobRow).where(BlobRow.sha256 == sha256).values(data=b"forged"))
    reader = ArtifactStore(store, ArtifactCache(tmp_path / "b"))
    with pytest.raises(ArtifactMissing, match="does not match"):
        reader.get(sha256)
    assert not reader.cache.exists(sha256)
    with pytest.raises(ArtifactMissing):
        reader.get("0" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        reader.get("../../etc/passwd")


def _upgrade(store: Store, revision: str, artifact_dir: Path | None) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["secret_box"] = store.secrets
    config.attributes["artifact_dir"] = artifact_dir
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_the_upgrade_moves_local_files_into_the_database(store: Store, tmp_path: Path) -> None:
    """A database of the file layout (0007): versions refer to files in the data dir."""
    _upgrade(store, "0007_quotas", None)
    old = ArtifactCache(tmp_path / "artifacts")
    kept, lost = b"version one", b"a file that is gone"
    shas = [old.write(kept), hashlib.sha256(lost).hexdigest()]
    bad = old.write(b"tampered later")
    (tmp_path / "artifacts" / bad[:2] / bad).write_bytes(b"not what its name says")
    now = datetime.now(UTC)
    with store.engine.begin() as connection:
        space = connection.execute(
            insert(NamespaceRow.__table__)
            .values(
                name="ns",
                created_at=now,
                limits={},
                allowed_hosts=[],
                mode="untrusted",
                dispatch_public=True,
                private_egress=False,
                custom_hostname_suffixes=[],
                quotas={},
            )
            .returning(NamespaceRow.__table__.c.id)
        ).scalar_one()
        worker = connection.execute(
            insert(WorkerRow.__table__)
            .values(
                namespace_id=space,
                name="w",
                runtime="wasmtime",
                tags=[],
                limits={},
                allowed_hosts=[],
                vars={},
                secrets={},
                created_at=now,
                updated_at=now,
            )
            .returning(WorkerRow.__table__.c.id)
        ).scalar_one()
        for number, sha256 in enumerate([*shas, bad], start=1):
            connection.execute(
                insert(WorkerVersionRow.__table__).values(
                    id=f"ver_{number}",
                    worker_id=worker,
                    number=number,
                    sha256=sha256,
                    main_module="main.py",
                    requirements=[],
                    size=1,
                    build_ms=1.0,
                    warnings=[],
                    created_at=now,
                )
            )
        # 0005's blobs rows: one per file an upload held.
        old_blobs = sa.table(
            "blobs", sa.column("sha256", sa.String()), sa.column("created_at", sa.DateTime(True))
        )
        connection.execute(insert(old_blobs).values(sha256=shas[0], created_at=now))
    migrate(store, tmp_path / "artifacts")
    with store.session() as session:
        found = session.execute(select(BlobRow.sha256, BlobRow.data, BlobRow.size))
        rows = {r.sha256: (r.data, r.size) for r in found}
    assert rows == {shas[0]: (kept, len(kept)), shas[1]: (None, 0), bad: (None, 0)}
    # Served from the database to a replica with nothing cached.
    reader = ArtifactStore(store, ArtifactCache(tmp_path / "fresh"))
    assert reader.get(shas[0]) == kept
    with pytest.raises(ArtifactMissing):
        reader.get(shas[1])
    assert namespaces.get(store, "ns").workers == 1
    migrate(store, tmp_path / "artifacts")  # idempotent
