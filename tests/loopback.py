"""A real HTTP server on 127.0.0.1 that records every request it gets.

Routes: ``/hello`` (text), ``/json``, ``/echo`` (method, headers and body back
as JSON), ``/redirect?to=URL&code=302``, ``/big?bytes=N``, ``/slow?ms=N``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The operator's opt-in that lets tests reach their loopback servers by IP literal: sandbox
# policies carry it as private_networks, services get SANDLOT_EGRESS_PRIVATE_NETWORKS.
LOOPBACK_NETWORKS = (ipaddress.IPv4Network("127.0.0.0/8"),)
LOOPBACK_CIDR = "127.0.0.0/8"


class LoopbackServer:
    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                # The gate may hang up on purpose (size cap, deadline).
                with contextlib.suppress(ConnectionError):
                    self._route()

            def _route(self) -> None:
                with outer._lock:
                    outer.hits.append((self.command, self.path))
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                if url.path == "/hello":
                    self._send(200, b"hello from loopback", "text/plain")
                elif url.path == "/json":
                    self._send(200, json.dumps({"answer": 42}).encode(), "application/json")
                elif url.path == "/echo":
                    payload = {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode("latin-1"),
                    }
                    self._send(200, json.dumps(payload).encode(), "application/json")
                elif url.path == "/redirect":
                    self.send_response(int(query.get("code", "302")))
                    self.send_header("location", query["to"])
                    self.send_header("content-length", "0")
                    self.end_headers()
                elif url.path == "/big":
                    self._send(200, b"x" * int(query.get("bytes", "1000")), "text/plain")
                elif url.path == "/slow":
                    time.sleep(int(query.get("ms", "1000")) / 1000)
                    self._send(200, b"slow", "text/plain")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def hit_count(self) -> int:
        with self._lock:
            return len(self.hits)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
