"""Issue 11, finding 13: a request names one host, or it is refused.

The attack: with two Host headers the last one decided routing, and an absolute-form
target could name another host than Host; a proxy in front may route by the other one.
"""

from __future__ import annotations

import pytest

from app.host_header import host_problem
from tests.conftest import DISPATCH_DOMAIN, Service
from tests.rawhttp import RawConnection, request

CASES: list[tuple[str, list[str], str | None, str | None]] = [
    ("one-host", ["api.example"], "/v1/x", None),
    ("no-target-recorded", ["api.example"], None, None),
    ("asterisk", ["api.example"], "*", None),
    ("two-hosts", ["a.example", "b.example"], "/", "send exactly one Host header"),
    ("two-equal-hosts", ["a.example", "a.example"], "/", "send exactly one Host header"),
    ("absolute-same", ["a.example"], "http://a.example/x", None),
    ("absolute-same-default-port", ["a.example:80"], "http://a.example/x", None),
    ("absolute-case", ["A.example"], "http://a.EXAMPLE:80/x", None),
    ("absolute-other-host", ["a.example"], "http://b.example/x", "the request target names"),
    ("absolute-other-port", ["a.example"], "http://a.example:81/x", "the request target names"),
    ("absolute-no-host", [], "http://a.example/x", "the Host header is missing"),
    ("absolute-userinfo", ["a.example"], "http://u:p@a.example/x", "without userinfo"),
    ("absolute-bad-port", ["a.example"], "http://a.example:x/", "host[:port]"),
    ("other-scheme", ["a.example"], "ftp://a.example/x", "absolute http(s) URL"),
]


@pytest.mark.parametrize(
    ("hosts", "target", "problem"),
    [(h, t, p) for _, h, t, p in CASES],
    ids=[name for name, _, _, _ in CASES],
)
def test_host_problem(hosts: list[str], target: str | None, problem: str | None) -> None:
    found = host_problem(hosts, target, "http")
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def _answer(service: Service, target: str, hosts: list[str]) -> tuple[int, bytes]:
    with RawConnection(service.port) as conn:
        conn.send(request("GET", target, [("host", h) for h in hosts]))
        answer = conn.read_answer()
        return answer.status, answer.body


def test_two_host_headers_are_refused(service: Service) -> None:
    # Before: the last Host decided, here the API's, while a proxy might see the worker's.
    status, body = _answer(service, "/healthz", [f"w.ns.{DISPATCH_DOMAIN}", "127.0.0.1"])
    assert status == 400
    assert b'"code":"bad_request"' in body
    assert b"send exactly one Host header (this request has 2)" in body


def test_an_absolute_target_must_agree_with_host(service: Service) -> None:
    status, body = _answer(service, f"http://w.ns.{DISPATCH_DOMAIN}/healthz", ["127.0.0.1"])
    assert status == 400
    assert b"send the same host in both" in body
    here = f"127.0.0.1:{service.port}"
    assert _answer(service, f"http://{here}/healthz", [here]) == (200, b'{"status":"ok"}')


def test_one_host_is_served(service: Service) -> None:
    assert _answer(service, "/healthz", ["127.0.0.1"])[0] == 200
