"""Sandlot (sync) against the live service: streaming, statuses, limits, errors, workers, tools."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from sandlot_client import Event, Sandlot, SandlotError
from tests.conftest import ADMIN_KEY, Service

WORKER = """
import time
from workers import Response

def on_fetch(request, env):
    if request.path == "/boom":
        raise ValueError("kaput")
    if request.path == "/slow":
        time.sleep(1)
    return Response.json({"path": request.path, "query": request.query,
                          "got": request.json() if request.method == "POST" else None,
                          "greeting": env.GREETING, "x": request.headers.get("x-test")})
"""


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[Sandlot]:
    with Sandlot(service.url, ADMIN_KEY, timeout=60) as sandlot:
        yield sandlot


@pytest.fixture(scope="module")
def namespace(client: Sandlot) -> str:
    name = "c-" + secrets.token_hex(4)
    assert client.create_namespace(name).name == name
    return name


def test_callbacks_get_stdout_chunks_in_order_as_they_happen(client: Sandlot) -> None:
    code = (
        "import sys, time\n"
        "for i in range(5):\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.06)\n"
        "print('oops', file=sys.stderr)\n"
        "time.sleep(0.3)\n"
        "'done'"
    )
    chunks: list[str] = []
    errs: list[str] = []
    events: list[tuple[Event, float]] = []
    run = client.run_code(
        code,
        on_stdout=chunks.append,
        on_stderr=errs.append,
        on_event=lambda event: events.append((event, time.monotonic())),
    )
    assert run.ok and run.status == "ok"
    assert "".join(chunks) == run.stdout == "0\n1\n2\n3\n4\n"
    assert len(chunks) >= 3  # streamed in pieces, not in one piece at the end
    assert "".join(errs) == run.stderr == "oops\n"
    names = [event.name for event, _ in events]
    assert names[0] == "start" and names[-2:] == ["result", "end"]
    assert [event.seq for event, _ in events] == list(range(len(events)))
    first_output = next(at for event, at in events if event.name == "stdout")
    assert events[-1][1] - first_output > 0.5  # callbacks ran while the code still ran
    assert run.result is not None and run.result.json == "done"
    assert run.id.startswith("run_") and run.engine == "wasmtime"
    assert run.usage.output_bytes == len(run.stdout) + len(run.stderr)


def test_inputs_reach_the_code(client: Sandlot) -> None:
    run = client.run_code(
        "import os\n"
        "[open('a.txt').read(), open('b.bin', 'rb').read().hex(), input(), os.environ['K']]",
        files={"a.txt": "text", "b.bin": b"\x00\xff"},
        stdin="typed\n",
        env={"K": "v"},
        runtime="pyodide",
    )
    assert run.status == "ok", run.error
    assert run.engine == "pyodide"
    assert run.result is not None and run.result.json == ["text", "00ff", "typed", "v"]


def test_outputs_and_files_come_back(client: Sandlot) -> None:
    # The default (component) guest: displays leave with the outcome, files are read on
    # the host after the run.
    code = (
        "import sandlot\n"
        "class Card:\n"
        "    def _repr_html_(self):\n"
        "        return '<b>card</b>'\n"
        "sandlot.display(Card())\n"
        "sandlot.display(b'GIF89a', mime_type='image/gif')\n"
        "open('out.csv', 'w').write('a,b\\n1,2\\n')\n"
    )
    events: list[Event] = []
    run = client.run_code(code, return_files=["*.csv"], on_event=events.append)
    assert run.ok, run.error
    assert [(o.mime_type, o.content) for o in run.outputs] == [
        ("text/html", b"<b>card</b>"),
        ("image/gif", b"GIF89a"),
    ]
    (returned,) = run.files
    assert (returned.path, returned.mime_type, returned.content) == (
        "out.csv",
        "text/csv",
        b"a,b\n1,2\n",
    )
    names = [e.name for e in events]
    assert names.index("display") < names.index("files") < names.index("end")


@pytest.mark.parametrize(
    ("code", "limits", "status"),
    [
        ("1/0", None, "error"),
        ("import sys; sys.exit(3)", None, "error"),
        ("while True: pass", {"cpu_ms": 100}, "cpu_limit"),
        ("import time; time.sleep(5)", {"wall_ms": 300}, "wall_limit"),
        ("b = bytearray(500 * 2**20)", {"memory_mb": 64}, "memory_limit"),
        ("print('x' * 10_000)", {"output_bytes": 100}, "output_limit"),
    ],
    ids=["exception", "exit-code", "cpu", "wall", "memory", "output"],
)
def test_statuses_and_limits_are_results(
    client: Sandlot, code: str, limits: dict[str, int] | None, status: str
) -> None:
    run = client.run_code(code, limits=limits)
    assert run.status == status
    assert not run.ok
    if status == "error" and "exit" in code:
        assert run.exit_code == 3
    elif status == "error":
        assert run.error is not None and run.error.type == "ZeroDivisionError"
        assert 'File "main.py", line 1' in run.error.traceback
    if status == "output_limit":
        assert run.output_truncated and len(run.stdout) <= 100


def test_a_4xx_is_a_sandlot_error_with_the_apis_message(client: Sandlot, service: Service) -> None:
    raw = httpx.post(
        f"{service.url}/v1/execute",
        json={"code": "1", "limits": {"cpu_ms": 10**9}},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )
    with pytest.raises(SandlotError) as caught:
        client.run_code("1", limits={"cpu_ms": 10**9})
    error = caught.value
    assert (error.status_code, error.code) == (422, "invalid_request")
    assert error.message == raw.json()["error"]["message"]
    assert [d.field for d in error.details] == ["limits.cpu_ms"]
    assert "60000" in str(error)


def test_a_bad_key_is_a_401(service: Service) -> None:
    with Sandlot(service.url, "not-a-key") as client, pytest.raises(SandlotError) as caught:
        client.run_code("1")
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")


def test_settings_come_from_the_environment(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDLOT_URL", service.url)
    monkeypatch.setenv("SANDLOT_API_KEY", ADMIN_KEY)
    with Sandlot() as client:
        assert client.base_url == service.url
        assert client.run_code("2 + 2").result is not None


def test_deploy_and_invoke_a_worker(client: Sandlot, namespace: str) -> None:
    deployed = client.deploy_worker(namespace, "api", WORKER, vars={"GREETING": "hi"})
    assert deployed.created is True and deployed.version.number == 1
    answer = client.invoke_worker(
        namespace, "api", "/items?x=1", method="POST", json={"n": 1}, headers={"x-test": "t"}
    )
    assert (answer.status_code, answer.outcome) == (200, "ok")
    assert answer.json() == {
        "path": "/items",
        "query": "x=1",
        "got": {"n": 1},
        "greeting": "hi",
        "x": "t",
    }
    assert answer.headers["content-type"] == "application/json"
    boom = client.invoke_worker(namespace, "api", "/boom")
    assert (boom.status_code, boom.outcome) == (500, "error")
    assert boom.json()["error"]["message"] == "ValueError: kaput"
    slow = client.invoke_worker(namespace, "api", "/slow", limits={"wall_ms": 200})
    assert (slow.status_code, slow.outcome) == (503, "wall_limit")
    assert [w.name for w in client.list_workers(namespace)] == ["api"]
    assert client.get_worker(namespace, "api").vars == {"GREETING": "hi"}
    client.delete_worker(namespace, "api")
    with pytest.raises(SandlotError) as caught:
        client.invoke_worker(namespace, "api")
    assert (caught.value.status_code, caught.value.code) == (404, "worker_not_found")


def test_a_failed_build_names_the_line(client: Sandlot, namespace: str) -> None:
    with pytest.raises(SandlotError) as caught:
        client.deploy_worker(namespace, "broken", {"main.py": "x = 1\ndef on_fetch(:\n"})
    assert caught.value.code == "build_failed"
    assert [(d.field, d.message.split(":")[0]) for d in caught.value.details] == [
        ("modules.main.py", "line 2")
    ]


def test_namespace_helpers_and_scoped_keys(client: Sandlot, service: Service) -> None:
    name = "s-" + secrets.token_hex(4)
    client.create_namespace(name, limits={"cpu_ms": 500}, dispatch_public=False)
    with pytest.raises(SandlotError) as taken:
        client.create_namespace(name)
    assert taken.value.status_code == 409
    issued = client.create_key(name, "agent")
    with Sandlot(service.url, issued.key) as scoped:
        assert scoped.get_namespace(name).limits == {"cpu_ms": 500}
        scoped.deploy_worker(name, "w", WORKER, vars={"GREETING": "x"})
        assert scoped.invoke_worker(name, "w").outcome == "ok"
        with pytest.raises(SandlotError) as forbidden:
            scoped.create_namespace("another-" + secrets.token_hex(2))
        assert forbidden.value.status_code == 403
    with pytest.raises(SandlotError) as has_workers:
        client.delete_namespace(name)
    assert has_workers.value.status_code == 409
    client.delete_namespace(name, force=True)
    with pytest.raises(SandlotError) as gone:
        client.get_namespace(name)
    assert gone.value.status_code == 404


def test_tools_for_a_model(client: Sandlot) -> None:
    tools = client.tools()
    assert [tool["function"]["name"] for tool in tools] == [
        "execute_code",
        "deploy_worker",
        "invoke_worker",
        "create_session",
        "run_in_session",
        "upload_file",
        "download_file",
        "close_session",
    ]
    # Models send arguments as a JSON string.
    text = client.call_tool("execute_code", json.dumps({"code": "print('hi')\n1 + 1"}))
    assert text == "status: ok\nstdout:\nhi\nresult: 2"
    refused = client.call_tool("execute_code", {"code": "1", "limits": {"cpu_ms": 0}})
    assert refused.startswith("error (invalid_request): limits.cpu_ms:")
    assert client.call_tool("execute_code", "{not json").startswith(
        "error (invalid_request): the arguments are not valid JSON"
    )
    assert client.call_tool("launch_rockets", {}).startswith("error (not_found): no tool named")
