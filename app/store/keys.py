"""Namespace-scoped API keys: issued once, stored as SHA-256 digests, looked up by digest.

Keys are 32 random bytes (``sk_`` + URL-safe base64): a fast digest is enough
for secrets of that entropy, and it makes each lookup one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.store.db import Store
from app.store.errors import KeyNotFound, NamespaceNotFound
from app.store.models import ApiKeyRow, NamespaceRow

__all__ = ["ApiKey", "KeyNotFound", "authenticate", "digest", "issue", "list_keys", "revoke"]

PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    namespace: str
    label: str
    created_at: datetime


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _namespace_id(session: Session, name: str) -> int:
    found = session.scalar(select(NamespaceRow.id).where(NamespaceRow.name == name))
    if found is None:
        raise NamespaceNotFound(name)
    return int(found)


def issue(store: Store, namespace: str, label: str) -> tuple[ApiKey, str]:
    """A new key: (its record, the key itself, which is never stored).

    Raises NamespaceNotFound.
    """
    key = PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    with store.session() as session:
        row = ApiKeyRow(
            id=key_id,
            digest=digest(key),
            namespace_id=_namespace_id(session, namespace),
            label=label,
            created_at=datetime.now(UTC),
        )
        session.add(row)
    return ApiKey(key_id, namespace, label, row.created_at), key


def list_keys(store: Store, namespace: str) -> list[ApiKey]:
    """Raises NamespaceNotFound."""
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        rows = session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.namespace_id == namespace_id).order_by(ApiKeyRow.id)
        )
        return [
            ApiKey(row.id, namespace, row.label, row.created_at.replace(tzinfo=UTC)) for row in rows
        ]


def revoke(store: Store, namespace: str, key_id: str) -> None:
    """Raises NamespaceNotFound, KeyNotFound."""
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        result = session.execute(
            delete(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.namespace_id == namespace_id)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise KeyNotFound(namespace, key_id)


def authenticate(store: Store, key: str) -> str | None:
    """The namespace a key belongs to, or None for an unknown key."""
    if not key.startswith(PREFIX):
        return None
    with store.session() as session:
        return session.scalar(
            select(NamespaceRow.name)
            .join(ApiKeyRow, ApiKeyRow.namespace_id == NamespaceRow.id)
            .where(ApiKeyRow.digest == digest(key))
        )
