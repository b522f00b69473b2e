"""POST /v1/generate end to end: the real service, real engines, a scripted model on loopback."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
import pytest

from tests.ai.conftest import MODEL_KEY, MODEL_TIMEOUT_MS
from tests.ai.fake_model import FakeModel, Reply
from tests.conftest import Service

Events = list[tuple[str, dict[str, Any]]]

WORKER = """
from workers import Response

def on_fetch(request, env):
    return Response.json({"hello": "from generate", "path": request.path})
"""

ENGINE_PROMPT_VERSION = {"wasmtime": 3, "pyodide": 1}


def stream(client: httpx.Client, **body: Any) -> Events:
    """POST /v1/generate as SSE; every event (name, data), checking the stream's framing."""
    events: Events = []
    with client.stream("POST", "/v1/generate", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: ") and name is not None:
                events.append((name, json.loads(line[len("data: ") :])))
                name = None
    assert events, "no events"
    assert events[-1][0] == "end"
    assert [n for n, _ in events].count("end") == 1
    return events


def names(events: Events) -> list[str]:
    """Event names, with run events as run:<event> and consecutive tokens as one."""
    out: list[str] = []
    for name, data in events:
        label = f"run:{data['event']}" if name == "run" else name
        if not (label == "token" and out and out[-1] == "token"):
            out.append(label)
    return out


def tokens(events: Events, attempt: int) -> str:
    return "".join(d["text"] for n, d in events if n == "token" and d["attempt"] == attempt)


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
def test_first_answer_works(ai: httpx.Client, fake_model: FakeModel, runtime: str) -> None:
    answer = Reply.code("import statistics\nprint('mean ready')\nstatistics.mean([1, 2, 3, 4])")
    fake_model.reset(answer)
    events = stream(ai, task="Compute the mean of 1, 2, 3 and 4.", runtime=runtime)
    assert names(events) == [
        "attempt",
        "token",
        "code",
        "run:start",
        "run:stdout",
        "run:result",
        "run:end",
        "end",
    ]
    assert events[0][1] == {"attempt": 1, "kind": "generate"}
    assert tokens(events, 1) == answer.text
    code = "import statistics\nprint('mean ready')\nstatistics.mean([1, 2, 3, 4])\n"
    assert ("code", {"attempt": 1, "code": code}) in events
    runs = {d["event"]: d["data"] for n, d in events if n == "run"}
    assert runs["start"]["engine"] == runtime
    assert runs["stdout"] == {"text": "mean ready\n"}
    assert runs["result"]["json"] == 2.5
    assert runs["end"]["status"] == "ok"
    assert runs["end"]["id"] == runs["start"]["id"]
    end = events[-1][1]
    assert end == {
        "status": "ok",
        "code": code,
        "attempts": 1,
        "run_status": "ok",
        "error": None,
        "prompt_version": f"engine_{runtime}@{ENGINE_PROMPT_VERSION[runtime]}+system@3",
    }
    # What the model was asked: the system prompt with this engine's rules, then the task.
    (seen,) = fake_model.requests
    assert seen.authorization == f"Bearer {MODEL_KEY}"
    assert seen.body["model"] == "fake-coder"
    assert seen.body["stream"] is True
    assert seen.body["max_completion_tokens"] == 4096
    system, task = seen.messages
    assert system["role"] == "system"
    assert f"engine: {runtime}" in system["content"]
    assert "from sandlot import fetch" in system["content"]
    assert "only these hosts: none" in system["content"]
    assert task == {"role": "user", "content": "Compute the mean of 1, 2, 3 and 4."}


def test_a_failing_run_is_repaired(ai: httpx.Client, fake_model: FakeModel) -> None:
    broken = (
        "print('trying')\ndef parse(text):\n    raise ValueError('bad-token-' + text)\nparse('42')"
    )
    fixed = "def parse(text):\n    return int(text)\nparse('42')"
    fake_model.reset(Reply.code(broken), Reply.code(fixed))
    events = stream(ai, task="Parse '42' as an integer.", allowed_hosts=["api.example.com"])
    assert [d for n, d in events if n == "attempt"] == [
        {"attempt": 1, "kind": "generate"},
        {"attempt": 2, "kind": "repair"},
    ]
    first_end = next(d["data"] for n, d in events if n == "run" and d["event"] == "end")
    assert first_end["status"] == "error"
    end = events[-1][1]
    assert end["status"] == "ok"
    assert end["attempts"] == 2
    assert end["code"] == fixed + "\n"
    assert end["prompt_version"] == "engine_wasmtime@3+system@3+repair@1"
    first, second = fake_model.requests
    assert "only these hosts: api.example.com" in first.messages[0]["content"]
    # The repair request carries the whole conversation and the first run's failure.
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[2]["content"] == Reply.code(broken).text
    repair = second.last_user
    assert "Outcome: the run ended with status error" in repair
    assert "ValueError: bad-token-42" in repair
    assert 'File "main.py", line 3, in parse' in repair
    assert "trying" in repair  # the stdout tail


def test_attempts_run_out(ai: httpx.Client, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("1 / 0"), Reply.code("[][1]"))
    events = stream(ai, task="Divide.", max_attempts=2)
    end = events[-1][1]
    assert end["status"] == "failed"
    assert end["attempts"] == 2
    assert end["code"] == "[][1]\n"
    assert end["run_status"] == "error"
    assert end["error"] == {"type": "IndexError", "message": "list index out of range"}
    assert len(fake_model.requests) == 2


def test_a_limit_is_fed_back(ai: httpx.Client, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("while True:\n    pass"), Reply.code("'done'"))
    events = stream(ai, task="Loop a while.", limits={"cpu_ms": 200})
    assert events[-1][1]["status"] == "ok"
    repair = fake_model.requests[1].last_user
    assert "status cpu_limit (the code used all its CPU time)" in repair
    assert "CPU time 200 ms" in fake_model.requests[0].messages[0]["content"]


def test_answers_without_code(ai: httpx.Client, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.answer("I am not sure."), Reply.answer("Sorry."))
    events = stream(ai, task="Do something.", max_attempts=2)
    assert "code" not in names(events)
    assert "run:start" not in names(events)
    end = events[-1][1]
    assert end["status"] == "no_code"
    assert end["code"] is None
    assert end["attempts"] == 2
    assert end["error"]["type"] == "no_code"
    assert end["prompt_version"] == "engine_wasmtime@3+system@3+no_code@1"
    assert "Your answer had no code" in fake_model.requests[1].last_user


@pytest.mark.parametrize(
    ("reply", "kind", "says"),
    [
        (Reply.error(500), "model_server_error", "HTTP 500"),
        (Reply.error(401), "model_unauthorized", "SANDLOT_OPENAI_API_KEY"),
        (Reply.error(404), "model_not_found", "SANDLOT_MODEL"),
        (Reply.error(429), "model_rate_limited", "HTTP 429"),
        (Reply.hang(20), "model_timeout", f"{MODEL_TIMEOUT_MS} ms"),
    ],
    ids=["500", "401", "404", "429", "hang"],
)
def test_model_failures_end_the_stream_quickly(
    ai: httpx.Client, fake_model: FakeModel, reply: Reply, kind: str, says: str
) -> None:
    fake_model.reset(reply)
    started = time.monotonic()
    events = stream(ai, task="Anything.")
    elapsed = time.monotonic() - started
    assert elapsed < MODEL_TIMEOUT_MS / 1000 + 3
    assert names(events) == ["attempt", "end"]
    end = events[-1][1]
    assert end["status"] == "model_error"
    assert end["attempts"] == 1
    assert end["error"]["type"] == kind
    assert says in end["error"]["message"]
    assert MODEL_KEY not in json.dumps(events)
    assert len(fake_model.requests) == 1  # no retries


def test_model_error_after_a_failed_run(ai: httpx.Client, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("raise SystemExit(3)"), Reply.error(503))
    end = stream(ai, task="Exit.")[-1][1]
    assert end["status"] == "model_error"
    assert end["attempts"] == 2
    assert end["code"] == "raise SystemExit(3)\n"
    assert end["run_status"] == "error"


def test_json_answer(ai: httpx.Client, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("print(undefined_name)"), Reply.code("print('fine')"))
    response = ai.post("/v1/generate", json={"task": "Print fine."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["attempts"] == 2
    assert body["code"] == "print('fine')\n"
    assert body["run_status"] == "ok"
    assert body["error"] is None
    first, second = body["history"]
    assert first["kind"] == "generate"
    assert first["answer"] == Reply.code("print(undefined_name)").text
    assert first["run"]["status"] == "error"
    assert first["run"]["error"]["type"] == "NameError"
    assert first["deploy"] is None
    assert second["kind"] == "repair"
    assert second["run"]["stdout"] == "fine\n"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "task"),
        ({"task": "   "}, "task"),
        ({"task": "x" * 20_001}, "task"),
        ({"task": "t", "max_attempts": 6}, "max_attempts"),
        ({"task": "t", "max_attempts": 0}, "max_attempts"),
        ({"task": "t", "limits": {"cpu_ms": 10**9}}, "limits.cpu_ms"),
        ({"task": "t", "allowed_hosts": ["http://bad/"]}, "allowed_hosts"),
        ({"task": "t", "runtime": "cpython"}, "runtime"),
        ({"task": "t", "namespace": "acme"}, "worker"),
        ({"task": "t", "worker": "w"}, "namespace"),
        ({"task": "t", "namespace": "acme", "worker": "Bad_Name"}, "worker"),
        ({"task": "t", "temperature": 1}, "temperature"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_input_is_a_422_naming_the_field(
    ai: httpx.Client, fake_model: FakeModel, body: dict[str, Any], field: str
) -> None:
    response = ai.post("/v1/generate", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [detail["field"] for detail in error["details"]]
    assert fake_model.requests == []


def test_without_a_model_is_a_503_naming_the_settings(client: httpx.Client) -> None:
    for body in ({"task": "anything"}, {"task": "anything", "stream": True}):
        response = client.post("/v1/generate", json=body)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "model_not_configured"
        for name in ("SANDLOT_OPENAI_BASE_URL", "SANDLOT_OPENAI_API_KEY", "SANDLOT_MODEL"):
            assert name in error["message"]


def test_needs_an_api_key(ai_service: Service, fake_model: FakeModel) -> None:
    response = httpx.post(f"{ai_service.url}/v1/generate", json={"task": "x"}, timeout=30)
    assert response.status_code == 401
    assert fake_model.requests == []


def _namespace(ai: httpx.Client) -> str:
    name = "g-" + secrets.token_hex(4)
    assert ai.post("/v1/namespaces", json={"name": name}).status_code == 201
    return name


@pytest.mark.parametrize("runtime", ["wasmtime", "pyodide"])
def test_worker_mode_deploys_a_working_worker(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel, runtime: str
) -> None:
    namespace = _namespace(ai)
    fake_model.reset(Reply.code(WORKER))
    events = stream(
        ai, task="A JSON hello endpoint.", namespace=namespace, worker="hello", runtime=runtime
    )
    assert names(events) == [
        "attempt",
        "token",
        "code",
        "run:start",
        "run:result",
        "run:end",
        "deploy",
        "end",
    ]
    deploy = next(d for n, d in events if n == "deploy")
    assert deploy["namespace"] == namespace
    assert deploy["worker"] == "hello"
    assert deploy["version"].startswith("ver_")
    assert deploy["status"] == 200
    end = events[-1][1]
    assert (end["status"], end["run_status"], end["attempts"]) == ("ok", "ok", 1)
    assert end["prompt_version"] == f"engine_{runtime}@{ENGINE_PROMPT_VERSION[runtime]}+worker@2"
    system = fake_model.requests[0].messages[0]["content"]
    assert "def on_fetch(request, env)" in system
    assert "from workers import Response" in system
    # It serves: dispatch over HTTP, as any client would.
    served = httpx.get(f"{ai_service.url}/dispatch/{namespace}/hello/some/path", timeout=60)
    assert served.status_code == 200
    assert served.json() == {"hello": "from generate", "path": "/some/path"}
    worker = ai.get(f"/v1/namespaces/{namespace}/workers/hello").json()
    assert worker["runtime"] == runtime
    assert worker["version"]["id"] == deploy["version"]


def test_worker_mode_repairs_a_syntax_error(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel
) -> None:
    namespace = _namespace(ai)
    broken = "from workers import Response\n\ndef on_fetch(request, env)\n    return Response('x')"
    fake_model.reset(Reply.code(broken), Reply.code(WORKER))
    events = stream(ai, task="Hello worker.", namespace=namespace, worker="w1")
    first, second = [d for n, d in events if n == "deploy"]
    assert first["version"] is None
    assert first["status"] is None
    assert first["error"]["type"] == "build_failed"
    assert "line 3" in first["error"]["message"]
    assert second["status"] == 200
    assert events[-1][1]["status"] == "ok"
    repair = fake_model.requests[1].last_user
    assert "the build failed" in repair
    assert "main.py: line 3: expected ':'" in repair
    served = httpx.get(f"{ai_service.url}/dispatch/{namespace}/w1/", timeout=60)
    assert served.json()["hello"] == "from generate"


def test_worker_mode_repairs_a_5xx(ai: httpx.Client, fake_model: FakeModel) -> None:
    namespace = _namespace(ai)
    raises = "from workers import Response\n\ndef on_fetch(request, env):\n    return 1 / 0"
    answers_500 = (
        "from workers import Response\n\ndef on_fetch(request, env):\n"
        "    return Response('upstream down', status=502)"
    )
    fake_model.reset(Reply.code(raises), Reply.code(answers_500), Reply.code(WORKER))
    events = stream(ai, task="Hello.", namespace=namespace, worker="w2")
    statuses = [d["status"] for n, d in events if n == "deploy"]
    assert statuses == [500, 502, 200]
    assert events[-1][1]["status"] == "ok"
    first_repair = fake_model.requests[1].last_user
    assert "ZeroDivisionError: division by zero" in first_repair
    assert "line 4, in on_fetch" in first_repair
    second_repair = fake_model.requests[2].last_user
    assert "GET / answered HTTP 502" in second_repair
    assert "upstream down" in second_repair


def test_a_failed_worker_generation_is_rolled_back(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel
) -> None:
    namespace = _namespace(ai)
    # A worker generate created and never got working is removed again.
    raises = "from workers import Response\n\ndef on_fetch(request, env):\n    raise KeyError('k')"
    fake_model.reset(Reply.code(raises))
    end = stream(ai, task="Hi.", namespace=namespace, worker="fresh", max_attempts=1)[-1][1]
    assert (end["status"], end["error"]["type"]) == ("failed", "KeyError")
    assert ai.get(f"/v1/namespaces/{namespace}/workers/fresh").status_code == 404
    # An existing worker gets its previous version back, with its vars and secrets.
    upload = ai.put(
        f"/v1/namespaces/{namespace}/workers/kept",
        json={
            "modules": {"main.py": WORKER},
            "vars": {"GREETING": "hi"},
            "secrets": {"TOKEN": "s3cret"},
        },
    )
    assert upload.status_code == 200, upload.text
    before = upload.json()["version"]["id"]
    fake_model.reset(Reply.code(raises))
    stream(ai, task="Hi.", namespace=namespace, worker="kept", max_attempts=1)
    worker = ai.get(f"/v1/namespaces/{namespace}/workers/kept").json()
    assert worker["version"]["id"] == before
    assert worker["vars"] == {"GREETING": "hi"}
    assert worker["secrets"] == ["TOKEN"]
    assert "GREETING, TOKEN" in fake_model.requests[0].messages[0]["content"]
    served = httpx.get(f"{ai_service.url}/dispatch/{namespace}/kept/", timeout=60)
    assert served.json()["hello"] == "from generate"


def test_a_namespace_key_deploys_only_into_its_namespace(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel
) -> None:
    own, other = _namespace(ai), _namespace(ai)
    issued = ai.post(f"/v1/namespaces/{own}/keys", json={"label": "gen"})
    assert issued.status_code == 201
    headers = {"authorization": f"Bearer {issued.json()['key']}"}
    with httpx.Client(base_url=ai_service.url, headers=headers, timeout=120) as scoped:
        refused = scoped.post(
            "/v1/generate", json={"task": "x", "namespace": other, "worker": "w", "stream": True}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert fake_model.requests == []
        fake_model.reset(Reply.code(WORKER))
        end = stream(scoped, task="Hello.", namespace=own, worker="mine")[-1][1]
        assert end["status"] == "ok"
    assert ai.get(f"/v1/namespaces/{other}/workers/w").status_code == 404


def test_unknown_namespace_is_a_404(ai: httpx.Client, fake_model: FakeModel) -> None:
    response = ai.post("/v1/generate", json={"task": "x", "namespace": "nope-ns", "worker": "w"})
    assert response.status_code == 404
    assert "nope-ns" in response.json()["error"]["message"]
    assert fake_model.requests == []


def test_the_model_key_is_never_logged(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel
) -> None:
    # The service talks to the model here, whatever ran before.
    fake_model.reset(Reply.code("print('hi')"))
    assert stream(ai, task="Say hi.")[-1][1]["status"] == "ok"
    assert fake_model.requests
    assert "fake-coder" in ai_service.log()
    assert MODEL_KEY not in ai_service.log()


def _wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_disconnecting_stops_the_model(ai: httpx.Client, fake_model: FakeModel) -> None:
    fake_model.reset(Reply(text="x" * 400, chunk_chars=4, chunk_delay_s=0.1))
    with ai.stream("POST", "/v1/generate", json={"task": "Slowly.", "stream": True}) as response:
        for line in response.iter_lines():
            if line == "event: token":
                break
    _wait_for(lambda: fake_model.abandoned == 1)


def test_disconnecting_cancels_the_run(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel
) -> None:
    before = ai_service.log().count("canceled by the caller")
    fake_model.reset(Reply.code("print('started', flush=True)\nwhile True:\n    pass"))
    body = {"task": "Spin.", "stream": True, "limits": {"cpu_ms": 30_000, "wall_ms": 30_000}}
    started = time.monotonic()
    with ai.stream("POST", "/v1/generate", json=body) as response:
        for line in response.iter_lines():
            if "started" in line:
                break
    _wait_for(lambda: ai_service.log().count("canceled by the caller") > before)
    assert time.monotonic() - started < 15
