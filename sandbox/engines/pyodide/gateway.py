"""The egress gate as an HTTP server on loopback, for guests that live in Deno.

Deno workers may connect to this address and nothing else (their ``net``
permission). Every guest fetch arrives here as ``POST /fetch`` with the run's
token and the real target in ``x-sandlot-*`` headers; the run's policy,
budget and deadline were registered by the driver beforehand, over a channel
Deno can't reach (a Python method call). The decision and the request itself
are made by the same :class:`~sandbox.egress.Gate` the wasmtime engine uses.

Replies: the upstream response (status, headers, body) with the final URL in
``x-sandlot-url``; or ``x-sandlot-refused: 1`` with the refusal message as the
body, which the worker's fetch turns into a network error.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.egress import EgressPolicy, EgressRequest, Gate, SubrequestRecord

__all__ = ["GateServer", "RunRegistration"]

_MAX_REQUEST_BODY = 32 * 1024 * 1024
_CONTROL_HEADERS = (
    "x-sandlot-run",
    "x-sandlot-target",
    "x-sandlot-method",
    "x-sandlot-timeout-ms",
    "x-sandlot-redirect",
)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "host",
    }
)


@dataclass(slots=True)
class RunRegistration:
    """What the gate knows about one run, keyed by its token."""

    policy: EgressPolicy
    deadline: float  # time.monotonic()
    budget: Callable[[], bool]
    on_record: Callable[[SubrequestRecord], None]
    gate: Gate


class GateServer:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port). ``close()`` stops it."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._runs: dict[str, RunRegistration] = {}
        self._lock = threading.Lock()
        self._ssl_context = ssl_context
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.address = f"127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    @contextlib.contextmanager
    def register(
        self,
        token: str,
        policy: EgressPolicy,
        *,
        deadline: float,
        budget: Callable[[], bool],
        on_record: Callable[[SubrequestRecord], None],
    ) -> Iterator[None]:
        """Accept this run's requests while the context is open."""
        if self._ssl_context is None:
            # Loading the CA bundle costs tens of ms: once per server, not per run.
            self._ssl_context = ssl.create_default_context()
        gate = Gate(policy, ssl_context=self._ssl_context)
        with self._lock:
            self._runs[token] = RunRegistration(policy, deadline, budget, on_record, gate)
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(token, None)

    def lookup(self, token: str) -> RunRegistration | None:
        with self._lock:
            return self._runs.get(token)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(server: GateServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Without it each small reply waits out delayed ACKs (measured: 40 ms).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: object) -> None:
            pass  # every request is recorded as a subrequest event instead

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if self.path != "/fetch" or length > _MAX_REQUEST_BODY:
                self._refuse(404 if self.path != "/fetch" else 413, "bad gate request")
                return
            body = self.rfile.read(length) if length else b""
            run = server.lookup(self.headers.get("x-sandlot-run", ""))
            if run is None:
                self._refuse(403, "egress denied: this run is not registered with the gate")
                return
            headers = tuple(
                (name, value)
                for name, value in self.headers.items()
                if name.lower() not in _CONTROL_HEADERS and name.lower() not in _HOP_BY_HOP
            )
            try:
                timeout = int(self.headers.get("x-sandlot-timeout-ms") or 0) or None
                request = EgressRequest(
                    method=self.headers.get("x-sandlot-method", "GET"),
                    url=self.headers.get("x-sandlot-target", ""),
                    headers=headers,
                    body=body,
                    timeout_ms=timeout,
                    follow_redirects=self.headers.get("x-sandlot-redirect") != "manual",
                )
            except ValueError as exc:
                self._refuse(400, f"invalid request: {exc}")
                return
            outcome = run.gate.fetch(request, budget=run.budget, deadline=run.deadline)
            for record in outcome.records:
                run.on_record(record)
            if outcome.response is None:
                self._refuse(403, outcome.error or "egress failed")
                return
            response = outcome.response
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("x-sandlot-url", response.url)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def _refuse(self, status: int, message: str) -> None:
            data = message.encode()
            self.send_response(status)
            self.send_header("x-sandlot-refused", "1")
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
