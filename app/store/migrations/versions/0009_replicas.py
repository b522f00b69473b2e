"""Replicas and the sessions they hold (issue 15, item 2).

``replicas``: each running service process with its internal URL and heartbeat;
``session_owners``: which replica holds each session, whose key owns it, and how it
ended. Both start empty: sessions of a service that upgrades ended with it.

Revision ID: 0009_replicas
Revises: 0008_artifacts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_replicas"
down_revision = "0008_artifacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "session_owners",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("replica_id", sa.String(length=40), nullable=False),
        sa.Column("replica_url", sa.String(length=2048), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=True),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("ended", sa.String(length=64), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_session_owners_replica_id", "session_owners", ["replica_id"])
    op.create_index("ix_session_owners_key_id", "session_owners", ["key_id"])


def downgrade() -> None:
    op.drop_table("session_owners")
    op.drop_table("replicas")
