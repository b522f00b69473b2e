"""Every httpx failure maps to SandlotConnectionError; odd answers to SandlotError."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from sandlot_client import Sandlot, SandlotConnectionError, SandlotError
from sandlot_client._errors import from_httpx, from_response


def subclasses(cls: type[httpx.RequestError]) -> Iterator[type[httpx.RequestError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


@pytest.mark.parametrize("kind", [httpx.RequestError, *subclasses(httpx.RequestError)], ids=str)
def test_every_httpx_request_error_is_mapped(kind: type[httpx.RequestError]) -> None:
    mapped = from_httpx(kind("boom"))
    assert isinstance(mapped, SandlotConnectionError)
    assert mapped.status_code is None
    expected = "timeout" if issubclass(kind, httpx.TimeoutException) else "connection_error"
    assert mapped.code == expected


def test_an_answer_not_in_the_api_shape_keeps_its_text() -> None:
    response = httpx.Response(502, text="<html>bad gateway</html>")
    error = from_response(response)
    assert (error.status_code, error.code, error.message) == (
        502,
        "http_error",
        "<html>bad gateway</html>",
    )


def test_an_unreachable_service_raises_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        Sandlot(f"http://127.0.0.1:{port}", "k") as client,
        pytest.raises(SandlotConnectionError) as caught,
    ):
        client.run_code("1")
    assert caught.value.code == "connection_error"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


class _CutStream(BaseHTTPRequestHandler):
    """Starts a run's stream, then hangs up before its end event."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = b'event: start\r\ndata: {"id": "run_x", "engine": "wasmtime"}\r\nid: 0\r\n\r\n'
        body += b'event: stdout\r\ndata: {"text": "partial"}\r\nid: 1\r\n\r\n'
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cut_stream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CutStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_stream_without_its_end_raises(cut_stream: str) -> None:
    seen: list[str] = []
    with Sandlot(cut_stream, "k") as client, pytest.raises(SandlotConnectionError) as caught:
        client.run_code("print('partial')", on_stdout=seen.append)
    assert caught.value.code == "incomplete_stream"
    assert "run_x" in caught.value.message
    assert seen == ["partial"]
    assert isinstance(caught.value, SandlotError)
