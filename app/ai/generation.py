"""Generate → run → repair: the loop behind POST /v1/generate, and its event vocabulary.

One generation is a series of attempts. Each asks the model (streaming its
tokens), extracts the code and hands it to a :class:`Target` (a one-shot run,
or a worker deploy plus one request), which streams its own events and ends
with a :class:`Verdict`. A failed attempt's outcome goes back to the model as a
repair message, until an attempt works or ``max_attempts`` is spent. Events, in
order per attempt: ``Attempt``, ``Token``…, ``Code``, then the target's
``RunEvent``… and ``Deployed``; ``Finished`` always comes last, exactly once,
unless the consumer itself goes away.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from app.ai.extract import extract_code
from app.ai.model import Message, ModelClient, ModelError
from app.ai.prompts import Prompts
from sandbox import Event, Status

# How a generation ended (``Finished.status``).
GenerationStatus = Literal["ok", "failed", "no_code", "model_error", "canceled"]

__all__ = [
    "Attempt",
    "Code",
    "Deployed",
    "Feedback",
    "Finished",
    "GenerationEvent",
    "PromptLog",
    "RunEvent",
    "Target",
    "Token",
    "Verdict",
    "generate",
]

_log = logging.getLogger(__name__)

# Bounds on what a repair message repeats of a failed attempt, in characters (the tail
# is kept: the end of a traceback or of the output is where the failure shows).
ERROR_CHARS = 1_000
TRACEBACK_CHARS = 4_000
OUTPUT_CHARS = 2_000


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    kind: Literal["generate", "repair"]


@dataclass(frozen=True, slots=True)
class Token:
    attempt: int
    text: str


@dataclass(frozen=True, slots=True)
class Code:
    attempt: int
    code: str


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of the attempt's sandbox run, as /v1/execute streams it."""

    attempt: int
    event: Event
    run_id: str


@dataclass(frozen=True, slots=True)
class Deployed:
    """Worker mode: the upload's version and the status its check request answered.

    ``version`` and ``status`` are None when the build failed (``error`` says why)."""

    attempt: int
    namespace: str
    worker: str
    version: str | None
    status: int | None
    error: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    status: GenerationStatus
    code: str | None
    attempts: int
    run_status: Status | None
    error: dict[str, str] | None
    prompt_version: str


GenerationEvent = Attempt | Token | Code | RunEvent | Deployed | Finished


@dataclass(frozen=True, slots=True)
class Feedback:
    """What the repair message tells the model about a failed attempt."""

    outcome: str
    error: str = ""
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""

    def values(self) -> dict[str, str]:
        return {
            "outcome": self.outcome,
            "error": _tail(self.error, ERROR_CHARS),
            "traceback": _tail(self.traceback, TRACEBACK_CHARS),
            "stdout": _tail(self.stdout, OUTPUT_CHARS),
            "stderr": _tail(self.stderr, OUTPUT_CHARS),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """How an attempt's code fared. ``fatal``: not the code's fault (a busy pool, a host
    fault, a canceled run), so a repair would not help."""

    ok: bool
    run_status: Status | None
    error: dict[str, str] | None = None
    feedback: Feedback | None = None
    fatal: bool = False


class Target(Protocol):
    """Where an attempt's code goes. ``attempt`` yields events, then one Verdict last."""

    def attempt(self, number: int, code: str) -> AsyncGenerator[RunEvent | Deployed | Verdict]: ...

    async def settle(self, ok: bool) -> None:
        """Called once when the generation ends (also on error or cancel)."""


@dataclass
class PromptLog:
    """Renders templates and remembers which (name@version) a generation used."""

    prompts: Prompts
    used: list[str] = field(default_factory=list)

    def render(self, name: str, **values: str) -> str:
        template = self.prompts[name]
        if template.tag not in self.used:
            self.used.append(template.tag)
        return template.render(**values)

    @property
    def version(self) -> str:
        return "+".join(self.used)


async def generate(
    *,
    model: ModelClient,
    log: PromptLog,
    system: str,
    task: str,
    target: Target,
    max_attempts: int,
) -> AsyncGenerator[GenerationEvent]:
    """The generation's events; the last is always Finished (unless the consumer leaves),
    also when the service itself fails mid-way."""
    state = _State()
    finished: Finished | None = None
    try:
        attempts = _attempts(model, log, system, task, target, max_attempts, state)
        async with contextlib.aclosing(attempts) as events:
            async for event in events:
                if isinstance(event, Finished):
                    finished = event
                yield event
    except Exception:
        _log.exception("generation failed after %d attempts", state.attempts)
        error = {"type": "internal_error", "message": "the service failed; see its log"}
        finished = Finished(
            "failed", state.last_code, state.attempts, state.run_status, error, log.version
        )
        yield finished
    finally:
        await target.settle(finished is not None and finished.status == "ok")
        if finished is not None:
            _log.info(
                "generation %s after %d attempts (prompts %s)",
                finished.status,
                finished.attempts,
                finished.prompt_version,
            )


@dataclass
class _State:
    attempts: int = 0
    last_code: str | None = None
    run_status: Status | None = None


async def _attempts(
    model: ModelClient,
    log: PromptLog,
    system: str,
    task: str,
    target: Target,
    max_attempts: int,
    state: _State,
) -> AsyncGenerator[GenerationEvent]:
    messages: list[Message] = [
        {"role": "system", "content": system},
        {"role": "user", "content": task},
    ]
    for number in range(1, max_attempts + 1):
        state.attempts = number
        yield Attempt(number, "generate" if number == 1 else "repair")
        parts: list[str] = []
        try:
            async with contextlib.aclosing(model.stream(messages)) as tokens:
                async for text in tokens:
                    parts.append(text)
                    yield Token(number, text)
        except ModelError as exc:
            error = {"type": exc.kind, "message": exc.message}
            yield _end("model_error", state, error, log)
            return
        answer = "".join(parts)
        messages.append({"role": "assistant", "content": answer})
        code = extract_code(answer)
        if code is None:
            if number == max_attempts:
                error = {"type": "no_code", "message": "the model's answer held no code"}
                yield _end("no_code", state, error, log)
                return
            messages.append({"role": "user", "content": log.render("no_code")})
            continue
        state.last_code = code
        yield Code(number, code)
        verdict = Verdict(ok=False, run_status=None, fatal=True)
        async with contextlib.aclosing(target.attempt(number, code)) as steps:
            async for item in steps:
                if isinstance(item, Verdict):
                    verdict = item
                else:
                    yield item
        state.run_status = verdict.run_status
        if verdict.ok:
            yield _end("ok", state, None, log)
            return
        if verdict.run_status is Status.CANCELED:
            yield _end("canceled", state, verdict.error, log)
            return
        if verdict.fatal or number == max_attempts or verdict.feedback is None:
            yield _end("failed", state, verdict.error, log)
            return
        repair = log.render("repair", **verdict.feedback.values())
        messages.append({"role": "user", "content": repair})


def _end(
    status: GenerationStatus,
    state: _State,
    error: dict[str, str] | None,
    log: PromptLog,
) -> Finished:
    return Finished(status, state.last_code, state.attempts, state.run_status, error, log.version)


def _tail(text: str, limit: int) -> str:
    text = text.strip("\n")
    if not text:
        return "(empty)"
    if len(text) <= limit:
        return text
    return f"[… {len(text) - limit} earlier characters cut]\n{text[-limit:]}"
