"""Issue 11, finding 3: a tenant's page served by path dispatch on the API's origin.

The attack: a worker serves HTML; the page is opened in the browser that used the
playground, and its script reads the origin's storage for the playground's API key and
calls the API with it. It must find no key, and storage must not even be reachable
(the page runs in an opaque origin).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import ADMIN_KEY, Service
from tests.playground.conftest import Seen, open_page

pytestmark = pytest.mark.slow

# Everything a same-origin page could use to reach the playground's key, and what it got.
ATTACK_PAGE = """<!doctype html>
<title>tenant</title>
<pre id="report"></pre>
<script>
const report = {};
function attempt(name, read) {
  try {
    report[name] = { ok: true, value: read() };
  } catch (error) {
    report[name] = { ok: false, error: error.name };
  }
}
attempt("origin", () => self.origin);
attempt("local", () => Object.fromEntries(Object.entries(localStorage)));
attempt("session", () => Object.fromEntries(Object.entries(sessionStorage)));
attempt("cookie", () => document.cookie);
(async () => {
  const stored = Object.values({ ...report.local.value, ...report.session.value });
  const key = stored.find((value) => String(value).startsWith("test-admin-key")) || "";
  try {
    const answer = await fetch("/v1/namespaces", {
      credentials: "include",
      headers: key ? { authorization: "Bearer " + key } : {},
    });
    report.api = { ok: true, status: answer.status, body: await answer.text() };
  } catch (error) {
    report.api = { ok: false, error: error.name };
  }
  document.getElementById("report").textContent = JSON.stringify(report);
})();
</script>
"""

WORKER = f"""
from workers import Response

PAGE = {ATTACK_PAGE!r}

def on_fetch(request, env):
    # The worker tries to lift the sandbox and to have its body sniffed.
    return Response(PAGE, headers={{
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": "sandbox allow-scripts allow-same-origin",
        "x-content-type-options": "sniff-please",
    }})
"""


@pytest.fixture
def tenant_page(playground_service: Service) -> str:
    namespace = "t-" + secrets.token_hex(4)
    with playground_service.client() as admin:
        assert admin.post("/v1/namespaces", json={"name": namespace}).status_code == 201
        put = admin.put(
            f"/v1/namespaces/{namespace}/workers/site", json={"modules": {"main.py": WORKER}}
        )
        assert put.status_code == 200, put.text
    return f"{playground_service.url}/dispatch/{namespace}/site/"


@pytest.fixture
def page(browser: Browser, seen: Seen) -> Iterator[Page]:
    with open_page(browser, seen) as opened:
        yield opened


def storage_values(page: Page) -> list[str]:
    values: list[str] = page.evaluate(
        "[...Object.values(localStorage), ...Object.values(sessionStorage)]"
    )
    return values


def test_the_playground_keeps_the_key_out_of_storage(
    page: Page, playground_service: Service
) -> None:
    page.goto(playground_service.url + "/")
    page.get_by_label("API key").fill(ADMIN_KEY)
    page.get_by_label("Runtime").select_option("wasmtime")
    assert page.get_by_label("API key").input_value() == ADMIN_KEY
    assert not any(ADMIN_KEY in value for value in storage_values(page))


def test_a_key_stored_by_an_earlier_playground_is_removed(
    page: Page, playground_service: Service
) -> None:
    page.goto(playground_service.url + "/")
    page.evaluate(f"localStorage.setItem('sandlot.playground.key', {ADMIN_KEY!r})")
    page.reload()
    page.get_by_label("API key").wait_for()
    assert page.get_by_label("API key").input_value() == ""
    assert not any(ADMIN_KEY in value for value in storage_values(page))


def test_a_tenant_page_gets_an_opaque_origin_and_no_key(
    page: Page, playground_service: Service, tenant_page: str
) -> None:
    # The browser used the playground (as a user would), then opens the tenant's page.
    page.goto(playground_service.url + "/")
    page.get_by_label("API key").fill(ADMIN_KEY)
    page.goto(tenant_page)
    page.wait_for_function("document.getElementById('report').textContent !== ''")
    text = page.locator("#report").text_content() or ""
    report: dict[str, Any] = json.loads(text)

    assert ADMIN_KEY not in text
    assert report["origin"] == {"ok": True, "value": "null"}
    assert report["local"] == {"ok": False, "error": "SecurityError"}
    assert report["session"] == {"ok": False, "error": "SecurityError"}
    assert report["cookie"]["ok"] is False
    # A cross-origin call from "null" without CORS: the page can't read any answer.
    assert report["api"] == {"ok": False, "error": "TypeError"}


def test_dispatched_responses_carry_the_sandbox(
    playground_service: Service, tenant_page: str
) -> None:
    response = httpx.get(tenant_page, timeout=60)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    policies = response.headers.get_list("content-security-policy")
    ours = [p for p in policies if "allow-same-origin" not in p]
    assert ours == ["sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"]
