"""GET /docs (Swagger UI) and GET /redoc (ReDoc): the OpenAPI document in a browser, offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from
another), so on a machine without internet they were blank. Here both pages and
every file they load come from this service: the two pages and Swagger UI's start-up
script from ``app/apidocs/``, and Swagger UI's and ReDoc's built files from the
``fastapi-offline`` package (Swagger UI 5, which renders OpenAPI 3.1; ReDoc 2), read
once when the app is made. The pages are served under a Content-Security-Policy that
allows this origin only, so they can't fetch anything from anywhere else either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.errors import ApiError

__all__ = ["CSP", "PAGE_DIR", "VENDOR_DIR", "router"]

PAGE_DIR = Path(__file__).resolve().parent.parent / "apidocs"
VENDOR_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

# Served name → (directory, media type); nothing else is served.
_FILES = {
    "swagger.html": (PAGE_DIR, "text/html; charset=utf-8"),
    "redoc.html": (PAGE_DIR, "text/html; charset=utf-8"),
    "swagger-init.js": (PAGE_DIR, "text/javascript; charset=utf-8"),
    "swagger-ui-bundle.js": (VENDOR_DIR, "text/javascript; charset=utf-8"),
    "swagger-ui.css": (VENDOR_DIR, "text/css; charset=utf-8"),
    "redoc.standalone.js": (VENDOR_DIR, "text/javascript; charset=utf-8"),
    "favicon.png": (VENDOR_DIR, "image/png"),
}

# What the vendor files would load from elsewhere on their own, and what it becomes.
# ReDoc's sidebar shows its maker's logo from a CDN: an empty image instead (the
# image's onError hides it); the link beside it stays a link, loaded only if clicked.
_REWRITES = {
    "redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")],
}

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        # Both UIs set inline styles (ReDoc through styled-components).
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        # ReDoc's search runs in a worker it makes from a blob: URL.
        "worker-src 'self' blob:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, _File]:
    """Every served file, read now; FileNotFoundError names a missing one."""
    loaded: dict[str, _File] = {}
    for name, (directory, media_type) in _FILES.items():
        body = (directory / name).read_bytes()
        for old, new in _REWRITES.get(name, []):
            body = body.replace(old, new)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        loaded[name] = _File(body, media_type, etag)
    return loaded


def _answer(found: _File, request: Request) -> Response:
    headers = {**_HEADERS, "etag": found.etag}
    sent = {
        tag.strip().removeprefix("W/")
        for tag in request.headers.get("if-none-match", "").split(",")
    }
    if found.etag in sent:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


def router() -> APIRouter:
    """``/docs``, ``/redoc`` and their files under ``/docs/assets/``."""
    files = _load()
    routes = APIRouter(include_in_schema=False)

    @routes.get("/docs")
    async def swagger(request: Request) -> Response:
        return _answer(files["swagger.html"], request)

    @routes.get("/redoc")
    async def redoc(request: Request) -> Response:
        return _answer(files["redoc.html"], request)

    @routes.get("/docs/assets/{name}")
    async def asset(name: str, request: Request) -> Response:
        found = files.get(name) if not name.endswith(".html") else None
        if found is None:
            raise ApiError(404, "not_found", f"no API docs file {name!r}")
        return _answer(found, request)

    return routes
