"""A real OpenAI-compatible chat-completions server on 127.0.0.1, with scripted answers.

Each POST /v1/chat/completions takes the next scripted :class:`Reply` (an answer
streamed as SSE chunks ending in ``data: [DONE]``, or as one JSON body when the
request has no ``"stream": true``; an HTTP error; or a hang) and records the
request's JSON body and Authorization header, so tests can read the prompts the
service sent. With the script empty it answers 500, so a test that asks for
more answers than it scripted fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str = ""
    status: int = 200
    hang_s: float = 0.0
    chunk_chars: int = 7
    chunk_delay_s: float = 0.0

    @classmethod
    def answer(cls, text: str) -> Reply:
        return cls(text=text)

    @classmethod
    def code(cls, source: str, prose: str = "Here is the program.") -> Reply:
        return cls(text=f"{prose}\n\n```python\n{source.strip()}\n```\n")

    @classmethod
    def error(cls, status: int) -> Reply:
        return cls(status=status)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(hang_s=seconds)


@dataclass(frozen=True)
class Seen:
    body: dict[str, Any]
    authorization: str

    @property
    def messages(self) -> list[dict[str, str]]:
        messages: list[dict[str, str]] = self.body["messages"]
        return messages

    @property
    def last_user(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


class FakeModel:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[Seen] = []
        # Streams whose client hung up before the answer was complete.
        self.abandoned = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: the answer ends when the connection closes, so chunks can stream.
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with outer._lock:
                    outer.requests.append(Seen(body, self.headers.get("authorization", "")))
                    reply = outer.script.pop(0) if outer.script else Reply.error(500)
                if reply.hang_s:
                    time.sleep(reply.hang_s)
                    return
                if reply.status != 200:
                    error = {"message": f"scripted {reply.status}", "type": "fake", "code": None}
                    self._json(reply.status, {"error": error})
                elif body.get("stream"):
                    try:
                        self._stream(reply, str(body.get("model")))
                    except (BrokenPipeError, ConnectionResetError):
                        with outer._lock:
                            outer.abandoned += 1
                else:
                    self._json(200, _completion(reply.text, str(body.get("model"))))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, reply: Reply, model: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                text, step = reply.text, reply.chunk_chars
                pieces = [text[i : i + step] for i in range(0, len(text), step)]
                for index, piece in enumerate(pieces):
                    time.sleep(reply.chunk_delay_s)
                    delta = {"content": piece, **({"role": "assistant"} if index == 0 else {})}
                    self._event(_chunk(model, delta, None))
                self._event(_chunk(model, {}, "stop"))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def reset(self, *replies: Reply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests = []
            self.abandoned = 0

    @property
    def unused(self) -> int:
        with self._lock:
            return len(self.script)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _chunk(model: str, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
