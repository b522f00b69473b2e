"""Which IP addresses are publicly routable, and which a policy lets a connection reach."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sandbox.egress.policy import DEFAULT_PORTS, EgressPolicy, IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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
    A non-public address (see :func:`address_category`) is allowed only when all of these
    hold: it lies in one of the policy's ``private_networks`` (empty by default, so by default
    never); the URL's host *is* that IP literal; and an allowlist entry is the same literal
    with a matching port. A host name that resolves to it is refused, which is what defeats
    DNS rebinding. With ``scheme`` None, a port-less literal entry matches either default port
    (80 or 443).
    """
    if address_category(ip) is None:
        return None
    if not in_networks(ip, policy.private_networks):
        return "private_address"
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


def in_networks(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """Whether ``ip`` lies in one of ``networks``.

    An IPv4 address embedded in an IPv4-mapped or NAT64 IPv6 address is matched as the IPv4
    address it leads to, and only so: ``::ffff:127.0.0.1`` is in ``127.0.0.0/8``, and never in
    an IPv6 network that happens to contain its 128-bit form (``::/0``), since the packets go
    to the embedded address.
    """
    candidate: IPAddress = ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidate = ip.ipv4_mapped
        elif ip in _NAT64:
            candidate = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return any(candidate.version == net.version and candidate in net for net in networks)
