"""The egress tests' harness: loopback routes, a fake resolver, a loopback-only dialer.

Everything stays on 127.0.0.1: servers are tests/loopback.py's, names are resolved by
an injected fake resolver, and every Gate gets a dialer that refuses (by raising
AssertionError, which fails the test) to connect anywhere but loopback."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import ssl
from typing import Any

from sandbox.egress import (
    EgressPolicy,
    EgressRequest,
    FetchOutcome,
    Gate,
    IPAddress,
    tcp_dial,
)
from tests.loopback import LOOPBACK_NETWORKS, Handler, Route, reply

# An address that is_global; the tests never connect to it (the dialer maps it to loopback).
PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def redirect(status: int, location: str) -> Route:
    return reply(status, b"moved", (("Location", location),))


def echo(h: Handler) -> None:
    hit = h.loopback.requests[-1]
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
    h.loopback.stop.wait(3.0)
    reply(200, b"late")(h)


def drip(h: Handler) -> None:
    # Each byte arrives well within any per-recv timeout; only a total cap can stop this.
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(1000):
        if h.loopback.stop.wait(0.02):
            return
        h.wfile.write(b"x")
        h.wfile.flush()


def garbage(h: Handler) -> None:
    h.close_connection = True
    h.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")


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
