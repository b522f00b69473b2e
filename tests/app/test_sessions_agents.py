"""The session tools over /v1/tools and MCP (they reach the same sessions as the HTTP API),
and sessions on the service with both engines."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
from mcp import ClientSession

from tests.app.test_mcp_server import session as mcp_session
from tests.conftest import Service


def call(client: httpx.Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"/v1/tools/{name}", json=arguments)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_session_through_the_tools(client: httpx.Client) -> None:
    made = call(client, "create_session", {})
    assert made["is_error"] is False, made
    session_id = made["result"]["id"]
    assert session_id in made["text"]
    uploaded = call(
        client,
        "upload_file",
        {"session_id": session_id, "path": "in.csv", "content": "a\n1\n2\n"},
    )
    assert uploaded["result"] == {"path": "in.csv", "size": 6}
    first = call(
        client,
        "run_in_session",
        {"session_id": session_id, "code": "import pandas as pd\ndf = pd.read_csv('in.csv')"},
    )
    assert first["result"]["status"] == "ok"
    second = call(
        client,
        "run_in_session",
        {
            "session_id": session_id,
            "code": "df.assign(b=df.a * 10).to_csv('out.csv', index=False)\nint(df.a.sum())",
        },
    )
    assert second["result"]["result"]["json"] == 3
    assert second["result"]["session"]["state"] == "open"
    # The HTTP API sees the same session and its files.
    assert client.get(f"/v1/sessions/{session_id}/files/out.csv").content == b"a,b\n1,10\n2,20\n"
    downloaded = call(client, "download_file", {"session_id": session_id, "path": "out.csv"})
    assert downloaded["result"]["text"] == "a,b\n1,10\n2,20\n"
    client.put(f"/v1/sessions/{session_id}/files/blob.bin", content=b"\xff\x00")
    binary = call(client, "download_file", {"session_id": session_id, "path": "blob.bin"})
    assert base64.b64decode(binary["result"]["base64"]) == b"\xff\x00"
    ended = call(
        client,
        "run_in_session",
        {"session_id": session_id, "code": "while True: pass", "limits": {"cpu_ms": 200}},
    )
    assert ended["result"]["status"] == "cpu_limit"
    assert "the session has ended (cpu_limit)" in ended["text"]
    gone = call(client, "run_in_session", {"session_id": session_id, "code": "1"})
    assert gone["is_error"] is True
    assert gone["result"]["status"] == 410
    assert "cpu_limit" in gone["text"]


def test_close_session_and_refusals(client: httpx.Client) -> None:
    session_id = call(client, "create_session", {"memory_mb": 64})["result"]["id"]
    bad_path = call(
        client, "upload_file", {"session_id": session_id, "path": "../x", "content": ""}
    )
    assert bad_path["is_error"] is True and bad_path["result"]["status"] == 422
    missing = call(client, "download_file", {"session_id": session_id, "path": "nothing"})
    assert missing["is_error"] is True and missing["result"]["status"] == 404
    closed = call(client, "close_session", {"session_id": session_id})
    assert closed["is_error"] is False
    assert client.get(f"/v1/sessions/{session_id}").json()["ended_reason"] == "closed"
    unknown = call(client, "run_in_session", {"session_id": "ses_nope", "code": "1"})
    assert unknown["result"]["status"] == 404


def test_a_session_over_mcp(service: Service) -> None:
    async def main() -> None:
        async with mcp_session(service) as client:
            await scenario(client)

    async def scenario(client: ClientSession) -> None:
        made = await client.call_tool("create_session", {})
        assert made.is_error is False
        assert isinstance(made.structured_content, dict)
        session_id = made.structured_content["id"]
        await client.call_tool("run_in_session", {"session_id": session_id, "code": "n = 6"})
        answer = await client.call_tool(
            "run_in_session", {"session_id": session_id, "code": "n * 7"}
        )
        assert isinstance(answer.structured_content, dict)
        assert answer.structured_content["result"]["json"] == 42
        chart = await client.call_tool(
            "run_in_session",
            {
                "session_id": session_id,
                "code": "import matplotlib.pyplot as plt\nplt.plot([1, n])\nplt.show()",
            },
        )
        assert [block.type for block in chart.content] == ["text", "image"]
        closed = await client.call_tool("close_session", {"session_id": session_id})
        assert closed.is_error is False

    asyncio.run(main())


def test_a_pyodide_session_through_the_tools(client: httpx.Client) -> None:
    made = call(client, "create_session", {"runtime": "pyodide"})
    assert made["is_error"] is False, made
    session_id = made["result"]["id"]
    assert client.get(f"/v1/sessions/{session_id}").json()["runtime"] == "pyodide"
    call(client, "upload_file", {"session_id": session_id, "path": "in.txt", "content": "41"})
    call(
        client,
        "run_in_session",
        {"session_id": session_id, "code": "import sys\nn = int(open('in.txt').read())"},
    )
    answer = call(
        client,
        "run_in_session",
        {"session_id": session_id, "code": "open('out.txt', 'w').write(str(n + 1))\nsys.platform"},
    )
    assert answer["result"]["result"]["json"] == "emscripten"
    downloaded = call(client, "download_file", {"session_id": session_id, "path": "out.txt"})
    assert downloaded["result"]["text"] == "42"
    assert call(client, "close_session", {"session_id": session_id})["is_error"] is False
