"""Retrying 429 and 503: against a scripted server on loopback (what is sent again, and how
often), and the policy's waits as a pure function."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandlot_client import AsyncSandlot, Retry, Sandlot, SandlotError
from sandlot_client._retry import retry_after_s

NAMESPACE = {
    "name": "acme",
    "mode": "untrusted",
    "limits": {},
    "allowed_hosts": [],
    "dispatch_public": True,
    "private_egress": False,
    "created_at": "2026-01-01T00:00:00+00:00",
    "workers": 0,
    "custom_hostname_suffixes": [],
    "storage_mb": None,
    "version_retention": None,
    "storage_bytes": 0,
    "a_field_from_a_newer_server": "ignored",
}
RUN_STREAM = (
    'event: start\ndata: {"id": "run_1", "engine": "wasmtime"}\n\n'
    'event: end\ndata: {"id": "run_1", "status": "ok", "usage": {}}\n\n'
)


class Scripted:
    """Answers each request with the next (status, headers) of its script, then 200."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.hits: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                outer.hits.append((self.command, self.path))
                status, headers = outer.script.pop(0) if outer.script else (200, {})
                if status != 200:
                    body = json.dumps({"error": {"code": "busy", "message": "busy", "details": []}})
                    content_type = "application/json"
                elif self.path == "/v1/execute":
                    body, content_type = RUN_STREAM, "text/event-stream"
                elif self.path.startswith("/dispatch/"):
                    body, content_type = "worker says hi", "text/plain"
                    headers = {"x-sandlot-outcome": "ok"}
                else:
                    body, content_type = json.dumps(NAMESPACE), "application/json"
                data = body.encode()
                self.send_response(status)
                for name, value in {"content-type": content_type, **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    yield scripted
    scripted.close()


BUSY_NOW = (429, {"retry-after": "0"})
DOWN_NOW = (503, {"retry-after": "0"})
NO_WAIT = Retry(initial_delay_s=0)


def test_a_get_is_retried_until_it_is_answered(server: Scripted) -> None:
    server.script = [BUSY_NOW, DOWN_NOW]
    with Sandlot(server.url, "k") as client:
        assert client.get_namespace("acme").name == "acme"
    assert len(server.hits) == 3


def test_retries_run_out_and_the_last_answer_is_raised(server: Scripted) -> None:
    server.script = [DOWN_NOW] * 5
    with (
        Sandlot(server.url, "k", retry=Retry(max_retries=3)) as client,
        pytest.raises(SandlotError) as caught,
    ):
        client.get_namespace("acme")
    assert caught.value.status_code == 503
    assert len(server.hits) == 4


@pytest.mark.parametrize("retry", [0, Retry(max_retries=0)], ids=["zero", "policy"])
def test_retrying_can_be_turned_off(server: Scripted, retry: Retry | int) -> None:
    server.script = [BUSY_NOW]
    with Sandlot(server.url, "k", retry=retry) as client, pytest.raises(SandlotError):
        client.get_namespace("acme")
    assert len(server.hits) == 1


def test_backoff_without_retry_after(server: Scripted) -> None:
    server.script = [(429, {}), (503, {})]
    with Sandlot(server.url, "k", retry=NO_WAIT) as client:
        assert client.get_namespace("acme").name == "acme"
    assert len(server.hits) == 3


def test_a_retry_after_beyond_the_cap_is_not_waited_for(server: Scripted) -> None:
    server.script = [(429, {"retry-after": "3600"})]
    with Sandlot(server.url, "k") as client, pytest.raises(SandlotError) as caught:
        client.get_namespace("acme")
    assert caught.value.status_code == 429
    assert len(server.hits) == 1


def test_posts_are_not_retried_unless_asked(server: Scripted) -> None:
    server.script = [BUSY_NOW]
    with Sandlot(server.url, "k") as client, pytest.raises(SandlotError):
        client.create_namespace("acme")
    assert server.hits == [("POST", "/v1/namespaces")]
    server.script, server.hits = [BUSY_NOW, BUSY_NOW], []
    with Sandlot(server.url, "k", retry=Retry(non_idempotent=True)) as client:
        assert client.create_namespace("acme").name == "acme"
    assert len(server.hits) == 3


def test_a_streamed_run_is_retried_before_it_starts_when_asked(server: Scripted) -> None:
    server.script = [BUSY_NOW]
    with Sandlot(server.url, "k") as client, pytest.raises(SandlotError) as caught:
        client.run_code("1")
    assert caught.value.code == "busy"
    server.script, server.hits = [BUSY_NOW, DOWN_NOW], []
    with Sandlot(server.url, "k", retry=Retry(non_idempotent=True)) as client:
        assert client.run_code("1").status == "ok"
    assert server.hits == [("POST", "/v1/execute")] * 3


def test_dispatch_retries_the_platforms_refusals_not_the_workers_answers(
    server: Scripted,
) -> None:
    server.script = [BUSY_NOW]
    with Sandlot(server.url, "k") as client:
        assert client.invoke_worker("acme", "w").text == "worker says hi"
    assert len(server.hits) == 2
    # A worker that hit a limit answers 503 with its outcome: that is its answer.
    server.script, server.hits = [(503, {"retry-after": "0", "x-sandlot-outcome": "cpu_limit"})], []
    with Sandlot(server.url, "k") as client:
        assert client.invoke_worker("acme", "w").outcome == "cpu_limit"
    assert len(server.hits) == 1


def test_the_async_client_retries_the_same_way(server: Scripted) -> None:
    async def main() -> None:
        async with AsyncSandlot(server.url, "k", retry=Retry(non_idempotent=True)) as client:
            server.script = [BUSY_NOW, DOWN_NOW]
            assert (await client.get_namespace("acme")).name == "acme"
            server.script = [BUSY_NOW]
            assert (await client.run_code("1")).status == "ok"
        async with AsyncSandlot(server.url, "k") as client:
            server.script = [BUSY_NOW]
            with pytest.raises(SandlotError):
                await client.run_code("1")

    asyncio.run(main())
    assert [path for _, path in server.hits] == ["/v1/namespaces/acme"] * 3 + ["/v1/execute"] * 3


def test_waits_double_up_to_the_cap_with_jitter() -> None:
    policy = Retry(max_retries=10, initial_delay_s=1, max_delay_s=5)
    for retry, base in [(1, 1), (2, 2), (3, 4), (4, 5), (9, 5)]:
        wait = policy.wait_s(retry, 429, {})
        assert wait is not None and 0.75 * base <= wait <= base, (retry, wait)
    assert policy.wait_s(11, 429, {}) is None  # spent
    assert policy.wait_s(1, 500, {}) is None  # not a retryable status
    assert policy.wait_s(1, 503, {"retry-after": "7"}) == 7


def test_retry_after_as_seconds_or_a_date() -> None:
    now = 1_800_000_000.0
    assert retry_after_s("3", now=now) == 3
    assert retry_after_s("-4", now=now) == 0
    assert retry_after_s(formatdate(now + 30, usegmt=True), now=now) == 30
    assert retry_after_s(formatdate(now - 30, usegmt=True), now=now) == 0
    assert retry_after_s("soon", now=now) is None
    assert retry_after_s(None) is None


@pytest.mark.parametrize(
    "bad",
    [{"max_retries": -1}, {"initial_delay_s": -1}, {"max_retry_after_s": -0.5}],
    ids=["retries", "delay", "cap"],
)
def test_a_bad_policy_is_a_value_error(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Retry(**bad)  # type: ignore[arg-type]
