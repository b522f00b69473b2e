"""``http.client`` and urllib3 (``requests``' transport) over ``sandlot.fetch``, any engine.

There are no sockets in the sandbox: every request leaves through the host's egress
gate, which checks it, follows redirects (re-checking every hop), applies the timeout
and reads the whole response (up to its size cap). This module makes the clients people
use speak to the gate:

* :func:`install_http_client` replaces ``http.client.HTTPConnection`` and
  ``HTTPSConnection`` with subclasses whose "socket" collects the bytes http.client
  writes and, when the response is read, sends the request they spell through the gate
  and hands http.client the answer as bytes to parse. Everything above the socket is
  http.client's own code: ``putrequest``/``putheader``/``send``, chunked bodies,
  ``HTTPResponse.read(n)``, keep-alive, HEAD.
* :func:`install_urllib3_hook` waits for ``urllib3`` to be imported (it is an installed
  package, not part of the snapshot) and then swaps its connection classes for
  :func:`urllib3_connections`' (as urllib3 itself does for Emscripten), whose responses
  are urllib3's own ``HTTPResponse`` over an http.client response: ``stream=True``,
  ``iter_content``, ``raw.read(n)``, cookies and status codes behave as with sockets.

Errors: a refusal or failure of the gate is ``sandlot.FetchError`` (an ``OSError``), a
timeout ``sandlot.FetchTimeout`` (also a ``TimeoutError``); through urllib3 they become
``NewConnectionError`` and ``ReadTimeoutError``, so ``requests`` raises
``ConnectionError`` (with the gate's message) and ``ReadTimeout``.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from types import ModuleType
from typing import Any

import _sandlot_imports
import sandlot

_FRAMING = frozenset({"content-length", "transfer-encoding", "content-encoding"})


def install_http_client() -> None:
    """Make ``http.client``'s connection classes use the gate."""
    http.client.HTTPConnection = GateHTTPConnection  # type: ignore[misc]
    http.client.HTTPSConnection = GateHTTPSConnection  # type: ignore[misc]


def install_urllib3_hook() -> None:
    """Swap urllib3's connection classes for gate ones as soon as urllib3 is imported."""
    _sandlot_imports.after_import("urllib3", _patch_urllib3)


# -- the exchange ---------------------------------------------------------------------


def exchange(
    method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes, timeout: Any
) -> bytes:
    """Send one request through the gate; the response as HTTP/1.1 bytes for http.client.

    Raises sandlot.FetchError (sandlot.FetchTimeout on a timeout).
    """
    seconds = timeout if isinstance(timeout, int | float) and timeout > 0 else None
    # Never followed here: http.client doesn't, and urllib3/requests follow (or not) themselves.
    response = sandlot.fetch(
        url,
        method=method,
        headers=list(headers),
        body=body,
        timeout=seconds,
        follow_redirects=False,
    )
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    length = None
    for name, value in response.headers.items():
        if name.lower() in _FRAMING:
            if name.lower() == "content-length":
                length = value
            continue
        lines.append(f"{name}: {value}")
    # The gate has read (and decoded) the whole body: its length is what framing says,
    # except for HEAD, whose Content-Length describes the body a GET would get.
    if method.upper() == "HEAD" and length is not None:
        lines.append(f"Content-Length: {length}")
    elif response.status not in (204, 304) and not 100 <= response.status < 200:
        lines.append(f"Content-Length: {len(response.content)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
    return head + response.content


class _GateSocket:
    """What http.client sees as its socket: writes are collected, and the first read
    (``makefile``) sends the collected request through the gate."""

    def __init__(self, connection: GateHTTPConnection) -> None:
        self._connection = connection
        self._sent = bytearray()
        self.timeout = connection.timeout

    def sendall(self, data: bytes) -> None:
        self._sent += data

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> _Deferred:
        request, self._sent = bytes(self._sent), bytearray()
        timeout, connection = self.timeout, self._connection

        def send() -> bytes:
            method, target, headers, body = _parse_request(request)
            absolute = target.startswith(("http://", "https://"))  # a proxy-style target
            url = target if absolute else connection.gate_url(target)
            return exchange(method, url, headers, body, timeout)

        return _Deferred(send)

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def setsockopt(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        self._sent = bytearray()


class _Deferred(io.BufferedIOBase):
    """The response stream: the exchange happens at the first read, inside http.client's
    ``getresponse``, which then cleans up as for any socket error."""

    def __init__(self, send: Callable[[], bytes]) -> None:
        super().__init__()
        self._send: Callable[[], bytes] | None = send
        self._data = io.BytesIO()

    def _ready(self) -> io.BytesIO:
        if self._send is not None:
            send, self._send = self._send, None
            self._data = io.BytesIO(send())
        return self._data

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._ready().read(size)

    def read1(self, size: int = -1) -> bytes:
        return self._ready().read1(size)

    def readinto(self, buffer: Any) -> int:
        return self._ready().readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        return self._ready().readline(size)

    def peek(self, size: int = 0) -> bytes:
        data = self._ready()
        return data.getvalue()[data.tell() :]


def _parse_request(data: bytes) -> tuple[str, str, list[tuple[str, str]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise http.client.HTTPException(f"malformed request line {lines[0]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # an obsolete folded line
            name, value = headers.pop()
            headers.append((name, f"{value} {line.strip()}"))
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    if any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers):
        body = _unchunk(body)
    # The body is whole now: the gate frames it (Content-Length) itself.
    headers = [
        (n, v) for n, v in headers if n.lower() not in ("transfer-encoding", "content-length")
    ]
    return parts[0], parts[1], headers, body


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


class GateHTTPConnection(http.client.HTTPConnection):
    """``http.client.HTTPConnection`` through the egress gate (no socket)."""

    scheme = "http"

    def connect(self) -> None:
        # The gate connects (and, for https, verifies the certificate) per request.
        self.sock = _GateSocket(self)

    def gate_url(self, target: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == self.default_port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{target}"


class GateHTTPSConnection(GateHTTPConnection):
    """``http.client.HTTPSConnection`` through the egress gate; the gate does TLS."""

    default_port = http.client.HTTPS_PORT
    scheme = "https"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("key_file", None)
        kwargs.pop("cert_file", None)
        kwargs.pop("check_hostname", None)
        super().__init__(host, port, **kwargs)


def replay(raw: bytes, method: str) -> http.client.HTTPResponse:
    """An http.client response parsed from ``raw`` (what :func:`exchange` returns)."""
    response = http.client.HTTPResponse(_Replay(raw), method=method)  # type: ignore[arg-type]
    response.begin()
    return response


class _Replay:
    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO(self._raw)


# -- urllib3 --------------------------------------------------------------------------


def _patch_urllib3(urllib3: ModuleType) -> None:
    import urllib3.connection
    import urllib3.connectionpool

    plain, secure = urllib3_connections()
    urllib3.connectionpool.HTTPConnectionPool.ConnectionCls = plain
    urllib3.connectionpool.HTTPSConnectionPool.ConnectionCls = secure
    urllib3.connection.HTTPConnection = plain
    urllib3.connection.HTTPSConnection = secure
    urllib3.connection.VerifiedHTTPSConnection = secure


def urllib3_connections() -> tuple[type, type]:
    """urllib3 connection classes (plain, TLS) that send through the gate."""
    import urllib3.connection
    from urllib3.exceptions import NewConnectionError
    from urllib3.response import HTTPResponse
    from urllib3.util.timeout import Timeout

    class GateConnection:
        default_port = 80
        scheme = "http"
        default_socket_options: Any = ()
        is_verified = False
        proxy_is_verified = None
        proxy = None
        proxy_config = None

        def __init__(
            self,
            host: str,
            port: int | None = None,
            *,
            timeout: Any = Timeout.DEFAULT_TIMEOUT,
            blocksize: int = 16384,
            **ignored: Any,
        ) -> None:
            self.host = host
            self.port = port or self.default_port
            self.timeout = timeout
            self.blocksize = blocksize
            self.source_address = None
            self.socket_options = None
            self._request: tuple[str, str, list[tuple[str, str]], bytes, dict[str, Any]] | None
            self._request = None
            self._closed = True

        # The pool's interface (urllib3's BaseHTTPConnection).
        def set_tunnel(self, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError("proxies are not available in the sandbox")

        def connect(self) -> None:
            pass

        def request(
            self,
            method: str,
            url: str,
            body: Any = None,
            headers: Any = None,
            *,
            chunked: bool = False,
            preload_content: bool = True,
            decode_content: bool = True,
            enforce_content_length: bool = True,
        ) -> None:
            self._closed = False
            if not url.startswith(("http://", "https://")):
                host = f"[{self.host}]" if ":" in self.host else self.host
                port = "" if self.port == self.default_port else f":{self.port}"
                url = f"{self.scheme}://{host}{port}{url}"
            pairs = [(str(k), str(v)) for k, v in (headers or {}).items()]
            options = {
                "preload_content": preload_content,
                "decode_content": decode_content,
                "enforce_content_length": enforce_content_length,
            }
            self._request = (method, url, pairs, _body_bytes(body), options)

        def getresponse(self) -> Any:
            if self._request is None:
                raise http.client.ResponseNotReady()
            method, url, pairs, body, options = self._request
            self._request = None
            try:
                raw = exchange(method, url, pairs, body, self.timeout)
            except sandlot.FetchTimeout:
                raise  # a TimeoutError: the pool makes it ReadTimeoutError
            except sandlot.FetchError as exc:
                raise NewConnectionError(self, str(exc)) from None  # type: ignore[arg-type]
            original = replay(raw, method)
            headers = urllib3.connection.HTTPHeaderDict()
            for name, value in original.getheaders():
                headers.add(name, value)
            return HTTPResponse(
                body=original,
                headers=headers,
                status=original.status,
                version=original.version,
                version_string="HTTP/1.1",
                reason=original.reason,
                preload_content=options["preload_content"],
                decode_content=options["decode_content"],
                original_response=original,
                enforce_content_length=options["enforce_content_length"],
                request_method=method,
                request_url=url,
                connection=self,
            )

        def close(self) -> None:
            self._closed = True
            self._request = None

        @property
        def is_closed(self) -> bool:
            return self._closed

        @property
        def is_connected(self) -> bool:
            return not self._closed

        @property
        def has_connected_to_proxy(self) -> bool:
            return False

    class GateTLSConnection(GateConnection):
        default_port = 443
        scheme = "https"
        is_verified = True  # the gate verifies every certificate, always
        cert_reqs = "CERT_REQUIRED"
        ca_certs = ca_cert_dir = ca_cert_data = None
        ssl_version = ssl_minimum_version = ssl_maximum_version = None
        assert_hostname = assert_fingerprint = None

        def set_cert(self, *args: Any, **kwargs: Any) -> None:
            pass

    return GateConnection, GateTLSConnection


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    chunks: Iterable[Any] = body
    return b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)
