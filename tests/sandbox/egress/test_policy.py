"""sandbox/egress/policy.py: allowlist entries and the policy, validated at construction."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.egress import (
    AllowEntry,
    EgressPolicy,
)


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
