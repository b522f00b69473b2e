"""Storage bounds and secrets at rest (issue 11: findings 4, 10, 13).

Namespaces get the custom-hostname suffixes the admin grants them and their own
storage quota and version retention (NULL: the server's defaults); ``blobs`` holds
one row per artifact file, its lock (app/store/blobs.py); worker secrets, stored in
clear until now, are sealed with the service's secrets key.

Revision ID: 0005_storage
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005_storage"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # First, before any DDL (which SQLite doesn't roll back here): refuse to go on
    # without the key rather than leave secrets in clear.
    sealed = _sealed_secrets()
    with op.batch_alter_table("namespaces") as batch:
        batch.add_column(
            sa.Column("custom_hostname_suffixes", sa.JSON(), nullable=False, server_default="[]")
        )
        batch.add_column(sa.Column("storage_mb", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("version_retention", sa.Integer(), nullable=True))
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worker_versions_sha256", "worker_versions", ["sha256"])
    for worker_id, secrets in sealed.items():
        op.execute(_WORKERS.update().where(_WORKERS.c.id == worker_id).values(secrets=secrets))


_WORKERS = sa.table("workers", sa.column("id", sa.Integer()), sa.column("secrets", sa.JSON()))


def _sealed_secrets() -> dict[int, dict[str, str]]:
    """Each worker's secrets, sealed with the service's key (worker id → sealed)."""
    rows = op.get_bind().execute(sa.select(_WORKERS.c.id, _WORKERS.c.secrets)).all()
    rows = [row for row in rows if row.secrets]
    if not rows:
        return {}
    box = context.config.attributes.get("secret_box")
    if box is None:
        raise RuntimeError(
            "stored worker secrets must be encrypted: start with SANDLOT_SECRETS_KEY set"
        )
    return {row.id: box.seal(row.secrets) for row in rows}


def downgrade() -> None:
    # Sealed secrets stay sealed: a downgrade can't read them without the key.
    op.drop_index("ix_worker_versions_sha256", table_name="worker_versions")
    op.drop_table("blobs")
    with op.batch_alter_table("namespaces") as batch:
        batch.drop_column("version_retention")
        batch.drop_column("storage_mb")
        batch.drop_column("custom_hostname_suffixes")
