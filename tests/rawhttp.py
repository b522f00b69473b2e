"""A raw HTTP/1.1 connection to the service under test, for requests httpx won't send.

Duplicate headers, absolute-form targets, bodies that never end, a reader that
never reads: the bytes go out as written, and answers are parsed by hand.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[-1] if found else None


class RawConnection:
    """One TCP connection to 127.0.0.1:port (use it in a with block)."""

    def __init__(self, port: int, timeout: float = 30, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket()
        if receive_buffer is not None:
            # Set before connecting, so the window the server sees is small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self._pending = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self._pending += chunk
        return bool(chunk)

    def read_answer(self) -> Answer:
        """The next response (Content-Length or chunked body); raises on EOF before it."""
        while b"\r\n\r\n" not in self._pending:
            if not self._fill():
                raise ConnectionError(f"closed before a response: {self._pending!r}")
        head, _, self._pending = self._pending.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        answer = Answer(status=int(lines[0].split(" ")[1]))
        for line in lines[1:]:
            name, _, value = line.partition(":")
            answer.headers.append((name.strip().lower(), value.strip()))
        if answer.header("transfer-encoding") == "chunked":
            answer.body = self._read_chunked()
        else:
            length = int(answer.header("content-length") or 0)
            while len(self._pending) < length:
                if not self._fill():
                    raise ConnectionError("closed inside a response body")
            answer.body, self._pending = self._pending[:length], self._pending[length:]
        return answer

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self._pending:
                if not self._fill():
                    raise ConnectionError("closed inside a chunked body")
            size_line, _, self._pending = self._pending.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self._pending) < size + 2:
                if not self._fill():
                    raise ConnectionError("closed inside a chunk")
            body += self._pending[:size]
            self._pending = self._pending[size + 2 :]
            if size == 0:
                return body

    def read_rest(self) -> bytes:
        """Everything until the server closes the connection (raises TimeoutError if it doesn't)."""
        while self._fill():
            pass
        rest, self._pending = self._pending, b""
        return rest

    def closed_by_server(self, within_s: float) -> bool:
        """True if the server closes the connection within ``within_s`` (data is discarded)."""
        deadline = time.monotonic() + within_s
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                continue
            except ConnectionResetError:
                return True
        return False


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
) -> bytes:
    """The bytes of one request, headers exactly as given (no Host added)."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
