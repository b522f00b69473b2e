"""Usage per namespace and UTC day (issue 15, item 8): runs, dispatches, CPU, wall time,
subrequests and egress bytes, added to by every replica.

Revision ID: 0010_usage
Revises: 0009_replicas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_usage"
down_revision = "0009_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column(
            "namespace_id",
            sa.Integer(),
            sa.ForeignKey("namespaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("runs", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("dispatches", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cpu_ms", sa.Float(), nullable=False, server_default="0"),
        sa.Column("wall_ms", sa.Float(), nullable=False, server_default="0"),
        sa.Column("subrequests", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("egress_sent_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("egress_received_bytes", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("usage_days")
