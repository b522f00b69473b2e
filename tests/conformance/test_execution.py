"""/v1/execute over HTTP: what a run does and returns, on every engine."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import Run


def test_prints_and_returns_trailing_expression(run: Run, runtime: str) -> None:
    body = run("print('hi')\n{'a': [1, 2]}")
    assert body["status"] == "ok"
    assert body["stdout"] == "hi\n"
    assert body["result"] == {
        "repr": "{'a': [1, 2]}",
        "json": {"a": [1, 2]},
        "has_json": True,
        "truncated": False,
    }
    assert body["id"].startswith("run_")
    assert body["engine"] == runtime


def test_result_without_json_keeps_repr(run: Run) -> None:
    body = run("{1, 2}")
    assert body["result"]["repr"] == "{1, 2}"
    assert body["result"]["has_json"] is False


def test_no_result_when_code_ends_in_a_statement(run: Run) -> None:
    assert run("x = 1")["result"] is None


def test_uncaught_exception_shows_user_lines_only(run: Run) -> None:
    code = "def divide(a, b):\n    return a / b\n\nprint('before')\ndivide(1, 0)\n"
    body = run(code)
    assert body["status"] == "error"
    assert body["stdout"] == "before\n"
    error = body["error"]
    assert error["type"] == "ZeroDivisionError"
    assert error["message"] == "division by zero"
    assert 'File "main.py", line 5, in <module>' in error["traceback"]
    assert 'File "main.py", line 2, in divide' in error["traceback"]
    assert "return a / b" in error["traceback"]
    for internal in ("app.py", "_sandlot_boot", "wit_world", "componentize"):
        assert internal not in error["traceback"]


def test_syntax_error_names_the_line(run: Run) -> None:
    body = run("x = 1\ny = (\n")
    assert body["status"] == "error"
    assert body["error"]["type"] == "SyntaxError"
    assert "line 2" in body["error"]["traceback"]


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        ("import sys; sys.exit()", "ok", 0),
        ("import sys; sys.exit(0)", "ok", 0),
        ("import sys; sys.exit(3)", "error", 3),
        ("raise SystemExit('bye')", "error", 1),
    ],
    ids=["exit-none", "exit-0", "exit-3", "exit-message"],
)
def test_sys_exit(run: Run, code: str, status: str, exit_code: int) -> None:
    body = run(code)
    assert (body["status"], body["exit_code"]) == (status, exit_code)


def test_stdin_feeds_input(run: Run) -> None:
    body = run("a = input()\nb = input()\nprint(b, a)", stdin="first\nsecond\n")
    assert body["stdout"] == "second first\n"


def test_input_without_stdin_is_eof(run: Run) -> None:
    body = run("input()")
    assert body["error"]["type"] == "EOFError"


def test_files_are_seeded_in_the_working_directory(run: Run) -> None:
    code = (
        "import os, csv\n"
        "rows = list(csv.reader(open('data/in.csv')))\n"
        "open('out.txt', 'w').write('made here')\n"
        "[os.getcwd(), rows, open('blob.bin', 'rb').read().hex(), sorted(os.listdir('.'))]"
    )
    body = run(
        code,
        files={
            "data/in.csv": "a,b\n1,2\n",
            "blob.bin": {"content": "AAEC", "encoding": "base64"},
        },
    )
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [
        "/work",
        [["a", "b"], ["1", "2"]],
        "000102",
        ["blob.bin", "data", "out.txt"],
    ]


def test_environment_is_the_requested_env_over_home_and_path(run: Run) -> None:
    body = run("import os; dict(os.environ)", env={"GREETING": "hello", "PATH": "/opt/bin"})
    assert body["result"]["json"] == {"GREETING": "hello", "HOME": "/work", "PATH": "/opt/bin"}


def test_usage_is_reported(run: Run) -> None:
    body = run("print('x' * 10)\nsum(range(10**6))")
    usage = body["usage"]
    assert usage["output_bytes"] == 11
    assert usage["cpu_ms"] > 0
    assert usage["wall_ms"] >= usage["cpu_ms"] * 0.5
    assert usage["subrequests"] == 0


def test_memory_a_run_uses_shows_in_its_usage(run: Run) -> None:
    small = run("x = 1")["usage"]["memory_peak_bytes"]
    large = run("x = bytearray(64 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])")
    assert large["status"] == "ok"
    assert large["usage"]["memory_peak_bytes"] >= 60 * 1024 * 1024 > small


def test_unicode_output_round_trips(run: Run) -> None:
    body = run("print('héllo wörld ✓ 🐍')")
    assert body["stdout"] == "héllo wörld ✓ 🐍\n"


def test_thirty_two_concurrent_runs_are_all_correct(run: Run) -> None:
    def one(i: int) -> tuple[int, dict[str, Any]]:
        return i, run(f"import hashlib\nprint({i})\nhashlib.sha256(b'{i}').hexdigest()")

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    for i, body in results:
        assert body["status"] == "ok", body
        assert body["stdout"] == f"{i}\n"
        assert body["result"]["json"] == hashlib.sha256(str(i).encode()).hexdigest()


def _sse_events(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    events: list[tuple[str, dict[str, object]]] = []
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name is not None:
            events.append((name, json.loads(line[len("data: ") :])))
            name = None
    return events


@pytest.mark.parametrize("how", ["stream-flag", "accept-header"])
def test_sse_event_order(engine_client: httpx.Client, runtime: str, how: str) -> None:
    code = "import sys, time\nprint('one')\ntime.sleep(0.05)\nprint('two', file=sys.stderr)\n6 * 7"
    payload: dict[str, object] = {"code": code, "runtime": runtime}
    headers = {}
    if how == "stream-flag":
        payload["stream"] = True
    else:
        headers["accept"] = "text/event-stream"
    with engine_client.stream("POST", "/v1/execute", json=payload, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(response)
    names = [name for name, _ in events]
    assert names == ["start", "stdout", "stderr", "result", "end"]
    assert events[1][1] == {"text": "one\n"}
    assert events[2][1] == {"text": "two\n"}
    assert events[3][1]["json"] == 42
    end = events[-1][1]
    assert end["status"] == "ok"
    assert end["id"] == events[0][1]["id"]


def test_sse_streams_output_before_the_run_ends(engine_client: httpx.Client, runtime: str) -> None:
    code = "import time\nprint('early', flush=True)\ntime.sleep(1.5)\nprint('late')"
    payload = {"code": code, "stream": True, "runtime": runtime}
    with engine_client.stream("POST", "/v1/execute", json=payload) as response:
        lines = response.iter_lines()
        started = None
        for line in lines:
            if line.startswith("data: ") and "early" in line:
                started = time.monotonic()
                break
        rest = list(lines)
        finished = time.monotonic()
    assert started is not None
    assert finished - started > 1.0, "output was not streamed as it was produced"
    assert any("late" in line for line in rest)


def test_sse_ends_with_end_on_error(engine_client: httpx.Client, runtime: str) -> None:
    payload = {"code": "1/0", "stream": True, "runtime": runtime}
    with engine_client.stream("POST", "/v1/execute", json=payload) as response:
        events = _sse_events(response)
    assert [n for n, _ in events][-1] == "end"
    assert events[-1][1]["status"] == "error"
