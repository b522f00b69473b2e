"""/docs and /redoc over HTTP: every file they load is this service's, under a strict CSP.

They were blank without internet: FastAPI's pages load Swagger UI and ReDoc from a CDN
(tests/playground/test_apidocs_browser.py renders them in Chromium with the network cut).
"""

from __future__ import annotations

import re

import httpx
import pytest

from app.routes.apidocs import CSP
from tests.conftest import Service

LOADED = re.compile(r"""(?:src|href)="([^"]+)\"""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_load_only_this_services_files(service: Service, page: str) -> None:
    client = httpx.Client(base_url=service.url)  # no key: the pages are public
    response = client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CSP
    assert "http://" not in response.text and "https://" not in response.text
    assert "<script>" not in response.text  # no inline script: the CSP would refuse it
    loaded = LOADED.findall(response.text)
    assert loaded and all(url.startswith("/docs/assets/") for url in loaded), loaded
    for url in loaded:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
        again = client.get(url, headers={"if-none-match": asset.headers["etag"]})
        assert again.status_code == 304
    client.close()


def test_the_csp_allows_this_origin_only() -> None:
    for directive in CSP.split("; "):
        assert "http" not in directive and "*" not in directive, directive
    assert "default-src 'none'" in CSP and "script-src 'self'" in CSP


@pytest.mark.parametrize(
    "name", ["swagger.html", "nope.js", "..%2fconfig.py", "%2e%2e%2f%2e%2e%2fmain.py"]
)
def test_only_the_listed_files_are_served(client: httpx.Client, name: str) -> None:
    assert client.get(f"/docs/assets/{name}").status_code == 404


def test_the_swagger_start_up_script_names_no_online_validator(client: httpx.Client) -> None:
    script = client.get("/docs/assets/swagger-init.js").text
    assert '"/openapi.json"' in script and "validatorUrl: null" in script


def test_redoc_loads_no_logo_from_its_cdn(client: httpx.Client) -> None:
    bundle = client.get("/docs/assets/redoc.standalone.js").content
    assert b"cdn.redoc.ly" not in bundle
    assert b'alt:"redocly logo",onError:()=>t(!1),src:"data:,"' in bundle
