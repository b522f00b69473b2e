"""Loggable copies of URLs: :func:`redact_url`, the one function every log line and subrequest
record that carries a URL goes through.

Guest code puts credentials in URLs (``https://user:pw@host``, ``?api_key=...``), often in
malformed ones the gate refuses. What is logged or recorded must not carry them, whatever the
URL looks like, so redaction never parses strictly: it errs on the side of removing too much.
Pure: no I/O.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from sandbox.egress._checks import _bad_char

__all__ = ["REDACTED", "redact_url"]

REDACTED = "REDACTED"
MAX_LOGGED_URL = 2048
_MAX_PASSES = 8

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Query parameter names (split into lowercase words) that carry credentials.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "code",
        "credential",
        "credentials",
        "jwt",
        "key",
        "otp",
        "pass",
        "passwd",
        "password",
        "pwd",
        "secret",
        "session",
        "sessionid",
        "sid",
        "sig",
        "signature",
        "token",
    }
)
_SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd")


def redact_url(url: str) -> str:
    """A copy of ``url`` that is safe to log, for any string, well-formed or not.

    Userinfo (everything up to the last ``@`` of the authority) is dropped; the values of
    query parameters whose names look like credentials (``key``, ``token``, ``secret``,
    ``password``, ``signature``, ``sig``, ``api_key``, ``access_token``, ``auth``,
    ``X-Amz-Credential``, ...) become ``REDACTED``; the fragment is dropped; whitespace and
    control characters are percent-encoded; the result is cut at 2048 characters. Idempotent.
    """
    # Dropping userinfo can expose another authority ("x@//u:p@h" becomes "//u:p@h"): repeat
    # until nothing changes, so that a second pass has nothing left to remove. Only crafted
    # strings need more than a few passes; they are not worth quadratic time.
    for _ in range(_MAX_PASSES):
        shorter = _drop_userinfo(url)
        if shorter == url:
            break
        url = shorter
    else:
        return REDACTED
    url = url.split("#", 1)[0]
    base, question, query = url.partition("?")
    if question:
        url = base + "?" + _redact_query(query)
    escaped = "".join(
        "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")) if _bad_char(ch) else ch
        for ch in url[:MAX_LOGGED_URL]
    )
    return escaped + ("..." if len(url) > MAX_LOGGED_URL else "")


def _drop_userinfo(url: str) -> str:
    start = _authority_start(url)
    if start is None:
        return url
    # The authority ends at the first '/', '?' or '#'. Not at a backslash: some clients read
    # it as '/', others as part of the userinfo, and either way the part before the last '@'
    # may be a password.
    end = len(url)
    for stop in "/?#":
        found = url.find(stop, start)
        if 0 <= found < end:
            end = found
    at = url.rfind("@", start, end)
    return url if at < 0 else url[:start] + url[at + 1 :]


def _authority_start(url: str) -> int | None:
    """Where the authority begins, or None when the URL has none (a path, a query)."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    slashes = start
    while slashes < len(url) and url[slashes] in "/\\":
        slashes += 1
    if scheme:
        # "http://u:p@h", "http:\\u:p@h", "http:u:p@h" (and "u:p@h", which reads as scheme
        # "u"): whatever follows the scheme and its slashes may hold userinfo.
        return slashes
    if slashes - start >= 2:
        return slashes  # "//u:p@h/x", a network-path reference
    if slashes > start or url.startswith(("?", "#")):
        return None  # "/path?query"
    return 0  # "u:p@h/x" without a scheme: the authority comes first


def _redact_query(query: str) -> str:
    parts = re.split(r"([&;])", query)
    for index in range(0, len(parts), 2):
        name, equals, value = parts[index].partition("=")
        if equals and value and _is_secret_name(name):
            parts[index] = f"{name}={REDACTED}"
    return "".join(parts)


def _is_secret_name(name: str) -> bool:
    try:
        decoded = unquote_plus(name)
    except ValueError:
        decoded = name
    # camelCase and separators both split words: apiKey, api_key, X-Amz-Signature.
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", decoded).lower())
    return any(word in _SECRET_WORDS or word.endswith(_SECRET_SUFFIXES) for word in words)
