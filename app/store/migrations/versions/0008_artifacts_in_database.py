"""Artifacts in the database, so every replica reads them (issue 15, item 2).

``blobs`` gets each artifact's bytes and size. The files the data directory held
(``<data dir>/artifacts/<2 hex>/<sha256>``, handed over by app.store.migrate) move
into their rows; each is checked against its name's hash on the way, and the
directory stays, as this replica's cache. An artifact a version refers to whose file
is missing gets a row without bytes (it could not run before the upgrade either).

Revision ID: 0008_artifacts
Revises: 0007_quotas
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

revision = "0008_artifacts"
down_revision = "0007_quotas"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_BLOBS = sa.table(
    "blobs",
    sa.column("sha256", sa.String()),
    sa.column("size", sa.Integer()),
    sa.column("data", sa.LargeBinary()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_VERSIONS = sa.table("worker_versions", sa.column("sha256", sa.String()))


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("size", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    rows = set(bind.scalars(sa.select(_BLOBS.c.sha256)))
    wanted = rows | set(bind.scalars(sa.select(_VERSIONS.c.sha256).distinct()))
    directory: Path | None = context.config.attributes.get("artifact_dir")
    moved = missing = 0
    for sha256 in sorted(wanted):
        data = _file(directory, sha256)
        if data is None:
            missing += 1
        else:
            moved += 1
        if sha256 in rows:
            op.execute(
                _BLOBS.update()
                .where(_BLOBS.c.sha256 == sha256)
                .values(data=data, size=len(data or b""))
            )
        else:
            op.execute(
                _BLOBS.insert().values(
                    sha256=sha256, data=data, size=len(data or b""), created_at=datetime.now(UTC)
                )
            )
    if wanted:
        log.info("artifacts: %d moved into the database, %d missing on disk", moved, missing)


def _file(directory: Path | None, sha256: str) -> bytes | None:
    if directory is None:
        return None
    try:
        data = (directory / sha256[:2] / sha256).read_bytes()
    except (FileNotFoundError, ValueError):
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        log.warning("artifacts: the file of %s does not match its hash; not moved", sha256)
        return None
    return data


def downgrade() -> None:
    # The files stay in the data directory (the cache): the older service reads them.
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("data")
        batch.drop_column("size")
