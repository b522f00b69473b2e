"""Host and port syntax, shared by allowlist entries and URLs so both normalise identically.

Internal to the egress package: failures are raised as :class:`_Problem` (a machine reason plus
a message), which the callers turn into ValueError or a refused :class:`UrlDecision`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sandbox.egress._checks import _show

_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX_DIGITS = frozenset("0123456789abcdef")


class _Problem(Exception):
    """A refusal with a machine reason; internal, converted to decisions or ValueError."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.scheme = ""  # filled in once a URL's scheme is known


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
    # addresses.IPAddress, spelled out: importing it would be a cycle (addresses -> policy).
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None


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
