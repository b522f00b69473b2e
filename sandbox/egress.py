"""The egress gate: the only way a sandboxed guest reaches the network.

WebAssembly guests have no sockets. Their one route out is the host's ``fetch`` import, which
hands an :class:`EgressRequest` to :meth:`Gate.fetch`. The gate decides, connects, and returns a
:class:`FetchOutcome`; it never raises for anything the guest or the network did.

What the gate guarantees
------------------------
* **Allowlist.** No packet (not even a DNS query) leaves for a URL unless its scheme is http or
  https and its host and effective port match an :class:`AllowEntry` of the policy. A URL is
  judged by where a client would really send it: URLs carrying userinfo (``user@host``),
  whitespace or control characters anywhere, backslashes before the query, and non-canonical
  numeric hosts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are refused outright
  rather than second-guessed, so the gate and a differently-parsing client cannot disagree.
* **One resolution, pinned.** A host name is resolved once per hop; every answer is checked
  with :func:`check_address`, and the connection goes to one of those exact checked addresses
  (the connection classes never look the name up again), so DNS rebinding between "check" and
  "connect" is impossible. Addresses that are not publicly routable (loopback, RFC 1918,
  link-local including the cloud metadata service, CGNAT, unique-local, multicast, reserved,
  and IPv4 addresses embedded in IPv6 forms of those) are reachable only through an allowlist
  entry that is that exact IP literal *and* a URL that spells the literal; a name that resolves
  to them is refused. When an answer mixes public and non-public addresses, only the public
  ones are used (and refused only if none remain): the non-public ones never see a packet.
* **TLS.** https certificates are verified against the host name of the URL (SNI and hostname
  check), not against the pinned address.
* **Every redirect hop is a new request.** The gate follows 301/302/303/307/308 itself, up to
  ``max_redirects``, re-running every check above per hop; Authorization/Cookie headers are
  dropped once a redirect leaves the original origin.
* **Limits.** Response bodies are capped at ``max_response_bytes``; the whole fetch (DNS,
  connect, TLS, every hop) is capped at the smallest of the request's ``timeout_ms``, the
  policy's ``timeout_ms`` and the caller's absolute ``deadline``; the caller's ``budget``
  callback is consulted before every hop.
* **Framing belongs to the gate.** The guest cannot set Host, Content-Length,
  Transfer-Encoding, Connection or other hop-by-hop headers (they are silently dropped and
  re-derived), so it cannot smuggle requests or pick a different virtual host than its URL
  names. ``CONNECT`` is refused. Environment proxy settings are ignored.
* **Records.** One :class:`SubrequestRecord` per hop, with URL (userinfo removed), status,
  size and timing only: never headers or bodies.

What it does not guarantee
--------------------------
* Nothing about what allowlisted servers do: anything the guest sends to an allowed host
  (including in URLs and bodies) is exfiltrated by design, and an allowed host that fetches
  other URLs server-side, or proxies, extends the guest's reach.
* It trusts the resolver's answers to be what the system would use; it only refuses answers
  that point at non-public addresses. A public address controlled by someone else is public.
* No request-body size limit, rate limiting or subrequest counting (``budget`` is the
  caller's), no decompression, cookies, connection reuse, HTTP/2 or proxies.
* A DNS lookup that overruns the deadline is abandoned, not cancelled: its thread finishes
  in the background.
* Internationalised names go through Python's IDNA 2003 codec. Where IDNA 2008 differs (e.g.
  'ß'), an entry may not match what a browser would; since the same form is matched, resolved
  and sent (Host, SNI), the difference can only refuse, never widen access.

Refusal / failure reasons (machine-readable, on records and outcomes): ``scheme``,
``userinfo``, ``malformed_url``, ``bad_host``, ``bad_port``, ``noncanonical_ip``,
``not_allowlisted``, ``private_address``, ``subrequest_limit``, ``too_many_redirects``,
``response_too_large``, ``dns_error``, ``connect_error``, ``tls_error``, ``timeout``,
``protocol_error``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

__all__ = [
    "DEFAULT_PORTS",
    "USER_AGENT",
    "AllowEntry",
    "Clock",
    "Dialer",
    "EgressPolicy",
    "EgressRequest",
    "EgressResponse",
    "FetchOutcome",
    "Gate",
    "IPAddress",
    "Resolver",
    "SubrequestRecord",
    "UrlDecision",
    "address_category",
    "check_address",
    "check_url",
    "system_resolver",
    "tcp_dial",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host name, port) -> addresses; raises OSError (e.g. socket.gaierror) when resolution fails.
Resolver = Callable[[str, int], list[IPAddress]]
# (address, port, timeout in seconds) -> connected TCP socket; raises OSError on failure.
Dialer = Callable[[IPAddress, int, float], socket.socket]
# Monotonic time in seconds.
Clock = Callable[[], float]

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
USER_AGENT = "sandlot-egress/1"
_MIB = 1024 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024
_MAX_LOGGED_URL = 2048

_ENTRY_FORMS = (
    "accepted forms are 'host', 'host:port', '*.domain', '*.domain:port', an IPv4 address "
    "like '203.0.113.7[:port]' or a bracketed IPv6 address like '[2001:db8::1]:8443'"
)

# RFC 9110 token characters, for methods and header names.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX_DIGITS = frozenset("0123456789abcdef")

# The gate owns message framing and routing; letting the guest set these would allow request
# smuggling (Content-Length vs Transfer-Encoding) or virtual-host confusion (Host).
_GATE_OWNED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)
# Credentials that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Headers describing a request body, dropped when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset(
    {"content-type", "content-encoding", "content-language", "content-location"}
)
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})

_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Reasons that are policy decisions ("denied") rather than network failures ("failed").
_DENIAL_REASONS = frozenset(
    {
        "scheme",
        "userinfo",
        "malformed_url",
        "bad_host",
        "bad_port",
        "noncanonical_ip",
        "not_allowlisted",
        "private_address",
        "subrequest_limit",
        "too_many_redirects",
        "response_too_large",
    }
)


# --------------------------------------------------------------------------------------------
# Host and port syntax (shared by allowlist entries and URLs, so both normalise identically)
# --------------------------------------------------------------------------------------------


class _Problem(Exception):
    """A refusal with a machine reason; internal, converted to decisions or ValueError."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.scheme = ""  # filled in once a URL's scheme is known


def _bad_char(ch: str) -> bool:
    # isprintable() is False for controls, format characters (zero-width joiners, soft hyphen,
    # bidi overrides) and line/paragraph separators; isspace() adds ASCII and Unicode spaces.
    return ch.isspace() or not ch.isprintable()


def _show(text: str, limit: int = 120) -> str:
    """repr() of text, shortened for messages."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _looks_numeric(label: str) -> bool:
    # WHATWG's "ends in a number": such hosts are parsed as IPv4 by browsers (and by inet_aton
    # in C clients), so they must never be compared as names.
    if label.isascii() and label.isdigit():
        return True
    return label.startswith("0x") and all(c in _HEX_DIGITS for c in label[2:])


def _parse_ipv4_loose(text: str) -> int | None:
    """Parse an IPv4 address with inet_aton(3) rules; None if it is not one.

    Accepts 1-4 dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last part
    fills the remaining bytes (``127.1`` is 127.0.0.1, ``2130706433`` is 127.0.0.1). Unlike
    glibc it accepts no trailing garbage.
    """
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        if part.startswith("0x"):
            digits, base = part[2:], 16
            if not digits or not all(c in _HEX_DIGITS for c in digits):
                return None
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
            if not all(c in "01234567" for c in digits):
                return None
        else:
            digits, base = part, 10
            if not (digits.isascii() and digits.isdigit()):
                return None
        values.append(int(digits, base))
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    result = last
    for index, value in enumerate(leading):
        result |= value << (8 * (3 - index))
    return result


@dataclass(frozen=True)
class _Host:
    text: str  # canonical: ASCII lowercase name, dotted-quad IPv4 or compressed IPv6
    ip: IPAddress | None


def _normalise_host(raw: str, *, bracketed: bool) -> _Host:
    """Canonicalise a host; raises _Problem("bad_host" | "noncanonical_ip")."""
    if bracketed:
        # Zone identifiers name an interface of *this* machine; never meaningful for egress.
        if "%" in raw:
            raise _Problem("bad_host", f"IPv6 zone identifiers are not allowed in {_show(raw)}")
        try:
            v6 = ipaddress.IPv6Address(raw)
        except ValueError:
            raise _Problem("bad_host", f"{_show(raw)} is not a valid IPv6 address") from None
        return _Host(str(v6), v6)
    if raw == "":
        raise _Problem("bad_host", "the host is empty")
    text = raw.lower()
    if text.endswith("."):
        text = text[:-1]  # the fully-qualified spelling of the same name
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise _Problem(
                "bad_host", f"{_show(raw)} is not a valid internationalised domain name"
            ) from None
        if text.endswith("."):
            text = text[:-1]
    labels = text.split(".")
    if _looks_numeric(labels[-1]):
        value = _parse_ipv4_loose(text)
        if value is None:
            raise _Problem(
                "bad_host", f"{_show(raw)} ends in a number but is not a valid IPv4 address"
            )
        v4 = ipaddress.IPv4Address(value)
        # Clients disagree on (and attackers rely on) octal/hex/short/integer spellings, so
        # only the canonical dotted quad is accepted; the message says what it would mean.
        if str(v4) != raw:
            raise _Problem(
                "noncanonical_ip",
                f"{_show(raw)} is a non-canonical spelling of the IPv4 address {v4}; "
                f"write it as {v4}",
            )
        return _Host(str(v4), v4)
    if len(text) > 253:
        raise _Problem("bad_host", f"{_show(raw)} is longer than 253 characters")
    for label in labels:
        if not (1 <= len(label) <= 63) or not set(label) <= _LABEL_CHARS:
            raise _Problem("bad_host", f"{_show(raw)} is not a valid host name")
    return _Host(text, None)


def _split_hostport(hostport: str) -> tuple[str, bool, str | None]:
    """Split 'host[:port]' / '[v6][:port]' into (host, bracketed, port text or None)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _Problem("bad_host", f"unterminated '[' in {_show(hostport)}")
        rest = hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _Problem("bad_host", f"unexpected text after ']' in {_show(hostport)}")
        return hostport[1:end], True, (rest[1:] if rest else None)
    if "[" in hostport or "]" in hostport:
        raise _Problem("bad_host", f"misplaced bracket in {_show(hostport)}")
    if hostport.count(":") > 1:
        raise _Problem("bad_host", f"IPv6 addresses must be bracketed: {_show(hostport)}")
    host, sep, port = hostport.partition(":")
    return host, False, (port if sep else None)


def _parse_port(text: str) -> int:
    """Port number from its decimal text; raises _Problem("bad_port")."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise _Problem("bad_port", f"port {_show(text)} is not a number from 1 to 65535")
    return int(text)


def _authority(host: str, port: int, scheme: str) -> str:
    """Host[:port] as written in URLs and Host headers; the port only when not the default."""
    shown = f"[{host}]" if ":" in host else host
    return shown if DEFAULT_PORTS.get(scheme) == port else f"{shown}:{port}"


def _percent_encode(text: str) -> str:
    """Percent-encode (as UTF-8) what may not appear raw in an HTTP request-target."""
    out: list[str] = []
    for ch in text:
        if "!" <= ch <= "~" and ch not in '"<>`{}':
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist entry; build it with :meth:`parse`.

    ``host`` is canonical (lowercase ASCII/punycode name, dotted-quad IPv4, or compressed IPv6
    without brackets). ``port`` None means the scheme's default port only (80 for http, 443 for
    https). ``wildcard`` matches strict subdomains at any depth, never the apex itself.
    Raises ValueError (naming the field) when the fields are not in canonical form.
    """

    host: str
    port: int | None = None
    wildcard: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.host, str):
            raise ValueError(f"AllowEntry.host must be a string, got {type(self.host).__name__}")
        try:
            canonical = _normalise_host(self.host, bracketed=":" in self.host)
        except _Problem as problem:
            raise ValueError(f"AllowEntry.host: {problem.message}") from None
        if canonical.text != self.host:
            raise ValueError(
                f"AllowEntry.host {self.host!r} is not canonical (expected "
                f"{canonical.text!r}); use AllowEntry.parse()"
            )
        if self.port is not None and not (_is_int(self.port) and 1 <= self.port <= 65535):
            raise ValueError(f"AllowEntry.port must be None or 1-65535, got {self.port!r}")
        if not isinstance(self.wildcard, bool):
            raise ValueError(f"AllowEntry.wildcard must be a bool, got {self.wildcard!r}")
        if self.wildcard and canonical.ip is not None:
            raise ValueError(f"AllowEntry.wildcard cannot apply to an IP address ({self.host})")

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        """Parse ``host``, ``host:port``, ``*.domain[:port]``, ``1.2.3.4[:port]``, ``[v6][:port]``.

        Names are lowercased, IDNA-encoded (punycode) and lose one trailing dot. Raises
        ValueError naming the entry and listing the accepted forms.
        """
        if not isinstance(text, str):
            raise ValueError(f"allowed_hosts entries must be strings, got {text!r}")

        def bad(why: str) -> ValueError:
            return ValueError(f"allowed_hosts entry {text!r} is invalid: {why}; {_ENTRY_FORMS}")

        if text == "":
            raise bad("it is empty")
        if any(_bad_char(ch) for ch in text):
            raise bad("it contains whitespace or control characters")
        if "://" in text or any(ch in text for ch in "/\\?#"):
            raise bad("write a host, not a URL (no scheme or path)")
        if "@" in text:
            raise bad("userinfo ('user@') is not allowed")
        wildcard = text.startswith("*.")
        rest = text[2:] if wildcard else text
        if "*" in rest:
            raise bad("'*' is only allowed as a leading '*.' label")
        try:
            raw_host, bracketed, port_text = _split_hostport(rest)
            port = None if port_text is None else _parse_port(port_text)
            host = _normalise_host(raw_host, bracketed=bracketed)
        except _Problem as problem:
            raise bad(problem.message) from None
        if wildcard and host.ip is not None:
            raise bad("wildcards apply to domain names, not IP addresses")
        return cls(host=host.text, port=port, wildcard=wildcard)

    @property
    def is_ip(self) -> bool:
        """True when the entry is an IP literal (the only way to reach non-public addresses)."""
        return ":" in self.host or _looks_numeric(self.host.rsplit(".", 1)[-1])

    def matches(self, host: str, port: int, scheme: str) -> bool:
        """Whether a canonical host, port and scheme fall under this entry."""
        if self.port is None:
            if DEFAULT_PORTS.get(scheme) != port:
                return False
        elif self.port != port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"*.{host}" if self.wildcard else host
        return text if self.port is None else f"{text}:{self.port}"


@dataclass(frozen=True)
class EgressPolicy:
    """What a run may reach. Sizes are in bytes, times in milliseconds.

    ``max_redirects`` may be 0 (no redirect is followed; one is reported as
    ``too_many_redirects``); the other limits must be positive. Raises ValueError naming the
    field.
    """

    allowed_hosts: tuple[AllowEntry, ...]
    max_response_bytes: int = 10 * _MIB
    timeout_ms: int = 10_000
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.allowed_hosts, tuple) or not all(
            isinstance(entry, AllowEntry) for entry in self.allowed_hosts
        ):
            raise ValueError("allowed_hosts must be a tuple of AllowEntry")
        for name in ("max_response_bytes", "timeout_ms"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not _is_int(self.max_redirects) or self.max_redirects < 0:
            raise ValueError(
                f"max_redirects must be a non-negative integer, got {self.max_redirects!r}"
            )

    @classmethod
    def from_strings(
        cls,
        allowed_hosts: Iterable[str],
        *,
        max_response_bytes: int = 10 * _MIB,
        timeout_ms: int = 10_000,
        max_redirects: int = 5,
    ) -> EgressPolicy:
        """Build a policy from entry strings (see :meth:`AllowEntry.parse`); raises ValueError."""
        if isinstance(allowed_hosts, str):
            # A bare string would otherwise be iterated character by character.
            raise ValueError("allowed_hosts must be a list of strings, not a single string")
        return cls(
            allowed_hosts=tuple(AllowEntry.parse(text) for text in allowed_hosts),
            max_response_bytes=max_response_bytes,
            timeout_ms=timeout_ms,
            max_redirects=max_redirects,
        )

    def allows(self, host: str, port: int, scheme: str) -> bool:
        """Whether any entry matches the canonical host, port and scheme."""
        return any(entry.matches(host, port, scheme) for entry in self.allowed_hosts)


# --------------------------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UrlDecision:
    """The verdict of :func:`check_url`.

    ``host``/``port``/``scheme`` are the canonical destination ('' / 0 when the URL could not
    be parsed that far). ``url`` is the canonical URL without userinfo or fragment (for
    logging; on early refusals a redacted copy of the input). ``target`` is the HTTP
    request-target (``/path?query``, percent-encoded), '' on refusal. ``reason`` is a short
    machine reason and ``message`` a human explanation, both set only on refusal.
    """

    allowed: bool
    reason: str | None
    message: str
    scheme: str
    host: str
    port: int
    url: str
    target: str
    ip: IPAddress | None = None

    @property
    def authority(self) -> str:
        """``host[:port]`` as sent in the Host header (port omitted when it is the default)."""
        return _authority(self.host, self.port, self.scheme)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@dataclass(frozen=True)
class _ParsedUrl:
    scheme: str
    host: _Host
    port: int
    target: str
    has_userinfo: bool

    @property
    def url(self) -> str:
        return f"{self.scheme}://{_authority(self.host.text, self.port, self.scheme)}{self.target}"


def _parse_url(url: str) -> _ParsedUrl:
    """Parse an absolute http(s) URL strictly; raises _Problem."""
    if any(_bad_char(ch) for ch in url):
        # urlsplit silently deletes tabs and newlines, so "evil\n.com" would become
        # "evil.com"; refusing is the only way to judge the URL the guest actually wrote.
        raise _Problem("malformed_url", "the URL contains whitespace or control characters")
    head = url.split("?", 1)[0].split("#", 1)[0]
    if "\\" in head:
        # Browsers treat '\' as '/' in http(s) URLs while urllib does not, so
        # "http://evil.com\@allowed.com" means different hosts to different parsers.
        raise _Problem("malformed_url", "backslashes are not allowed in the URL before '?'")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _Problem("malformed_url", f"the URL cannot be parsed ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        shown = parts.scheme or "(none)"
        raise _Problem("scheme", f"scheme {shown!r} is not allowed; only http and https are")
    if not parts.netloc:
        raise _Problem("malformed_url", "the URL has no host (expected scheme://host/...)")
    # Like every client, the host is what follows the *last* '@'.
    _userinfo, at, hostport = parts.netloc.rpartition("@")
    try:
        raw_host, bracketed, port_text = _split_hostport(hostport)
        port = DEFAULT_PORTS[parts.scheme] if port_text is None else _parse_port(port_text)
        host = _normalise_host(raw_host, bracketed=bracketed)
    except _Problem as problem:
        problem.scheme = parts.scheme
        raise
    target = _percent_encode(parts.path or "/")
    if parts.query:
        target += "?" + _percent_encode(parts.query)
    return _ParsedUrl(parts.scheme, host, port, target, has_userinfo=bool(at))


def _redact_url(url: str) -> str:
    """A loggable copy of an unparseable URL: userinfo dropped, odd characters escaped."""
    scheme_end = url.find("://")
    if scheme_end >= 0:
        start = scheme_end + 3
        end = len(url)
        for stop in "/?#\\":
            found = url.find(stop, start)
            if 0 <= found < end:
                end = found
        at = url.rfind("@", start, end)
        if at >= 0:
            url = url[:start] + url[at + 1 :]
    escaped = "".join(
        "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")) if _bad_char(ch) else ch
        for ch in url[:_MAX_LOGGED_URL]
    )
    return escaped + ("..." if len(url) > _MAX_LOGGED_URL else "")


def check_url(url: str, policy: EgressPolicy) -> UrlDecision:
    """Decide whether a URL may be requested under the policy. Pure: no DNS, no I/O.

    Refusal reasons: ``malformed_url``, ``scheme``, ``bad_host``, ``bad_port``,
    ``noncanonical_ip``, ``userinfo`` (any ``user@``; ``host`` then says where it really
    pointed) and ``not_allowlisted``. Never raises for bad input.
    """
    try:
        parsed = _parse_url(url)
    except _Problem as problem:
        return UrlDecision(
            allowed=False,
            reason=problem.reason,
            message=problem.message,
            scheme=problem.scheme,
            host="",
            port=0,
            url=_redact_url(url),
            target="",
        )
    host, port, scheme = parsed.host.text, parsed.port, parsed.scheme

    def refused(reason: str, message: str) -> UrlDecision:
        return UrlDecision(
            allowed=False,
            reason=reason,
            message=message,
            scheme=scheme,
            host=host,
            port=port,
            url=parsed.url,
            target="",
            ip=parsed.host.ip,
        )

    if parsed.has_userinfo:
        return refused(
            "userinfo",
            "URLs with credentials ('user@host') are not allowed; this one would go to host "
            f"{host!r}",
        )
    if not policy.allows(host, port, scheme):
        shown = _authority(host, port, scheme)
        return refused("not_allowlisted", f"host {shown!r} is not in the allowlist (allowed_hosts)")
    return UrlDecision(
        allowed=True,
        reason=None,
        message="",
        scheme=scheme,
        host=host,
        port=port,
        url=parsed.url,
        target=parsed.target,
        ip=parsed.host.ip,
    )


def address_category(ip: IPAddress) -> str | None:
    """Why an address is not publicly routable (e.g. 'loopback'), or None if it is public.

    IPv4 addresses embedded in IPv4-mapped (``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::/96``)
    IPv6 addresses are judged by the embedded address, since that is where packets end up.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            inner = address_category(mapped)
            return None if inner is None else f"IPv4-mapped {inner}"
        if ip in _NAT64:
            inner = address_category(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
            return None if inner is None else f"NAT64 {inner}"
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address):
        if ip in _CGNAT:
            return "shared (CGNAT)"
    else:
        if ip in _UNIQUE_LOCAL:
            return "unique-local"
        if ip.is_site_local:
            return "site-local"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    # Catch-all for special-purpose ranges the checks above do not name (documentation,
    # benchmarking, 6to4, Teredo, ...): only globally routable addresses are public.
    if not ip.is_global:
        return "special-purpose"
    return None


def check_address(
    ip: IPAddress,
    host: str,
    port: int,
    policy: EgressPolicy,
    *,
    scheme: str | None = None,
) -> str | None:
    """Whether a resolved address may be connected to: None if yes, else ``'private_address'``.

    Public addresses are always fine (the host was already allowlisted by :func:`check_url`).
    A non-public address (see :func:`address_category`) is allowed only when the URL's host
    *is* that IP literal and an allowlist entry is the same literal with a matching port; a
    host name that resolves to it is refused, which is what defeats DNS rebinding. With
    ``scheme`` None, a port-less literal entry matches either default port (80 or 443).
    """
    if address_category(ip) is None:
        return None
    try:
        host_ip: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        host_ip = None
    if host_ip == ip:
        for entry in policy.allowed_hosts:
            if not entry.is_ip or ipaddress.ip_address(entry.host) != ip:
                continue
            if entry.port is not None:
                if entry.port == port:
                    return None
            elif port == DEFAULT_PORTS.get(scheme or "") or (
                scheme is None and port in DEFAULT_PORTS.values()
            ):
                return None
    return "private_address"


# --------------------------------------------------------------------------------------------
# Requests, responses, outcomes
# --------------------------------------------------------------------------------------------


def _check_token(value: object, field_name: str) -> str:
    if not isinstance(value, str) or value == "" or not set(value) <= _TOKEN_CHARS:
        raise ValueError(f"{field_name} must be a non-empty HTTP token, got {_show(str(value))}")
    return value


@dataclass(frozen=True)
class EgressRequest:
    """One request from the guest.

    ``method`` is uppercased; ``timeout_ms`` None or 0 means the policy's limit (a larger value
    is capped by it). Header values may not contain CR, LF or NUL and must be Latin-1
    encodable (what HTTP/1.1 can carry). Raises ValueError naming the offending field; the host
    should hand that message to the guest as the refusal.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout_ms: int | None = None

    def __post_init__(self) -> None:
        method = _check_token(self.method, "method").upper()
        if method == "CONNECT":
            # A tunnel would let the guest speak arbitrary protocols through an allowed host.
            raise ValueError("method CONNECT is not supported")
        object.__setattr__(self, "method", method)
        if not isinstance(self.url, str):
            raise ValueError(f"url must be a string, got {type(self.url).__name__}")
        headers: list[tuple[str, str]] = []
        for index, pair in enumerate(self.headers):
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise ValueError(f"headers[{index}] must be a (name, value) pair")
            name = _check_token(pair[0], f"headers[{index}] name")
            value = pair[1]
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                raise ValueError(
                    f"headers[{index}] ({name}) value must be a string without CR, LF or NUL"
                )
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"headers[{index}] ({name}) value must be Latin-1 text") from None
            headers.append((name, value))
        object.__setattr__(self, "headers", tuple(headers))
        if isinstance(self.body, bytearray | memoryview):
            object.__setattr__(self, "body", bytes(self.body))
        elif not isinstance(self.body, bytes):
            raise ValueError(f"body must be bytes, got {type(self.body).__name__}")
        if self.timeout_ms is not None:
            if not _is_int(self.timeout_ms) or self.timeout_ms < 0:
                raise ValueError(
                    f"timeout_ms must be None or a non-negative integer, got {self.timeout_ms!r}"
                )
            if self.timeout_ms == 0:
                object.__setattr__(self, "timeout_ms", None)


@dataclass(frozen=True)
class EgressResponse:
    """The final response (after redirects). ``url`` is the URL that produced it."""

    status: int
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class SubrequestRecord:
    """One hop, for logs and streaming: never headers or bodies.

    ``url`` has no userinfo or fragment; ``status`` is None when no response arrived;
    ``bytes`` is the response body size read; ``ms`` the hop's duration in milliseconds;
    ``allowed`` whether the policy let the hop onto the network; ``reason`` the refusal or
    failure reason, None on success.
    """

    method: str
    url: str
    status: int | None
    bytes: int
    ms: float
    allowed: bool
    reason: str | None


@dataclass(frozen=True)
class FetchOutcome:
    """Exactly one of ``response`` and ``error`` is set.

    ``error`` is a message meant for the guest; ``reason`` is the machine reason behind it.
    """

    response: EgressResponse | None
    error: str | None
    records: tuple[SubrequestRecord, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.error is None):
            raise ValueError("FetchOutcome needs exactly one of response and error")


# --------------------------------------------------------------------------------------------
# Network plumbing
# --------------------------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve with getaddrinfo (TCP); addresses in the system's preference order, deduplicated.

    Raises OSError (socket.gaierror) on failure.
    """
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    ):
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(sockaddr[0], str):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def tcp_dial(address: IPAddress, port: int, timeout: float) -> socket.socket:
    """Open a TCP connection to exactly this address (timeout in seconds); raises OSError."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((str(address), port))
    except BaseException:
        sock.close()
        raise
    return sock


class _Watchdog:
    """Shuts a hop's socket down when the hop's time is up.

    Socket timeouts bound each recv() separately, so a server dripping one byte at a time could
    hold a hop open indefinitely; shutting the socket down from a timer thread wakes whichever
    call is blocked (reads then see EOF or an error, and :attr:`fired` tells the truth).
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._fired = False
        self._stopped = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def fired(self) -> bool:
        with self._lock:
            return self._fired

    def attach(self, sock: socket.socket) -> None:
        """Watch this socket from now on; raises TimeoutError if time is already up."""
        with self._lock:
            if self._fired:
                raise TimeoutError("the time limit passed while connecting")
            self._sock = sock

    def _fire(self) -> None:
        # Under the lock so stop() (which runs before the socket is closed) cannot race us
        # into shutting down a closed, possibly reused, descriptor.
        with self._lock:
            if self._stopped:
                return
            self._fired = True
            if self._sock is not None:
                # The plain socket method, not SSLSocket.shutdown(), which would also tear
                # down the TLS object another thread is blocked inside.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._stopped = True
            self._sock = None


def _open_pinned(
    dialer: Dialer, address: IPAddress, port: int, timeout: float, watchdog: _Watchdog
) -> socket.socket:
    sock = dialer(address, port, timeout)
    try:
        watchdog.attach(sock)
        # Requests are written in a few small pieces; don't let Nagle delay them.
        # (OSError: not a TCP socket, e.g. a test double; harmless.)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP connection to an already-checked address: connect() never resolves names."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        address: IPAddress,
        dialer: Dialer,
        watchdog: _Watchdog,
        timeout: float,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.phase = "dial"
        self._pinned_address = address
        self._dialer = dialer
        self._watchdog = watchdog
        self._dial_timeout = timeout

    def connect(self) -> None:
        self.phase = "dial"
        self.sock = _open_pinned(
            self._dialer, self._pinned_address, self.port, self._dial_timeout, self._watchdog
        )
        self.phase = "exchange"


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS connection to an already-checked address, verifying the certificate by name."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        address: IPAddress,
        dialer: Dialer,
        watchdog: _Watchdog,
        timeout: float,
        context: ssl.SSLContext,
        server_hostname: str,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.phase = "dial"
        self._pinned_address = address
        self._dialer = dialer
        self._watchdog = watchdog
        self._dial_timeout = timeout
        self._tls_context = context
        self._server_hostname = server_hostname

    def connect(self) -> None:
        self.phase = "dial"
        raw = _open_pinned(
            self._dialer, self._pinned_address, self.port, self._dial_timeout, self._watchdog
        )
        self.phase = "tls"
        try:
            # The handshake is deferred so the watchdog watches the TLS socket during it.
            tls = self._tls_context.wrap_socket(
                raw, server_hostname=self._server_hostname, do_handshake_on_connect=False
            )
        except BaseException:
            raw.close()
            raise
        try:
            self._watchdog.attach(tls)
            tls.do_handshake()
        except BaseException:
            tls.close()
            raise
        self.sock = tls
        self.phase = "exchange"


class _HopFailure(Exception):
    """A hop ended without a usable response; internal to Gate."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        allowed: bool = True,
        status: int | None = None,
        nbytes: int = 0,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.allowed = allowed
        self.status = status
        self.nbytes = nbytes
        self.retriable = retriable


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    location: str | None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        text = str(exc.reason).lower().replace("_", " ")
        if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
            text = f"certificate verify failed: {exc.verify_message}"
        return text
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _timed_out(total_ms: int) -> _HopFailure:
    return _HopFailure("timeout", f"timed out (total time limit {total_ms} ms)")


def _decode_location(value: str) -> str:
    # http.client decodes header bytes as Latin-1; servers send UTF-8 in practice.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the system CA store takes tens of milliseconds and a Gate is built per run;
    # one verifying context is safe to share between threads.
    return ssl.create_default_context()


class Gate:
    """Performs guest HTTP requests under an :class:`EgressPolicy`.

    ``resolver`` maps (host, port) to addresses (default: getaddrinfo); ``dialer`` opens a TCP
    connection to one address (default: :func:`tcp_dial`; injectable so tests can observe
    which addresses would be contacted); ``clock`` returns monotonic seconds; ``ssl_context``
    (default: one shared ``ssl.create_default_context()``) must verify certificates and host
    names, or ValueError is raised. A Gate holds no per-request state and may be shared across
    threads.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver | None = None,
        clock: Clock = time.monotonic,
        dialer: Dialer | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not isinstance(policy, EgressPolicy):
            raise ValueError(f"policy must be an EgressPolicy, got {type(policy).__name__}")
        context = ssl_context if ssl_context is not None else _default_ssl_context()
        if not context.check_hostname or context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("ssl_context must verify certificates and host names")
        self._policy = policy
        self._resolver: Resolver = resolver if resolver is not None else system_resolver
        self._clock = clock
        self._dialer: Dialer = dialer if dialer is not None else tcp_dial
        self._ssl_context = context

    @property
    def policy(self) -> EgressPolicy:
        return self._policy

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self._ssl_context

    def fetch(
        self,
        request: EgressRequest,
        *,
        budget: Callable[[], bool] | None = None,
        deadline: float | None = None,
    ) -> FetchOutcome:
        """Perform the request, following redirects; never raises for guest or network faults.

        ``budget`` is called before every hop (including the first) and must return False to
        stop with ``subrequest_limit``; each call is one subrequest. ``deadline`` is an
        absolute time on the gate's clock (seconds) that the whole fetch must finish by.
        """
        policy = self._policy
        started = self._clock()
        limit_ms = policy.timeout_ms
        if request.timeout_ms is not None:
            limit_ms = min(limit_ms, request.timeout_ms)
        end = started + limit_ms / 1000
        if deadline is not None:
            end = min(end, deadline)
        total_ms = max(0, round((end - started) * 1000))

        method = request.method
        url = request.url
        body = request.body
        headers = [(n, v) for n, v in request.headers if n.lower() not in _GATE_OWNED_HEADERS]
        records: list[SubrequestRecord] = []
        previous_origin: tuple[str, str, int] | None = None
        redirects = 0

        def outcome_error(reason: str, message: str) -> FetchOutcome:
            verb = "denied" if reason in _DENIAL_REASONS else "failed"
            return FetchOutcome(
                response=None,
                error=f"egress {verb}: {message}",
                records=tuple(records),
                reason=reason,
            )

        def record(
            hop_url: str,
            hop_started: float,
            *,
            allowed: bool,
            reason: str | None,
            status: int | None = None,
            nbytes: int = 0,
        ) -> None:
            ms = round((self._clock() - hop_started) * 1000, 3)
            records.append(SubrequestRecord(method, hop_url, status, nbytes, ms, allowed, reason))

        while True:
            hop_started = self._clock()
            if budget is not None and not budget():
                record(_redact_url(url), hop_started, allowed=False, reason="subrequest_limit")
                return outcome_error(
                    "subrequest_limit", "the run's subrequest limit has been reached"
                )
            decision = check_url(url, policy)
            if decision.reason is not None:
                record(decision.url, hop_started, allowed=False, reason=decision.reason)
                return outcome_error(decision.reason, decision.message)
            if previous_origin is not None and decision.origin != previous_origin:
                # Credentials were meant for the origin the guest named, not wherever it
                # redirects to; once dropped they stay dropped.
                headers = [(n, v) for n, v in headers if n.lower() not in _CREDENTIAL_HEADERS]
            previous_origin = decision.origin

            try:
                reply = self._hop(decision, method, headers, body, end, total_ms)
            except _HopFailure as failure:
                record(
                    decision.url,
                    hop_started,
                    allowed=failure.allowed,
                    reason=failure.reason,
                    status=failure.status,
                    nbytes=failure.nbytes,
                )
                return outcome_error(failure.reason, failure.message)

            if reply.location is None:
                record(
                    decision.url,
                    hop_started,
                    allowed=True,
                    reason=None,
                    status=reply.status,
                    nbytes=len(reply.body),
                )
                response = EgressResponse(reply.status, decision.url, reply.headers, reply.body)
                return FetchOutcome(response=response, error=None, records=tuple(records))

            if redirects >= policy.max_redirects:
                record(
                    decision.url,
                    hop_started,
                    allowed=True,
                    reason="too_many_redirects",
                    status=reply.status,
                )
                return outcome_error(
                    "too_many_redirects",
                    f"more than {policy.max_redirects} redirects (max_redirects)",
                )
            record(decision.url, hop_started, allowed=True, reason=None, status=reply.status)
            redirects += 1
            if (reply.status == 303 and method != "HEAD") or (
                reply.status in (301, 302) and method == "POST"
            ):
                # What browsers do: the redirected request is a GET without the body.
                method = "GET"
                body = b""
                headers = [(n, v) for n, v in headers if n.lower() not in _BODY_HEADERS]
            try:
                url = urljoin(decision.url, reply.location)
            except ValueError:
                url = reply.location  # check_url will refuse it as malformed

    def _hop(
        self,
        decision: UrlDecision,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes,
        end: float,
        total_ms: int,
    ) -> _Reply:
        """Resolve, check addresses and exchange one request; raises _HopFailure."""
        if end - self._clock() <= 0:
            raise _timed_out(total_ms)
        if decision.ip is not None:
            addresses: list[IPAddress] = [decision.ip]
        else:
            addresses = self._resolve(decision.host, decision.port, end, total_ms)
        # Every answer is checked, but only the acceptable ones are used: a name that also
        # resolves to a private address still works through its public ones, and the private
        # ones never see a packet. (Refusing the whole answer would be no safer, since the
        # connection is pinned to a checked address, only less available.)
        verdicts = [
            (
                address,
                check_address(
                    address, decision.host, decision.port, self._policy, scheme=decision.scheme
                ),
            )
            for address in addresses
        ]
        permitted = [address for address, reason in verdicts if reason is None]
        refused = [address for address, reason in verdicts if reason is not None]
        if not permitted:
            first = refused[0]
            raise _HopFailure(
                "private_address",
                f"{decision.host!r} resolves to {first}, a {address_category(first)} address; "
                "only public addresses may be reached by name (allowed_hosts may list the "
                "exact IP literal instead)",
                allowed=False,
            )
        for address in permitted[:-1]:
            try:
                return self._exchange(decision, address, method, headers, body, end, total_ms)
            except _HopFailure as exc:
                # A failed dial sent nothing, so the next checked address may be tried.
                if not exc.retriable:
                    raise
        return self._exchange(decision, permitted[-1], method, headers, body, end, total_ms)

    def _resolve(self, host: str, port: int, end: float, total_ms: int) -> list[IPAddress]:
        """Resolve once, bounded by the deadline; raises _HopFailure."""
        remaining = end - self._clock()
        if remaining <= 0:
            raise _timed_out(total_ms)
        results: list[list[IPAddress]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(self._resolver(host, port))
            except BaseException as exc:  # handed to the calling thread below
                errors.append(exc)

        # getaddrinfo has no timeout of its own; a thread lets the deadline win.
        worker = threading.Thread(target=run, name="egress-dns", daemon=True)
        worker.start()
        worker.join(remaining)
        if worker.is_alive():
            raise _timed_out(total_ms)
        if errors:
            error = errors[0]
            if isinstance(error, TimeoutError):
                raise _timed_out(total_ms)
            if isinstance(error, OSError | UnicodeError):
                raise _HopFailure(
                    "dns_error", f"could not resolve {host!r} ({_describe(error)})"
                ) from None
            raise error  # a bug in the resolver, not a network condition
        addresses = results[0]
        for address in addresses:
            if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise TypeError(f"resolver returned {address!r}, not an ipaddress address")
        if not addresses:
            raise _HopFailure("dns_error", f"could not resolve {host!r} (no addresses)")
        return addresses

    def _exchange(
        self,
        decision: UrlDecision,
        address: IPAddress,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes,
        end: float,
        total_ms: int,
    ) -> _Reply:
        """One request/response over a new connection to ``address``; raises _HopFailure."""
        remaining = end - self._clock()
        if remaining <= 0:
            raise _timed_out(total_ms)
        cap = self._policy.max_response_bytes
        watchdog = _Watchdog(remaining)
        conn: _PinnedHTTPConnection | _PinnedHTTPSConnection
        if decision.scheme == "https":
            conn = _PinnedHTTPSConnection(
                decision.host,
                decision.port,
                address=address,
                dialer=self._dialer,
                watchdog=watchdog,
                timeout=remaining,
                context=self._ssl_context,
                server_hostname=decision.host,
            )
        else:
            conn = _PinnedHTTPConnection(
                decision.host,
                decision.port,
                address=address,
                dialer=self._dialer,
                watchdog=watchdog,
                timeout=remaining,
            )
        status: int | None = None
        received = 0
        response: http.client.HTTPResponse | None = None
        try:
            conn.connect()
            conn.putrequest(method, decision.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", decision.authority)
            for name, value in headers:
                conn.putheader(name, value)
            if body or method in _METHODS_WITH_BODY:
                conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            if not any(name.lower() == "user-agent" for name, _ in headers):
                conn.putheader("User-Agent", USER_AGENT)
            conn.endheaders(body or None)
            response = conn.getresponse()
            status = response.status
            reply_headers = tuple(response.getheaders())
            location = response.getheader("Location")
            if status in _REDIRECT_STATUSES and location is not None:
                if watchdog.fired:
                    raise TimeoutError
                return _Reply(status, reply_headers, b"", _decode_location(location))
            too_large = _HopFailure(
                "response_too_large",
                f"the response body exceeds {cap} bytes (max_response_bytes)",
                status=status,
            )
            if response.length is not None and response.length > cap:
                raise too_large  # declared up front; don't download any of it
            chunks: list[bytes] = []
            while True:
                chunk = response.read(min(_READ_CHUNK, cap - received + 1))
                if not chunk:
                    break
                received += len(chunk)
                if received > cap:
                    too_large.nbytes = received
                    raise too_large
                chunks.append(chunk)
            # A watchdog shutdown looks like a clean EOF to a close-delimited body, so the
            # body is only trusted if the watchdog did not fire.
            if watchdog.fired:
                raise TimeoutError
            return _Reply(status, reply_headers, b"".join(chunks), None)
        except _HopFailure:
            raise
        except (OSError, http.client.HTTPException) as exc:
            where = decision.authority
            if watchdog.fired or isinstance(exc, TimeoutError):
                reason, message = "timeout", _timed_out(total_ms).message
            elif conn.phase == "tls" or isinstance(exc, ssl.SSLError):
                reason, message = "tls_error", f"TLS with {where} failed ({_describe(exc)})"
            elif isinstance(exc, http.client.HTTPException):
                reason = "protocol_error"
                message = f"invalid HTTP response from {where} ({_describe(exc)})"
            elif conn.phase == "dial":
                reason = "connect_error"
                message = f"could not connect to {where} ({_describe(exc)})"
            else:
                reason = "connect_error"
                message = f"connection to {where} failed ({_describe(exc)})"
            raise _HopFailure(
                reason,
                message,
                status=status,
                nbytes=received,
                retriable=conn.phase == "dial" and reason == "connect_error",
            ) from None
        finally:
            # Stop the watchdog before closing so it can never touch a closed descriptor.
            watchdog.stop()
            if response is not None:
                response.close()
            conn.close()
