"""A real HTTP server on 127.0.0.1 that records every request it gets.

Standard routes: ``/hello`` (text), ``/json``, ``/echo`` (method, headers and body back
as JSON), ``/redirect?to=URL&code=302``, ``/big?bytes=N``, ``/slow?ms=N``. A test
may give its own table of routes instead (``path → Route``), a fallback, and TLS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The operator's opt-in that lets tests reach their loopback servers by IP literal: sandbox
# policies carry it as private_networks, services get SANDLOT_EGRESS_PRIVATE_NETWORKS.
LOOPBACK_NETWORKS = (ipaddress.IPv4Network("127.0.0.0/8"),)
LOOPBACK_CIDR = "127.0.0.0/8"


@dataclasses.dataclass(frozen=True)
class Hit:
    """One request the server got."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    @property
    def loopback(self) -> LoopbackServer:
        return self.server.owner

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.loopback
        with owner.lock:
            owner.requests.append(Hit(self.command, self.path, tuple(self.headers.items()), body))
        route = owner.routes.get(urlsplit(self.path).path, owner.fallback)
        # The client may hang up on purpose (a size cap, a deadline).
        with contextlib.suppress(ConnectionError):
            route(self)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


Route = Callable[[Handler], None]


def reply(status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Route:
    def route(h: Handler) -> None:
        h.send_response(status)
        for name, value in headers:
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return route


def _echo_json(h: Handler) -> None:
    hit = h.loopback.requests[-1]
    payload = {
        "method": hit.method,
        "path": hit.path,
        "headers": {k.lower(): v for k, v in hit.headers},
        "body": hit.body.decode("latin-1"),
    }
    reply(200, json.dumps(payload).encode(), (("content-type", "application/json"),))(h)


def _redirect(h: Handler) -> None:
    reply(int(h.query.get("code", "302")), b"", (("location", h.query["to"]),))(h)


def _big(h: Handler) -> None:
    reply(200, b"x" * int(h.query.get("bytes", "1000")), (("content-type", "text/plain"),))(h)


def _slow(h: Handler) -> None:
    h.loopback.stop.wait(int(h.query.get("ms", "1000")) / 1000)
    reply(200, b"slow", (("content-type", "text/plain"),))(h)


STANDARD_ROUTES: dict[str, Route] = {
    "/hello": reply(200, b"hello from loopback", (("content-type", "text/plain"),)),
    "/json": reply(200, b'{"answer": 42}', (("content-type", "application/json"),)),
    "/echo": _echo_json,
    "/redirect": _redirect,
    "/big": _big,
    "/slow": _slow,
}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackServer) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up on purpose break pipes; that's expected


class LoopbackServer:
    """Serving from construction until ``close()``; ``requests`` records every request."""

    def __init__(
        self,
        routes: dict[str, Route] | None = None,
        *,
        fallback: Route | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.routes = STANDARD_ROUTES if routes is None else routes
        self.fallback = fallback or reply(404, b"not found", (("content-type", "text/plain"),))
        self.requests: list[Hit] = []
        self.lock = threading.Lock()
        # Set at close: routes that wait (slow responses) give up.
        self.stop = threading.Event()
        self._server = _HTTPServer(self)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def at(self, path: str = "/") -> str:
        """The URL of ``path`` on this server."""
        return self.url + path

    @property
    def hits(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far."""
        with self.lock:
            return [(hit.method, hit.path) for hit in self.requests]

    @property
    def hit_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)
