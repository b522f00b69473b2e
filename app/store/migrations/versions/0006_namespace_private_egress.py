"""Namespaces: private_egress, the admin's grant to open the operator's private networks.

Revision ID: 0006_private_egress
Revises: 0005_storage
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_private_egress"
down_revision = "0005_storage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing namespaces start closed: private networks are opened by the admin, never by
    # default (issue 11, finding 5).
    op.add_column(
        "namespaces",
        sa.Column("private_egress", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("namespaces", "private_egress")
