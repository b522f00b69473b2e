"""Guest code reaching the network through the egress gate, end to end.

Every "must not reach" case points at a loopback canary server and checks it
saw zero requests: a refusal that still sent a packet fails the test.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Run
from tests.loopback import LoopbackServer


def test_fetch_reaches_an_allowed_host(run: Run, loopback: LoopbackServer) -> None:
    code = (
        "from sandlot import fetch\n"
        f"r = fetch('{loopback.url}/echo', method='POST', headers={{'x-token': 'abc'}},\n"
        "          json={'n': 1})\n"
        "r.raise_for_status()\n"
        "data = r.json()\n"
        "[r.status, data['method'], data['headers']['x-token'], data['body']]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [200, "POST", "abc", '{"n": 1}']
    assert loopback.hits == [("POST", "/echo")]
    [sub] = body["subrequests"]
    assert sub["allowed"] is True
    assert sub["status"] == 200
    assert sub["method"] == "POST"
    assert sub["url"] == f"{loopback.url}/echo"
    assert body["usage"]["subrequests"] == 1


def test_urllib_goes_through_the_gate(run: Run, loopback: LoopbackServer) -> None:
    code = (
        "import urllib.request, json\n"
        f"with urllib.request.urlopen('{loopback.url}/json') as r:\n"
        "    answer = [json.load(r)['answer'], r.status]\n"
        "answer"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [42, 200]
    assert loopback.hit_count == 1


def test_urllib_refusal_traceback_keeps_stdlib_frames_only(
    run: Run, canary: LoopbackServer
) -> None:
    code = f"import urllib.request\nurllib.request.urlopen('{canary.url}/hello')"
    body = run(code)
    assert body["error"]["type"] == "URLError"
    traceback = body["error"]["traceback"]
    assert 'File "main.py", line 2' in traceback
    assert "urllib/request.py" in traceback
    assert "_sandlot_boot" not in traceback
    assert canary.hit_count == 0


def test_urllib_raises_http_error_for_4xx(run: Run, loopback: LoopbackServer) -> None:
    code = (
        "import urllib.request, urllib.error\n"
        "try:\n"
        f"    urllib.request.urlopen('{loopback.url}/missing')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["stdout"] == "404\n"


def test_denied_host_is_refused_without_a_packet(run: Run, canary: LoopbackServer) -> None:
    code = f"from sandlot import fetch\nfetch('{canary.url}/hello')"
    body = run(code, allowed_hosts=[])
    assert body["status"] == "error"
    assert body["error"]["type"] == "FetchError"
    assert "allowlist" in body["error"]["message"]
    assert body["subrequests"][0]["allowed"] is False
    assert canary.hit_count == 0
    # The traceback ends at the user's call, not inside the sandbox's fetch.
    traceback = body["error"]["traceback"]
    assert traceback.splitlines()[1] == '  File "main.py", line 2, in <module>'
    assert "sandlot/__init__.py" not in traceback


def test_allowlist_port_must_match(
    run: Run, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    code = f"from sandlot import fetch\nfetch('{canary.url}/hello')"
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "error"
    assert canary.hit_count == 0


def test_redirect_to_a_denied_host_is_refused(
    run: Run, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    code = f"from sandlot import fetch\nfetch('{loopback.url}/redirect?to={canary.url}/hello')"
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "error"
    assert body["error"]["type"] == "FetchError"
    assert loopback.hit_count == 1
    assert canary.hit_count == 0
    assert [s["allowed"] for s in body["subrequests"]] == [True, False]


def test_redirect_within_the_allowlist_is_followed(run: Run, loopback: LoopbackServer) -> None:
    code = (
        "from sandlot import fetch\n"
        f"r = fetch('{loopback.url}/redirect?to=/hello')\n"
        "[r.status, r.text, r.url]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["result"]["json"] == [200, "hello from loopback", f"{loopback.url}/hello"]
    assert body["usage"]["subrequests"] == 2


def test_loopback_by_name_is_refused_as_a_private_address(run: Run, canary: LoopbackServer) -> None:
    # 'localhost' resolves to a loopback address: only an explicit IP entry allows that.
    code = f"from sandlot import fetch\nfetch('http://localhost:{canary.port}/hello')"
    body = run(code, allowed_hosts=[f"localhost:{canary.port}"])
    assert body["status"] == "error"
    assert body["subrequests"][0]["reason"] == "private_address"
    assert canary.hit_count == 0


@pytest.mark.parametrize(
    "url_template",
    [
        "http://{allowed}@{canary}/hello",
        "http://{canary}\\@{allowed}/hello",
        "http://{canary}#@{allowed}/hello",
        "http://2130706433:{canary_port}/hello",
        "http://0x7f.0.0.1:{canary_port}/hello",
        "http://127.1:{canary_port}/hello",
        "http://[::ffff:127.0.0.1]:{canary_port}/hello",
        "ftp://{canary}/hello",
        "file:///etc/passwd",
    ],
    ids=[
        "userinfo",
        "backslash",
        "fragment-at",
        "decimal-ip",
        "hex-ip",
        "short-ip",
        "mapped-ipv6",
        "ftp-scheme",
        "file-scheme",
    ],
)
def test_url_tricks_send_nothing_to_the_canary(
    run: Run,
    loopback: LoopbackServer,
    canary: LoopbackServer,
    url_template: str,
) -> None:
    url = url_template.format(allowed=loopback.host, canary=canary.host, canary_port=canary.port)
    code = f"from sandlot import fetch\nfetch({url!r})"
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "error", body
    assert canary.hit_count == 0


@pytest.mark.parametrize(
    "code",
    [
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "import asyncio\nasyncio.run(asyncio.open_connection('127.0.0.1', {port}))",
    ],
    ids=["socket", "asyncio-streams"],
)
def test_no_way_around_the_gate(run: Run, canary: LoopbackServer, code: str) -> None:
    # Sockets don't exist, even to an allowed host. (http.client, urllib and requests go
    # through the gate: tests/conformance/test_http_clients.py.)
    body = run(code.format(port=canary.port), allowed_hosts=[canary.host])
    assert body["status"] == "error"
    assert canary.hit_count == 0


def test_response_size_is_capped(run: Run, loopback: LoopbackServer) -> None:
    code = f"from sandlot import fetch\nfetch('{loopback.url}/big?bytes=20000000')"
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "error"
    assert body["subrequests"][0]["reason"] == "response_too_large"


def test_slow_upstream_is_cut_at_the_wall_limit(run: Run, loopback: LoopbackServer) -> None:
    code = f"from sandlot import fetch\nfetch('{loopback.url}/slow?ms=5000')"
    body = run(code, allowed_hosts=[loopback.host], limits={"wall_ms": 1000})
    assert body["status"] == "wall_limit"
    assert body["usage"]["wall_ms"] < 2500
