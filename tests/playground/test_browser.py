"""The playground in Chromium against the real service: generate, repair, edit, run, stop.

Each test waits on what the page shows (Playwright's expect polls), never on sleeps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ai.fake_model import FakeModel, Reply
from tests.conftest import ADMIN_KEY, Service
from tests.playground.conftest import WAIT_MS, Seen, only_loopback, open_page

pytestmark = pytest.mark.slow

BROKEN = "print('trying')\ndef parse(text):\n    raise ValueError('bad-token-' + text)\nparse('42')"
FIXED = "def parse(text):\n    return int(text)\nprint('parsed', parse('42'))\nparse('42')"


@pytest.fixture
def page(browser: Browser, seen: Seen, playground_service: Service) -> Iterator[Page]:
    with open_page(browser, seen) as opened:
        opened.goto(playground_service.url + "/")
        yield opened
    only_loopback(seen, playground_service.url)


def enter_key(page: Page, key: str = ADMIN_KEY) -> None:
    page.get_by_label("API key").fill(key)


def test_generate_streams_repairs_then_edit_and_run(page: Page, model: FakeModel) -> None:
    # The first answer streams slowly enough to be seen arriving token by token.
    first = Reply.code(BROKEN, prose="Parsing it directly.")
    model.reset(Reply(text=first.text, chunk_delay_s=0.05), Reply.code(FIXED))
    enter_key(page)
    page.get_by_label("Task").fill("Parse '42' as an integer.")
    page.get_by_role("button", name="Generate").click()
    editor = page.get_by_label("Code", exact=True)
    badge = page.locator("#status")

    # The model's raw answer streams into the editor before the code is extracted.
    page.wait_for_function(
        "() => document.getElementById('code').value.includes('Parsing it directly')", polling=20
    )
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    expect(badge).to_have_text("ok", timeout=WAIT_MS)

    attempts = page.get_by_role("list", name="Attempts").get_by_role("listitem")
    expect(attempts).to_have_text(["attempt 1 (generate): error", "attempt 2 (repair): ok"])
    expect(editor).to_have_value(FIXED + "\n")
    output = page.locator("#output")
    expect(output).to_contain_text("── attempt 1 (generate) ──\ntrying\n")
    expect(output).to_contain_text("── attempt 2 (repair) ──\nparsed 42\n")
    expect(page.locator("#result-value")).to_have_text("42")
    expect(page.locator("#traceback")).to_be_hidden()
    expect(page.locator("#summary")).to_have_text("ok: run ok, 2 attempts")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    assert len(model.requests) == 2
    assert model.requests[0].last_user == "Parse '42' as an integer."

    # Edit the code and run it again: /v1/execute, not the model.
    editor.fill(FIXED.replace("'parsed'", "'edited'").replace("'42'", "'43'"))
    page.get_by_role("button", name="Run").click()
    expect(badge).to_have_text("ok")
    expect(output).to_have_text("edited 43\n")
    expect(page.locator("#result-value")).to_have_text("43")
    expect(page.locator("#summary")).to_contain_text("ok: ")
    assert len(model.requests) == 2


def test_the_keyboard_indents_and_runs(page: Page) -> None:
    enter_key(page)
    editor = page.get_by_label("Code", exact=True)
    editor.fill("")
    editor.press_sequentially("for i in range(2):\n")
    editor.press("Tab")
    editor.press_sequentially("print('row', i)\n1/0")
    expect(editor).to_have_value("for i in range(2):\n    print('row', i)\n1/0")
    editor.press("Control+Enter")
    expect(page.locator("#status")).to_have_text("error")
    # stdout, then the uncaught exception's traceback on stderr, as python prints them.
    output = page.locator("#output")
    expect(output).to_contain_text("row 0\nrow 1\nTraceback (most recent call last)")
    expect(output).to_contain_text("ZeroDivisionError: division by zero")
    traceback = page.locator("#traceback")
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text('File "main.py", line 3')
    expect(traceback).to_contain_text("ZeroDivisionError: division by zero")
    # Esc, then Tab, leaves the editor for the next control.
    editor.press("Escape")
    editor.press("Tab")
    expect(page.get_by_role("button", name="Run")).to_be_focused()


def test_charts_show_as_images_and_html_runs_no_script(page: Page, seen: Seen) -> None:
    # HTML from a run renders in a sandboxed frame: its script must not run, on the
    # playground's origin or anywhere (it would set window.top.pwned or the frame's text).
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
        "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    )
    html = (
        "<table><tr><td>cell-ok</td></tr></table>"
        "<script>document.body.append('script-ran'); window.top.pwned = 1;</script>"
        "<img src=x onerror=window.top.pwned=2>"
    )
    code = (
        "import base64, sandlot\n"
        f"sandlot.display(base64.b64decode('{png}'), mime_type='image/png')\n"
        f"sandlot.display({html!r}, mime_type='text/html')\n"
    )
    enter_key(page)
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#status")).to_have_text("ok")
    image = page.get_by_role("img", name="image/png output")
    expect(image).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('#outputs img'); "
        "return i && i.complete && i.naturalWidth === 1; }",
        polling=20,
    )
    frame_element = page.locator("#outputs iframe")
    expect(frame_element).to_have_attribute("sandbox", "")
    frame = page.frame_locator("#outputs iframe")
    expect(frame.locator("td")).to_have_text("cell-ok")
    expect(frame.locator("body")).not_to_contain_text("script-ran")
    assert page.evaluate("() => window.pwned") is None
    # The browser says why: the frame's sandbox refused both scripts. Those are the only
    # faults expected; any other still fails the test.
    blocked = [f for f in seen.faults if "Blocked script execution in 'about:srcdoc'" in f]
    assert blocked, seen.faults
    seen.faults[:] = [f for f in seen.faults if f not in blocked]


def test_refusals_are_shown_in_plain_words(page: Page, playground_service: Service) -> None:
    message = page.get_by_role("alert")
    page.get_by_role("button", name="Run").click()
    expect(message).to_have_text(re.compile(r"^Enter an API key first"))

    enter_key(page, "sk_not_a_real_key")
    page.get_by_label("Code", exact=True).fill("print('never runs')")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#status")).to_have_text("HTTP 401")
    expect(message).to_have_text(
        "The API key was not accepted: the API key is not valid. Paste a valid key above."
    )
    expect(page.locator("#output")).to_have_text("")

    enter_key(page)
    page.get_by_label("Runtime").select_option("pyodide")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#status")).to_have_text("HTTP 422")
    expect(message).to_have_text(
        "The request was refused: runtime: the pyodide engine is not enabled on this server."
    )

    page.get_by_label("Runtime").select_option("wasmtime")
    page.get_by_label("CPU limit (ms)").fill("999999999")
    page.get_by_role("button", name="Run").click()
    expect(message).to_contain_text("The request was refused: limits.cpu_ms: ")

    # The runtime is remembered by this browser; the key is not (it lives in the page only).
    page.reload()
    expect(page.get_by_label("API key")).to_have_value("")
    expect(page.get_by_label("Runtime")).to_have_value("wasmtime")


def test_stop_aborts_a_long_run(page: Page, playground_service: Service) -> None:
    canceled_before = playground_service.log().count("canceled by the caller")
    enter_key(page)
    page.get_by_label("CPU limit (ms)").fill("60000")
    page.get_by_label("Wall limit (ms)").fill("60000")
    page.get_by_label("Code", exact=True).fill(
        "print('spinning', flush=True)\nwhile True:\n    pass"
    )
    started = time.monotonic()
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#output")).to_have_text("spinning\n")
    expect(page.locator("#status")).to_have_text("running")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#status")).to_have_text("stopped")
    expect(page.locator("#summary")).to_contain_text("Stopped")
    expect(page.get_by_role("button", name="Run")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    # The service saw the caller leave and canceled the run, long before its limits.
    deadline = time.monotonic() + 10
    while playground_service.log().count("canceled by the caller") == canceled_before:
        assert time.monotonic() < deadline, "the service did not cancel the run"
        time.sleep(0.05)
    assert time.monotonic() - started < 30


def test_a_model_failure_ends_the_generation(page: Page, model: FakeModel) -> None:
    model.reset(Reply.error(500))
    enter_key(page)
    page.get_by_label("Task").fill("Anything.")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status")).to_have_text("model_error")
    expect(page.locator("#summary")).to_have_text("model_error: run none, 1 attempt")
    expect(page.get_by_role("alert")).to_have_text(re.compile(r"^model_server_error: "))
    expect(page.get_by_role("list", name="Attempts")).to_have_text("attempt 1 (generate)")


def test_a_server_without_a_model_says_so(browser: Browser, seen: Seen, service: Service) -> None:
    with open_page(browser, seen) as page:
        page.goto(service.url + "/")
        enter_key(page)
        page.get_by_label("Task").fill("Anything.")
        page.get_by_label("Task").press("Control+Enter")
        expect(page.locator("#status")).to_have_text("HTTP 503")
        expect(page.get_by_role("alert")).to_have_text(
            re.compile(r"^The service can't do this now: no model is configured for /v1/generate")
        )
    only_loopback(seen, service.url)


def test_a_narrow_screen_fits(browser: Browser, seen: Seen, playground_service: Service) -> None:
    with open_page(browser, seen, viewport={"width": 360, "height": 740}) as page:
        page.goto(playground_service.url + "/")
        expect(page.get_by_role("button", name="Generate")).to_be_visible()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0
        # One column: the output sits below the editor.
        code = page.get_by_label("Code", exact=True).bounding_box()
        output = page.locator("#output").bounding_box()
        assert code is not None and output is not None
        assert output["y"] > code["y"] + code["height"]
    only_loopback(seen, playground_service.url)


def test_keep_state_runs_in_one_session_and_lists_its_files(
    page: Page, playground_service: Service
) -> None:
    enter_key(page)
    page.get_by_label("Keep state").check()
    code = page.get_by_label("Code", exact=True)
    code.fill("x = 41\nopen('notes.txt', 'w').write('kept')")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#status")).to_have_text("ok")
    files = page.get_by_label("What the session holds")
    expect(files).to_contain_text("notes.txt (4 bytes)")
    code.fill("x + 1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#result-value")).to_have_text("42")
    state = page.locator("#session-state")
    expect(state).to_contain_text("1 file")
    session_id = re.search(r"ses_[\w-]+", state.inner_text())
    assert session_id is not None
    # Unticking closes it: the next run is fresh again.
    page.get_by_label("Keep state").uncheck()
    expect(state).to_contain_text("closed")
    with playground_service.client() as admin:
        closed = admin.get(f"/v1/sessions/{session_id.group(0)}")
        assert closed.json()["ended_reason"] == "closed"
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#status")).to_have_text("error")
    expect(page.locator("#traceback")).to_contain_text("NameError")


def test_keep_state_on_pyodide_and_a_new_runtime_starts_a_new_session(
    browser: Browser, seen: Seen, service: Service
) -> None:
    # The session service has both engines (the playground's has wasmtime only).
    with open_page(browser, seen) as page:
        page.goto(service.url + "/")
        enter_key(page)
        page.get_by_label("Runtime").select_option("pyodide")
        page.get_by_label("Keep state").check()
        code = page.get_by_label("Code", exact=True)
        code.fill("import sys\nx = 41\nopen('kept.txt', 'w').write(sys.platform)")
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator("#status")).to_have_text("ok")
        state = page.locator("#session-state")
        expect(state).to_contain_text("(pyodide): 1 file")
        expect(page.get_by_label("What the session holds")).to_contain_text(
            "kept.txt (10 bytes)"  # "emscripten": the file came from Pyodide's interpreter
        )
        code.fill("x + 1")
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator("#result-value")).to_have_text("42")
        session_id = re.search(r"ses_[\w-]+", state.inner_text())
        assert session_id is not None
        with service.client() as admin:
            kept = admin.get(f"/v1/sessions/{session_id.group(0)}").json()
            assert (kept["runtime"], kept["state"]) == ("pyodide", "open")
        # Another runtime: the kept session closes, the next run opens one on wasmtime.
        page.get_by_label("Runtime").select_option("wasmtime")
        expect(state).to_contain_text("closed")
        code.fill("import sys\nprint(sys.platform, 'x' in globals())")
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator("#output")).to_contain_text("wasi False")
        expect(state).to_contain_text("(wasmtime): 0 files")
        with service.client() as admin:
            closed = admin.get(f"/v1/sessions/{session_id.group(0)}").json()
            assert closed["ended_reason"] == "closed"
        page.get_by_label("Keep state").uncheck()
        expect(state).to_contain_text("closed")
    only_loopback(seen, service.url)


def test_a_turn_past_a_limit_ends_the_kept_session(page: Page) -> None:
    enter_key(page)
    page.get_by_label("Keep state").check()
    page.get_by_label("CPU limit (ms)").fill("200")
    code = page.get_by_label("Code", exact=True)
    code.fill("y = 1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#status")).to_have_text("ok")
    code.fill("while True:\n    pass")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#status")).to_have_text("cpu_limit")
    expect(page.locator("#session-state")).to_contain_text("ended (cpu_limit)")
    # The next run opens a new session: y is gone.
    code.fill("'y' in globals()")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#result-value")).to_have_text("False")
