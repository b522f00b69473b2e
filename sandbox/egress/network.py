"""Network plumbing: resolving names, dialling addresses, and HTTP(S) connections pinned to
an address that has already been checked (they never look a name up themselves).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable

from sandbox.egress.addresses import IPAddress

# (host name, port) -> addresses; raises OSError (e.g. socket.gaierror) when resolution fails.
Resolver = Callable[[str, int], list[IPAddress]]
# (address, port, timeout in seconds) -> connected TCP socket; raises OSError on failure.
Dialer = Callable[[IPAddress, int, float], socket.socket]


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


class _CountingSend(http.client.HTTPConnection):
    """Counts what it writes (request line, headers, body; before TLS) in ``sent_bytes``."""

    sent_bytes = 0

    def send(self, data: object) -> None:
        super().send(data)  # type: ignore[arg-type]
        if isinstance(data, bytes | bytearray | memoryview):
            self.sent_bytes += len(data)


class _PinnedHTTPConnection(_CountingSend):
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


class _PinnedHTTPSConnection(http.client.HTTPSConnection, _CountingSend):
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


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the system CA store takes tens of milliseconds and a Gate is built per run;
    # one verifying context is safe to share between threads.
    return ssl.create_default_context()
