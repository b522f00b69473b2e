"""AsyncSandlot against the live service: the same calls, awaited."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from sandlot_client import AsyncSandlot, Event, SandlotError
from tests.conftest import ADMIN_KEY, Service

WORKER = """
from workers import Response

async def on_fetch(request, env):
    return Response(f"{request.method} {request.path}", status=202)
"""


def test_run_code_streams_to_sync_and_async_callbacks(service: Service) -> None:
    chunks: list[str] = []
    names: list[str] = []

    async def on_stdout(text: str) -> None:
        await asyncio.sleep(0)
        chunks.append(text)

    async def main() -> None:
        async with AsyncSandlot(service.url, ADMIN_KEY) as client:
            code = (
                "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)\n"
            )
            run = await client.run_code(
                code, on_stdout=on_stdout, on_event=lambda e: names.append(e.name)
            )
            assert run.status == "ok"
            assert "".join(chunks) == run.stdout == "0\n1\n2\n"
            assert names[0] == "start" and names[-1] == "end"
            assert names.count("stdout") == len(chunks)
            spun = await client.run_code("while True: pass", limits={"cpu_ms": 100})
            assert spun.status == "cpu_limit"

    asyncio.run(main())


def test_errors_workers_and_tools(service: Service) -> None:
    async def main() -> None:
        async with AsyncSandlot(service.url, ADMIN_KEY) as client:
            with pytest.raises(SandlotError) as caught:
                await client.run_code("1", runtime="cpython")
            assert (caught.value.status_code, caught.value.code) == (422, "invalid_request")
            assert caught.value.message.startswith("runtime:")
            name = "a-" + secrets.token_hex(4)
            await client.create_namespace(name)
            deployed = await client.deploy_worker(name, "w", WORKER)
            assert deployed.version.number == 1
            answer = await client.invoke_worker(name, "w", "/p", method="DELETE")
            assert (answer.status_code, answer.text, answer.outcome) == (202, "DELETE /p", "ok")
            text = await client.call_tool("invoke_worker", {"namespace": name, "worker": "w"})
            assert text.startswith("HTTP 202")
            assert len(await client.tools()) == 8  # execute, two worker and five session tools

    asyncio.run(main())


def test_events_are_typed(service: Service) -> None:
    seen: list[Event] = []

    async def main() -> None:
        async with AsyncSandlot(service.url, ADMIN_KEY) as client:
            await client.run_code("print(1)", on_event=seen.append)

    asyncio.run(main())
    end = seen[-1]
    assert end.name == "end" and end.data["status"] == "ok"
    assert end.data["usage"]["output_bytes"] == 2
