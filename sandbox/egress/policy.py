"""What a run may reach: the allowlist entries and limits of an :class:`EgressPolicy`."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from sandbox.egress._checks import _bad_char, _is_int
from sandbox.egress._hosts import (
    _looks_numeric,
    _normalise_host,
    _parse_port,
    _Problem,
    _split_hostport,
)

DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
_MIB = 1024 * 1024

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_ENTRY_FORMS = (
    "accepted forms are 'host', 'host:port', '*.domain', '*.domain:port', an IPv4 address "
    "like '203.0.113.7[:port]' or a bracketed IPv6 address like '[2001:db8::1]:8443'"
)


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
        return self.names(host)

    def names(self, host: str) -> bool:
        """Whether a canonical host is this entry's, whatever the port."""
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
    ``too_many_redirects``); the other limits must be positive. ``private_networks`` are the
    only non-public networks (loopback, private, link-local, ...) an IP-literal entry may open
    (see :func:`~sandbox.egress.check_address`); the default, empty, opens none, whatever the
    entries say. Raises ValueError naming the field.
    """

    allowed_hosts: tuple[AllowEntry, ...]
    max_response_bytes: int = 10 * _MIB
    timeout_ms: int = 10_000
    max_redirects: int = 5
    private_networks: tuple[IPNetwork, ...] = ()

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
        if not isinstance(self.private_networks, tuple) or not all(
            isinstance(network, IPNetwork) for network in self.private_networks
        ):
            raise ValueError(
                "private_networks must be a tuple of IPv4Network or IPv6Network, got "
                f"{self.private_networks!r}"
            )

    @classmethod
    def from_strings(
        cls,
        allowed_hosts: Iterable[str],
        *,
        max_response_bytes: int = 10 * _MIB,
        timeout_ms: int = 10_000,
        max_redirects: int = 5,
        private_networks: Iterable[str | IPNetwork] = (),
    ) -> EgressPolicy:
        """Build a policy from entry strings (see :meth:`AllowEntry.parse`) and networks in
        CIDR notation (``'10.0.0.0/8'``, ``'fd00::/8'``); raises ValueError naming the entry."""
        if isinstance(allowed_hosts, str):
            # A bare string would otherwise be iterated character by character.
            raise ValueError("allowed_hosts must be a list of strings, not a single string")
        return cls(
            allowed_hosts=tuple(AllowEntry.parse(text) for text in allowed_hosts),
            max_response_bytes=max_response_bytes,
            timeout_ms=timeout_ms,
            max_redirects=max_redirects,
            private_networks=parse_networks(private_networks),
        )

    def allows(self, host: str, port: int, scheme: str) -> bool:
        """Whether any entry matches the canonical host, port and scheme."""
        return any(entry.matches(host, port, scheme) for entry in self.allowed_hosts)

    def entries_naming(self, host: str) -> list[AllowEntry]:
        """The entries for this canonical host on other ports (to say which ports they open)."""
        return [entry for entry in self.allowed_hosts if entry.names(host)]


def parse_networks(networks: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """Networks from CIDR text (``'127.0.0.0/8'``, ``'fd00::/8'``) or network objects.

    Host bits must be zero (``'10.0.0.1/8'`` is refused rather than guessed). Raises
    ValueError naming the entry.
    """
    if isinstance(networks, str):
        raise ValueError("private_networks must be a list of CIDRs, not a single string")
    parsed: list[IPNetwork] = []
    for network in networks:
        if isinstance(network, IPNetwork):
            parsed.append(network)
            continue
        if not isinstance(network, str):
            raise ValueError(f"private_networks entries must be CIDR strings, got {network!r}")
        try:
            parsed.append(ipaddress.ip_network(network, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"private_networks entry {network!r} is not a network in CIDR notation like "
                f"'10.0.0.0/8' or 'fd00::/8' (host bits must be zero): {exc}"
            ) from None
    return tuple(parsed)
