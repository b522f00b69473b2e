"""GET /: the playground, a page to generate, edit and run code from a browser.

Plain static files from ``app/playground/`` (HTML, CSS, one JavaScript module), read
once when the app is made and served as they are: no build step, nothing fetched
from anywhere but this service. The page calls the public API (``/v1/generate``,
``/v1/execute``) with the key its user types; these routes need no key.
``/playground/setup.json`` tells the page what this server has before any key is
typed: whether a model is configured (else Run is the page's main action) and, in
development when the server generated the admin key, the file it wrote it to.

Every answer carries a Content-Security-Policy that allows this origin only, and an
ETag with ``Cache-Control: no-cache``, so browsers revalidate (a 304) and never run
a stale script after an upgrade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.config import Settings
from app.errors import ApiError

__all__ = ["ASSET_DIR", "CSP", "Asset", "load_assets", "router", "setup_of"]

ASSET_DIR = Path(__file__).resolve().parent.parent / "playground"

# Served file → its media type; nothing else in the directory is served.
_MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # Charts come back as data: URLs; HTML outputs go in sandboxed srcdoc frames.
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One served file: its bytes, media type and strong ETag."""

    body: bytes
    media_type: str
    etag: str


def load_assets(directory: Path = ASSET_DIR) -> dict[str, Asset]:
    """Read the playground's files; raises FileNotFoundError naming a missing one."""
    assets: dict[str, Asset] = {}
    for name, media_type in _MEDIA_TYPES.items():
        body = (directory / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body=body, media_type=media_type, etag=etag)
    return assets


def _answer(asset: Asset, request: Request) -> Response:
    headers = {**_SECURITY_HEADERS, "etag": asset.etag}
    if asset.etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    response = Response(body, media_type=asset.media_type, headers=headers)
    if request.method == "HEAD":
        response.headers["content-length"] = str(len(asset.body))
    return response


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def setup_of(settings: Settings, *, model: bool) -> dict[str, object]:
    """What the page shows before a key is typed: whether a model is configured, and the
    file of the development admin key when this server generated one (None otherwise:
    the operator chose the key, so the page doesn't point at a file)."""
    generated = settings.admin_key is None and settings.environment == "development"
    return {
        "model": model,
        "admin_key_file": str(settings.data_dir / "admin-key") if generated else None,
    }


def router(directory: Path = ASSET_DIR) -> APIRouter:
    """The routes of the page (``/``) and its files (``/playground/{name}``)."""
    assets = load_assets(directory)
    routes = APIRouter(include_in_schema=False)

    @routes.api_route("/", methods=["GET", "HEAD"])
    async def page(request: Request) -> Response:
        return _answer(assets["index.html"], request)

    @routes.get("/playground/setup.json")
    async def setup(request: Request) -> Response:
        body = setup_of(request.app.state.settings, model=request.app.state.model is not None)
        return JSONResponse(body, headers={**_SECURITY_HEADERS, "cache-control": "no-store"})

    @routes.api_route("/playground/{name}", methods=["GET", "HEAD"])
    async def asset(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None:
            raise ApiError(404, "not_found", f"no playground file {name!r}")
        return _answer(found, request)

    return routes
