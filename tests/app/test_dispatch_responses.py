"""Issue 11, findings 12 and 13: what a worker answers can't break HTTP or leak to strangers.

Finding 12: status 101 went out as is, ``transfer-encoding: chunked`` next to
``content-length``, a wrong length aborted keep-alive, CR/LF or a bad header name
dropped the connection with a traceback. Now: statuses 200-599 only, hop-by-hop
headers dropped, the length computed by the server, and anything that can't be sent
is a 502 with outcome ``invalid_response``.

Finding 13: a worker's exception message (holding its secret) reached anonymous
callers word for word. Now they get a generic message with the run id; keys of the
namespace (and the admin key) get the details, and the service log has them at DEBUG
only.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY, Service

SECRET = "pw-" + secrets.token_hex(8)

WORKER = """
from workers import Response


def status(code):
    response = Response("status " + str(code))
    response.status = code  # past the guest's own check: the host must hold
    return response


ANSWERS = {
    "/101": lambda: status(101),
    "/199": lambda: status(199),
    "/600": lambda: status(600),
    "/not-int": lambda: status("200"),
    "/framing": lambda: Response("framed", headers=[
        ("transfer-encoding", "chunked"),
        ("content-length", "3"),
        ("connection", "close, x-named-by-connection"),
        ("x-named-by-connection", "1"),
        ("keep-alive", "timeout=1"),
        ("upgrade", "h2c"),
        ("te", "trailers"),
        ("trailer", "x-later"),
        ("proxy-authenticate", "Basic"),
        ("x-sandlot-outcome", "error"),
        ("x-kept", "yes"),
    ]),
    "/wrong-length": lambda: Response("four", headers={"content-length": "400"}),
    "/short-length": lambda: Response("a longer body", headers={"content-length": "1"}),
    "/crlf": lambda: Response("x", headers={"x-evil": "a\\r\\nset-cookie: stolen=1"}),
    "/lf": lambda: Response("x", headers={"x-evil": "a\\nb"}),
    "/nul": lambda: Response("x", headers={"x-evil": "a\\x00b"}),
    "/space-name": lambda: Response("x", headers={"bad name": "v"}),
    "/colon-name": lambda: Response("x", headers={"x:y": "v"}),
    "/empty-name": lambda: Response("x", headers={"": "v"}),
    "/not-latin-1": lambda: Response("x", headers={"x-price": "5 \u20ac"}),
    "/cookies": lambda: Response("x", headers=[("set-cookie", "a=1"), ("set-cookie", "b=2")]),
    "/no-content": lambda: Response("a body HTTP forbids", status=204),
}


def on_fetch(request, env):
    if request.path == "/secret":
        raise RuntimeError("could not log in with password " + env.PASSWORD)
    return ANSWERS[request.path]()
"""

INVALID = {
    "/101": "status 101 is not between 200 and 599",
    "/199": "status 199 is not between 200 and 599",
    "/600": "status 600 is not between 200 and 599",
    "/not-int": "status '200' is not between 200 and 599",
    "/crlf": "header 'x-evil' has a value with control or non-latin-1 characters",
    "/lf": "header 'x-evil' has a value with control or non-latin-1 characters",
    "/nul": "header 'x-evil' has a value with control or non-latin-1 characters",
    "/space-name": "header name 'bad name' is not an HTTP token",
    "/colon-name": "header name 'x:y' is not an HTTP token",
    "/empty-name": "header name '' is not an HTTP token",
    "/not-latin-1": "header 'x-price' has a value with control or non-latin-1 characters",
}
KEYED = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def site(service: Service) -> str:
    namespace = "r-" + secrets.token_hex(4)
    with service.client() as admin:
        assert admin.post("/v1/namespaces", json={"name": namespace}).status_code == 201
        put = admin.put(
            f"/v1/namespaces/{namespace}/workers/w",
            json={"modules": {"main.py": WORKER}, "secrets": {"PASSWORD": SECRET}},
        )
        assert put.status_code == 200, put.text
    return f"{service.url}/dispatch/{namespace}/w"


@pytest.fixture
def browser_like(service: Service) -> Iterator[httpx.Client]:
    """One keep-alive connection: a response that breaks framing breaks the next request."""
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=1)) as client:
        yield client


@pytest.mark.parametrize("path", list(INVALID))
def test_an_unsendable_response_is_a_502_invalid_response(
    service: Service, site: str, browser_like: httpx.Client, path: str
) -> None:
    keyed = browser_like.get(site + path, headers=KEYED)
    assert keyed.status_code == 502, keyed.text
    assert keyed.headers["x-sandlot-outcome"] == "invalid_response"
    error = keyed.json()["error"]
    assert error["code"] == "invalid_response"
    assert error["message"] == f"the worker's response can't be sent: {INVALID[path]}"
    assert "stolen" not in keyed.headers.get("set-cookie", "")
    # Anonymous callers learn the outcome and the run id, not the worker's headers.
    anonymous = browser_like.get(site + path)
    assert anonymous.status_code == 502
    run_id = anonymous.json()["run_id"]
    assert anonymous.json()["error"]["message"] == (
        f"the worker ended with invalid_response (run {run_id}); "
        "a key of its namespace sees the details"
    )
    # The connection survived, and nothing was left half-written.
    assert browser_like.get(site + "/cookies").status_code == 200
    assert "Invalid HTTP header" not in service.log()


def test_hop_by_hop_and_framing_headers_are_dropped(site: str, browser_like: httpx.Client) -> None:
    response = browser_like.get(site + "/framing")
    assert (response.status_code, response.text) == (200, "framed")
    for name in (
        "transfer-encoding",
        "connection",
        "x-named-by-connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
    ):
        assert name not in response.headers, name
    assert response.headers["content-length"] == "6"
    assert response.headers["x-kept"] == "yes"
    # The outcome is the platform's to say.
    assert response.headers.get_list("x-sandlot-outcome") == ["ok"]


@pytest.mark.parametrize(
    ("path", "body"), [("/wrong-length", "four"), ("/short-length", "a longer body")]
)
def test_the_server_computes_the_length(
    site: str, browser_like: httpx.Client, path: str, body: str
) -> None:
    for _ in range(2):  # the second request reuses the connection
        response = browser_like.get(site + path)
        assert (response.status_code, response.text) == (200, body)
        assert response.headers["content-length"] == str(len(body))


def test_repeated_headers_survive(site: str) -> None:
    response = httpx.get(site + "/cookies", timeout=60)
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_a_204_carries_no_body(site: str, browser_like: httpx.Client) -> None:
    response = browser_like.get(site + "/no-content")
    assert (response.status_code, response.content) == (204, b"")
    assert browser_like.get(site + "/cookies").status_code == 200


def test_anonymous_callers_never_see_the_workers_exception(service: Service, site: str) -> None:
    anonymous = httpx.get(site + "/secret", timeout=60)
    assert anonymous.status_code == 500
    assert anonymous.headers["x-sandlot-outcome"] == "error"
    body = anonymous.json()
    assert SECRET not in anonymous.text
    assert body["error"] == {
        "code": "error",
        "message": f"the worker ended with error (run {body['run_id']}); "
        "a key of its namespace sees the details",
        "details": [],
    }
    # A key of the namespace (here the admin key) sees why.
    keyed = httpx.get(site + "/secret", headers=KEYED, timeout=60)
    assert keyed.json()["error"]["message"] == (
        f"RuntimeError: could not log in with password {SECRET}"
    )
    # The service log names the run and its outcome at INFO, never what the worker said.
    log = service.log()
    assert f"run {body['run_id']}: error" in log
    assert SECRET not in log
