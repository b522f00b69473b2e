"""app/ai/generation.py: the loop with a scripted model and in-process targets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from app.ai import (
    Deployed,
    Feedback,
    Finished,
    GenerationEvent,
    ModelClient,
    ModelConfig,
    PromptLog,
    Prompts,
    RunEvent,
    Verdict,
    generate,
)
from app.ai.generation import OUTPUT_CHARS, TRACEBACK_CHARS
from sandbox import Status
from tests.ai.fake_model import FakeModel, Reply
from tests.conftest import ROOT


class Scripted:
    """A target that judges each attempt from a list, or raises."""

    def __init__(self, *verdicts: Verdict | Exception) -> None:
        self.verdicts = list(verdicts)
        self.codes: list[str] = []
        self.settled: list[bool] = []

    async def attempt(
        self, number: int, code: str
    ) -> AsyncGenerator[RunEvent | Deployed | Verdict]:
        self.codes.append(code)
        verdict = self.verdicts.pop(0)
        if isinstance(verdict, Exception):
            raise verdict
        yield verdict

    async def settle(self, ok: bool) -> None:
        self.settled.append(ok)


def _run(fake_model: FakeModel, target: Scripted, max_attempts: int = 3) -> list[GenerationEvent]:
    async def main() -> list[GenerationEvent]:
        client = ModelClient(ModelConfig(fake_model.base_url, "sk-x", "fake-coder", 2_000, 512))
        log = PromptLog(Prompts.load(ROOT / "prompts"))
        try:
            events = generate(
                model=client,
                log=log,
                system="rules",
                task="task",
                target=target,
                max_attempts=max_attempts,
            )
            return [event async for event in events]
        finally:
            await client.close()

    return asyncio.run(main())


def test_success_settles_ok(fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("print(1)"))
    target = Scripted(Verdict(True, Status.OK))
    events = _run(fake_model, target)
    assert events[-1] == Finished("ok", "print(1)\n", 1, "ok", None, "")
    assert target.settled == [True]


def test_a_service_fault_still_ends_the_stream(fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("print(1)"))
    target = Scripted(RuntimeError("database went away"))
    events = _run(fake_model, target)
    last = events[-1]
    assert isinstance(last, Finished)
    assert (last.status, last.attempts, last.code) == ("failed", 1, "print(1)\n")
    assert last.error == {"type": "internal_error", "message": "the service failed; see its log"}
    assert target.settled == [False]


def test_a_fatal_verdict_is_not_repaired(fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("print(1)"), Reply.code("print(2)"))
    busy = {"type": "busy", "message": "every worker is busy"}
    target = Scripted(Verdict(False, None, busy, Feedback("busy"), fatal=True))
    last = _run(fake_model, target)[-1]
    assert isinstance(last, Finished)
    assert (last.status, last.error, last.attempts) == ("failed", busy, 1)
    assert len(fake_model.requests) == 1


def test_a_canceled_run_ends_canceled(fake_model: FakeModel) -> None:
    fake_model.reset(Reply.code("print(1)"))
    target = Scripted(Verdict(False, Status.CANCELED, None, Feedback("canceled")))
    last = _run(fake_model, target)[-1]
    assert isinstance(last, Finished)
    assert (last.status, last.run_status) == ("canceled", "canceled")


@pytest.mark.parametrize(
    ("field", "limit"), [("stdout", OUTPUT_CHARS), ("traceback", TRACEBACK_CHARS)]
)
def test_feedback_keeps_a_bounded_tail(field: str, limit: int) -> None:
    text = "".join(f"line {i}\n" for i in range(10_000))
    values = Feedback("failed", **{field: text}).values()
    assert len(values[field]) < limit + 100
    assert values[field].endswith("line 9999")
    assert values[field].startswith("[… ")
    assert values["stderr"] == "(empty)"
