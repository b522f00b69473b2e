"""/mcp with the official MCP SDK's own client, against the live service."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ADMIN_KEY, Service

WORKER = """
from workers import Response

def on_fetch(request, env):
    return Response.json({"path": request.path, "body": request.text()}, status=201)
"""

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


@asynccontextmanager
async def session(service: Service, key: str = ADMIN_KEY) -> AsyncIterator[ClientSession]:
    headers = {"authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{service.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def run(service: Service, scenario: Callable[[ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        async with session(service) as client:
            await scenario(client)

    asyncio.run(main())


@pytest.fixture(scope="module")
def namespace(service: Service) -> Iterator[str]:
    name = "m-" + secrets.token_hex(4)
    with service.client() as admin:
        assert admin.post("/v1/namespaces", json={"name": name}).status_code == 201
        yield name


def test_lists_the_tools_with_the_same_schemas_as_v1(service: Service) -> None:
    with service.client() as admin:
        v1 = {t["function"]["name"]: t["function"] for t in admin.get("/v1/tools").json()}

    async def scenario(client: ClientSession) -> None:
        listed = (await client.list_tools()).tools
        assert [tool.name for tool in listed] == list(v1)
        for tool in listed:
            assert tool.description == v1[tool.name]["description"]
            assert tool.input_schema == v1[tool.name]["parameters"]

    run(service, scenario)


def test_execute_code(service: Service) -> None:
    async def scenario(client: ClientSession) -> None:
        result = await client.call_tool("execute_code", {"code": "print('hi')\n6 * 7"})
        assert result.is_error is False
        [text] = result.content
        assert text.type == "text" and text.text == "status: ok\nstdout:\nhi\nresult: 42"
        structured = result.structured_content
        assert isinstance(structured, dict)
        assert structured["status"] == "ok" and structured["result"]["json"] == 42

        failed = await client.call_tool("execute_code", {"code": "raise KeyError('k')"})
        assert failed.is_error is False  # the code failed; the call did not
        assert isinstance(failed.structured_content, dict)
        assert failed.structured_content["error"]["type"] == "KeyError"

    run(service, scenario)


def test_deploy_and_invoke_a_worker(service: Service, namespace: str) -> None:
    async def scenario(client: ClientSession) -> None:
        deployed = await client.call_tool(
            "deploy_worker",
            {"namespace": namespace, "worker": "api", "modules": {"main.py": WORKER}},
        )
        assert deployed.is_error is False, deployed.content
        assert isinstance(deployed.structured_content, dict)
        assert deployed.structured_content["version"]["number"] == 1
        answer = await client.call_tool(
            "invoke_worker",
            {"namespace": namespace, "worker": "api", "method": "POST", "path": "/a", "body": "b"},
        )
        assert answer.is_error is False
        structured = answer.structured_content
        assert isinstance(structured, dict)
        assert structured["status"] == 201
        assert json.loads(structured["body"]) == {"path": "/a", "body": "b"}

    run(service, scenario)


def test_refused_calls_are_tool_errors_with_the_message(service: Service, namespace: str) -> None:
    async def scenario(client: ClientSession) -> None:
        bad = await client.call_tool("execute_code", {"code": "1", "limits": {"cpu_ms": 0}})
        assert bad.is_error is True
        [text] = bad.content
        assert text.type == "text"
        assert text.text.startswith("error (invalid_request): limits.cpu_ms:")
        missing = await client.call_tool("invoke_worker", {"namespace": namespace, "worker": "no"})
        assert missing.is_error is True
        assert isinstance(missing.structured_content, dict)
        assert missing.structured_content["error"]["code"] == "worker_not_found"
        with pytest.raises(MCPError, match="no tool named 'shell'"):
            await client.call_tool("shell", {})

    run(service, scenario)


def test_a_namespace_key_is_held_to_its_namespace(service: Service, namespace: str) -> None:
    with service.client() as admin:
        other = "o-" + secrets.token_hex(4)
        assert admin.post("/v1/namespaces", json={"name": other}).status_code == 201
        key = admin.post(f"/v1/namespaces/{other}/keys", json={}).json()["key"]

    async def main() -> None:
        async with session(service, key) as client:
            refused = await client.call_tool(
                "deploy_worker",
                {"namespace": namespace, "worker": "x", "modules": {"main.py": WORKER}},
            )
            assert refused.is_error is True
            assert isinstance(refused.structured_content, dict)
            assert refused.structured_content["status"] == 403
            ran = await client.call_tool("execute_code", {"code": "1 + 1"})
            assert ran.is_error is False

    asyncio.run(main())


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer not-a-key"}, {"authorization": f"Basic {ADMIN_KEY}"}],
    ids=["no-key", "unknown-key", "not-bearer"],
)
def test_without_a_valid_key_is_401(service: Service, headers: dict[str, str]) -> None:
    response = httpx.post(
        f"{service.url}/mcp",
        json=INITIALIZE,
        headers={**headers, "accept": "application/json, text/event-stream"},
        timeout=30,
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_sdk_client_without_a_key_is_turned_away(service: Service) -> None:
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async def main() -> None:
        async with (
            httpx2.AsyncClient(event_hooks={"response": [record]}, timeout=30) as http,
            streamable_http_client(f"{service.url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(main())
    assert caught.group_contains(MCPError)
    assert statuses == [401]


def test_execute_code_returns_images_as_image_content(service: Service) -> None:
    # A 1x1 PNG from the code, through sandlot.display: the MCP answer carries it as an image.
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
        "nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    )
    code = (
        f"import base64, sandlot\nsandlot.display(base64.b64decode('{png}'), mime_type='image/png')"
    )

    async def scenario(client: ClientSession) -> None:
        result = await client.call_tool("execute_code", {"code": code})
        assert result.is_error is False
        text, image = result.content
        assert text.type == "text" and "output: image/png" in text.text
        assert image.type == "image" and image.mime_type == "image/png" and image.data == png

    run(service, scenario)
