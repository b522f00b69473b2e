"""GET / and its files over plain HTTP: types, the security policy, caching, and routing."""

from __future__ import annotations

import re

import httpx
import pytest

from app.routes.playground import ASSET_DIR, CSP, load_assets
from tests.conftest import DISPATCH_DOMAIN, Service

FILES = [
    ("/", "text/html; charset=utf-8"),
    ("/playground/playground.js", "text/javascript; charset=utf-8"),
    ("/playground/playground.css", "text/css; charset=utf-8"),
    ("/playground/favicon.svg", "image/svg+xml"),
]


@pytest.mark.parametrize(("path", "media_type"), FILES, ids=[p for p, _ in FILES])
def test_files_are_served_with_their_type_and_policy(
    service: Service, path: str, media_type: str
) -> None:
    # No key: the page is public; the API calls it makes need one.
    response = httpx.get(service.url + path, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    name = "index.html" if path == "/" else path.rsplit("/", 1)[1]
    assert response.content == (ASSET_DIR / name).read_bytes()


def test_the_policy_allows_this_origin_only() -> None:
    directives = dict(part.split(" ", 1) for part in CSP.split("; "))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["img-src"] == "'self' data:"  # charts come back as data: URLs
    assert directives["frame-ancestors"] == "'none'"


def test_an_unchanged_file_is_a_304(service: Service) -> None:
    first = httpx.get(service.url + "/playground/playground.js", timeout=10)
    etag = first.headers["etag"]
    again = httpx.get(
        service.url + "/playground/playground.js", headers={"if-none-match": etag}, timeout=10
    )
    assert again.status_code == 304
    assert again.content == b""
    other = httpx.get(service.url + "/", headers={"if-none-match": etag}, timeout=10)
    assert other.status_code == 200


def test_head_answers_without_a_body(service: Service) -> None:
    response = httpx.head(service.url + "/", timeout=10)
    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) == len((ASSET_DIR / "index.html").read_bytes())


@pytest.mark.parametrize(
    "path", ["/playground/nope.js", "/playground/..%2Fmain.py", "/playground/__init__.py"]
)
def test_other_paths_are_json_404s(service: Service, path: str) -> None:
    response = httpx.get(service.url + path, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_writing_to_the_page_is_a_405(service: Service) -> None:
    response = httpx.post(service.url + "/", timeout=10)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_worker_hostname_still_reaches_the_worker(service: Service) -> None:
    # `/` on a worker's hostname belongs to the worker (here: one that doesn't exist).
    host = f"site.nobody.{DISPATCH_DOMAIN}"
    response = httpx.get(service.url + "/", headers={"host": host}, timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "content-security-policy" not in response.headers


def test_every_file_in_the_directory_is_served() -> None:
    on_disk = {path.name for path in ASSET_DIR.iterdir() if path.is_file()}
    assert on_disk == set(load_assets())


def test_the_page_refers_to_nothing_outside() -> None:
    # Every src/href is one of our own files, so nothing is fetched from elsewhere.
    assets = load_assets()
    html = assets["index.html"].body.decode()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs
    for ref in refs:
        assert ref.startswith("/playground/"), ref
        assert ref.removeprefix("/playground/") in assets, ref
    for name in ("playground.js", "playground.css"):
        text = assets[name].body.decode()
        assert "http://" not in text and "https://" not in text and "@import" not in text, name
    # No inline script or style: the policy would block it.
    assert "<style" not in html and "style=" not in html
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="module" src="/playground/playground.js">'
    ]
