"""sandbox/egress/gate.py: the gate's network behaviour, against loopback servers.

Denials are checked against "canary" servers that record requests and must see none."""

from __future__ import annotations

import dataclasses
import ipaddress
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.egress import (
    USER_AGENT,
    EgressPolicy,
    EgressRequest,
    Gate,
    IPAddress,
    SubrequestRecord,
)
from tests.loopback import LoopbackServer, reply
from tests.sandbox.egress.harness import (
    PUBLIC,
    GuardDialer,
    close_delimited,
    closed_port,
    drip,
    echo,
    garbage,
    harness,
    redirect,
    slow_headers,
)


def test_get_round_trip(serve: Callable[..., LoopbackServer]) -> None:
    server = serve({"/hello": reply(200, b"hi there", (("X-Reply", "yes"),))})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.at("/hello?x=1"), headers=(("X-Token", "abc"),))
    assert outcome.error is None and outcome.response is not None
    assert outcome.response.status == 200
    assert outcome.response.body == b"hi there"
    assert outcome.response.url == server.at("/hello?x=1")
    assert ("X-Reply", "yes") in outcome.response.headers
    [hit] = server.requests
    assert (hit.method, hit.path, hit.body) == ("GET", "/hello?x=1", b"")
    assert hit.header("Host") == f"127.0.0.1:{server.port}"
    assert hit.header("Connection") == "close"
    assert hit.header("User-Agent") == USER_AGENT
    assert hit.header("X-Token") == "abc"
    assert hit.header("Content-Length") is None
    # The gate asks for the codings it can decode and meter, never the guest's.
    assert hit.header("Accept-Encoding") == "gzip, deflate"
    assert outcome.records == (
        SubrequestRecord(
            "GET",
            server.at("/hello?x=1"),
            200,
            8,
            outcome.records[0].ms,
            True,
            None,
            outcome.records[0].sent_bytes,
        ),
    )
    assert h.resolver.calls == []  # an IP literal needs no DNS


def test_post_round_trip_and_gate_owned_headers(serve: Callable[..., LoopbackServer]) -> None:
    server = serve({"/echo": echo})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(
        server.at("/echo"),
        method="post",
        headers=(
            ("Content-Type", "application/json"),
            ("User-Agent", "mine/1"),
            ("Host", "evil.test"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "999"),
            ("Connection", "keep-alive"),
        ),
        body=b'{"a": 1}',
    )
    assert outcome.response is not None, outcome.error
    assert outcome.response.body == b'{"a": 1}'
    assert ("X-Method", "POST") in outcome.response.headers
    [hit] = server.requests
    assert hit.body == b'{"a": 1}'
    assert hit.header("Host") == f"127.0.0.1:{server.port}"
    assert hit.header("User-Agent") == "mine/1"
    assert hit.header("Content-Length") == "8"
    assert hit.header("Content-Type") == "application/json"
    assert hit.header("Transfer-Encoding") is None
    assert hit.header("Connection") == "close"


def test_empty_post_sends_content_length_and_path_is_encoded(
    serve: Callable[..., LoopbackServer],
) -> None:
    server = serve()
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.at("/caf\u00e9"), method="POST")
    assert outcome.response is not None, outcome.error
    [hit] = server.requests
    assert hit.path == "/caf%C3%A9"
    assert hit.header("Content-Length") == "0"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("http://127.0.0.1:{canary}/", id="ip-literal"),
        pytest.param("http://127.0.0.1:{allowed}@127.0.0.1:{canary}/", id="userinfo-trick"),
        pytest.param("http://127.0.0.1:{allowed}\\@127.0.0.1:{canary}/", id="backslash-trick"),
        pytest.param("http://2130706433:{canary}/", id="decimal-ip"),
        pytest.param("http://127.1:{canary}/", id="short-ip"),
        pytest.param("http://canary.test:{canary}/", id="name"),
        pytest.param("http://localhost:{canary}/", id="localhost"),
        pytest.param("http://[::ffff:127.0.0.1]:{canary}/", id="mapped-ipv6"),
        pytest.param("gopher://127.0.0.1:{canary}/", id="scheme"),
    ],
)
def test_denied_urls_send_nothing(serve: Callable[..., LoopbackServer], target: str) -> None:
    allowed, canary = serve(), serve()
    h = harness([f"127.0.0.1:{allowed.port}"], names={"canary.test": ["127.0.0.1"]})
    url = target.format(canary=canary.port, allowed=allowed.port)
    outcome = h.fetch(url)
    assert outcome.response is None
    assert outcome.error is not None and outcome.error.startswith("egress denied: ")
    assert canary.requests == [] and allowed.requests == []
    assert h.resolver.calls == [] and h.dialer.calls == []
    [record] = outcome.records
    assert not record.allowed and record.reason == outcome.reason and record.status is None


def test_denied_message_names_the_host() -> None:
    h = harness(["allowed.test"])
    outcome = h.fetch("http://evil.com/")
    assert outcome.error == "egress denied: host 'evil.com' is not in the allowlist (allowed_hosts)"
    assert outcome.reason == "not_allowlisted"


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("http://127.0.0.1:{canary}/stolen", id="absolute"),
        pytest.param("//127.0.0.1:{canary}/stolen", id="scheme-relative"),
        pytest.param("http://127.0.0.1:{allowed}@127.0.0.1:{canary}/", id="userinfo"),
        pytest.param("http://0x7f.1:{canary}/", id="hex-ip"),
        pytest.param("http://rebind.test:{canary}/", id="allowlisted-name-to-loopback"),
        pytest.param("http://127.0.0.1:{canary}\\@127.0.0.1:{allowed}/", id="backslash"),
    ],
)
def test_redirect_to_denied_target_is_refused(
    serve: Callable[..., LoopbackServer], location: str
) -> None:
    canary = serve()
    allowed = serve()
    allowed.routes["/go"] = redirect(302, location.format(canary=canary.port, allowed=allowed.port))
    h = harness(
        [f"127.0.0.1:{allowed.port}", f"rebind.test:{canary.port}"],
        names={"rebind.test": ["127.0.0.1"]},
    )
    outcome = h.fetch(allowed.at("/go"))
    assert outcome.response is None
    assert outcome.error is not None and outcome.error.startswith("egress denied: ")
    assert canary.requests == []
    assert len(allowed.requests) == 1
    first, second = outcome.records
    assert (first.allowed, first.status, first.reason) == (True, 302, None)
    assert (second.allowed, second.reason) == (False, outcome.reason)
    assert all(port == allowed.port for _, port in h.dialer.calls)


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [
        pytest.param(301, "GET", b"", id="301-post"),
        pytest.param(302, "GET", b"", id="302-post"),
        pytest.param(303, "GET", b"", id="303-post"),
        pytest.param(307, "POST", b"data", id="307-post"),
        pytest.param(308, "POST", b"data", id="308-post"),
    ],
)
def test_redirect_method_rules(
    serve: Callable[..., LoopbackServer], status: int, method: str, body: bytes
) -> None:
    server = serve({"/form": redirect(status, "/landing"), "/landing": echo})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(
        server.at("/form"),
        method="POST",
        headers=(("Content-Type", "text/plain"),),
        body=b"data",
    )
    assert outcome.response is not None, outcome.error
    assert outcome.response.status == 200
    assert outcome.response.url == server.at("/landing")
    first, second = server.requests
    assert (first.method, first.body) == ("POST", b"data")
    assert (second.method, second.path, second.body) == (method, "/landing", body)
    assert (second.header("Content-Type") is None) == (method == "GET")
    assert (second.header("Content-Length") is None) == (method == "GET")
    assert [(r.method, r.status) for r in outcome.records] == [("POST", status), (method, 200)]


def test_redirect_to_other_allowed_server_strips_credentials(
    serve: Callable[..., LoopbackServer],
) -> None:
    a, b = serve(), serve()
    a.routes["/cross"] = redirect(302, b.at("/x"))
    a.routes["/same"] = redirect(302, "/x")
    h = harness([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
    secrets = (("Authorization", "Bearer t"), ("Cookie", "s=1"), ("X-Keep", "1"))

    outcome = h.fetch(a.at("/same"), headers=secrets)
    assert outcome.response is not None, outcome.error
    assert a.requests[-1].header("Authorization") == "Bearer t"
    assert a.requests[-1].header("Cookie") == "s=1"

    outcome = h.fetch(a.at("/cross"), headers=secrets)
    assert outcome.response is not None, outcome.error
    [hit] = b.requests
    assert hit.header("Authorization") is None and hit.header("Cookie") is None
    assert hit.header("X-Keep") == "1"
    assert hit.header("Host") == f"127.0.0.1:{b.port}"


def test_redirect_limit(serve: Callable[..., LoopbackServer]) -> None:
    server = serve(
        {
            "/loop": redirect(302, "/loop"),
            "/r2": redirect(301, "/r1"),
            "/r1": redirect(307, "/done"),
        }
    )
    h = harness([f"127.0.0.1:{server.port}"], max_redirects=2)
    outcome = h.fetch(server.at("/r2"))
    assert outcome.response is not None and outcome.response.status == 200
    assert len(outcome.records) == 3

    server.requests.clear()
    outcome = h.fetch(server.at("/loop"))
    assert outcome.reason == "too_many_redirects"
    assert outcome.error == "egress denied: more than 2 redirects (max_redirects)"
    assert len(server.requests) == 3
    assert [r.reason for r in outcome.records] == [None, None, "too_many_redirects"]


def test_a_redirect_comes_back_unfollowed_when_asked(
    serve: Callable[..., LoopbackServer],
) -> None:
    canary = serve()
    server = serve({"/go": redirect(302, canary.at("/x"))})
    h = harness([f"127.0.0.1:{server.port}"])
    request = EgressRequest("GET", server.at("/go"), follow_redirects=False)
    outcome = h.gate.fetch(request)
    assert outcome.response is not None, outcome.error
    assert outcome.response.status == 302
    assert outcome.response.url == server.at("/go")
    headers = {n.lower(): v for n, v in outcome.response.headers}
    assert headers["location"] == canary.at("/x")
    assert headers["content-length"] == "0" and outcome.response.body == b""
    assert canary.requests == []
    assert [(r.status, r.reason) for r in outcome.records] == [(302, None)]
    with pytest.raises(ValueError, match="follow_redirects"):
        EgressRequest("GET", server.at("/go"), follow_redirects="no")  # type: ignore[arg-type]


def test_zero_redirects_allowed(serve: Callable[..., LoopbackServer]) -> None:
    server = serve({"/go": redirect(302, "/elsewhere")})
    h = harness([f"127.0.0.1:{server.port}"], max_redirects=0)
    outcome = h.fetch(server.at("/go"))
    assert outcome.reason == "too_many_redirects"
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("route", "size", "ok"),
    [
        pytest.param("/sized", 1000, True, id="exactly-cap"),
        pytest.param("/sized", 1001, False, id="content-length-over-cap"),
        pytest.param("/stream", 1000, True, id="close-delimited-at-cap"),
        pytest.param("/stream", 5000, False, id="close-delimited-over-cap"),
    ],
)
def test_response_size_cap(
    serve: Callable[..., LoopbackServer], route: str, size: int, ok: bool
) -> None:
    body = b"x" * size
    server = serve({"/sized": reply(200, body), "/stream": close_delimited(body)})
    h = harness([f"127.0.0.1:{server.port}"], max_response_bytes=1000)
    outcome = h.fetch(server.at(route))
    if ok:
        assert outcome.response is not None and outcome.response.body == body
    else:
        assert outcome.response is None
        assert outcome.reason == "response_too_large"
        assert outcome.error is not None and "max_response_bytes" in outcome.error
        [record] = outcome.records
        assert record.status == 200 and record.reason == "response_too_large"
        # A declared Content-Length over the cap is refused before reading any of the body;
        # otherwise reading stops at the first byte past the cap.
        assert record.bytes == (0 if route == "/sized" else 1001)


@pytest.mark.parametrize(
    ("route", "limit"),
    [
        pytest.param("/slow", "request", id="headers-late-request-timeout"),
        pytest.param("/slow", "policy", id="headers-late-policy-timeout"),
        pytest.param("/slow", "deadline", id="headers-late-caller-deadline"),
        pytest.param("/drip", "request", id="body-drip-total-cap"),
    ],
)
def test_timeouts(serve: Callable[..., LoopbackServer], route: str, limit: str) -> None:
    server = serve({"/slow": slow_headers, "/drip": drip})
    h = harness([f"127.0.0.1:{server.port}"], timeout_ms=200 if limit == "policy" else 10_000)
    kw: dict[str, Any] = {}
    if limit == "request":
        kw["timeout_ms"] = 200
    elif limit == "deadline":
        kw["deadline"] = time.monotonic() + 0.2
    started = time.monotonic()
    outcome = h.fetch(server.at(route), **kw)
    elapsed = time.monotonic() - started
    assert outcome.reason == "timeout", outcome.error
    assert outcome.error is not None and outcome.error.startswith("egress failed: timed out")
    assert 0.15 < elapsed < 1.0
    [record] = outcome.records
    assert record.allowed and record.reason == "timeout"


def test_past_deadline_sends_nothing(serve: Callable[..., LoopbackServer]) -> None:
    server = serve()
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.at(), deadline=time.monotonic() - 1)
    assert outcome.reason == "timeout"
    assert server.requests == [] and h.dialer.calls == []


def test_name_resolving_to_loopback_is_refused_but_literal_is_allowed(
    serve: Callable[..., LoopbackServer],
) -> None:
    server = serve()
    by_name = harness(
        [f"allowed.test:{server.port}", f"127.0.0.1:{server.port}"],
        names={"allowed.test": ["127.0.0.1"]},
    )
    outcome = by_name.fetch(f"http://allowed.test:{server.port}/")
    assert outcome.reason == "private_address"
    assert outcome.error is not None and "resolves to 127.0.0.1" in outcome.error
    assert by_name.resolver.calls == [("allowed.test", server.port)]
    assert by_name.dialer.calls == [] and server.requests == []
    [record] = outcome.records
    assert not record.allowed and record.reason == "private_address"

    by_literal = harness([f"127.0.0.1:{server.port}"])
    outcome = by_literal.fetch(server.at("/"))
    assert outcome.response is not None and outcome.response.status == 200
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(["127.0.0.1", str(PUBLIC)], id="private-first"),
        pytest.param([str(PUBLIC), "127.0.0.1"], id="public-first"),
        pytest.param(["169.254.169.254", "10.0.0.7", str(PUBLIC)], id="several-private"),
    ],
)
def test_mixed_dns_answer_uses_only_public_addresses(
    serve: Callable[..., LoopbackServer], answer: list[str]
) -> None:
    canary = serve()  # listens where the loopback answer would lead
    stand_in = serve()  # plays the public address
    h = harness(
        [f"mixed.test:{canary.port}"],
        names={"mixed.test": answer},
        remap={PUBLIC: stand_in.port},
    )
    outcome = h.fetch(f"http://mixed.test:{canary.port}/")
    assert outcome.response is not None, outcome.error
    assert h.dialer.calls == [(PUBLIC, canary.port)]
    assert canary.requests == []
    [hit] = stand_in.requests
    assert hit.header("Host") == f"mixed.test:{canary.port}"


def test_all_private_dns_answer_is_refused(serve: Callable[..., LoopbackServer]) -> None:
    canary = serve()
    h = harness([f"inside.test:{canary.port}"], names={"inside.test": ["127.0.0.1", "10.0.0.1"]})
    outcome = h.fetch(f"http://inside.test:{canary.port}/")
    assert outcome.reason == "private_address"
    assert h.dialer.calls == [] and canary.requests == []


def test_next_address_is_tried_when_dial_fails(serve: Callable[..., LoopbackServer]) -> None:
    server = serve()
    other = ipaddress.ip_address("93.184.215.15")
    h = harness(
        [f"multi.test:{server.port}"],
        names={"multi.test": [str(other), str(PUBLIC)]},
        remap={other: closed_port(), PUBLIC: server.port},
    )
    outcome = h.fetch(f"http://multi.test:{server.port}/")
    assert outcome.response is not None, outcome.error
    assert [address for address, _ in h.dialer.calls] == [other, PUBLIC]
    assert len(server.requests) == 1


def test_budget_false_sends_nothing(serve: Callable[..., LoopbackServer]) -> None:
    server = serve()
    h = harness(
        [f"named.test:{server.port}"],
        names={"named.test": [str(PUBLIC)]},
        remap={PUBLIC: server.port},
    )
    calls: list[int] = []

    def budget() -> bool:
        calls.append(1)
        return False

    outcome = h.fetch(f"http://named.test:{server.port}/", budget=budget)
    assert outcome.reason == "subrequest_limit"
    assert outcome.error is not None and outcome.error.startswith("egress denied: ")
    assert calls == [1]
    assert server.requests == [] and h.resolver.calls == [] and h.dialer.calls == []
    [record] = outcome.records
    assert not record.allowed and record.reason == "subrequest_limit"


def test_budget_counts_every_hop(serve: Callable[..., LoopbackServer]) -> None:
    server = serve({"/r1": redirect(302, "/r2"), "/r2": redirect(302, "/r3")})
    h = harness([f"127.0.0.1:{server.port}"])
    remaining = [2]

    def budget() -> bool:
        remaining[0] -= 1
        return remaining[0] >= 0

    outcome = h.fetch(server.at("/r1"), budget=budget)
    assert outcome.reason == "subrequest_limit"
    assert [hit.path for hit in server.requests] == ["/r1", "/r2"]
    assert [r.status for r in outcome.records] == [302, 302, None]


@pytest.mark.parametrize(
    ("names", "reason", "text"),
    [
        pytest.param({}, "dns_error", "could not resolve 'gone.test'", id="nxdomain"),
        pytest.param({"gone.test": []}, "dns_error", "no addresses", id="empty-answer"),
    ],
)
def test_dns_failures(names: dict[str, list[str]], reason: str, text: str) -> None:
    h = harness(["gone.test"], names=names)
    outcome = h.fetch("http://gone.test/")
    assert outcome.reason == reason
    assert outcome.error is not None and text in outcome.error
    assert outcome.error.startswith("egress failed: ")
    assert h.dialer.calls == []


def test_connection_refused() -> None:
    port = closed_port()
    h = harness([f"127.0.0.1:{port}"])
    outcome = h.fetch(f"http://127.0.0.1:{port}/")
    assert outcome.reason == "connect_error"
    assert outcome.error is not None and "could not connect to 127.0.0.1" in outcome.error
    [record] = outcome.records
    assert record.allowed and record.status is None


def test_invalid_http_response(serve: Callable[..., LoopbackServer]) -> None:
    server = serve({"/garbage": garbage})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.at("/garbage"))
    assert outcome.reason == "protocol_error"


class RecordingContext(ssl.SSLContext):
    """A verifying client context that remembers which name it was asked to verify."""

    names: list[str | None]

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        self.names.append(kwargs.get("server_hostname"))
        return super().wrap_socket(sock, *args, **kwargs)


def test_https_verifies_the_hostname_not_the_address(
    serve: Callable[..., LoopbackServer],
) -> None:
    server = serve()  # speaks plain HTTP, so the TLS handshake must fail
    context = RecordingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.names = []
    h = harness(
        [f"secure.test:{server.port}"],
        names={"secure.test": [str(PUBLIC)]},
        remap={PUBLIC: server.port},
        ssl_context=context,
    )
    outcome = h.fetch(f"https://secure.test:{server.port}/")
    assert outcome.reason == "tls_error", outcome.error
    assert context.names == ["secure.test"]
    assert h.dialer.calls == [(PUBLIC, server.port)]
    assert server.requests == []  # a ClientHello is not an HTTP request: nothing sent in clear


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for secure.test (its own CA), made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=secure.test",
            "-addext",
            "subjectAltName=DNS:secure.test",
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )
    return cert, key


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("secure.test", None, id="name-matches-certificate"),
        pytest.param("other.test", "tls_error", id="name-mismatch"),
    ],
)
def test_https_end_to_end(
    serve: Callable[..., LoopbackServer],
    certificate: tuple[Path, Path],
    name: str,
    reason: str | None,
) -> None:
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server = serve({"/x": reply(200, b"secure")}, tls=server_context)
    h = harness(
        [f"{name}:{server.port}"],
        names={name: [str(PUBLIC)]},
        remap={PUBLIC: server.port},
        ssl_context=ssl.create_default_context(cafile=str(cert)),
    )
    outcome = h.fetch(f"https://{name}:{server.port}/x")
    assert outcome.reason == reason, outcome.error
    if reason is None:
        assert outcome.response is not None and outcome.response.body == b"secure"
        assert outcome.response.url == f"https://secure.test:{server.port}/x"
        [hit] = server.requests
        assert hit.header("Host") == f"secure.test:{server.port}"
    else:
        assert outcome.error is not None and "other.test" in outcome.error
        assert server.requests == []


def test_gate_requires_a_verifying_tls_context() -> None:
    policy = EgressPolicy(allowed_hosts=())
    assert Gate(policy).ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert Gate(policy).ssl_context.check_hostname
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="ssl_context"):
        Gate(policy, ssl_context=lax)


def test_records_never_carry_headers_or_bodies() -> None:
    assert [f.name for f in dataclasses.fields(SubrequestRecord)] == [
        "method",
        "url",
        "status",
        "bytes",
        "ms",
        "allowed",
        "reason",
        "sent_bytes",
    ]


def test_records_count_the_bytes_the_gate_sent(serve: Callable[..., LoopbackServer]) -> None:
    """sent_bytes is what went onto the wire for the hop: request line, headers, body (usage
    counts it as egress); a refused hop sent nothing."""
    server = serve({"/up": reply(201, b"ok"), "/moved": redirect(307, "/up")})
    h = harness([f"127.0.0.1:{server.port}"])
    body = b"y" * 5000
    outcome = h.fetch(server.at("/moved"), method="POST", body=body)
    assert outcome.response is not None and outcome.response.status == 201
    hops = outcome.records
    assert len(hops) == 2 and len(server.requests) == 2
    for record, hit in zip(hops, server.requests, strict=True):
        wire = f"{hit.method} {hit.path} HTTP/1.1\r\n".encode()
        wire += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in hit.headers) + b"\r\n"
        assert record.sent_bytes == len(wire) + len(hit.body)
        assert hit.body == body
    refused = h.fetch(f"http://127.0.0.2:{server.port}/up", method="POST", body=body)
    [record] = refused.records
    assert not record.allowed and record.sent_bytes == 0
    h = harness(["example.test"])
    outcome = h.fetch("http://user:s3cret@example.test/")
    [record] = outcome.records
    assert "s3cret" not in record.url and record.reason == "userinfo"


def test_bad_resolver_output_is_a_programming_error() -> None:
    def broken(host: str, port: int) -> list[IPAddress]:
        return ["127.0.0.1"]  # type: ignore[list-item]

    gate = Gate(EgressPolicy.from_strings(["x.test"]), resolver=broken, dialer=GuardDialer())
    with pytest.raises(TypeError):
        gate.fetch(EgressRequest("GET", "http://x.test/"))
