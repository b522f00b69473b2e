"""URLs as the gate judges them: strict parsing, :func:`check_url` and loggable copies.

Pure: no DNS and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sandbox.egress._checks import _bad_char
from sandbox.egress._hosts import _Host, _normalise_host, _parse_port, _Problem, _split_hostport
from sandbox.egress.addresses import IPAddress
from sandbox.egress.policy import DEFAULT_PORTS, EgressPolicy
from sandbox.egress.redaction import redact_url


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
            url=redact_url(url),
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
        message = f"host {shown!r} is not in the allowlist (allowed_hosts)"
        near = policy.entries_naming(host)
        if near:
            opened = ", ".join(
                f"{entry!s} opens port {entry.port}"
                if entry.port is not None
                else f"{entry!s} opens only the default ports (80 for http, 443 for https)"
                for entry in near
            )
            message += f": {opened}; to reach port {port}, allow '{shown}'"
        return refused("not_allowlisted", message)
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
