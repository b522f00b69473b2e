"""sandbox/egress/urls.py: which URLs a policy allows, and their canonical form."""

from __future__ import annotations

import pytest

from sandbox.egress import (
    EgressPolicy,
    check_url,
)

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


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "http://example.com:8080/",
            "example.com opens only the default ports (80 for http, 443 for https); "
            "to reach port 8080, allow 'example.com:8080'",
        ),
        ("https://api.test/", "api.test:8443 opens port 8443; to reach port 443, allow 'api.test'"),
        ("http://127.0.0.1:18931/", "127.0.0.1:8080 opens port 8080"),
        ("http://x.wild.test:81/", "*.wild.test opens only the default ports"),
    ],
)
def test_a_host_allowed_on_other_ports_says_which_and_what_to_add(url: str, says: str) -> None:
    decision = check_url(url, URL_POLICY)
    assert decision.reason == "not_allowlisted"
    assert says in decision.message, decision.message


def test_a_host_not_allowed_at_all_gets_no_port_hint() -> None:
    decision = check_url("http://other.test:8080/", URL_POLICY)
    assert decision.message == "host 'other.test:8080' is not in the allowlist (allowed_hosts)"
