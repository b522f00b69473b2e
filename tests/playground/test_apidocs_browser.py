"""/docs and /redoc in Chromium with every request off this service cut: the operations render.

FastAPI's pages fetched Swagger UI and ReDoc from a CDN, so without internet they were
blank. Here any request to another origin is aborted (and recorded), so the test fails
both when a page would need one and when it renders nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import Service
from tests.playground.conftest import Seen, only_loopback, open_page

pytestmark = pytest.mark.slow


@pytest.fixture
def page(browser: Browser, seen: Seen, playground_service: Service) -> Iterator[Page]:
    origin = urlsplit(playground_service.url).netloc
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    with open_page(browser, seen) as opened:
        opened.context.route("**/*", offline)
        yield opened
    assert elsewhere == []
    only_loopback(seen, playground_service.url)


def test_swagger_ui_renders_the_operations_offline(page: Page, playground_service: Service) -> None:
    page.goto(playground_service.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Sandlot")
    execute = page.locator(".opblock-summary-path", has_text="/v1/execute").first
    expect(execute).to_be_visible()
    secrets = page.locator(".opblock-summary-path", has_text="/secrets/{secret}")
    expect(secrets.first).to_be_visible()
    # An operation opens and shows its request body's schema.
    execute.click()
    expect(page.locator(".opblock.is-open").first).to_contain_text("Request body")


def test_redoc_renders_the_operations_offline(page: Page, playground_service: Service) -> None:
    page.goto(playground_service.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("Sandlot")
    expect(page.get_by_text("/v1/execute", exact=False).first).to_be_attached()
    expect(page.locator("[role=menuitem]").first).to_be_visible()
