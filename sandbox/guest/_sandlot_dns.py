"""Name lookups as on a machine without DNS, the same on every engine.

No guest resolves names: HTTP goes out through the egress gate by host name (``urllib``,
``http.client``, ``requests``, ``sandlot.fetch``), and sockets can't be opened anyway. Yet
the lookups answered three ways: absent on the data-stack guest (``socket.getfqdn()`` even
raised ``NameError``), ``gaierror`` "Non-recoverable error" for every name on the
component guest, and a dead interpreter on Pyodide (Emscripten's lookup runs a regular
expression the sandbox refuses). :func:`install` answers them all alike:

* ``localhost``, the machine's own name (``socket.gethostname()``) and address literals
  resolve, to themselves or ``127.0.0.1`` (``::1`` when IPv6 is asked for);
* any other name raises ``socket.gaierror`` with ``EAI_NONAME`` and a message that says
  why and what to use instead; ``gethostbyaddr`` of another address raises
  ``socket.herror``, as without a hosts entry;
* ``getaddrinfo`` gives python's tuples (as on Linux: one per socket type, or the one
  asked for), so ``socket.create_connection`` and asyncio get as far as the socket, which
  the sandbox refuses as before.
"""

from __future__ import annotations

import ipaddress
import operator
import socket
from types import ModuleType
from typing import Any

import _sandlot_hooks

NO_DNS = (
    "the sandbox has no DNS; HTTP clients (urllib, http.client, requests, sandlot.fetch) "
    "reach the hosts a run allows by name through the egress gate"
)
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_EAI_NONAME = getattr(socket, "EAI_NONAME", -2)
_EAI_SERVICE = getattr(socket, "EAI_SERVICE", -8)
_EAI_FAMILY = getattr(socket, "EAI_FAMILY", -6)
# (socket type, protocol) as Linux lists them for a lookup that names no type.
_KINDS = ((socket.SOCK_STREAM, 6), (socket.SOCK_DGRAM, 17), (getattr(socket, "SOCK_RAW", 3), 0))


def install() -> None:
    _sandlot_hooks.after_import("socket", _patch)


def _patch(module: ModuleType) -> None:
    module.gethostbyname = gethostbyname
    module.gethostbyname_ex = gethostbyname_ex
    module.gethostbyaddr = gethostbyaddr
    # socket.getaddrinfo is python's wrapper around _socket's: it makes the enums.
    module._socket.getaddrinfo = _getaddrinfo  # type: ignore[attr-defined]


def _name(host: Any) -> str:
    if isinstance(host, bytes | bytearray):
        return bytes(host).decode("ascii", "replace")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    return host


def _is_local(name: str) -> bool:
    return name.lower().rstrip(".") in LOCAL_NAMES or name == socket.gethostname()


def _literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return None


def _unknown(name: str) -> socket.gaierror:
    return socket.gaierror(_EAI_NONAME, f"Name or service not known: {name!r}: {NO_DNS}")


def gethostbyname(hostname: Any, /) -> str:
    """Return the IPv4 address of a host: literals, localhost and this machine only."""
    name = _name(hostname)
    if not name:  # python's own reading of "" (and of "<broadcast>", below)
        return "0.0.0.0"
    if name == "<broadcast>":
        return "255.255.255.255"
    try:
        return socket.inet_ntoa(socket.inet_aton(name))  # "127.1" as the C library reads it
    except OSError:
        pass
    if _is_local(name):
        return "127.0.0.1"
    raise _unknown(name)


def gethostbyname_ex(hostname: Any, /) -> tuple[str, list[str], list[str]]:
    """Return (name, aliases, addresses) of a host: literals, localhost and this machine."""
    address = gethostbyname(hostname)
    name = _name(hostname)
    return ("localhost" if _is_local(name) else name, [], [address])


def gethostbyaddr(ip_address: Any, /) -> tuple[str, list[str], list[str]]:
    """Return (name, aliases, addresses) for a loopback address or a local name."""
    name = _name(ip_address)
    literal = _literal(name)
    if (literal is not None and literal.is_loopback) or (literal is None and _is_local(name)):
        address = str(literal) if literal is not None else "127.0.0.1"
        return ("localhost", [], [address])
    if literal is None:
        raise _unknown(name)
    raise socket.herror(1, f"Unknown host: {name}: {NO_DNS}")


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[tuple[int, int, int, str, tuple[Any, ...]]]:
    family, type, proto = operator.index(family), operator.index(type), operator.index(proto)
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
        raise socket.gaierror(_EAI_FAMILY, "ai_family not supported")
    number = _port(port)
    if host is None:
        passive = flags & getattr(socket, "AI_PASSIVE", 1)
        literal = None
        addresses = ["::" if passive else "::1"] if family == socket.AF_INET6 else []
        addresses = addresses or ["0.0.0.0" if passive else "127.0.0.1"]
    else:
        name = _name(host)
        literal = _literal(name)
        if literal is not None:
            addresses = [str(literal)]
        elif _is_local(name):
            addresses = ["::1"] if family == socket.AF_INET6 else ["127.0.0.1"]
        else:
            raise _unknown(name)
    found = []
    for address in addresses:
        is_v6 = ":" in address
        af = socket.AF_INET6 if is_v6 else socket.AF_INET
        if (family == socket.AF_INET and is_v6) or (family == socket.AF_INET6 and not is_v6):
            raise socket.gaierror(
                getattr(socket, "EAI_ADDRFAMILY", _EAI_NONAME),
                "Address family for hostname not supported",
            )
        sockaddr: tuple[Any, ...] = (address, number, 0, 0) if is_v6 else (address, number)
        for kind, protocol in _KINDS:
            if (type and kind != type) or (proto and protocol and protocol != proto):
                continue
            found.append((af, kind, proto or protocol, "", sockaddr))
    if not found:
        raise socket.gaierror(_EAI_SERVICE, "Servname not supported for ai_socktype")
    return found


def _port(port: Any) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes | bytearray):
        port = bytes(port).decode("ascii", "replace")
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        raise socket.gaierror(_EAI_SERVICE, f"Servname not supported for ai_socktype: {port!r}")
    if isinstance(port, int):
        return port
    raise OSError("Int or String expected")
