"""Quotas and rate limits of namespaces and keys (issue 15, item 5).

Both start empty: no quota, as before.

Revision ID: 0007_quotas
Revises: 0006_private_egress
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_quotas"
down_revision = "0006_private_egress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("namespaces", "api_keys"):
        op.add_column(table, sa.Column("quotas", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    for table in ("namespaces", "api_keys"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("quotas")
