"""The playground in a real browser: Debian's Chromium driven by Playwright.

Playwright's own browser downloads are never used: scripts/install-browser (run by
`make install`) installs Debian's chromium, and the tests launch that. The service
under test is the real one on loopback, its model the scripted fake of tests/ai.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    ViewportSize,
    expect,
    sync_playwright,
)

from sandbox.engines.wasmtime import Artifacts
from tests.ai.fake_model import FakeModel
from tests.conftest import Service

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet: without the networking flags Chromium calls home at start-up.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MODEL_KEY = "sk-test-" + "pl4y" * 8
# Long enough for a slow machine, short enough that a hung page fails the test quickly.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def model() -> Iterator[FakeModel]:
    server = FakeModel()
    yield server
    server.close()


@pytest.fixture(scope="session")
def playground_service(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts, model: FakeModel
) -> Iterator[Service]:
    # wasmtime only: the page's runtime select then has an engine this server lacks.
    svc = Service(
        tmp_path_factory.mktemp("playground-service"),
        pool_size="2",
        pyodide_enabled="false",
        queue_timeout_ms="30000",
        build_on_start="false",
        openai_base_url=model.base_url,
        openai_api_key=MODEL_KEY,
        model="fake-coder",
    )
    yield svc
    svc.close()


# Module scope, not session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and later tests call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs it (scripts/install-browser)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Seen:
    """What a page did besides rendering: every request it made, and every script fault."""

    requests: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def request(self, request: Request) -> None:
        self.requests.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        # A refused request (the 401 test) is logged as an error too; a broken script or a
        # Content-Security-Policy violation is a fault.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.faults.append(message.text)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@contextlib.contextmanager
def open_page(browser: Browser, seen: Seen, viewport: ViewportSize | None = None) -> Iterator[Page]:
    """A page in a fresh context (empty localStorage) that records into ``seen``."""
    ctx = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    ctx.set_default_timeout(WAIT_MS)
    page = ctx.new_page()
    page.on("request", seen.request)
    page.on("console", seen.console)
    page.on("pageerror", lambda error: seen.faults.append(f"uncaught: {error}"))
    try:
        yield page
    finally:
        ctx.close()


def only_loopback(seen: Seen, base_url: str) -> None:
    """Assert the page fetched nothing from anywhere but the service under test."""
    origin = urlsplit(base_url)
    assert seen.requests, "the page made no requests at all"
    for url in seen.requests:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
    assert seen.faults == []
