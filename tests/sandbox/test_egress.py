"""sandbox/egress: the gate's decisions and its network behaviour, on loopback only.

Everything here stays on 127.0.0.1: servers are http.server instances on ephemeral loopback
ports, names are resolved by an injected fake resolver, and every Gate gets a dialer that
refuses (by raising AssertionError, which fails the test) to connect anywhere but loopback.
Denials are checked against "canary" servers that record hits and must see none.
"""

from __future__ import annotations

import dataclasses
import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.egress import (
    USER_AGENT,
    AllowEntry,
    EgressPolicy,
    EgressRequest,
    FetchOutcome,
    Gate,
    IPAddress,
    SubrequestRecord,
    address_category,
    check_address,
    check_url,
    tcp_dial,
)
from tests.loopback import LOOPBACK_NETWORKS

# An address that is_global; the tests never connect to it (the dialer maps it to loopback).
PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")

# --------------------------------------------------------------------------------------------
# Loopback servers, fake resolver, guarded dialer
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


Route = Callable[["Handler"], None]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackHTTPServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.hits.append(Hit(self.command, self.path, tuple(self.headers.items()), body))
        route = self.server.routes.get(self.path.split("?")[0], reply(200, b"ok"))
        route(self)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.hits: list[Hit] = []
        self.stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients the gate aborted (timeouts, size caps) break pipes; that's expected


def reply(status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Route:
    def route(h: Handler) -> None:
        h.send_response(status)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return route


def redirect(status: int, location: str) -> Route:
    return reply(status, b"moved", (("Location", location),))


def echo(h: Handler) -> None:
    hit = h.server.hits[-1]
    reply(200, hit.body, (("X-Method", hit.method),))(h)


def close_delimited(body: bytes) -> Route:
    def route(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        h.wfile.write(body)

    return route


def slow_headers(h: Handler) -> None:
    h.server.stop.wait(3.0)
    reply(200, b"late")(h)


def drip(h: Handler) -> None:
    # Each byte arrives well within any per-recv timeout; only a total cap can stop this.
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(1000):
        if h.server.stop.wait(0.02):
            return
        h.wfile.write(b"x")
        h.wfile.flush()


def garbage(h: Handler) -> None:
    h.close_connection = True
    h.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackHTTPServer]]:
    started: list[tuple[LoopbackHTTPServer, threading.Thread]] = []

    def start(
        routes: dict[str, Route] | None = None, tls: ssl.SSLContext | None = None
    ) -> LoopbackHTTPServer:
        server = LoopbackHTTPServer(routes or {})
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(2)


class FakeResolver:
    """Resolves only the names in its table; records every lookup."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.table[host]]


class GuardDialer:
    """Dials loopback only; ``remap`` sends a (public) address to a loopback port instead."""

    def __init__(self, remap: dict[IPAddress, int] | None = None) -> None:
        self.remap = remap or {}
        self.calls: list[tuple[IPAddress, int]] = []

    def __call__(self, address: IPAddress, port: int, timeout: float) -> socket.socket:
        self.calls.append((address, port))
        if address in self.remap:
            return tcp_dial(LOOPBACK, self.remap[address], timeout)
        if not address.is_loopback:
            raise AssertionError(f"test tried to reach a non-loopback address {address}")
        return tcp_dial(address, port, timeout)


@dataclasses.dataclass
class Harness:
    gate: Gate
    resolver: FakeResolver
    dialer: GuardDialer

    def fetch(
        self,
        url: str,
        method: str = "GET",
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        **kw: Any,
    ) -> FetchOutcome:
        timeout_ms = kw.pop("timeout_ms", None)
        return self.gate.fetch(EgressRequest(method, url, headers, body, timeout_ms), **kw)


def harness(
    entries: list[str],
    *,
    names: dict[str, list[str]] | None = None,
    remap: dict[IPAddress, int] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **policy: Any,
) -> Harness:
    resolver = FakeResolver(names)
    dialer = GuardDialer(remap)
    # The loopback servers are reached by literal, which only an opened network allows.
    policy.setdefault("private_networks", LOOPBACK_NETWORKS)
    gate = Gate(
        EgressPolicy.from_strings(entries, **policy),
        resolver=resolver,
        dialer=dialer,
        ssl_context=ssl_context,
    )
    return Harness(gate, resolver, dialer)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Allowlist entries and policy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "wildcard"),
    [
        pytest.param("example.com", "example.com", None, False, id="name"),
        pytest.param("Example.COM.", "example.com", None, False, id="case-and-trailing-dot"),
        pytest.param("example.com:8080", "example.com", 8080, False, id="name-port"),
        pytest.param("*.example.com", "example.com", None, True, id="wildcard"),
        pytest.param("*.example.com:8443", "example.com", 8443, True, id="wildcard-port"),
        pytest.param("127.0.0.1", "127.0.0.1", None, False, id="ipv4"),
        pytest.param("127.0.0.1:8080", "127.0.0.1", 8080, False, id="ipv4-port"),
        pytest.param("[::1]:8080", "::1", 8080, False, id="ipv6-port"),
        pytest.param("[0:0::1]", "::1", None, False, id="ipv6-compressed"),
        pytest.param("bücher.de", "xn--bcher-kva.de", None, False, id="idna"),
        pytest.param("BÜCHER.de:443", "xn--bcher-kva.de", 443, False, id="idna-upper"),
        pytest.param("xn--bcher-kva.de", "xn--bcher-kva.de", None, False, id="punycode"),
        pytest.param("api_v2.example.com", "api_v2.example.com", None, False, id="underscore"),
        pytest.param("localhost:00080", "localhost", 80, False, id="port-leading-zeros"),
    ],
)
def test_entry_parse_valid(text: str, host: str, port: int | None, wildcard: bool) -> None:
    entry = AllowEntry.parse(text)
    assert (entry.host, entry.port, entry.wildcard) == (host, port, wildcard)
    assert AllowEntry.parse(str(entry)) == entry


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(" example.com", id="leading-space"),
        pytest.param("exa mple.com", id="inner-space"),
        pytest.param("example.com\n", id="newline"),
        pytest.param("exam\u200bple.com", id="zero-width-space"),
        pytest.param("http://example.com", id="scheme"),
        pytest.param("example.com/path", id="path"),
        pytest.param("example.com?q", id="query"),
        pytest.param("example.com\\x", id="backslash"),
        pytest.param("user@example.com", id="userinfo"),
        pytest.param("example.com:0", id="port-zero"),
        pytest.param("example.com:65536", id="port-too-big"),
        pytest.param("example.com:http", id="port-name"),
        pytest.param("example.com:", id="port-empty"),
        pytest.param("example.com:+80", id="port-sign"),
        pytest.param("example.com:\u0668\u0660", id="port-arabic-digits"),
        pytest.param("*", id="bare-star"),
        pytest.param("*.", id="star-dot"),
        pytest.param("ex*.com", id="inner-star"),
        pytest.param("*example.com", id="star-no-dot"),
        pytest.param("a.*.example.com", id="middle-star"),
        pytest.param("*.*.example.com", id="double-star"),
        pytest.param("*.127.0.0.1", id="wildcard-ip"),
        pytest.param("::1", id="ipv6-unbracketed"),
        pytest.param("[::1", id="ipv6-unterminated"),
        pytest.param("[::1]x", id="ipv6-trailing"),
        pytest.param("[fe80::1%eth0]", id="ipv6-zone"),
        pytest.param("[example.com]", id="bracketed-name"),
        pytest.param("2130706433", id="ipv4-decimal"),
        pytest.param("0177.0.0.1", id="ipv4-octal"),
        pytest.param("127.1", id="ipv4-short"),
        pytest.param("example.123", id="numeric-tld"),
        pytest.param("a..b", id="empty-label"),
        pytest.param("a" * 64 + ".com", id="long-label"),
        pytest.param("ex%61mple.com", id="percent"),
    ],
)
def test_entry_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError) as info:
        AllowEntry.parse(text)
    assert repr(text) in str(info.value)
    assert "accepted forms" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        pytest.param({"host": "Example.com"}, "AllowEntry.host", id="not-canonical"),
        pytest.param({"host": "example.com", "port": 0}, "AllowEntry.port", id="port-zero"),
        pytest.param({"host": "example.com", "port": True}, "AllowEntry.port", id="port-bool"),
        pytest.param({"host": "1.2.3.4", "wildcard": True}, "AllowEntry.wildcard", id="wild-ip"),
    ],
)
def test_entry_direct_construction_is_validated(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        AllowEntry(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        pytest.param({"max_response_bytes": 0}, "max_response_bytes", id="bytes-zero"),
        pytest.param({"max_response_bytes": -1}, "max_response_bytes", id="bytes-negative"),
        pytest.param({"max_response_bytes": True}, "max_response_bytes", id="bytes-bool"),
        pytest.param({"timeout_ms": 0}, "timeout_ms", id="timeout-zero"),
        pytest.param({"timeout_ms": 1.5}, "timeout_ms", id="timeout-float"),
        pytest.param({"max_redirects": -1}, "max_redirects", id="redirects-negative"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        EgressPolicy.from_strings(["example.com"], **kwargs)


def test_policy_rejects_a_bare_string_and_non_entries() -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        EgressPolicy.from_strings("example.com")
    with pytest.raises(ValueError, match="allowed_hosts"):
        EgressPolicy(allowed_hosts=("example.com",))  # type: ignore[arg-type]


def test_policy_defaults() -> None:
    policy = EgressPolicy(allowed_hosts=())
    assert (policy.max_response_bytes, policy.timeout_ms, policy.max_redirects) == (
        10 * 1024 * 1024,
        10_000,
        5,
    )
    assert EgressPolicy.from_strings([], max_redirects=0).max_redirects == 0


# --------------------------------------------------------------------------------------------
# check_url
# --------------------------------------------------------------------------------------------

URL_POLICY = EgressPolicy.from_strings(
    ["example.com", "*.wild.test", "api.test:8443", "127.0.0.1:8080", "[::1]:9000", "bücher.de"]
)

ALLOWED = None  # reason for allowed decisions, for readability of the table


@pytest.mark.parametrize(
    ("url", "reason", "host", "port"),
    [
        # allowlisted, default ports
        pytest.param("http://example.com/x", ALLOWED, "example.com", 80, id="http"),
        pytest.param("https://example.com/", ALLOWED, "example.com", 443, id="https"),
        pytest.param("http://example.com:80/", ALLOWED, "example.com", 80, id="explicit-80"),
        pytest.param(
            "http://example.com:443/", "not_allowlisted", "example.com", 443, id="http-on-443"
        ),
        pytest.param(
            "http://example.com:8080/", "not_allowlisted", "example.com", 8080, id="port-mismatch"
        ),
        pytest.param("http://other.com/", "not_allowlisted", "other.com", 80, id="other-host"),
        pytest.param(
            "http://sub.example.com/",
            "not_allowlisted",
            "sub.example.com",
            80,
            id="exact-entry-no-subdomains",
        ),
        # wildcards
        pytest.param("https://a.wild.test/", ALLOWED, "a.wild.test", 443, id="wild-sub"),
        pytest.param("https://a.b.wild.test/", ALLOWED, "a.b.wild.test", 443, id="wild-deep"),
        pytest.param("https://wild.test/", "not_allowlisted", "wild.test", 443, id="wild-apex"),
        pytest.param(
            "https://evilwild.test/",
            "not_allowlisted",
            "evilwild.test",
            443,
            id="wild-suffix-trick",
        ),
        pytest.param(
            "https://a.wild.test.evil.com/",
            "not_allowlisted",
            "a.wild.test.evil.com",
            443,
            id="wild-prefix-trick",
        ),
        pytest.param("https://api.test:8443/v1", ALLOWED, "api.test", 8443, id="port-entry"),
        pytest.param(
            "https://api.test/v1", "not_allowlisted", "api.test", 443, id="port-entry-default"
        ),
        # schemes
        pytest.param("ftp://example.com/", "scheme", "", 0, id="ftp"),
        pytest.param("file:///etc/passwd", "scheme", "", 0, id="file"),
        pytest.param("javascript:alert(1)", "scheme", "", 0, id="javascript"),
        pytest.param("data:text/plain,hi", "scheme", "", 0, id="data"),
        pytest.param("example.com/x", "scheme", "", 0, id="no-scheme"),
        pytest.param("//example.com/x", "scheme", "", 0, id="scheme-relative"),
        pytest.param("gopher://127.0.0.1:8080/", "scheme", "", 0, id="gopher"),
        # userinfo: judged (and reported) by the real host, always refused
        pytest.param(
            "http://example.com@evil.com/", "userinfo", "evil.com", 80, id="userinfo-trick"
        ),
        pytest.param(
            "http://example.com:80@evil.com/", "userinfo", "evil.com", 80, id="userinfo-port-trick"
        ),
        pytest.param(
            "http://a@example.com@evil.com/", "userinfo", "evil.com", 80, id="userinfo-double-at"
        ),
        pytest.param(
            "http://user:pw@example.com/", "userinfo", "example.com", 80, id="userinfo-allowed-host"
        ),
        # parser-differential tricks
        pytest.param("http://evil.com\\@example.com/", "malformed_url", "", 0, id="backslash-at"),
        pytest.param("http://example.com\\.evil.com/", "malformed_url", "", 0, id="backslash-host"),
        pytest.param("http://example.com/a\\b", "malformed_url", "", 0, id="backslash-path"),
        pytest.param("http://exa\tmple.com/", "malformed_url", "", 0, id="tab-in-host"),
        pytest.param("http://evil\n.com/", "malformed_url", "", 0, id="newline-in-host"),
        pytest.param(" http://example.com/", "malformed_url", "", 0, id="leading-space"),
        pytest.param("http://example.com/a b", "malformed_url", "", 0, id="space-in-path"),
        pytest.param("http://exam\u200bple.com/", "malformed_url", "", 0, id="zero-width"),
        pytest.param("http://example.com\x00.evil.com/", "malformed_url", "", 0, id="nul"),
        pytest.param(
            "http://evil.com#@example.com", "not_allowlisted", "evil.com", 80, id="fragment-at"
        ),
        pytest.param(
            "http://evil.com?@example.com", "not_allowlisted", "evil.com", 80, id="query-at"
        ),
        pytest.param("http://%65xample.com/", "bad_host", "", 0, id="percent-host"),
        pytest.param(
            "http://example.com%2F@evil.com/",
            "userinfo",
            "evil.com",
            80,
            id="percent-slash-userinfo",
        ),
        # empty host, bad ports
        pytest.param("http:///example.com", "malformed_url", "", 0, id="empty-authority"),
        pytest.param("http:example.com", "malformed_url", "", 0, id="no-slashes"),
        pytest.param("http://:80/", "bad_host", "", 0, id="empty-host"),
        pytest.param("http://example.com:0/", "bad_port", "", 0, id="port-zero"),
        pytest.param("http://example.com:65536/", "bad_port", "", 0, id="port-too-big"),
        pytest.param("http://example.com:80a/", "bad_port", "", 0, id="port-letters"),
        pytest.param("http://example.com:/", "bad_port", "", 0, id="port-empty"),
        pytest.param("http://example.com:-1/", "bad_port", "", 0, id="port-negative"),
        # IPv4 literals: only the canonical dotted quad is an address; every other spelling
        # that inet_aton() would accept is refused (never compared as a name)
        pytest.param("http://127.0.0.1:8080/", ALLOWED, "127.0.0.1", 8080, id="ipv4"),
        pytest.param(
            "http://127.0.0.1:8081/", "not_allowlisted", "127.0.0.1", 8081, id="ipv4-port-mismatch"
        ),
        pytest.param("http://2130706433:8080/", "noncanonical_ip", "", 0, id="ipv4-decimal"),
        pytest.param("http://0177.0.0.1:8080/", "noncanonical_ip", "", 0, id="ipv4-octal"),
        pytest.param("http://0x7f.1:8080/", "noncanonical_ip", "", 0, id="ipv4-hex-short"),
        pytest.param("http://0x7f000001:8080/", "noncanonical_ip", "", 0, id="ipv4-hex"),
        pytest.param("http://127.1:8080/", "noncanonical_ip", "", 0, id="ipv4-short"),
        pytest.param(
            "http://127.000.000.001:8080/", "noncanonical_ip", "", 0, id="ipv4-zero-padded"
        ),
        pytest.param("http://127.0.0.1.:8080/", "noncanonical_ip", "", 0, id="ipv4-dot"),
        pytest.param(
            "http://\uff11\uff12\uff17.0.0.1:8080/", "noncanonical_ip", "", 0, id="ipv4-fullwidth"
        ),
        pytest.param("http://0x7f.1/", "noncanonical_ip", "", 0, id="odd-ipv4-vs-names"),
        pytest.param("http://2130706433/", "noncanonical_ip", "", 0, id="decimal-vs-names"),
        pytest.param("http://1.2.3.4.5/", "bad_host", "", 0, id="five-parts"),
        pytest.param("http://256.0.0.1/", "bad_host", "", 0, id="octet-too-big"),
        pytest.param("http://example.0x7f/", "bad_host", "", 0, id="numeric-tld"),
        # IPv6 literals
        pytest.param("http://[::1]:9000/", ALLOWED, "::1", 9000, id="ipv6"),
        pytest.param("http://[0:0::1]:9000/", ALLOWED, "::1", 9000, id="ipv6-long-form"),
        pytest.param(
            "http://[::ffff:127.0.0.1]:8080/",
            "not_allowlisted",
            "::ffff:127.0.0.1",
            8080,
            id="ipv6-mapped-is-other-literal",
        ),
        pytest.param("http://[fe80::1%25eth0]:9000/", "bad_host", "", 0, id="ipv6-zone"),
        pytest.param("http://::1/", "bad_host", "", 0, id="ipv6-unbracketed"),
        # names: IDNA, case, trailing dot
        pytest.param("http://BÜCHER.de/", ALLOWED, "xn--bcher-kva.de", 80, id="idna-upper"),
        pytest.param("http://xn--bcher-kva.de/", ALLOWED, "xn--bcher-kva.de", 80, id="punycode"),
        pytest.param(
            "http://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/",
            ALLOWED,
            "example.com",
            80,
            id="fullwidth-name",
        ),
        pytest.param("HTTP://EXAMPLE.COM/", ALLOWED, "example.com", 80, id="uppercase"),
        pytest.param("http://example.com./", ALLOWED, "example.com", 80, id="trailing-dot"),
        pytest.param("http://example.com../", "bad_host", "", 0, id="two-trailing-dots"),
    ],
)
def test_check_url(url: str, reason: str | None, host: str, port: int) -> None:
    decision = check_url(url, URL_POLICY)
    assert (decision.allowed, decision.reason, decision.host, decision.port) == (
        reason is None,
        reason,
        host,
        port,
    )
    assert bool(decision.message) == (reason is not None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://example.com", "http://example.com/", id="empty-path"),
        pytest.param(
            "HTTPS://Example.COM:443/a?b=c#frag",
            "https://example.com/a?b=c",
            id="default-port-and-fragment",
        ),
        pytest.param(
            "https://api.test:8443/caf\u00e9?q=\u00e9",
            "https://api.test:8443/caf%C3%A9?q=%C3%A9",
            id="non-ascii-encoded",
        ),
        pytest.param(
            "http://example.com/%7Bx%7D/{y}",
            "http://example.com/%7Bx%7D/%7By%7D",
            id="braces-encoded",
        ),
        pytest.param("http://[::1]:9000/x", "http://[::1]:9000/x", id="ipv6"),
    ],
)
def test_check_url_canonical_url(url: str, expected: str) -> None:
    decision = check_url(url, URL_POLICY)
    assert decision.allowed
    assert decision.url == expected
    assert expected.endswith(decision.target)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@example.com/",
        "http://example.com:s3cret@evil.com/x",
        "http://s3cret@evil.com\\@example.com/",
        "ftp://s3cret@example.com/",
    ],
)
def test_refused_urls_never_echo_userinfo(url: str) -> None:
    decision = check_url(url, URL_POLICY)
    assert not decision.allowed
    assert "s3cret" not in decision.url


def test_noncanonical_ip_message_says_what_it_means() -> None:
    decision = check_url("http://0x7f.1:8080/", URL_POLICY)
    assert "127.0.0.1" in decision.message


# --------------------------------------------------------------------------------------------
# check_address
# --------------------------------------------------------------------------------------------

NAME_POLICY = EgressPolicy.from_strings(["svc.test", "svc.test:8080"])


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.255.254",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fd00:ec2::254",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::7f00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::1",
        "2001:db8::1",
    ],
)
def test_check_address_refuses_non_public_via_names(ip: str) -> None:
    address = ipaddress.ip_address(ip)
    assert address_category(address) is not None
    for port in (80, 8080):
        assert check_address(address, "svc.test", port, NAME_POLICY) == "private_address"


@pytest.mark.parametrize(
    "ip",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_check_address_allows_public(ip: str) -> None:
    address = ipaddress.ip_address(ip)
    assert address_category(address) is None
    assert check_address(address, "svc.test", 80, NAME_POLICY) is None


@pytest.mark.parametrize(
    ("ip", "host", "port", "entries", "scheme", "expected"),
    [
        pytest.param(
            "127.0.0.1", "127.0.0.1", 8080, ["127.0.0.1:8080"], "http", None, id="literal-entry"
        ),
        pytest.param(
            "127.0.0.1",
            "127.0.0.1",
            8081,
            ["127.0.0.1:8080"],
            "http",
            "private_address",
            id="literal-other-port",
        ),
        pytest.param(
            "127.0.0.1",
            "localhost",
            8080,
            ["127.0.0.1:8080", "localhost:8080"],
            "http",
            "private_address",
            id="name-resolving-to-literal",
        ),
        pytest.param(
            "127.0.0.1", "127.0.0.1", 80, ["127.0.0.1"], "http", None, id="literal-default-port"
        ),
        pytest.param(
            "127.0.0.1",
            "127.0.0.1",
            443,
            ["127.0.0.1"],
            "http",
            "private_address",
            id="literal-default-port-wrong-scheme",
        ),
        pytest.param(
            "127.0.0.1",
            "127.0.0.1",
            443,
            ["127.0.0.1"],
            None,
            None,
            id="literal-default-port-any-scheme",
        ),
        pytest.param(
            "10.1.2.3",
            "10.1.2.3",
            8080,
            ["10.1.2.4:8080"],
            "http",
            "private_address",
            id="other-literal",
        ),
        pytest.param(
            "169.254.169.254",
            "169.254.169.254",
            80,
            ["169.254.169.254"],
            "http",
            None,
            id="metadata-explicit-opt-in",
        ),
        pytest.param("::1", "::1", 9000, ["[::1]:9000"], "http", None, id="ipv6-literal"),
        pytest.param(
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1",
            8080,
            ["127.0.0.1:8080"],
            "http",
            "private_address",
            id="mapped-is-not-the-v4-literal",
        ),
    ],
)
def test_check_address_literal_entries(
    ip: str, host: str, port: int, entries: list[str], scheme: str | None, expected: str | None
) -> None:
    # Every network opened, so only the literal rule decides.
    policy = EgressPolicy.from_strings(entries, private_networks=["0.0.0.0/0", "::/0"])
    assert check_address(ipaddress.ip_address(ip), host, port, policy, scheme=scheme) == expected


@pytest.mark.parametrize(
    ("ip", "entry", "networks", "expected"),
    [
        pytest.param("127.0.0.1", "127.0.0.1:8080", [], "private_address", id="none-opened"),
        pytest.param(
            "169.254.169.254", "169.254.169.254:8080", [], "private_address", id="metadata-closed"
        ),
        pytest.param(
            "169.254.169.254",
            "169.254.169.254:8080",
            ["127.0.0.0/8"],
            "private_address",
            id="metadata-outside-opened",
        ),
        pytest.param("127.0.0.1", "127.0.0.1:8080", ["127.0.0.0/8"], None, id="inside-opened"),
        pytest.param(
            "10.1.2.3", "10.1.2.3:8080", ["10.1.2.0/24", "fd00::/8"], None, id="second-network"
        ),
        pytest.param("::1", "[::1]:8080", ["127.0.0.0/8"], "private_address", id="v6-vs-v4-net"),
        pytest.param(
            "::ffff:127.0.0.1",
            "[::ffff:127.0.0.1]:8080",
            ["127.0.0.0/8"],
            None,
            id="mapped-judged-by-embedded",
        ),
        pytest.param(
            "::ffff:169.254.169.254",
            "[::ffff:169.254.169.254]:8080",
            ["::/0"],
            "private_address",
            id="mapped-not-by-v6-net",
        ),
        pytest.param(
            "64:ff9b::a9fe:a9fe",
            "[64:ff9b::a9fe:a9fe]:8080",
            ["64:ff9b::/96"],
            "private_address",
            id="nat64-not-by-v6-net",
        ),
    ],
)
def test_check_address_needs_an_opened_network(
    ip: str, entry: str, networks: list[str], expected: str | None
) -> None:
    # The literal rule holds in every case; only private_networks differs.
    address = ipaddress.ip_address(ip)
    policy = EgressPolicy.from_strings([entry], private_networks=networks)
    assert check_address(address, ip, 8080, policy, scheme="http") == expected


def test_literal_to_closed_network_sends_nothing(
    serve: Callable[..., LoopbackHTTPServer],
) -> None:
    canary = serve()
    h = harness([f"127.0.0.1:{canary.port}"], private_networks=())
    outcome = h.fetch(canary.url("/"))
    assert outcome.reason == "private_address"
    assert h.dialer.calls == [] and canary.hits == []


@pytest.mark.parametrize(
    ("networks", "problem"),
    [
        pytest.param(["10.0.0.1/8"], "host bits", id="host-bits"),
        pytest.param(["nonsense"], "CIDR", id="not-a-network"),
        pytest.param("10.0.0.0/8", "not a single string", id="bare-string"),
        pytest.param([8], "CIDR strings", id="not-a-string"),
    ],
)
def test_private_networks_are_validated(networks: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EgressPolicy.from_strings([], private_networks=networks)
    with pytest.raises(ValueError, match="private_networks"):
        EgressPolicy(allowed_hosts=(), private_networks=["10.0.0.0/8"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ip", "category"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("127.0.0.1", "loopback"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("64:ff9b::a00:1", "NAT64 private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("fd00::1", "unique-local"),
    ],
)
def test_address_category_names(ip: str, category: str) -> None:
    assert address_category(ipaddress.ip_address(ip)) == category


# --------------------------------------------------------------------------------------------
# EgressRequest validation
# --------------------------------------------------------------------------------------------


def test_request_normalises() -> None:
    request = EgressRequest("post", "http://x/", [("A", "b")], bytearray(b"hi"), 0)  # type: ignore[arg-type]
    assert request.method == "POST"
    assert request.headers == (("A", "b"),)
    assert request.body == b"hi"
    assert request.timeout_ms is None


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        pytest.param({"method": "GE T"}, "method", id="method-space"),
        pytest.param({"method": ""}, "method", id="method-empty"),
        pytest.param({"method": "GET\r\nX: y"}, "method", id="method-crlf"),
        pytest.param({"method": "CONNECT"}, "CONNECT", id="method-connect"),
        pytest.param({"headers": (("X-A\r\n", "v"),)}, r"headers\[0\]", id="name-crlf"),
        pytest.param({"headers": (("X:A", "v"),)}, r"headers\[0\]", id="name-colon"),
        pytest.param({"headers": (("", "v"),)}, r"headers\[0\]", id="name-empty"),
        pytest.param({"headers": (("X-A", "v\r\nInjected: 1"),)}, r"headers\[0\]", id="value-crlf"),
        pytest.param({"headers": (("X-A", "v\n"),)}, r"headers\[0\]", id="value-lf"),
        pytest.param({"headers": (("X-A", "v\x00"),)}, r"headers\[0\]", id="value-nul"),
        pytest.param({"headers": (("X-A", "\u2603"),)}, r"headers\[0\]", id="value-non-latin1"),
        pytest.param({"headers": (("X-A",),)}, r"headers\[0\]", id="not-a-pair"),
        pytest.param({"body": "text"}, "body", id="body-str"),
        pytest.param({"timeout_ms": -1}, "timeout_ms", id="timeout-negative"),
    ],
)
def test_request_validation(kwargs: dict[str, Any], field_name: str) -> None:
    fields: dict[str, Any] = {"method": "GET", "url": "http://x/", "headers": (), "body": b""}
    with pytest.raises(ValueError, match=field_name):
        EgressRequest(**(fields | kwargs))


# --------------------------------------------------------------------------------------------
# The gate, against loopback servers
# --------------------------------------------------------------------------------------------


def test_get_round_trip(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve({"/hello": reply(200, b"hi there", (("X-Reply", "yes"),))})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.url("/hello?x=1"), headers=(("X-Token", "abc"),))
    assert outcome.error is None and outcome.response is not None
    assert outcome.response.status == 200
    assert outcome.response.body == b"hi there"
    assert outcome.response.url == server.url("/hello?x=1")
    assert ("X-Reply", "yes") in outcome.response.headers
    [hit] = server.hits
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
            "GET", server.url("/hello?x=1"), 200, 8, outcome.records[0].ms, True, None
        ),
    )
    assert h.resolver.calls == []  # an IP literal needs no DNS


def test_post_round_trip_and_gate_owned_headers(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve({"/echo": echo})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(
        server.url("/echo"),
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
    [hit] = server.hits
    assert hit.body == b'{"a": 1}'
    assert hit.header("Host") == f"127.0.0.1:{server.port}"
    assert hit.header("User-Agent") == "mine/1"
    assert hit.header("Content-Length") == "8"
    assert hit.header("Content-Type") == "application/json"
    assert hit.header("Transfer-Encoding") is None
    assert hit.header("Connection") == "close"


def test_empty_post_sends_content_length_and_path_is_encoded(
    serve: Callable[..., LoopbackHTTPServer],
) -> None:
    server = serve()
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.url("/caf\u00e9"), method="POST")
    assert outcome.response is not None, outcome.error
    [hit] = server.hits
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
def test_denied_urls_send_nothing(serve: Callable[..., LoopbackHTTPServer], target: str) -> None:
    allowed, canary = serve(), serve()
    h = harness([f"127.0.0.1:{allowed.port}"], names={"canary.test": ["127.0.0.1"]})
    url = target.format(canary=canary.port, allowed=allowed.port)
    outcome = h.fetch(url)
    assert outcome.response is None
    assert outcome.error is not None and outcome.error.startswith("egress denied: ")
    assert canary.hits == [] and allowed.hits == []
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
    serve: Callable[..., LoopbackHTTPServer], location: str
) -> None:
    canary = serve()
    allowed = serve()
    allowed.routes["/go"] = redirect(302, location.format(canary=canary.port, allowed=allowed.port))
    h = harness(
        [f"127.0.0.1:{allowed.port}", f"rebind.test:{canary.port}"],
        names={"rebind.test": ["127.0.0.1"]},
    )
    outcome = h.fetch(allowed.url("/go"))
    assert outcome.response is None
    assert outcome.error is not None and outcome.error.startswith("egress denied: ")
    assert canary.hits == []
    assert len(allowed.hits) == 1
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
    serve: Callable[..., LoopbackHTTPServer], status: int, method: str, body: bytes
) -> None:
    server = serve({"/form": redirect(status, "/landing"), "/landing": echo})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(
        server.url("/form"),
        method="POST",
        headers=(("Content-Type", "text/plain"),),
        body=b"data",
    )
    assert outcome.response is not None, outcome.error
    assert outcome.response.status == 200
    assert outcome.response.url == server.url("/landing")
    first, second = server.hits
    assert (first.method, first.body) == ("POST", b"data")
    assert (second.method, second.path, second.body) == (method, "/landing", body)
    assert (second.header("Content-Type") is None) == (method == "GET")
    assert (second.header("Content-Length") is None) == (method == "GET")
    assert [(r.method, r.status) for r in outcome.records] == [("POST", status), (method, 200)]


def test_redirect_to_other_allowed_server_strips_credentials(
    serve: Callable[..., LoopbackHTTPServer],
) -> None:
    a, b = serve(), serve()
    a.routes["/cross"] = redirect(302, b.url("/x"))
    a.routes["/same"] = redirect(302, "/x")
    h = harness([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"])
    secrets = (("Authorization", "Bearer t"), ("Cookie", "s=1"), ("X-Keep", "1"))

    outcome = h.fetch(a.url("/same"), headers=secrets)
    assert outcome.response is not None, outcome.error
    assert a.hits[-1].header("Authorization") == "Bearer t"
    assert a.hits[-1].header("Cookie") == "s=1"

    outcome = h.fetch(a.url("/cross"), headers=secrets)
    assert outcome.response is not None, outcome.error
    [hit] = b.hits
    assert hit.header("Authorization") is None and hit.header("Cookie") is None
    assert hit.header("X-Keep") == "1"
    assert hit.header("Host") == f"127.0.0.1:{b.port}"


def test_redirect_limit(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve(
        {
            "/loop": redirect(302, "/loop"),
            "/r2": redirect(301, "/r1"),
            "/r1": redirect(307, "/done"),
        }
    )
    h = harness([f"127.0.0.1:{server.port}"], max_redirects=2)
    outcome = h.fetch(server.url("/r2"))
    assert outcome.response is not None and outcome.response.status == 200
    assert len(outcome.records) == 3

    server.hits.clear()
    outcome = h.fetch(server.url("/loop"))
    assert outcome.reason == "too_many_redirects"
    assert outcome.error == "egress denied: more than 2 redirects (max_redirects)"
    assert len(server.hits) == 3
    assert [r.reason for r in outcome.records] == [None, None, "too_many_redirects"]


def test_a_redirect_comes_back_unfollowed_when_asked(
    serve: Callable[..., LoopbackHTTPServer],
) -> None:
    canary = serve()
    server = serve({"/go": redirect(302, canary.url("/x"))})
    h = harness([f"127.0.0.1:{server.port}"])
    request = EgressRequest("GET", server.url("/go"), follow_redirects=False)
    outcome = h.gate.fetch(request)
    assert outcome.response is not None, outcome.error
    assert outcome.response.status == 302
    assert outcome.response.url == server.url("/go")
    headers = {n.lower(): v for n, v in outcome.response.headers}
    assert headers["location"] == canary.url("/x")
    assert headers["content-length"] == "0" and outcome.response.body == b""
    assert canary.hits == []
    assert [(r.status, r.reason) for r in outcome.records] == [(302, None)]
    with pytest.raises(ValueError, match="follow_redirects"):
        EgressRequest("GET", server.url("/go"), follow_redirects="no")  # type: ignore[arg-type]


def test_zero_redirects_allowed(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve({"/go": redirect(302, "/elsewhere")})
    h = harness([f"127.0.0.1:{server.port}"], max_redirects=0)
    outcome = h.fetch(server.url("/go"))
    assert outcome.reason == "too_many_redirects"
    assert len(server.hits) == 1


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
    serve: Callable[..., LoopbackHTTPServer], route: str, size: int, ok: bool
) -> None:
    body = b"x" * size
    server = serve({"/sized": reply(200, body), "/stream": close_delimited(body)})
    h = harness([f"127.0.0.1:{server.port}"], max_response_bytes=1000)
    outcome = h.fetch(server.url(route))
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
def test_timeouts(serve: Callable[..., LoopbackHTTPServer], route: str, limit: str) -> None:
    server = serve({"/slow": slow_headers, "/drip": drip})
    h = harness([f"127.0.0.1:{server.port}"], timeout_ms=200 if limit == "policy" else 10_000)
    kw: dict[str, Any] = {}
    if limit == "request":
        kw["timeout_ms"] = 200
    elif limit == "deadline":
        kw["deadline"] = time.monotonic() + 0.2
    started = time.monotonic()
    outcome = h.fetch(server.url(route), **kw)
    elapsed = time.monotonic() - started
    assert outcome.reason == "timeout", outcome.error
    assert outcome.error is not None and outcome.error.startswith("egress failed: timed out")
    assert 0.15 < elapsed < 1.0
    [record] = outcome.records
    assert record.allowed and record.reason == "timeout"


def test_past_deadline_sends_nothing(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve()
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.url(), deadline=time.monotonic() - 1)
    assert outcome.reason == "timeout"
    assert server.hits == [] and h.dialer.calls == []


def test_name_resolving_to_loopback_is_refused_but_literal_is_allowed(
    serve: Callable[..., LoopbackHTTPServer],
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
    assert by_name.dialer.calls == [] and server.hits == []
    [record] = outcome.records
    assert not record.allowed and record.reason == "private_address"

    by_literal = harness([f"127.0.0.1:{server.port}"])
    outcome = by_literal.fetch(server.url("/"))
    assert outcome.response is not None and outcome.response.status == 200
    assert len(server.hits) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(["127.0.0.1", str(PUBLIC)], id="private-first"),
        pytest.param([str(PUBLIC), "127.0.0.1"], id="public-first"),
        pytest.param(["169.254.169.254", "10.0.0.7", str(PUBLIC)], id="several-private"),
    ],
)
def test_mixed_dns_answer_uses_only_public_addresses(
    serve: Callable[..., LoopbackHTTPServer], answer: list[str]
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
    assert canary.hits == []
    [hit] = stand_in.hits
    assert hit.header("Host") == f"mixed.test:{canary.port}"


def test_all_private_dns_answer_is_refused(serve: Callable[..., LoopbackHTTPServer]) -> None:
    canary = serve()
    h = harness([f"inside.test:{canary.port}"], names={"inside.test": ["127.0.0.1", "10.0.0.1"]})
    outcome = h.fetch(f"http://inside.test:{canary.port}/")
    assert outcome.reason == "private_address"
    assert h.dialer.calls == [] and canary.hits == []


def test_next_address_is_tried_when_dial_fails(serve: Callable[..., LoopbackHTTPServer]) -> None:
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
    assert len(server.hits) == 1


def test_budget_false_sends_nothing(serve: Callable[..., LoopbackHTTPServer]) -> None:
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
    assert server.hits == [] and h.resolver.calls == [] and h.dialer.calls == []
    [record] = outcome.records
    assert not record.allowed and record.reason == "subrequest_limit"


def test_budget_counts_every_hop(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve({"/r1": redirect(302, "/r2"), "/r2": redirect(302, "/r3")})
    h = harness([f"127.0.0.1:{server.port}"])
    remaining = [2]

    def budget() -> bool:
        remaining[0] -= 1
        return remaining[0] >= 0

    outcome = h.fetch(server.url("/r1"), budget=budget)
    assert outcome.reason == "subrequest_limit"
    assert [hit.path for hit in server.hits] == ["/r1", "/r2"]
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


def test_invalid_http_response(serve: Callable[..., LoopbackHTTPServer]) -> None:
    server = serve({"/garbage": garbage})
    h = harness([f"127.0.0.1:{server.port}"])
    outcome = h.fetch(server.url("/garbage"))
    assert outcome.reason == "protocol_error"


class RecordingContext(ssl.SSLContext):
    """A verifying client context that remembers which name it was asked to verify."""

    names: list[str | None]

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        self.names.append(kwargs.get("server_hostname"))
        return super().wrap_socket(sock, *args, **kwargs)


def test_https_verifies_the_hostname_not_the_address(
    serve: Callable[..., LoopbackHTTPServer],
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
    assert server.hits == []  # the ClientHello is not an HTTP request; nothing was sent in clear


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
    serve: Callable[..., LoopbackHTTPServer],
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
        [hit] = server.hits
        assert hit.header("Host") == f"secure.test:{server.port}"
    else:
        assert outcome.error is not None and "other.test" in outcome.error
        assert server.hits == []


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
    ]
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
