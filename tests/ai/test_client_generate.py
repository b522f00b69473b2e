"""sandlot_client's generate() against the live service and a scripted model on loopback.

Here rather than in tests/client/ because it needs the service that has a model (the
session's ai_service).
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from sandlot_client import AsyncSandlot, Event, Sandlot, SandlotError
from tests.ai.fake_model import FakeModel, Reply
from tests.conftest import ADMIN_KEY, Service

WORKER = """
from workers import Response

def on_fetch(request, env):
    return Response("made by a model")
"""


def test_generate_streams_and_repairs(ai_service: Service, fake_model: FakeModel) -> None:
    broken = "print('trying')\nraise ValueError('nope')"
    fixed = "print('fine')\n6 * 7"
    fake_model.reset(Reply.code(broken), Reply.code(fixed))
    tokens: list[str] = []
    codes: list[str] = []
    out: list[str] = []
    errs: list[str] = []
    events: list[Event] = []
    with Sandlot(ai_service.url, ADMIN_KEY) as client:
        made = client.generate(
            "Print 'fine' and return 42.",
            on_token=tokens.append,
            on_code=codes.append,
            on_stdout=out.append,
            on_stderr=errs.append,
            on_event=events.append,
        )
    assert made.ok and made.status == "ok"
    assert (made.attempts, made.code, made.run_status) == (2, fixed + "\n", "ok")
    assert "".join(tokens) == Reply.code(broken).text + Reply.code(fixed).text
    assert codes == [broken + "\n", fixed + "\n"]
    assert "".join(out) == "trying\nfine\n"
    assert "ValueError: nope" in "".join(errs)
    first, last = made.runs
    assert (first.status, first.error and first.error.type) == ("error", "ValueError")
    assert made.run is last and last.result is not None and last.result.json == 42
    assert [e.name for e in events][-1] == "end"
    assert [e.seq for e in events] == list(range(len(events)))


def test_generate_a_worker(ai_service: Service, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code(WORKER))
    namespace = "g-" + secrets.token_hex(4)
    with Sandlot(ai_service.url, ADMIN_KEY) as client:
        client.create_namespace(namespace)
        made = client.generate("A hello page.", namespace=namespace, worker="hello")
        assert made.ok, made.error
        (deploy,) = made.deploys
        assert (deploy.namespace, deploy.worker, deploy.status) == (namespace, "hello", 200)
        assert deploy.version == client.list_versions(namespace, "hello")[0].id
        assert client.invoke_worker(namespace, "hello").text == "made by a model"
        with pytest.raises(TypeError, match="namespace and worker together"):
            client.generate("half worker mode", namespace=namespace)


def test_async_generate_and_a_failed_generation(ai_service: Service, fake_model: FakeModel) -> None:
    fake_model.reset(Reply.answer("I won't write code."))
    seen: list[str] = []

    async def on_token(text: str) -> None:
        seen.append(text)

    async def main() -> None:
        async with AsyncSandlot(ai_service.url, ADMIN_KEY) as client:
            made = await client.generate("Anything.", max_attempts=1, on_token=on_token)
            assert (made.status, made.code, made.runs) == ("no_code", None, [])
            assert made.error is not None and made.error.type == "no_code"

    asyncio.run(main())
    assert "".join(seen) == "I won't write code."


def test_generate_without_a_model_is_a_503(service: Service) -> None:
    with Sandlot(service.url, ADMIN_KEY) as client, pytest.raises(SandlotError) as caught:
        client.generate("Anything.")
    assert (caught.value.status_code, caught.value.code) == (503, "model_not_configured")
