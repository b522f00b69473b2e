"""Tables of the control plane (the schema Alembic migrates to)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKeyRow",
    "Base",
    "BlobRow",
    "HostnameRow",
    "NamespaceRow",
    "ReplicaRow",
    "SessionOwnerRow",
    "UsageDayRow",
    "WorkerRow",
    "WorkerVersionRow",
]


class Base(DeclarativeBase):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class NamespaceRow(Base):
    """A dispatch namespace: a customer's (or an AI's) group of workers and their defaults."""

    __tablename__ = "namespaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="untrusted")
    # Per-run limit defaults for the namespace's workers (a subset of Limits' fields).
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    dispatch_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Whether the namespace's keys and workers may open the operator's private networks
    # (SANDLOT_EGRESS_PRIVATE_NETWORKS) by IP literal. Only the admin key sets it.
    private_egress: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Set by the admin: its keys may claim custom hostnames under these suffixes only.
    custom_hostname_suffixes: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # Set by the admin; NULL: the server's default (SANDLOT_NAMESPACE_STORAGE_MB,
    # SANDLOT_VERSION_RETENTION).
    storage_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version_retention: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set by the admin: rate limits and quotas of all its keys together (app/quotas.py);
    # a name left out has no quota.
    quotas: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )


class ApiKeyRow(Base):
    """A namespace-scoped API key. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=False
    )
    label: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    # Set by the admin: this key's own quotas, within which it also shares its namespace's.
    quotas: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )


class WorkerRow(Base):
    """A user worker in a namespace; ``current_version`` is what serves."""

    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    runtime: Mapped[str] = mapped_column(String(16), nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    vars: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    # Write-only: never returned by any endpoint or written to a log. Name → Fernet
    # token (app/store/secretbox.py): encrypted at rest.
    secrets: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    current_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )


class WorkerVersionRow(Base):
    """An immutable build of a worker: its artifact is content-addressed by ``sha256``."""

    __tablename__ = "worker_versions"
    __table_args__ = (
        UniqueConstraint("worker_id", "number"),
        # Releasing a blob asks whether any version still refers to it.
        Index("ix_worker_versions_sha256", "sha256"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    worker_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("workers.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    main_module: Mapped[str] = mapped_column(String(255), nullable=False)
    requirements: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    build_ms: Mapped[float] = mapped_column(Float, nullable=False)
    warnings: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )


class BlobRow(Base):
    """An artifact (``ArtifactStore``), shared by every version with its sha256.

    The row holds the bytes and is their lock: an upload holds it while writing them
    and adding its version, and the last release holds it while checking that no
    version still refers to them and deleting the row (app/store/blobs.py).
    """

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # NULL only for an artifact whose file was gone when 0008 moved files into the
    # database: its versions can't run (as before the upgrade).
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )


class HostnameRow(Base):
    """A custom hostname (``shop.example.com``) routed to a worker of a namespace.

    The worker is named, not referenced: a hostname may point at a worker before
    it is uploaded or after it is deleted, and then answers 404 like any
    unknown worker.
    """

    __tablename__ = "hostnames"

    hostname: Mapped[str] = mapped_column(String(253), primary_key=True)
    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    worker: Mapped[str] = mapped_column(String(63), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )


class ReplicaRow(Base):
    """A running service process (a replica) and its last sign of life.

    ``heartbeat_at`` (epoch seconds) is renewed every SANDLOT_REPLICA_HEARTBEAT_MS; a
    replica silent for SANDLOT_REPLICA_LOST_MS is lost, and so are its sessions.
    """

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Its internal base URL (SANDLOT_REPLICA_URL): where other replicas proxy to it.
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
    heartbeat_at: Mapped[float] = mapped_column(Float, nullable=False)


class SessionOwnerRow(Base):
    """Which replica holds a session (it lives in that process's memory), and whose it is.

    Every replica reads it to route a call for a session it doesn't hold, and to count
    open sessions per key and in all for the caps (app/sessions/owners.py).
    """

    __tablename__ = "session_owners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    replica_id: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    replica_url: Mapped[str] = mapped_column(String(2048), nullable=False)
    # The owner key's id (app/auth.py key_id: a digest, never the key).
    key_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    namespace: Mapped[str | None] = mapped_column(String(63), nullable=True)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    # The latest it can end (its max lifetime); it may end sooner.
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)
    ended: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class UsageDayRow(Base):
    """What a namespace used on one UTC day. Replicas add to it (app/store/usage.py); it
    goes with its namespace."""

    __tablename__ = "usage_days"

    namespace_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    dispatches: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    cpu_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    wall_ms: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    subrequests: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    egress_sent_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    egress_received_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
