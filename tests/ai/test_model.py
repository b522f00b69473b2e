"""app/ai/model.py against a real chat-completions server on loopback (tests/ai/fake_model.py).

Every openai exception type maps to a ModelError; messages never carry the key.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import openai
import pytest

from app.ai import Message, ModelClient, ModelConfig, ModelError
from tests.ai.fake_model import FakeModel, Reply
from tests.conftest import free_port

KEY = "sk-unit-" + "s3cret" * 5
KINDS = {
    "model_timeout",
    "model_unreachable",
    "model_unauthorized",
    "model_not_found",
    "model_rate_limited",
    "model_refused",
    "model_server_error",
    "model_bad_response",
}
ASK: list[Message] = [
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "Say hi."},
]


def _config(base_url: str, timeout_ms: int = 2_000) -> ModelConfig:
    return ModelConfig(
        base_url=base_url, api_key=KEY, model="fake-coder", timeout_ms=timeout_ms, max_tokens=512
    )


def _answer(config: ModelConfig) -> list[str]:
    async def main() -> list[str]:
        client = ModelClient(config)
        try:
            return [text async for text in client.stream(ASK)]
        finally:
            await client.close()
            await client.close()  # idempotent

    return asyncio.run(main())


def _failure(config: ModelConfig) -> ModelError:
    with pytest.raises(ModelError) as raised:
        _answer(config)
    assert raised.value.kind in KINDS
    assert KEY not in raised.value.message
    return raised.value


def test_streams_the_answer(fake_model: FakeModel) -> None:
    text = "Here:\n```python\nprint('hi')\n```\n"
    fake_model.reset(Reply(text=text, chunk_chars=3))
    parts = _answer(_config(fake_model.base_url))
    assert "".join(parts) == text
    assert len(parts) == -(-len(text) // 3)
    (seen,) = fake_model.requests
    assert seen.authorization == f"Bearer {KEY}"
    assert seen.body == {
        "model": "fake-coder",
        "messages": ASK,
        "stream": True,
        "max_completion_tokens": 512,
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "model_refused"),
        (401, "model_unauthorized"),
        (403, "model_unauthorized"),
        (404, "model_not_found"),
        (429, "model_rate_limited"),
        (500, "model_server_error"),
        (503, "model_server_error"),
    ],
)
def test_http_errors(fake_model: FakeModel, status: int, kind: str) -> None:
    fake_model.reset(Reply.error(status))
    error = _failure(_config(fake_model.base_url))
    assert error.kind == kind
    assert f"HTTP {status}" in error.message
    assert len(fake_model.requests) == 1  # no retries


def test_a_hanging_server_times_out(fake_model: FakeModel) -> None:
    fake_model.reset(Reply.hang(20))
    started = time.monotonic()
    error = _failure(_config(fake_model.base_url, timeout_ms=1_000))
    assert time.monotonic() - started < 3
    assert error.kind == "model_timeout"
    assert "1000 ms (SANDLOT_MODEL_TIMEOUT_MS)" in error.message


def test_a_refused_connection(fake_model: FakeModel) -> None:
    error = _failure(_config(f"http://127.0.0.1:{free_port()}/v1"))
    assert error.kind == "model_unreachable"
    assert "SANDLOT_OPENAI_BASE_URL" in error.message


def test_a_wrong_path_is_not_found(fake_model: FakeModel) -> None:
    error = _failure(_config(fake_model.base_url.removesuffix("/v1")))
    assert error.kind == "model_not_found"


def test_the_origin_hides_credentials_and_path() -> None:
    config = _config("https://user:pw@models.internal:8443/v1?token=abc")
    assert config.origin == "https://models.internal:8443"
    assert KEY not in repr(config)
    assert "pw" not in repr(config)


def _openai_exception_types() -> list[type[BaseException]]:
    """Every exception class openai exports or defines (its own or a subclass of one)."""
    from openai import _exceptions

    candidates = [getattr(openai, name) for name in openai.__all__]
    candidates += list(vars(_exceptions).values())
    found = {
        value
        for value in candidates
        if inspect.isclass(value) and issubclass(value, openai.OpenAIError)
    }
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("exc_type", _openai_exception_types(), ids=lambda cls: cls.__name__)
def test_every_openai_exception_is_translated(exc_type: type[BaseException]) -> None:
    client = ModelClient(_config("http://127.0.0.1:9/v1"))
    try:
        exc = exc_type.__new__(exc_type)
        if issubclass(exc_type, openai.APIStatusError) and not isinstance(
            getattr(exc_type, "status_code", None), int
        ):
            exc.status_code = 500
        error = client.translate(exc)
    finally:
        asyncio.run(client.close())
    assert isinstance(error, ModelError)
    assert error.kind in KINDS
    expected = {
        openai.APITimeoutError: "model_timeout",
        openai.APIConnectionError: "model_unreachable",
        openai.AuthenticationError: "model_unauthorized",
        openai.PermissionDeniedError: "model_unauthorized",
        openai.NotFoundError: "model_not_found",
        openai.RateLimitError: "model_rate_limited",
        openai.InternalServerError: "model_server_error",
        openai.BadRequestError: "model_refused",
        openai.APIResponseValidationError: "model_bad_response",
    }
    if exc_type in expected:
        assert error.kind == expected[exc_type]


def test_the_fake_also_answers_without_streaming(fake_model: FakeModel) -> None:
    fake_model.reset(Reply.answer("plain answer"))
    with openai.OpenAI(base_url=fake_model.base_url, api_key=KEY, max_retries=0) as client:
        completion = client.chat.completions.create(model="fake-coder", messages=ASK)
    assert completion.choices[0].message.content == "plain answer"
    assert fake_model.requests[0].body.get("stream") is None
