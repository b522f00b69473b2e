"""The client's tail() and usage() against the live service: invocations arrive typed, with
the worker's output and exception; usage comes back per day, sync and async alike."""

from __future__ import annotations

import asyncio
import queue
import secrets
import threading
from datetime import UTC, datetime

import httpx
import pytest

from sandlot_client import (
    AsyncSandlot,
    Invocation,
    NamespaceUsage,
    Sandlot,
    SandlotError,
    TailDropped,
)
from tests.conftest import ADMIN_KEY, Service

WORKER = """
from workers import Response

def on_fetch(request, env):
    print("serving", request.path)
    if request.path == "/fail":
        raise KeyError("missing")
    return Response("ok")
"""


def test_tail_yields_invocations_and_usage_counts_them(service: Service) -> None:
    namespace = "c-" + secrets.token_hex(4)
    with Sandlot(service.url, ADMIN_KEY, timeout=60) as admin:
        admin.create_namespace(namespace)
        admin.deploy_worker(namespace, "site", {"main.py": WORKER})
        items: queue.Queue[Invocation | TailDropped] = queue.Queue()
        stop = threading.Event()

        def follow() -> None:
            with Sandlot(service.url, ADMIN_KEY, timeout=60) as tailer:
                for item in tailer.tail(namespace, "site"):
                    items.put(item)
                    if stop.is_set():
                        return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        # The tail is subscribed once its stream is open: dispatch until it sees one.
        first = None
        for _ in range(50):
            httpx.get(f"{service.url}/dispatch/{namespace}/site/fail", timeout=60)
            try:
                first = items.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        assert isinstance(first, Invocation), first
        stop.set()
        httpx.get(f"{service.url}/dispatch/{namespace}/site/ok", timeout=60)
        thread.join(30)
        assert first.outcome == "error" and first.status == 500
        assert (first.method, first.path) == ("GET", "/fail")
        assert first.logs[0] == {"stream": "stdout", "text": "serving /fail"}
        assert first.exception is not None and first.exception["type"] == "KeyError"
        assert "main.py" in first.exception["traceback"]
        today = datetime.now(UTC).date().isoformat()
        usage = admin.usage(namespace, first=today, last=today)
        assert isinstance(usage, NamespaceUsage)
        assert usage.first == usage.last == today
        assert usage.total.dispatches == usage.total.runs >= 2
        assert [day.day for day in usage.days] == [today]
        with pytest.raises(SandlotError) as refused:
            admin.usage(namespace, first="2026-12-06", last="2026-12-05")
        assert refused.value.status_code == 422

    async def from_async() -> NamespaceUsage:
        async with AsyncSandlot(service.url, ADMIN_KEY, timeout=60) as client:
            return await client.usage(namespace)

    assert asyncio.run(from_async()).total == usage.total
