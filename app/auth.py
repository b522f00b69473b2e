"""API keys: who is calling, and what they may touch.

Two kinds of key, both sent as ``Authorization: Bearer <key>``:

* the admin key (``SANDLOT_ADMIN_KEY``; in development, generated once into
  ``<data dir>/admin-key`` when unset): everything;
* namespace-scoped keys (``sk_...``, issued by the admin, stored as digests):
  run code, and manage their own namespace only.

Missing or unknown key → 401; a valid key outside its namespace → 403; both
with the JSON error shape.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from app.config import Settings
from app.errors import ApiError
from app.store import Store, keys

__all__ = [
    "AdminDep",
    "CallerDep",
    "Principal",
    "admin_key_for",
    "current_caller",
    "require_admin",
    "require_namespace",
    "secrets_key_for",
]

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the admin (``namespace`` None) or a namespace's key."""

    namespace: str | None

    @property
    def is_admin(self) -> bool:
        return self.namespace is None


def admin_key_for(settings: Settings) -> SecretStr | None:
    """The admin key: from settings; in development, generated once under the data dir."""
    if settings.admin_key is not None or settings.environment != "development":
        return settings.admin_key
    path = settings.data_dir / "admin-key"
    if not path.exists():
        _write_secret(path, "sk_admin_" + secrets.token_urlsafe(32))
        log.warning("generated a development admin key in %s", path)
    return SecretStr(path.read_text().strip())


def secrets_key_for(settings: Settings) -> SecretStr:
    """The key(s) that seal worker secrets: from settings; otherwise (development only,
    production refuses to start without it) generated once into ``<data dir>/secrets-key``.
    Losing that file loses the secrets: back it up with the database."""
    if settings.secrets_key is not None:
        return settings.secrets_key
    if settings.environment != "development":
        raise RuntimeError("SANDLOT_SECRETS_KEY must be set outside development")
    path = settings.data_dir / "secrets-key"
    if not path.exists():
        # A Fernet key: 32 random bytes, url-safe base64.
        _write_secret(path, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        log.warning("generated a development secrets key in %s", path)
    return SecretStr(path.read_text().strip())


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send an API key as 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    return token.strip()


def _admin(request: Request, token: str) -> bool:
    admin_key: SecretStr | None = request.app.state.admin_key
    return admin_key is not None and hmac.compare_digest(
        token.encode(), admin_key.get_secret_value().encode()
    )


def _namespace_caller(request: Request, token: str) -> Principal:
    store: Store = request.app.state.store
    namespace = keys.authenticate(store, token)
    if namespace is None:
        raise ApiError(401, "unauthorized", "the API key is not valid", headers=_CHALLENGE)
    return Principal(namespace=namespace)


async def current_caller(request: Request) -> Principal:
    """Who is calling; 401 when the key is missing or unknown.

    The admin key is checked in the event loop; only a namespace key's database
    lookup goes to a thread.
    """
    token = _bearer(request)
    if _admin(request, token):
        return Principal(namespace=None)
    return await asyncio.to_thread(_namespace_caller, request, token)


CallerDep = Annotated[Principal, Depends(current_caller)]


async def require_admin(caller: CallerDep) -> Principal:
    if not caller.is_admin:
        raise ApiError(403, "forbidden", "this needs the admin key, not a namespace's key")
    return caller


AdminDep = Annotated[Principal, Depends(require_admin)]


def require_namespace(caller: Principal, namespace: str) -> None:
    """403 unless the caller is the admin or holds a key of ``namespace``."""
    if not caller.is_admin and caller.namespace != namespace:
        raise ApiError(
            403,
            "forbidden",
            f"this key belongs to namespace {caller.namespace!r}; it can't touch {namespace!r}",
        )
