"""SANDLOT_DRAIN_DELAY_MS: after SIGTERM a replica is not ready at once, but serves new
requests for the delay (a load balancer's health checks need that long to take it out),
then refuses them."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from app.draining import Drain, DrainGate
from app.routes import health


async def _hello() -> PlainTextResponse:
    return PlainTextResponse("hello")


def _app(drain: Drain, refused: list[int]) -> DrainGate:
    app = FastAPI()
    app.include_router(health.router)
    app.add_api_route("/hello", _hello)
    app.state.drain = drain
    return DrainGate(app, drain=drain, on_refused=lambda: refused.append(1))


async def _scenario(delay_ms: int) -> list[tuple[str, int, int]]:
    """(moment, /hello status, /readyz status) before SIGTERM, in the delay, after it."""
    drain = Drain(timeout_ms=2_000, delay_ms=delay_ms)
    refused: list[int] = []
    transport = httpx.ASGITransport(app=_app(drain, refused))
    seen = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

        async def look(moment: str) -> None:
            hello = await client.get("/hello")
            ready = await client.get("/readyz")
            seen.append((moment, hello.status_code, ready.status_code))
            if hello.status_code == 503:
                assert hello.json()["error"]["code"] == "shutting_down"

        await look("before")
        draining = asyncio.create_task(drain.shut_down())
        await asyncio.sleep(0.05)
        await look("in the delay")
        await asyncio.sleep(delay_ms / 1000 + 0.1)
        await look("after the delay")
        await asyncio.wait_for(draining, 5)
    assert len(refused) == sum(1 for _, hello, _ in seen if hello == 503)
    return seen


def test_a_draining_replica_is_not_ready_but_serves_for_the_delay_then_refuses() -> None:
    # /readyz is 503 in any case: no engine in this app. What matters is /hello.
    assert asyncio.run(_scenario(400)) == [
        ("before", 200, 503),
        ("in the delay", 200, 503),
        ("after the delay", 503, 503),
    ]


def test_without_a_delay_new_requests_are_refused_at_once() -> None:
    assert [hello for _, hello, _ in asyncio.run(_scenario(0))] == [200, 503, 503]
