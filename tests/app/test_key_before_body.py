"""Issue 11, finding 8: the key is checked before a request's body is read.

The attack: anonymous 32 MiB JSON bodies, parsed before the key was checked, raised
the service's memory and slowed every tenant. Now a request without a valid key gets
its 401 while most of its body is still unsent, and the connection is closed instead
of drained. Each test sends a few KiB of a much longer body, so on the old code (which
waited for the whole body) no answer comes and the read times out.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import Service
from tests.rawhttp import RawConnection, request

BIG = 30 * 1024 * 1024  # under SANDLOT_MAX_REQUEST_BYTES: the size cap is not what answers
SENT = b"{" + b" " * 4095  # what the client sends of it
# Long enough for a loaded machine; far shorter than sending the rest would take a server
# that waited for it (it never comes).
ANSWER_S = 10

NO_KEY: list[tuple[str, str]] = []
WRONG_KEY = [("authorization", "Bearer sk_not_a_real_key")]


def _open(service: Service) -> RawConnection:
    return RawConnection(service.port, timeout=ANSWER_S)


@pytest.mark.parametrize("key", [NO_KEY, WRONG_KEY], ids=["no-key", "wrong-key"])
@pytest.mark.parametrize("path", ["/v1/execute", "/v1/namespaces", "/mcp"])
def test_a_large_declared_body_gets_401_unread(
    service: Service, path: str, key: list[tuple[str, str]]
) -> None:
    headers = [
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("content-length", str(BIG)),
        *key,
    ]
    with _open(service) as conn:
        conn.send(request("POST", path, headers, SENT))
        answer = conn.read_answer()
        assert answer.status == 401
        assert answer.header("connection") == "close"
        assert answer.header("www-authenticate") == "Bearer"
        assert b'"code":"unauthorized"' in answer.body
        # The server hangs up rather than read the other 30 MiB.
        assert conn.closed_by_server(within_s=ANSWER_S)


def test_a_chunked_body_that_never_ends_gets_401(service: Service) -> None:
    headers = [
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("transfer-encoding", "chunked"),
        *WRONG_KEY,
    ]
    with _open(service) as conn:
        conn.send(request("POST", "/v1/execute", headers, b"1000\r\n" + SENT + b"\r\n"))
        assert conn.read_answer().status == 401
        assert conn.closed_by_server(within_s=ANSWER_S)


def test_private_dispatch_checks_the_key_before_the_body(service: Service) -> None:
    namespace = "kb-" + secrets.token_hex(4)
    with service.client() as admin:
        admin.post("/v1/namespaces", json={"name": namespace, "dispatch_public": False})
        put = admin.put(
            f"/v1/namespaces/{namespace}/workers/w",
            json={"modules": {"main.py": "def on_fetch(request, env):\n    return None\n"}},
        )
        assert put.status_code == 200, put.text
    headers = [("host", "127.0.0.1"), ("transfer-encoding", "chunked")]
    with _open(service) as conn:
        conn.send(request("POST", f"/dispatch/{namespace}/w/", headers, b"1000\r\n" + SENT))
        assert conn.read_answer().status == 401
        assert conn.closed_by_server(within_s=ANSWER_S)


def test_public_dispatch_bodies_have_their_own_cap(service: Service) -> None:
    # Anonymous callers may send bodies to public workers: at most 10 MiB, refused unread.
    headers = [("host", "127.0.0.1"), ("content-length", str(BIG))]
    with _open(service) as conn:
        conn.send(request("POST", "/dispatch/anyone/anything/", headers, SENT))
        answer = conn.read_answer()
        assert answer.status == 413
        assert b"SANDLOT_DISPATCH_MAX_BODY_BYTES" in answer.body
        assert conn.closed_by_server(within_s=ANSWER_S)


def test_a_valid_key_still_sends_its_body(client: httpx.Client) -> None:
    response = client.post("/v1/execute", json={"code": "1 + 1"})
    assert response.status_code == 200
    assert response.json()["result"]["repr"] == "2"
