"""Issue 11, finding 7: a client that never reads its event stream holds no worker.

The attack: two clients opened streams of 8 MB of output and never read them; the
runs' workers stayed busy and every other tenant got 429 for 40 s. Here the pool has
one worker: while a stream of more output than the socket buffers hold sits unread,
another client's run must get that worker by the first run's wall_ms + kill grace,
and the unread stream must be dropped after SANDLOT_STREAM_SEND_TIMEOUT_MS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.engines.wasmtime import Artifacts
from tests.conftest import ADMIN_KEY, Service
from tests.rawhttp import RawConnection, request

WALL_MS = 10_000
GRACE_MS = 500
SEND_TIMEOUT_MS = 1_500
# 12 MiB of output: more than the kernel's socket buffers (autotuned up to 4 MiB) and
# the server's write buffer hold, so the server's sends block on the silent client.
FLOOD = "import sys\nfor _ in range(96):\n    sys.stdout.write('x' * 131071 + '\\n')\n"
# Time for the second run itself on a loaded two-core machine, beyond the promise.
SLACK_S = 3


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("slow-reader"),
        pool_size="1",
        # One slot: the second run must get the very slot the unread stream's run held.
        runs_per_worker="1",
        pyodide_enabled="false",
        queue_timeout_ms="30000",
        kill_grace_ms=str(GRACE_MS),
        stream_send_timeout_ms=str(SEND_TIMEOUT_MS),
        build_on_start="false",
    )
    yield svc
    svc.close()


def _wait_for_log(service: Service, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in service.log():
        assert time.monotonic() < deadline, f"the service never logged {text!r}"
        time.sleep(0.05)


def test_a_reader_that_never_reads_holds_no_worker(one_worker: Service, tmp_path: Path) -> None:
    body = json.dumps(
        {
            "code": FLOOD,
            "stream": True,
            "limits": {"wall_ms": WALL_MS, "output_bytes": 16 * 1024 * 1024},
        }
    ).encode()
    headers = [
        ("host", "127.0.0.1"),
        ("authorization", f"Bearer {ADMIN_KEY}"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    ]
    started = time.monotonic()
    with RawConnection(one_worker.port, timeout=60, receive_buffer=4096) as silent:
        silent.send(request("POST", "/v1/execute", headers, body))
        # The silent client reads nothing from here on. The pool's only worker must
        # still be free for this run by the first run's wall_ms + grace.
        with one_worker.client(timeout=60) as other:
            answer = other.post("/v1/execute", json={"code": "6 * 7"})
        elapsed = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["repr"] == "42"
        assert elapsed < (WALL_MS + GRACE_MS) / 1000 + SLACK_S

        # The stream that was never read is dropped: what the socket still holds ends
        # without the `end` event, and then the connection closes.
        _wait_for_log(one_worker, "dropping the stream", timeout_s=60)
        rest = silent.read_rest()
        assert rest.startswith(b"HTTP/1.1 200")
        assert b"event: start" in rest
        assert b"event: end" not in rest
        assert not rest.endswith(b"0\r\n\r\n")


def test_a_stream_read_in_time_is_whole(one_worker: Service) -> None:
    payload = {"code": "for i in range(3):\n    print(i)\n", "stream": True}
    with (
        one_worker.client() as client,
        client.stream("POST", "/v1/execute", json=payload) as response,
    ):
        text = "".join(response.iter_text())
    assert response.status_code == 200
    assert text.count("event: stdout") >= 1
    assert "event: end" in text and '"status": "ok"' in text


def test_the_runs_worker_is_released_at_its_end_whoever_reads(one_worker: Service) -> None:
    # A JSON caller is unaffected, and the pool is whole after the slow reader.
    with httpx.Client(
        base_url=one_worker.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as client:
        for _ in range(3):
            assert client.post("/v1/execute", json={"code": "1"}).json()["status"] == "ok"
