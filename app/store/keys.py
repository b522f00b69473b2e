"""Namespace-scoped API keys: issued once, stored as SHA-256 digests, looked up by digest.

Keys are 32 random bytes (``sk_`` + URL-safe base64): a fast digest is enough
for secrets of that entropy, and it makes each lookup one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.store.db import Store
from app.store.errors import KeyNotFound, NamespaceNotFound
from app.store.models import ApiKeyRow, NamespaceRow
from app.store.namespaces import Policy

__all__ = [
    "ApiKey",
    "KeyHolder",
    "KeyNotFound",
    "authenticate",
    "digest",
    "holder",
    "issue",
    "list_keys",
    "revoke",
    "update",
]

PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    namespace: str
    label: str
    created_at: datetime
    quotas: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """What a request with a namespace key needs: whose it is, the quotas that apply, and
    its namespace's policy (what its runs run within: app/policy.py)."""

    namespace: str
    key_id: str
    namespace_quotas: dict[str, Any]
    key_quotas: dict[str, Any]
    policy: Policy


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _namespace_id(session: Session, name: str) -> int:
    found = session.scalar(select(NamespaceRow.id).where(NamespaceRow.name == name))
    if found is None:
        raise NamespaceNotFound(name)
    return int(found)


def issue(
    store: Store, namespace: str, label: str, quotas: dict[str, Any] | None = None
) -> tuple[ApiKey, str]:
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
            quotas=quotas or {},
            created_at=datetime.now(UTC),
        )
        session.add(row)
    return ApiKey(key_id, namespace, label, row.created_at, dict(row.quotas)), key


def list_keys(store: Store, namespace: str) -> list[ApiKey]:
    """Raises NamespaceNotFound."""
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        rows = session.scalars(
            select(ApiKeyRow).where(ApiKeyRow.namespace_id == namespace_id).order_by(ApiKeyRow.id)
        )
        return [_from_row(row, namespace) for row in rows]


def _from_row(row: ApiKeyRow, namespace: str) -> ApiKey:
    return ApiKey(
        row.id, namespace, row.label, row.created_at.replace(tzinfo=UTC), dict(row.quotas)
    )


def update(store: Store, namespace: str, key_id: str, changes: dict[str, Any]) -> ApiKey:
    """Set the key's ``label`` and/or ``quotas`` (already validated).

    Raises NamespaceNotFound, KeyNotFound, and ValueError for another field.
    """
    unknown = sorted(set(changes) - {"label", "quotas"})
    if unknown:
        raise ValueError(f"not changeable key fields: {', '.join(unknown)}")
    with store.session() as session:
        namespace_id = _namespace_id(session, namespace)
        row = session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.namespace_id == namespace_id)
        )
        if row is None:
            raise KeyNotFound(namespace, key_id)
        for column, value in changes.items():
            setattr(row, column, value)
        session.flush()
        return _from_row(row, namespace)


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


def holder(store: Store, key: str) -> KeyHolder | None:
    """The namespace, id, quotas and namespace policy of a key (one indexed query), or None
    for an unknown key."""
    if not key.startswith(PREFIX):
        return None
    with store.session() as session:
        found = session.execute(
            select(
                NamespaceRow.name,
                ApiKeyRow.id,
                NamespaceRow.quotas,
                ApiKeyRow.quotas,
                NamespaceRow.limits,
                NamespaceRow.allowed_hosts,
                NamespaceRow.private_egress,
            )
            .join(ApiKeyRow, ApiKeyRow.namespace_id == NamespaceRow.id)
            .where(ApiKeyRow.digest == digest(key))
        ).first()
    if found is None:
        return None
    name, key_id, namespace_quotas, key_quotas, limits, allowed_hosts, private_egress = found
    return KeyHolder(
        name,
        key_id,
        dict(namespace_quotas or {}),
        dict(key_quotas or {}),
        Policy(dict(limits), list(allowed_hosts), bool(private_egress)),
    )
