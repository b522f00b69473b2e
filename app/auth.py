"""API keys: who is calling, and what they may touch.

Two kinds of key, both sent as ``Authorization: Bearer <key>``:

* the admin key (``SANDLOT_ADMIN_KEY``; in development, generated once into
  ``<data dir>/admin-key`` when unset): everything;
* namespace-scoped keys (``sk_...``, issued by the admin, stored as digests):
  run code, and manage their own namespace only.

Missing or unknown key → 401; a valid key outside its namespace → 403; both
with the JSON error shape.

A request that carries a body is authenticated by :class:`KeyBeforeBody` before a
byte of the body is read (except dispatch, where the worker decides; its body has
its own cap): anonymous callers can't make the service parse anything.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.errors import ApiError, error_response
from app.quotas import Quotas, Subject
from app.store import ReadCache, Store, keys, namespaces

__all__ = [
    "AdminDep",
    "CallerDep",
    "KeyBeforeBody",
    "Principal",
    "admin_key_for",
    "authenticate",
    "current_caller",
    "require_admin",
    "require_namespace",
    "secrets_key_for",
]

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# Where KeyBeforeBody leaves the caller it authenticated, in the request's scope state.
_CALLER_KEY = "sandlot_caller"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the admin (``namespace`` None) or a namespace's key.

    ``key_id`` tells one key from another (a digest of the key, never the key): what
    belongs to a key rather than a namespace, like a session, is owned by it.
    """

    namespace: str | None
    key_id: str = ""
    # What its requests count against (app/quotas.py): its namespace, then its key.
    quotas: tuple[Subject, ...] = ()
    # The request's own Authorization header, for this request only: a session tool call
    # for a session of another replica is made there as the same caller
    # (app/session_proxy.py). Never shown, compared or kept past the request.
    authorization: str = field(default="", repr=False, compare=False)
    # Its namespace's policy as read with the key (None: read it when needed).
    policy: namespaces.Policy | None = field(default=None, repr=False, compare=False)

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


def _bearer(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send an API key as 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    return token.strip()


def _admin(app: FastAPI, token: str) -> bool:
    admin_key: SecretStr | None = app.state.admin_key
    return admin_key is not None and hmac.compare_digest(
        token.encode(), admin_key.get_secret_value().encode()
    )


def _namespace_caller(holder: keys.KeyHolder | None, token: str, authorization: str) -> Principal:
    if holder is None:
        raise ApiError(401, "unauthorized", "the API key is not valid", headers=_CHALLENGE)
    subjects = (
        Subject("namespace", holder.namespace, Quotas.of(holder.namespace_quotas)),
        Subject("key", holder.key_id, Quotas.of(holder.key_quotas)),
    )
    return Principal(
        namespace=holder.namespace,
        key_id=key_id(token),
        quotas=subjects,
        authorization=authorization,
        policy=holder.policy,
    )


def key_id(token: str) -> str:
    """A key's identity for ownership: a digest, so no key is kept in memory by it."""
    return hashlib.sha256(b"sandlot-key-id:" + token.encode()).hexdigest()[:32]


async def authenticate(app: FastAPI, authorization: str) -> Principal:
    """The caller an ``Authorization`` header names; ApiError 401 when missing or unknown.

    The admin key is checked in the event loop. A namespace key is looked up with its
    namespace's policy through ``app.state.key_holders``: a ReadCache by the key's digest,
    which a write to keys or namespaces makes stale at once. It keeps entries only in a
    service that is its database's one writer (SQLite); with replicas it reads every time.
    """
    token = _bearer(authorization)
    if _admin(app, token):
        return Principal(namespace=None, key_id=key_id(token), authorization=authorization)
    store: Store = app.state.store
    cache: ReadCache[str, keys.KeyHolder | None] | None = getattr(app.state, "key_holders", None)
    if cache is None:
        holder = await asyncio.to_thread(keys.holder, store, token)
    else:
        holder = await cache.get(keys.digest(token), lambda: keys.holder(store, token))
    return _namespace_caller(holder, token, authorization)


async def current_caller(request: Request) -> Principal:
    """Who is calling; 401 when the key is missing or unknown."""
    known = request.scope.get("state", {}).get(_CALLER_KEY)
    if isinstance(known, Principal):
        return known
    return await authenticate(request.app, request.headers.get("authorization", ""))


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class KeyBeforeBody:
    """ASGI middleware: a request with a body needs a valid key before its body is read.

    Without one the answer is the 401 at once and the body is never received (the
    server closes the connection rather than drain it, see ``BodySizeLimit``).
    ``/dispatch/`` is left to its route: public workers take anonymous bodies, which
    ``BodySizeLimit`` caps, and private ones check the key before reading.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/dispatch/"):
            await self.app(scope, receive, send)
            return
        if not _has_body(scope):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", ())).get(b"authorization", b"")
        try:
            caller = await authenticate(scope["app"], header.decode("latin-1"))
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope = {**scope, "state": {**scope.get("state", {}), _CALLER_KEY: caller}}
        await self.app(scope, receive, send)


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
