"""The driver's end of the control channel to one Deno host.

JSON lines over a loopback TCP connection that Deno opens to us, never over
Deno's stdio: every Web Worker in the Deno process can write to its stdout and
read its stdin (``Deno.stdout``, ``process.stdout``, ``console``, ``node:fs``
on fd 1), so a guest could forge the host's messages or read other runs' jobs
there. A socket the host opens lives in the host isolate's resource table,
which workers can't reach, and their ``net`` permission (the egress gate only)
stops them dialling us.

The connection proves itself with a nonce that went to Deno on stdin (closed
right after, before any worker exists). Only the host writes to this channel:
a line that is not a well-formed host message is a
:class:`ProtocolViolation`, and the driver kills that Deno process.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ControlChannel", "HostMessage", "ProtocolViolation"]

log = logging.getLogger(__name__)

HostMessage = dict[str, Any]

_MAX_LINE_BYTES = 64 * 1024 * 1024
# What the host may send, with the fields each must carry (name -> type).
_SHAPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "ready": {},
    "started": {"id": int, "worker": int, "created": int},
    "out": {"id": int, "s": str, "d": str},
    "display": {"id": int, "m": str, "d": str},
    "end": {"id": int},
    # Sessions: a worker kept for one, and what a turn changed under /work.
    "opened": {"id": int, "worker": int, "created": int},
    "file": {"id": int, "p": str, "d": str},
    "dir": {"id": int, "p": str},
    "gone": {"id": int, "p": str},
}


class ProtocolViolation(Exception):
    """The control channel carried something the host never sends."""


class ControlChannel:
    """Listens on 127.0.0.1 (ephemeral port) for one connection from the Deno host.

    ``accept`` takes the connection and checks the nonce; then ``start`` reads
    messages on a thread into ``messages``: each a validated host message, a
    :class:`ProtocolViolation`, or ``None`` once the connection closed.
    ``close()`` is idempotent.
    """

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self._listener: socket.socket | None = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._conn: socket.socket | None = None
        self._reader: Any = None
        self._send_lock = threading.Lock()
        self.messages: queue.SimpleQueue[HostMessage | ProtocolViolation | None] = (
            queue.SimpleQueue()
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def accept(self, timeout_s: float, alive: Callable[[], bool]) -> None:
        """Wait for the host's connection and its hello; raises ProtocolViolation or TimeoutError.

        ``alive`` is polled so that a host that died before connecting fails at once.
        """
        listener = self._listener
        if listener is None:
            raise ProtocolViolation("the channel is closed")
        deadline = time.monotonic() + timeout_s
        listener.settimeout(0.1)
        while True:
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                if not alive():
                    raise ProtocolViolation("the host exited before it connected") from None
                if time.monotonic() > deadline:
                    raise TimeoutError("the host did not connect") from None
        # One connection only: nobody else gets to try.
        listener.close()
        self._listener = None
        conn.settimeout(max(deadline - time.monotonic(), 0.1))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        self._reader = conn.makefile("rb")
        try:
            hello = json.loads(self._reader.readline(4096))
        except (OSError, ValueError) as exc:
            raise ProtocolViolation(f"no hello from the host ({exc})") from exc
        if not (
            isinstance(hello, dict)
            and hello.get("t") == "hello"
            and isinstance(hello.get("nonce"), str)
            and hmac.compare_digest(hello["nonce"], self.nonce)
        ):
            raise ProtocolViolation("the first message was not the host's hello")
        conn.settimeout(None)

    def start(self) -> None:
        """Read the host's messages into ``messages`` on a daemon thread."""
        threading.Thread(target=self._read, daemon=True, name="deno-control").start()

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; a dead host is noticed by the reader, not here."""
        conn = self._conn
        if conn is None:
            return
        data = json.dumps(message).encode() + b"\n"
        with self._send_lock, contextlib.suppress(OSError):
            conn.sendall(data)

    def close(self) -> None:
        for closable in (self._listener, self._reader, self._conn):
            if closable is not None:
                with contextlib.suppress(OSError):
                    closable.close()
        self._listener = self._reader = self._conn = None

    def _read(self) -> None:
        reader = self._reader
        try:
            while reader is not None:
                line = reader.readline(_MAX_LINE_BYTES)
                if not line:
                    break
                try:
                    self.messages.put(parse_message(line))
                except ProtocolViolation as violation:
                    self.messages.put(violation)
                    return
        except (OSError, ValueError):
            pass  # closed under us
        finally:
            self.messages.put(None)


def parse_message(line: bytes) -> HostMessage:
    """One line from the host as a message of a known shape; raises ProtocolViolation."""
    if not line.endswith(b"\n"):
        raise ProtocolViolation(f"a line from the host has no end (over {len(line)} bytes?)")
    try:
        message = json.loads(line)
    except ValueError:
        raise ProtocolViolation(f"the host sent a line that is not JSON: {line[:80]!r}") from None
    kind = message.get("t") if isinstance(message, dict) else None
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        raise ProtocolViolation(f"the host sent an unknown message: {line[:80]!r}")
    for field, expected in shape.items():
        value = message.get(field)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ProtocolViolation(f"the host's {kind!r} message has a bad {field!r}")
    return dict(message)
