"""sandbox/engines/pyodide/control.py: the driver takes its own host and host messages only."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from sandbox.engines.pyodide.control import ControlChannel, ProtocolViolation, parse_message


@pytest.fixture
def channel() -> Iterator[ControlChannel]:
    ch = ControlChannel()
    yield ch
    ch.close()


def _dial(port: int, *lines: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    for line in lines:
        sock.sendall(line)
    return sock


def _hello(nonce: str) -> bytes:
    return json.dumps({"t": "hello", "nonce": nonce}).encode() + b"\n"


def test_the_host_with_the_nonce_is_accepted_and_its_messages_arrive(
    channel: ControlChannel,
) -> None:
    host = _dial(channel.port, _hello(channel.nonce), b'{"t": "ready"}\n')
    channel.accept(5, alive=lambda: True)
    channel.start()
    assert channel.messages.get(timeout=5) == {"t": "ready"}
    channel.send({"op": "exit"})
    assert host.recv(100) == b'{"op": "exit"}\n'
    host.close()
    assert channel.messages.get(timeout=5) is None  # closed


@pytest.mark.parametrize(
    "first",
    [_hello("not-the-nonce"), b'{"t": "ready"}\n', b"GET / HTTP/1.1\r\n\r\n", b"\n"],
    ids=["wrong-nonce", "no-hello", "http", "empty"],
)
def test_a_connection_without_the_nonce_is_refused(channel: ControlChannel, first: bytes) -> None:
    intruder = _dial(channel.port, first)
    with pytest.raises(ProtocolViolation):
        channel.accept(5, alive=lambda: True)
    intruder.close()


def test_only_one_connection_is_ever_taken(channel: ControlChannel) -> None:
    host = _dial(channel.port, _hello(channel.nonce))
    channel.accept(5, alive=lambda: True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", channel.port), timeout=2)
    host.close()


def test_a_host_that_dies_before_connecting_fails_at_once(channel: ControlChannel) -> None:
    with pytest.raises(ProtocolViolation, match="exited"):
        channel.accept(60, alive=lambda: False)


def test_a_line_the_host_never_sends_is_a_violation_and_ends_reading(
    channel: ControlChannel,
) -> None:
    host = _dial(channel.port, _hello(channel.nonce))
    channel.accept(5, alive=lambda: True)
    channel.start()
    host.sendall(b'{"t": "ready"}\n{"t": "end", "id": "1"}\n{"t": "ready"}\n')
    assert channel.messages.get(timeout=5) == {"t": "ready"}
    assert isinstance(channel.messages.get(timeout=5), ProtocolViolation)
    assert channel.messages.get(timeout=5) is None  # nothing read after the violation
    host.close()


MESSAGES = {
    "ok-started": (b'{"t": "started", "id": 1, "worker": 2, "created": 2}\n', True),
    "ok-out": (b'{"t": "out", "id": 1, "s": "stdout", "d": "hi"}\n', True),
    "ok-end": (b'{"t": "end", "id": 1, "outcome": "{}"}\n', True),
    "not-json": (b"hello\n", False),
    "not-an-object": (b"[1, 2]\n", False),
    "unknown-kind": (b'{"t": "hello", "nonce": "x"}\n', False),
    "bool-id": (b'{"t": "end", "id": true}\n', False),
    "out-without-text": (b'{"t": "out", "id": 1, "s": "stdout"}\n', False),
    "no-newline": (b'{"t": "ready"}', False),
}


@pytest.mark.parametrize(("line", "ok"), MESSAGES.values(), ids=MESSAGES.keys())
def test_message_shapes(line: bytes, ok: bool) -> None:
    if ok:
        assert parse_message(line)["t"] in {"started", "out", "end"}
    else:
        with pytest.raises(ProtocolViolation):
            parse_message(line)


def test_sends_from_threads_do_not_interleave(channel: ControlChannel) -> None:
    host = _dial(channel.port, _hello(channel.nonce))
    channel.accept(5, alive=lambda: True)
    big = "x" * 200_000
    threads = [
        threading.Thread(target=channel.send, args=({"op": "run", "n": n, "pad": big},))
        for n in range(4)
    ]
    received = bytearray()
    reader = threading.Thread(target=lambda: _read_all(host, received, 4))
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader.join(10)
    lines = bytes(received).splitlines()
    assert sorted(json.loads(line)["n"] for line in lines) == [0, 1, 2, 3]
    host.close()


def _read_all(sock: socket.socket, into: bytearray, lines: int) -> None:
    sock.settimeout(10)
    while into.count(b"\n") < lines:
        chunk = sock.recv(65536)
        if not chunk:
            return
        into += chunk
