"""/v1/tools: the agent tools' schemas agree with the API, and calls run like the endpoints."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import jsonschema
import pytest
from pydantic import BaseModel, Field

from app.tools import openai_schema
from tests.conftest import ADMIN_KEY, Service

HELLO = """
from workers import Response

def on_fetch(request, env):
    if request.path == "/boom":
        raise ValueError("kaput")
    if request.path == "/bytes":
        return Response(bytes([0, 255, 1]), headers={"content-type": "application/octet-stream"})
    body = request.text()
    return Response.json({"path": request.path, "query": request.query, "method": request.method,
                          "body": body, "greeting": env.GREETING})
"""


@pytest.fixture(scope="module")
def admin(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(scope="module")
def tools(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    response = admin.get("/v1/tools")
    assert response.status_code == 200, response.text
    return {tool["function"]["name"]: tool for tool in response.json()}


@pytest.fixture(scope="module")
def namespace(admin: httpx.Client) -> str:
    name = "t-" + secrets.token_hex(4)
    # Uploads list a loopback literal: the namespace must allow it (ceiling and grant).
    body = {"name": name, "allowed_hosts": ["127.0.0.1:9"], "private_egress": True}
    assert admin.post("/v1/namespaces", json=body).status_code == 201
    return name


def call(client: httpx.Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/v1/tools/{tool}", json=arguments)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["tool"] == tool
    return body


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --- The list and its schemas -------------------------------------------------------------


def test_tools_need_an_api_key(service: Service) -> None:
    for method, path in (("GET", "/v1/tools"), ("POST", "/v1/tools/execute_code")):
        response = httpx.request(method, service.url + path, json={"code": "1"}, timeout=30)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_the_three_tools_in_openai_format(tools: dict[str, dict[str, Any]]) -> None:
    assert list(tools) == [
        "execute_code",
        "deploy_worker",
        "invoke_worker",
        "create_session",
        "run_in_session",
        "upload_file",
        "download_file",
        "close_session",
    ]
    for tool in tools.values():
        assert tool["type"] == "function"
        assert set(tool["function"]) == {"name", "description", "parameters"}
        assert len(tool["function"]["description"]) > 100


@pytest.mark.parametrize(
    "name",
    [
        "execute_code",
        "deploy_worker",
        "invoke_worker",
        "create_session",
        "run_in_session",
        "upload_file",
        "download_file",
        "close_session",
    ],
)
def test_schema_is_plain_json_schema_for_function_calling(
    tools: dict[str, dict[str, Any]], name: str
) -> None:
    parameters = tools[name]["function"]["parameters"]
    jsonschema.Draft202012Validator.check_schema(parameters)
    assert parameters["type"] == "object"
    assert parameters["additionalProperties"] is False
    keys = {key for key, _ in walk(parameters)} - set(parameters["properties"])
    assert not keys & {"$ref", "$defs", "definitions", "title"}
    for field, schema in parameters["properties"].items():
        assert schema.get("description"), f"{name}.{field} has no description"
        assert "null" not in json.dumps(schema), f"{name}.{field} offers null"


@pytest.mark.parametrize(
    ("name", "model", "added", "dropped"),
    [
        ("execute_code", "ExecuteRequest", set(), {"stream"}),
        ("deploy_worker", "WorkerIn", {"namespace", "worker"}, set()),
    ],
    ids=["execute_code-is-execute-minus-stream", "deploy_worker-is-upload-plus-address"],
)
def test_schema_has_the_endpoints_fields(
    admin: httpx.Client,
    tools: dict[str, dict[str, Any]],
    name: str,
    model: str,
    added: set[str],
    dropped: set[str],
) -> None:
    document = admin.get("/openapi.json").json()
    if model == "WorkerIn":  # the upload's body is JSON or multipart: described inline
        upload = document["paths"]["/v1/namespaces/{namespace}/workers/{name}"]["put"]
        api = upload["requestBody"]["content"]["application/json"]["schema"]
    else:
        api = document["components"]["schemas"][model]
    properties = tools[name]["function"]["parameters"]["properties"]
    assert set(properties) == set(api["properties"]) - dropped | added
    for field in set(api["properties"]) - dropped:
        assert properties[field].get("description") == api["properties"][field].get(
            "description", properties[field].get("description")
        )


def test_openai_schema_inlines_refs_and_drops_null_branches() -> None:
    class Inner(BaseModel):
        """An inner object."""

        n: int = Field(ge=1)

    class Outer(BaseModel):
        """Not shown to models."""

        inner: Inner
        maybe: Inner | None = None
        many: list[Inner] = Field(default_factory=list, description="Several")
        word: Literal["a", "b"] | None = Field(default=None, description="A word")
        either: int | str | None = None

    schema = openai_schema(Outer)
    assert "$defs" not in schema and "description" not in schema
    inner = {
        "description": "An inner object.",
        "properties": {"n": {"minimum": 1, "type": "integer"}},
        "required": ["n"],
        "type": "object",
    }
    assert schema["properties"]["inner"] == inner
    assert schema["properties"]["maybe"] == inner
    assert schema["properties"]["many"]["items"] == inner
    assert schema["properties"]["word"] == {
        "enum": ["a", "b"],
        "type": "string",
        "description": "A word",
    }
    # Two real branches stay a union (null dropped only when one branch is left).
    assert len(schema["properties"]["either"]["anyOf"]) == 3


# --- Arguments valid per the schema are accepted by the API; invalid ones are refused ------


def execute_cases() -> list[Any]:
    full = {
        "code": "import os\nprint(open('a.txt').read(), open('b.bin','rb').read(), input())\n"
        "os.environ['A']",
        "runtime": "wasmtime",
        "limits": {
            "cpu_ms": 2000,
            "wall_ms": 5000,
            "memory_mb": 128,
            "output_bytes": 10_000,
            "subrequests": 1,
        },
        "allowed_hosts": ["127.0.0.1:9"],
        "stdin": "typed",
        "files": {"a.txt": "text", "b.bin": {"content": "aGk=", "encoding": "base64"}},
        "env": {"A": "1"},
        "requirements": [],
    }
    return [
        pytest.param({"code": "1 + 1"}, True, id="minimal"),
        pytest.param(full, True, id="every-field"),
        pytest.param({}, False, id="no-code"),
        pytest.param({"code": 1}, False, id="code-not-a-string"),
        pytest.param({"code": "1", "stream": True}, False, id="stream-is-not-a-tool-argument"),
        pytest.param({"code": "1", "limits": {"cpu_ms": 0}}, False, id="cpu-ms-zero"),
        pytest.param({"code": "1", "runtime": "cpython"}, False, id="unknown-runtime"),
        pytest.param(
            {"code": "1", "files": {"a": {"content": "x", "encoding": "hex"}}},
            False,
            id="unknown-encoding",
        ),
        pytest.param({"code": "1", "limits": {"cpu": 1}}, False, id="unknown-limit"),
    ]


@pytest.mark.parametrize(("arguments", "valid"), execute_cases())
def test_execute_code_schema_agrees_with_the_api(
    admin: httpx.Client, tools: dict[str, dict[str, Any]], arguments: dict[str, Any], valid: bool
) -> None:
    schema = tools["execute_code"]["function"]["parameters"]
    assert jsonschema.Draft202012Validator(schema).is_valid(arguments) is valid
    called = call(admin, "execute_code", arguments)
    assert called["is_error"] is not valid, called["text"]
    if valid:
        direct = admin.post("/v1/execute", json=arguments)
        assert direct.status_code == 200, direct.text
        assert direct.json()["status"] == called["result"]["status"] == "ok", called["text"]
        assert direct.json()["stdout"] == called["result"]["stdout"]
    else:
        assert called["result"]["status"] == 422
        assert called["result"]["error"]["code"] == "invalid_request"


def worker_cases(namespace: str) -> list[tuple[dict[str, Any], bool]]:
    base = {"namespace": namespace, "worker": "agreed", "modules": {"main.py": HELLO}}
    return [
        (base, True),
        (
            {
                **base,
                "modules": {"shop.py": HELLO, "lib/util.py": "X = 1\n"},
                "main_module": "shop.py",
                "runtime": "wasmtime",
                "requirements": [],
                "tags": ["a", "b"],
                "limits": {"cpu_ms": 1000},
                "allowed_hosts": ["127.0.0.1:9"],
                "vars": {"GREETING": "hi"},
                "secrets": {"TOKEN": "x"},
            },
            True,
        ),
        ({**base, "worker": "Bad_Name"}, False),
        ({**base, "modules": {}}, False),
        ({"namespace": namespace, "worker": "agreed"}, False),
        ({**base, "tags": [str(i) for i in range(9)]}, False),
        ({**base, "limits": {"memory_mb": 1}}, False),
    ]


def test_deploy_worker_schema_agrees_with_the_api(
    admin: httpx.Client, tools: dict[str, dict[str, Any]], namespace: str
) -> None:
    validator = jsonschema.Draft202012Validator(tools["deploy_worker"]["function"]["parameters"])
    for arguments, valid in worker_cases(namespace):
        assert validator.is_valid(arguments) is valid, arguments
        called = call(admin, "deploy_worker", arguments)
        assert called["is_error"] is not valid, (arguments, called["text"])
        if valid:
            body = {k: v for k, v in arguments.items() if k not in ("namespace", "worker")}
            direct = admin.put(f"/v1/namespaces/{namespace}/workers/agreed", json=body)
            assert direct.status_code == 200, direct.text
            assert direct.json()["version"]["sha256"] == called["result"]["version"]["sha256"]
        else:
            assert called["result"]["status"] == 422, called["text"]


def test_invoke_worker_schema_agrees_with_the_api(
    admin: httpx.Client, tools: dict[str, dict[str, Any]], namespace: str
) -> None:
    deployed = call(
        admin,
        "deploy_worker",
        {
            "namespace": namespace,
            "worker": "echo",
            "modules": {"main.py": HELLO},
            "vars": {"GREETING": "hello"},
        },
    )
    assert not deployed["is_error"], deployed["text"]
    validator = jsonschema.Draft202012Validator(tools["invoke_worker"]["function"]["parameters"])
    at = {"namespace": namespace, "worker": "echo"}
    full = {
        **at,
        "method": "POST",
        "path": "/items/1?sort=asc",
        "headers": {"x-a": "1"},
        "body": '{"n": 1}',
        "limits": {"cpu_ms": 2000},
    }
    cases = [
        (at, True),
        (full, True),
        ({**at, "method": "FETCH"}, False),
        ({**at, "path": "/with space"}, False),
        ({**at, "limits": {"cpu_ms": 0}}, False),
        ({"namespace": namespace}, False),
    ]
    for arguments, valid in cases:
        assert validator.is_valid(arguments) is valid, arguments
        called = call(admin, "invoke_worker", arguments)
        assert called["is_error"] is not valid, (arguments, called["text"])
        if not valid:
            assert called["result"]["status"] == 422
            continue
        path = arguments.get("path", "/")
        direct = admin.request(
            arguments.get("method", "GET"),
            f"/dispatch/{namespace}/echo{path}",
            headers={
                **arguments.get("headers", {}),
                "x-sandlot-limits": json.dumps(arguments.get("limits", {})),
            },
            content=arguments.get("body"),
        )
        assert direct.status_code == 200, direct.text
        assert json.loads(called["result"]["body"]) == direct.json()
        assert direct.json()["greeting"] == "hello"
    assert json.loads(call(admin, "invoke_worker", full)["result"]["body"]) == {
        "path": "/items/1",
        "query": "sort=asc",
        "method": "POST",
        "body": '{"n": 1}',
        "greeting": "hello",
    }


# --- What a call answers ------------------------------------------------------------------


def test_execute_code_renders_output_result_and_error(admin: httpx.Client) -> None:
    ok = call(
        admin, "execute_code", {"code": "print('a')\nimport sys\nprint('b', file=sys.stderr)\n6*7"}
    )
    assert ok["is_error"] is False
    assert ok["text"] == "status: ok\nstdout:\na\nstderr:\nb\nresult: 42"
    assert ok["result"]["result"]["json"] == 42
    failed = call(admin, "execute_code", {"code": "print('before')\n1/0"})
    # The code failing is the tool's answer, not a refused call.
    assert failed["is_error"] is False
    assert failed["text"].startswith("status: error\nstdout:\nbefore\nerror: ZeroDivisionError")
    assert 'File "main.py", line 2' in failed["text"]


def test_execute_code_reports_limits(admin: httpx.Client) -> None:
    spun = call(admin, "execute_code", {"code": "while True: pass", "limits": {"cpu_ms": 100}})
    assert spun["result"]["status"] == "cpu_limit"
    assert spun["text"].startswith("status: cpu_limit (the code used all its CPU time")
    loud = call(
        admin, "execute_code", {"code": "print('x' * 5000)", "limits": {"output_bytes": 100}}
    )
    assert loud["result"]["status"] == "output_limit" and loud["result"]["output_truncated"]


def test_refusals_carry_the_endpoints_message(admin: httpx.Client) -> None:
    arguments = {"code": "1", "limits": {"cpu_ms": 10**9}}
    direct = admin.post("/v1/execute", json=arguments)
    assert direct.status_code == 422
    called = call(admin, "execute_code", arguments)
    assert called["is_error"] is True
    assert called["result"] == {"error": direct.json()["error"], "status": 422}
    assert called["text"] == f"error (invalid_request): {direct.json()['error']['message']}"


def test_deploy_and_invoke(admin: httpx.Client, namespace: str) -> None:
    arguments = {
        "namespace": namespace,
        "worker": "site",
        "modules": {"main.py": HELLO},
        "vars": {"GREETING": "hey"},
    }
    first = call(admin, "deploy_worker", arguments)
    assert first["is_error"] is False
    assert first["text"].startswith(f"created worker 'site' in namespace '{namespace}': version 1")
    again = call(admin, "deploy_worker", arguments)
    assert again["text"].startswith("updated worker 'site'")
    assert "the build was reused" in again["text"]
    assert again["result"]["version"]["number"] == 2

    answer = call(admin, "invoke_worker", {"namespace": namespace, "worker": "site", "path": "x"})
    assert answer["is_error"] is False
    assert answer["result"]["status"] == 200 and answer["result"]["outcome"] == "ok"
    assert answer["text"].startswith("HTTP 200\ncontent-type: application/json")
    assert json.loads(answer["result"]["body"])["path"] == "/x"

    boom = call(admin, "invoke_worker", {"namespace": namespace, "worker": "site", "path": "/boom"})
    assert boom["is_error"] is False
    assert (boom["result"]["status"], boom["result"]["outcome"]) == (500, "error")
    assert boom["text"] == "HTTP 500 (outcome error): ValueError: kaput"

    raw = call(admin, "invoke_worker", {"namespace": namespace, "worker": "site", "path": "/bytes"})
    assert raw["result"]["body"] is None and raw["result"]["body_base64"] == "AP8B"
    assert "[3 bytes of binary data, in body_base64]" in raw["text"]


def test_a_failed_build_is_refused_with_file_and_line(admin: httpx.Client, namespace: str) -> None:
    broken = call(
        admin,
        "deploy_worker",
        {"namespace": namespace, "worker": "broken", "modules": {"main.py": "def on_fetch(:\n"}},
    )
    assert broken["is_error"] is True
    assert broken["result"]["error"]["code"] == "build_failed"
    assert broken["text"].startswith("error (build_failed): the build failed: main.py line 1")


def test_unknown_workers_and_tools(admin: httpx.Client, namespace: str) -> None:
    missing = call(admin, "invoke_worker", {"namespace": namespace, "worker": "nobody"})
    assert missing["is_error"] is True
    assert missing["result"]["error"]["code"] == "worker_not_found"
    assert "'nobody'" in missing["text"]
    unknown = admin.post("/v1/tools/rm_rf", json={})
    assert unknown.status_code == 404
    assert "execute_code, deploy_worker, invoke_worker" in unknown.json()["error"]["message"]


def test_a_namespace_key_reaches_only_its_namespace(
    admin: httpx.Client, service: Service, namespace: str
) -> None:
    mine = "k-" + secrets.token_hex(4)
    assert admin.post("/v1/namespaces", json={"name": mine}).status_code == 201
    key = admin.post(f"/v1/namespaces/{mine}/keys", json={"label": "agent"}).json()["key"]
    assert key != ADMIN_KEY
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as scoped:
        own = call(
            scoped,
            "deploy_worker",
            {"namespace": mine, "worker": "w", "modules": {"main.py": HELLO}},
        )
        assert own["is_error"] is False, own["text"]
        assert call(scoped, "execute_code", {"code": "1"})["is_error"] is False
        for tool, arguments in (
            (
                "deploy_worker",
                {"namespace": namespace, "worker": "w", "modules": {"main.py": HELLO}},
            ),
            ("invoke_worker", {"namespace": namespace, "worker": "site"}),
        ):
            refused = call(scoped, tool, arguments)
            assert refused["is_error"] is True
            assert refused["result"]["status"] == 403
            assert f"can't touch {namespace!r}" in refused["text"]
