"""Tables of the control plane (the schema Alembic migrates to)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["ApiKeyRow", "Base", "NamespaceRow"]


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
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=_now
    )
