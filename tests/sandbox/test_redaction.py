"""sandbox/egress/redaction.py: URLs in logs and subrequest records carry no credentials
(issue 11, finding 13: credentials in malformed URLs were logged).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from sandbox.egress import AllowEntry, EgressPolicy, check_url, redact_url
from sandbox.events import Subrequest
from sandbox.pool import _log_subrequest
from tests.sandbox import test_egress_decoding as decoding

serve = decoding.serve  # the loopback upstream fixture

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://user:hunter2@host/x", "http://host/x", id="userinfo"),
        pytest.param("http://user:hunter2\\@host/x", "http://host/x", id="backslash-userinfo"),
        pytest.param("http://a\\b:hunter2@c@host/x", "http://host/x", id="two-ats"),
        pytest.param("http:\\\\user:hunter2@host/", "http:\\\\host/", id="backslash-slashes"),
        pytest.param("http:/user:hunter2@host", "http:/host", id="one-slash"),
        pytest.param("http:user:hunter2@host/", "http:host/", id="no-slashes"),
        pytest.param("//user:hunter2@host/", "//host/", id="network-path"),
        pytest.param("user:hunter2@host/x", "user:host/x", id="no-scheme"),
        pytest.param("http://host/p@th?q=1", "http://host/p@th?q=1", id="at-in-path-kept"),
        pytest.param("/dispatch/ns/w?q=a", "/dispatch/ns/w?q=a", id="plain-path-kept"),
        pytest.param(
            "https://h/?api_key=hunter2&q=ok", "https://h/?api_key=REDACTED&q=ok", id="api_key"
        ),
        pytest.param("https://h/?apiKey=hunter2", "https://h/?apiKey=REDACTED", id="camel-case"),
        pytest.param(
            "https://h/?access_token=hunter2;sig=hunter2",
            "https://h/?access_token=REDACTED;sig=REDACTED",
            id="semicolon",
        ),
        pytest.param(
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=hunter2&X-Amz-Signature=hunter2",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED",
            id="presigned",
        ),
        pytest.param(
            "https://h/?key=1&token=2&secret=3&password=4&signature=5&auth=6&client_secret=7",
            "https://h/?key=REDACTED&token=REDACTED&secret=REDACTED&password=REDACTED"
            "&signature=REDACTED&auth=REDACTED&client_secret=REDACTED",
            id="the-usual-names",
        ),
        pytest.param("https://h/?pass%77ord=hunter2", "https://h/?pass%77ord=REDACTED", id="pct"),
        pytest.param("https://h/?token=", "https://h/?token=", id="empty-value"),
        pytest.param("https://h/?page=2&sort=asc", "https://h/?page=2&sort=asc", id="harmless"),
        pytest.param("https://h/#access_token=hunter2", "https://h/", id="fragment-dropped"),
        pytest.param("http://h/a b\n", "http://h/a%20b%0A", id="controls-escaped"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert redact_url(expected) == expected


def test_nested_userinfo_is_dropped_in_bounded_time() -> None:
    assert redact_url("x@//u:p@h/") == "//h/"
    # Each pass uncovers another authority: after a few passes the whole URL is withheld.
    crafted = "a@//" * 100_000 + "u:hunter2@h/"
    assert redact_url(crafted) == "REDACTED"


def test_long_urls_are_cut() -> None:
    shown = redact_url("http://h/" + "a" * 5000)
    assert len(shown) == 2048 + 3 and shown.endswith("...")
    assert redact_url(shown) == shown


# URL-ish characters, odd ones included; a fixed seed keeps the cases the same every run.
_ALPHABET = "ab:/\\@?#&;=%[] \t\n\x00é\u200b\ud800"


def _texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_ALPHABET, k=rng.randint(0, 40))) for _ in range(count)]


def test_redaction_never_raises_and_is_idempotent() -> None:
    for text in _texts(3000, seed=11):
        once = redact_url(text)
        assert redact_url(once) == once, text


def test_userinfo_never_survives() -> None:
    for prefix, rest in zip(_texts(2000, seed=12), _texts(2000, seed=13), strict=True):
        # Without a scheme, a leading '/' makes it a path, which has no userinfo.
        prefix = "".join(ch for ch in prefix if ch not in "@/?#").lstrip("\\")
        for scheme in ("http://", "http:", "http:\\\\", "//", ""):
            url = f"{scheme}{prefix}:{SECRET}@host/{rest}"
            assert SECRET not in redact_url(url), url


POLICY = EgressPolicy(allowed_hosts=(AllowEntry.parse("example.com"),))


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2\\@example.com/",
        "http:\\\\user:hunter2@example.com/",
        "http:/user:hunter2@example.com",
        "http:user:hunter2@example.com/",
        "http://user:hunter2\\x@example.com/",
        "//user:hunter2@example.com/",
        "http://user:hunter2@example.com/",
    ],
)
def test_decisions_carry_no_credentials(url: str) -> None:
    assert SECRET not in check_url(url, POLICY).url


def test_gate_records_are_redacted_but_the_request_is_not(
    serve: Callable[[decoding.Route], decoding._Server],
) -> None:
    server = serve(decoding.encoded(b"ok", None))
    outcome = decoding.fetch(server, path="/data?api_key=hunter2&page=2")
    assert outcome.response is not None
    # The upstream and the guest see the real URL; only the record is redacted.
    assert server.paths == ["/data?api_key=hunter2&page=2"]
    assert outcome.response.url.endswith("/data?api_key=hunter2&page=2")
    [record] = outcome.records
    assert record.url == "http://files.example/data?api_key=REDACTED&page=2"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2\\@example.com/?token=hunter2",
        "http://user:hunter2@[bad/",  # urlsplit raises on this one
        "https://example.com/p?password=hunter2",
    ],
)
def test_subrequest_log_lines_carry_no_credentials(
    caplog: pytest.LogCaptureFixture, url: str
) -> None:
    event = Subrequest("GET", url, None, 0, 1.0, False, "malformed_url")
    with caplog.at_level(logging.DEBUG, logger="sandbox.pool"):
        _log_subrequest("run_1", event)
    assert len(caplog.records) == 2
    assert SECRET not in caplog.text
