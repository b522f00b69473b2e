"""sandbox/egress: the gate decodes Content-Encoding itself, so the response cap counts the
decoded bytes (issue 11, finding 9: a gzip bomb passed the cap and was decoded by Deno).

The upstream is a loopback server reached under a public-looking name: the fake resolver
answers a public address and the dialer sends that address to the loopback port instead, so
nothing here depends on loopback being allowlisted, and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import gzip
import http.server
import ipaddress
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.egress import (
    AllowEntry,
    EgressPolicy,
    EgressRequest,
    FetchOutcome,
    Gate,
    IPAddress,
    tcp_dial,
)

HOST = "files.example"
PUBLIC = ipaddress.ip_address("93.184.215.14")  # never contacted: the dialer remaps it
CAP = 1024 * 1024

Route = Callable[["_Handler"], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _handle(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.server.paths.append(self.path)
        self.server.route(self)

    do_GET = do_HEAD = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, route: Route) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.route = route
        self.seen: list[dict[str, str]] = []
        self.paths: list[str] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the gate hangs up on bodies over the cap; that's expected


def encoded(
    body: bytes, coding: str | None, *, chunked: bool = False, length: bool = True
) -> Route:
    """A route answering ``body`` (already encoded) with Content-Encoding ``coding``."""

    def route(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        if coding is not None:
            h.send_header("Content-Encoding", coding)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        elif length:
            h.send_header("Content-Length", str(len(body)))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if h.command == "HEAD":
            return
        if chunked:
            for start in range(0, len(body), 1000):
                piece = body[start : start + 1000]
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        else:
            h.wfile.write(body)

    return route


@pytest.fixture
def serve() -> Iterator[Callable[[Route], _Server]]:
    servers: list[_Server] = []

    def start(route: Route) -> _Server:
        server = _Server(route)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fetch(
    server: _Server,
    *,
    method: str = "GET",
    path: str = "/data",
    headers: tuple[tuple[str, str], ...] = (),
    cap: int = CAP,
) -> FetchOutcome:
    port = int(server.server_address[1])

    def resolver(host: str, _port: int) -> list[IPAddress]:
        if host != HOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [PUBLIC]

    def dialer(address: IPAddress, _port: int, timeout: float) -> socket.socket:
        if address != PUBLIC:
            raise AssertionError(f"test tried to reach {address}")
        return tcp_dial(ipaddress.ip_address("127.0.0.1"), port, timeout)

    policy = EgressPolicy(allowed_hosts=(AllowEntry.parse(HOST),), max_response_bytes=cap)
    gate = Gate(policy, resolver=resolver, dialer=dialer)
    return gate.fetch(EgressRequest(method, f"http://{HOST}{path}", headers))


def header(outcome: FetchOutcome, name: str) -> list[str]:
    assert outcome.response is not None, outcome.error
    return [v for k, v in outcome.response.headers if k.lower() == name.lower()]


def gzip_bomb(decoded_bytes: int) -> bytes:
    """``decoded_bytes`` zeros, gzipped in pieces (the whole never exists in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    parts = [compressor.compress(zeros) for _ in range(decoded_bytes // len(zeros))]
    return b"".join(parts) + compressor.flush()


TEXT = b"sandlot " * 40_000  # 320 kB, compresses well


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param("x-gzip", gzip.compress, id="x-gzip"),
        pytest.param("GZip", gzip.compress, id="case-insensitive"),
        pytest.param("deflate", zlib.compress, id="deflate-zlib-wrapped"),
        pytest.param(
            "deflate",
            lambda b: (c := zlib.compressobj(wbits=-zlib.MAX_WBITS)).compress(b) + c.flush(),
            id="deflate-raw",
        ),
        pytest.param("gzip, gzip", lambda b: gzip.compress(gzip.compress(b)), id="gzip-gzip"),
        pytest.param(
            "deflate, gzip", lambda b: gzip.compress(zlib.compress(b)), id="deflate-then-gzip"
        ),
        pytest.param("identity, gzip", gzip.compress, id="identity-ignored"),
        pytest.param(
            "gzip", lambda b: gzip.compress(b[:1000]) + gzip.compress(b[1000:]), id="two-members"
        ),
    ],
)
def test_encoded_body_reaches_the_guest_decoded(
    serve: Callable[[Route], _Server], coding: str, encode: Callable[[bytes], bytes]
) -> None:
    outcome = fetch(serve(encoded(encode(TEXT), coding)))
    assert outcome.response is not None, outcome.error
    assert outcome.response.body == TEXT
    assert header(outcome, "content-encoding") == []
    assert header(outcome, "content-length") == [str(len(TEXT))]
    [record] = outcome.records
    assert record.bytes == len(TEXT) and record.reason is None


def test_chunked_and_close_delimited_gzip_are_decoded(
    serve: Callable[[Route], _Server],
) -> None:
    for route in (
        encoded(gzip.compress(TEXT), "gzip", chunked=True),
        encoded(gzip.compress(TEXT), "gzip", length=False),
    ):
        outcome = fetch(serve(route))
        assert outcome.response is not None and outcome.response.body == TEXT
        assert header(outcome, "content-length") == [str(len(TEXT))]


@pytest.mark.parametrize(
    ("size", "ok"),
    [pytest.param(CAP, True, id="decoded-exactly-cap"), pytest.param(CAP + 1, False, id="cap+1")],
)
def test_cap_counts_decoded_bytes(serve: Callable[[Route], _Server], size: int, ok: bool) -> None:
    outcome = fetch(serve(encoded(gzip.compress(bytes(size)), "gzip")))
    if ok:
        assert outcome.response is not None and len(outcome.response.body) == CAP
    else:
        assert outcome.response is None and outcome.reason == "response_too_large"


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        pytest.param("gzip", gzip_bomb(64 * CAP), id="gzip-64x-cap"),
        pytest.param("gzip, gzip", gzip.compress(gzip_bomb(64 * CAP)), id="gzip-gzip-64x-cap"),
        pytest.param("deflate", zlib.compress(bytes(64 * CAP), 9), id="deflate-64x-cap"),
    ],
)
def test_decompression_bomb_is_refused_without_decoding_it_all(
    serve: Callable[[Route], _Server], coding: str, body: bytes
) -> None:
    # Finding 9: a small compressed body that decodes far past the cap. The gate must stop
    # at the cap (memory bounded by the cap, not by what the body would decode to).
    assert len(body) < CAP
    server = serve(encoded(body, coding))
    tracemalloc.start()
    try:
        outcome = fetch(server)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.response is None
    assert outcome.reason == "response_too_large"
    assert outcome.error is not None
    assert "max_response_bytes" in outcome.error and "decoded" in outcome.error
    [record] = outcome.records
    assert record.reason == "response_too_large" and record.status == 200
    # Decoding stops within one decoded piece (64 KiB) past the cap.
    assert CAP < record.bytes <= CAP + 64 * 1024
    assert peak < 8 * CAP, f"decoding used {peak} bytes for a {CAP}-byte cap"


def test_wire_bytes_are_capped_too(serve: Callable[[Route], _Server]) -> None:
    # Bytes that decode to little (an incompressible body) still may not exceed the cap.
    noise = zlib.compress(bytes(range(256)) * 8) * 2000
    outcome = fetch(serve(encoded(gzip.compress(noise, 0), "gzip", length=False)), cap=CAP // 64)
    assert outcome.reason == "response_too_large"


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "br, gzip", "x-bomb"])
def test_codings_the_gate_cannot_meter_are_refused(
    serve: Callable[[Route], _Server], coding: str
) -> None:
    outcome = fetch(serve(encoded(b"\x00" * 5000, coding)))
    assert outcome.response is None
    assert outcome.reason == "unsupported_encoding"
    assert outcome.error is not None and outcome.error.startswith("egress denied: ")
    assert "max_response_bytes" in outcome.error
    unsupported = next(c.strip() for c in coding.split(",") if c.strip() not in ("gzip",))
    assert repr(unsupported) in outcome.error
    [record] = outcome.records
    assert (record.reason, record.status, record.bytes) == ("unsupported_encoding", 200, 0)


@pytest.mark.parametrize(
    ("body", "length"),
    [
        pytest.param(b"this is not gzip at all", True, id="not-gzip"),
        pytest.param(gzip.compress(TEXT)[:-50], False, id="truncated"),
        pytest.param(b"\x1f", False, id="one-byte"),
    ],
)
def test_invalid_encoded_body_is_a_protocol_error(
    serve: Callable[[Route], _Server], body: bytes, length: bool
) -> None:
    outcome = fetch(serve(encoded(body, "gzip", length=length)))
    assert outcome.response is None
    assert outcome.reason == "protocol_error"
    assert outcome.error is not None and "gzip" in outcome.error


def test_empty_encoded_body_is_empty(serve: Callable[[Route], _Server]) -> None:
    outcome = fetch(serve(encoded(b"", "gzip")))
    assert outcome.response is not None and outcome.response.body == b""


def test_bodyless_responses_lose_their_coding_headers(serve: Callable[[Route], _Server]) -> None:
    # HEAD describes a body the gate never decodes: its length would be the encoded one.
    outcome = fetch(serve(encoded(gzip.compress(TEXT), "br")), method="HEAD")
    assert outcome.response is not None and outcome.response.body == b""
    assert header(outcome, "content-encoding") == []
    assert header(outcome, "content-length") == []


@pytest.mark.parametrize(
    ("guest_headers", "expected"),
    [
        pytest.param((), "gzip, deflate", id="default"),
        pytest.param((("Accept-Encoding", "br, zstd"),), "gzip, deflate", id="guest-br-dropped"),
        pytest.param((("accept-encoding", "identity"),), "gzip, deflate", id="guest-dropped"),
        pytest.param((("Range", "bytes=0-99"),), "identity", id="range-asks-identity"),
    ],
)
def test_gate_chooses_accept_encoding(
    serve: Callable[[Route], _Server],
    guest_headers: tuple[tuple[str, str], ...],
    expected: str,
) -> None:
    server = serve(encoded(b"plain", None))
    outcome = fetch(server, headers=guest_headers)
    assert outcome.response is not None and outcome.response.body == b"plain"
    [seen] = server.seen
    assert seen["accept-encoding"] == expected


def test_plain_body_keeps_its_headers(serve: Callable[[Route], _Server]) -> None:
    outcome = fetch(serve(encoded(TEXT, None)))
    assert outcome.response is not None and outcome.response.body == TEXT
    assert header(outcome, "content-length") == [str(len(TEXT))]
