"""What a newcomer meets in the playground: a server without a model says so up front and
makes Run the main action; the code survives a reload (the key does not); stdin, files,
allowed hosts and memory are in a "More" section; the key hint names this server's file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Browser, Page, Route, expect

from app.config import Settings
from app.routes.playground import setup_of
from tests.conftest import ADMIN_KEY, Service
from tests.loopback import LoopbackServer
from tests.playground.conftest import Seen, only_loopback, open_page

SETUP = "/playground/setup.json"
SECRETS_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize(
    ("admin_key", "environment", "model", "generated"),
    [
        (None, "development", False, True),
        (ADMIN_KEY, "development", True, False),
        (ADMIN_KEY, "production", False, False),
    ],
    ids=["generated-key", "operator-key", "production"],
)
def test_setup_says_model_and_where_the_key_was_written(
    tmp_path: Path, admin_key: str | None, environment: str, model: bool, generated: bool
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        admin_key=admin_key,
        environment=environment,
        secrets_key=SECRETS_KEY,
        build_on_start=False,
    )
    key_file = str(tmp_path / "admin-key") if generated else None
    assert setup_of(settings, model=model) == {"model": model, "admin_key_file": key_file}


def test_setup_is_served_without_a_key(service: Service) -> None:
    answer = httpx.get(service.url + SETUP, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    # The test service's admin key is the operator's (SANDLOT_ADMIN_KEY): no file to name.
    assert answer.json() == {"model": False, "admin_key_file": None}


def _primary(page: Page, button: str) -> bool:
    """Whether the button has the accent background (the main action)."""
    colour = page.get_by_role("button", name=button).evaluate(
        "b => getComputedStyle(b).backgroundColor"
    )
    run = page.get_by_role("button", name="Run").evaluate(
        "b => getComputedStyle(b).backgroundColor"
    )
    return bool(colour == run)


@pytest.mark.slow
def test_without_a_model_run_is_the_main_action(
    browser: Browser, seen: Seen, service: Service
) -> None:
    with open_page(browser, seen) as page:
        page.goto(service.url + "/")
        notice = page.locator("#model-notice")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text("No model is configured")
        expect(page.locator("body")).to_have_attribute("data-model", "none")
        assert not _primary(page, "Generate")
    only_loopback(seen, service.url)


@pytest.mark.slow
def test_with_a_model_generate_stays_the_main_action(
    browser: Browser, seen: Seen, playground_service: Service
) -> None:
    with open_page(browser, seen) as page:
        page.goto(playground_service.url + "/")
        expect(page.locator("#key-source")).to_contain_text("SANDLOT_ADMIN_KEY")
        page.wait_for_load_state("networkidle")
        expect(page.locator("#model-notice")).to_be_hidden()
        assert _primary(page, "Generate")
    only_loopback(seen, playground_service.url)


@pytest.mark.slow
def test_the_key_hint_names_the_file_this_server_wrote(
    browser: Browser, seen: Seen, playground_service: Service
) -> None:
    where = "/srv/sandlot/data/admin-key"

    def setup(route: Route) -> None:
        route.fulfill(json={"model": True, "admin_key_file": where})

    with open_page(browser, seen) as page:
        page.route("**" + SETUP, setup)
        page.goto(playground_service.url + "/")
        expect(page.locator("#key-file")).to_have_text(where)
        page.get_by_role("button", name="Run").click()
        expect(page.get_by_role("alert")).to_contain_text(where)
    only_loopback(seen, playground_service.url)


@pytest.mark.slow
def test_the_code_survives_a_reload_and_the_key_does_not(
    browser: Browser, seen: Seen, playground_service: Service
) -> None:
    with open_page(browser, seen) as page:
        page.goto(playground_service.url + "/")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_label("Code", exact=True).fill("print('kept')\n")
        page.reload()
        expect(page.get_by_label("Code", exact=True)).to_have_value("print('kept')\n")
        expect(page.get_by_label("API key")).to_have_value("")
        stored = page.evaluate("JSON.stringify(Object.entries(localStorage))")
        assert ADMIN_KEY not in stored
    only_loopback(seen, playground_service.url)


@pytest.fixture
def echo() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


@pytest.mark.slow
def test_more_sends_stdin_files_allowed_hosts_and_memory(
    browser: Browser, seen: Seen, playground_service: Service, echo: LoopbackServer
) -> None:
    code = (
        "from sandlot import fetch\n"
        "print(input())\n"
        "print(open('data.bin', 'rb').read().hex())\n"
        f"print(fetch('{echo.url}/hello').text)\n"
    )
    with open_page(browser, seen) as page:
        page.goto(playground_service.url + "/")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_label("Code", exact=True).fill(code)
        more = page.locator("#more")
        expect(page.get_by_label("Standard input")).to_be_hidden()  # collapsed at first
        more.locator("summary").click()
        page.get_by_label("Standard input").fill("typed")
        page.get_by_label("Files").set_input_files(
            [{"name": "data.bin", "mimeType": "application/octet-stream", "buffer": b"\x00\xff"}]
        )
        page.get_by_label("Allowed hosts").fill(echo.host)
        page.get_by_label("Memory limit (MiB)").fill("256")
        with page.expect_request("**/v1/execute") as sent:
            page.get_by_role("button", name="Run").click()
        expect(page.locator("#status")).to_have_text("ok")
        output = page.locator("#output")
        expect(output).to_contain_text("typed\n00ff\n")
        expect(output).to_contain_text(f"GET {echo.url}/hello → 200\nhello from loopback")
        body = json.loads(sent.value.post_data or "{}")
        assert body["limits"] == {"memory_mb": 256}
        assert body["allowed_hosts"] == [echo.host]
        assert body["files"] == {"data.bin": {"content": "AP8=", "encoding": "base64"}}
    only_loopback(seen, playground_service.url)
