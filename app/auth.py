"""API keys: who may use the control plane.

Today: the admin key from ``SANDLOT_ADMIN_KEY`` (compared in constant time).
Missing or wrong key → 401 with the JSON error shape and ``WWW-Authenticate``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.deps import SettingsDep
from app.errors import ApiError

__all__ = ["AdminDep", "require_admin"]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_admin(request: Request, settings: SettingsDep) -> None:
    admin_key = settings.admin_key
    if admin_key is None:
        raise ApiError(
            401,
            "unauthorized",
            "the control plane needs an admin key: set SANDLOT_ADMIN_KEY and send it as "
            "'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    token = _bearer(request)
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "send the API key as 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    if not hmac.compare_digest(token.encode(), admin_key.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "the API key is not valid", headers=_CHALLENGE)


AdminDep = Annotated[None, Depends(require_admin)]
