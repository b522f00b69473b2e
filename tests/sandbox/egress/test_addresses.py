"""sandbox/egress/addresses.py: which resolved addresses a policy allows."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from sandbox.egress import (
    EgressPolicy,
    address_category,
    check_address,
)
from tests.loopback import LoopbackServer
from tests.sandbox.egress.harness import harness

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
    serve: Callable[..., LoopbackServer],
) -> None:
    canary = serve()
    h = harness([f"127.0.0.1:{canary.port}"], private_networks=())
    outcome = h.fetch(canary.at("/"))
    assert outcome.reason == "private_address"
    assert h.dialer.calls == [] and canary.requests == []


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
