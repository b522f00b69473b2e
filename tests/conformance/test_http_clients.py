"""Every HTTP client a guest can use goes through the egress gate, on every engine.

sandlot.fetch, urllib.request, http.client and requests (an installed package: the
component guest has none) each reach an allowed loopback server, and each is refused
for a host outside ``allowed_hosts`` with the gate's message, while that host (a
canary) sees no request at all. Then what users of requests and http.client expect:
redirects (clients that follow them do so hop by hop, each hop through the gate),
status codes, headers, streaming reads, timeouts.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Run, engine_gap
from tests.loopback import LoopbackServer

# Each client: code that GETs {url}/json (-> [status, answer]), and the exception type a
# refusal raises (the gate's message must be in it).
CLIENTS = {
    "sandlot.fetch": (
        "from sandlot import fetch\nr = fetch('{url}/json')\n[r.status, r.json()['answer']]",
        "FetchError",
    ),
    "urllib.request": (
        "import json, urllib.request\n"
        "with urllib.request.urlopen('{url}/json', timeout=5) as r:\n"
        "    answer = [r.status, json.load(r)['answer']]\n"
        "answer",
        "URLError",
    ),
    # build_opener() makes its own HTTPSHandler: where there is no ssl module (the WASI
    # guests) the guest supplies one over the gate's http.client.
    "urllib opener": (
        "import json, urllib.request\n"
        "opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=None))\n"
        "with opener.open('{url}/json', timeout=5) as r:\n"
        "    answer = [r.status, json.load(r)['answer']]\n"
        "answer",
        # The gate's http.client sends when the response is read, past the try in which
        # urllib's do_open turns OSError into URLError: the refusal is the FetchError.
        "FetchError",
    ),
    "http.client": (
        "import http.client, json\n"
        "c = http.client.HTTPConnection('{host}', {port}, timeout=5)\n"
        "c.request('GET', '/json')\n"
        "r = c.getresponse()\n"
        "[r.status, json.loads(r.read())['answer']]",
        "FetchError",
    ),
    "requests": (
        "import requests\n"
        "r = requests.get('{url}/json', timeout=5)\n"
        "[r.status_code, r.json()['answer']]",
        "ConnectionError",
    ),
}


def _code(library: str, server: LoopbackServer) -> str:
    host, port = server.host.split(":")
    return CLIENTS[library][0].format(url=server.url, host=host, port=port)


@pytest.mark.parametrize("library", CLIENTS)
def test_client_reaches_an_allowed_host(
    run: Run, engine: str, library: str, loopback: LoopbackServer
) -> None:
    if library == "requests":
        engine_gap(engine, "component", "no packages (the data-stack guest has them)")
    body = run(_code(library, loopback), allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [200, 42]
    assert loopback.hits == [("GET", "/json")]
    assert [sub["status"] for sub in body["subrequests"]] == [200]


@pytest.mark.parametrize("library", CLIENTS)
def test_client_is_refused_outside_the_allowlist_without_a_packet(
    run: Run, engine: str, library: str, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    if library == "requests":
        engine_gap(engine, "component", "no packages (the data-stack guest has them)")
    code = (
        "try:\n"
        + "".join(f"    {line}\n" for line in _code(library, canary).splitlines()[:-1])
        + "    outcome = 'reached'\n"
        "except Exception as exc:\n"
        "    outcome = [type(exc).__name__, str(exc)]\n"
        "outcome"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    name, message = body["result"]["json"]
    assert name == CLIENTS[library][1]
    assert "egress denied" in message and "not in the allowlist" in message, message
    assert canary.hit_count == 0


def _requests_engines(engine: str) -> None:
    engine_gap(engine, "component", "no packages (the data-stack guest has them)")


def test_requests_redirects_status_codes_and_headers(
    run: Run, engine: str, loopback: LoopbackServer
) -> None:
    _requests_engines(engine)
    code = (
        "import requests\n"
        f"base = '{loopback.url}'\n"
        "moved = requests.get(f'{base}/redirect', params={'to': f'{base}/json'}, timeout=5)\n"
        "missing = requests.get(f'{base}/nope', timeout=5)\n"
        "try:\n"
        "    missing.raise_for_status()\n"
        "    raised = None\n"
        "except requests.HTTPError as exc:\n"
        "    raised = exc.response.status_code\n"
        "echo = requests.post(f'{base}/echo', json={'n': 1}, headers={'x-token': 'abc'},\n"
        "                     timeout=5).json()\n"
        "[moved.status_code, moved.json(), missing.status_code, missing.reason, raised,\n"
        " missing.headers['content-type'], echo['method'], echo['headers']['x-token'],\n"
        " echo['headers']['content-type'], echo['body']]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [
        200,
        {"answer": 42},
        404,
        "Not Found",
        404,
        "text/plain",
        "POST",
        "abc",
        "application/json",
        '{"n": 1}',
    ]


def test_requests_follows_redirects_itself_each_hop_through_the_gate(
    run: Run, engine: str, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    _requests_engines(engine)
    code = (
        "import requests\n"
        f"base, canary = '{loopback.url}', '{canary.url}'\n"
        "moved = requests.get(f'{base}/redirect', params={'to': f'{base}/json'}, timeout=5)\n"
        "kept = requests.get(f'{base}/redirect', params={'to': f'{base}/json'},\n"
        "                    allow_redirects=False, timeout=5)\n"
        "try:\n"
        "    requests.get(f'{base}/redirect', params={'to': f'{canary}/hello'}, timeout=5)\n"
        "    away = 'reached'\n"
        "except requests.ConnectionError as exc:\n"
        "    away = 'egress denied' in str(exc)\n"
        "[moved.url == f'{base}/json', [r.status_code for r in moved.history],\n"
        " kept.status_code, kept.headers['location'] == f'{base}/json', kept.is_redirect, away]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [True, [302], 302, True, True, True]
    assert canary.hit_count == 0
    # Every hop was a request of its own through the gate.
    assert [sub["status"] for sub in body["subrequests"]] == [302, 200, 302, 302, None]


def test_http_client_and_fetch_see_a_redirect_only_when_asked(
    run: Run, loopback: LoopbackServer
) -> None:
    host, port = loopback.host.split(":")
    code = (
        "import http.client\n"
        "from sandlot import fetch\n"
        f"target = '{loopback.url}/json'\n"
        f"c = http.client.HTTPConnection('{host}', {port}, timeout=5)\n"
        "c.request('GET', '/redirect?to=' + target)\n"
        "r = c.getresponse()\n"
        "raw = [r.status, r.getheader('location') == target, r.read()]\n"
        f"followed = fetch('{loopback.url}/redirect?to=' + target)\n"
        f"kept = fetch('{loopback.url}/redirect?to=' + target, follow_redirects=False)\n"
        "[raw[0], raw[1], raw[2].decode(), followed.status, followed.url == target, kept.status]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] == [302, True, "", 200, True, 302]


def test_requests_streams_a_body_in_pieces(run: Run, engine: str, loopback: LoopbackServer) -> None:
    _requests_engines(engine)
    code = (
        "import requests\n"
        f"r = requests.get('{loopback.url}/big?bytes=100000', stream=True, timeout=5)\n"
        "first = r.raw.read(10)\n"
        "sizes = [len(chunk) for chunk in r.iter_content(chunk_size=30000)]\n"
        "[len(first), sizes, int(r.headers['content-length'])]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [10, [30000, 30000, 30000, 9990], 100000]


def test_requests_timeout_is_a_read_timeout(
    run: Run, engine: str, loopback: LoopbackServer
) -> None:
    _requests_engines(engine)
    code = (
        "import requests\n"
        "try:\n"
        f"    requests.get('{loopback.url}/slow?ms=3000', timeout=0.5)\n"
        "    outcome = 'answered'\n"
        "except requests.Timeout as exc:\n"
        "    outcome = type(exc).__name__\n"
        "outcome"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == "ReadTimeout"


def test_http_client_reads_in_pieces_and_sends_chunked_bodies(
    run: Run, loopback: LoopbackServer
) -> None:
    host, port = loopback.host.split(":")
    code = (
        "import http.client, json\n"
        f"c = http.client.HTTPConnection('{host}', {port}, timeout=5)\n"
        "c.request('GET', '/big?bytes=1000')\n"
        "r = c.getresponse()\n"
        "pieces = [len(r.read(300)), len(r.read(300)), len(r.read())]\n"
        "c.request('POST', '/echo', body=iter([b'ab', b'cd']))\n"
        "echo = json.loads(c.getresponse().read())\n"
        "c.putrequest('PUT', '/echo')\n"
        "c.putheader('Content-Length', '3')\n"
        "c.putheader('X-Mine', 'yes')\n"
        "c.endheaders()\n"
        "c.send(b'xyz')\n"
        "put = json.loads(c.getresponse().read())\n"
        "[pieces, r.getheader('content-length'), echo['body'], put['method'],\n"
        " put['headers']['x-mine'], put['body'], isinstance(r, http.client.HTTPResponse)]"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [
        [300, 300, 400],
        "1000",
        "abcd",
        "PUT",
        "yes",
        "xyz",
        True,
    ]


def test_http_client_timeout_is_a_timeout_error(run: Run, loopback: LoopbackServer) -> None:
    host, port = loopback.host.split(":")
    code = (
        "import http.client\n"
        f"c = http.client.HTTPConnection('{host}', {port}, timeout=0.5)\n"
        "c.request('GET', '/slow?ms=3000')\n"
        "try:\n"
        "    c.getresponse()\n"
        "    outcome = 'answered'\n"
        "except TimeoutError as exc:\n"
        "    outcome = 'timeout'\n"
        "outcome"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == "timeout"


def test_urllib3_connections_are_the_gates(run: Run, engine: str) -> None:
    # On Pyodide too: ours replace urllib3's Emscripten ones (no timeouts, no gate errors).
    _requests_engines(engine)
    code = (
        "import requests, urllib3.connection, urllib3.connectionpool as pools\n"
        "[c.__module__ for c in (pools.HTTPConnectionPool.ConnectionCls,\n"
        "    pools.HTTPSConnectionPool.ConnectionCls, urllib3.connection.HTTPSConnection)]"
    )
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] == ["_sandlot_http"] * 3
