"""The model: an OpenAI-compatible chat-completions server, streamed through ``openai``.

Any server that speaks the chat-completions API works (OpenAI, vLLM, Ollama,
llama.cpp, ...): only the base URL, key and model name change. Every failure
of the model is translated here, at the boundary, into one :class:`ModelError`
whose ``kind`` says what happened and whose message names the setting to check.
Messages never carry the key or the server's error body (which may echo it).

    ModelError
    ├── kind "model_timeout"       no complete answer within SANDLOT_MODEL_TIMEOUT_MS
    ├── kind "model_unreachable"   connection refused, DNS, TLS
    ├── kind "model_unauthorized"  HTTP 401 / 403: the key
    ├── kind "model_not_found"     HTTP 404: the model name or the base URL
    ├── kind "model_rate_limited"  HTTP 429
    ├── kind "model_refused"       any other 4xx
    ├── kind "model_server_error"  HTTP 5xx
    └── kind "model_bad_response"  an answer the client could not read
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict
from urllib.parse import urlsplit

import openai

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

__all__ = ["Message", "ModelClient", "ModelConfig", "ModelError"]


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Where the model is and how long it may take. ``api_key`` is never logged or shown."""

    base_url: str
    api_key: str
    model: str
    timeout_ms: int
    max_tokens: int

    def __repr__(self) -> str:
        return f"ModelConfig(base_url={self.origin!r}, model={self.model!r})"

    @property
    def origin(self) -> str:
        """scheme://host:port of the base URL: safe to show (no user info, path or query)."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


class ModelError(Exception):
    """The model could not answer; ``kind`` is one of the kinds in the module docstring."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ModelClient:
    """One ``AsyncOpenAI`` client for the service's lifetime; ``close()`` is idempotent."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_ms / 1000,
            # A retry doubles the wait for an answer the caller is watching stream in;
            # the caller (or the repair loop) decides what to do instead.
            max_retries=0,
        )
        self._closed = False

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()

    async def stream(self, messages: Sequence[Message]) -> AsyncGenerator[str]:
        """The answer's text as it arrives. Raises ModelError; the whole answer must arrive
        within ``timeout_ms`` (a server that stalls mid-answer times out too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_ms / 1000
        chunks = None
        try:
            # The deadline wraps each await, never a yield: a timeout must not fire
            # while the consumer holds control.
            async with asyncio.timeout_at(deadline):
                chunks = await self._client.chat.completions.create(
                    model=self.config.model,
                    messages=_wire(messages),
                    stream=True,
                    max_completion_tokens=self.config.max_tokens,
                )
            iterator = chunks.__aiter__()
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    return
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        yield choice.delta.content
        except (TimeoutError, openai.OpenAIError) as exc:
            raise self.translate(exc) from exc
        finally:
            if chunks is not None:
                with contextlib.suppress(Exception):
                    await chunks.close()

    def translate(self, exc: BaseException) -> ModelError:
        """The ModelError for a failure of the model call (foreign exceptions stop here)."""
        where = f"the model server at {self.config.origin}"
        if isinstance(exc, TimeoutError | openai.APITimeoutError):
            return ModelError(
                "model_timeout",
                f"{where} gave no complete answer within {self.config.timeout_ms} ms "
                "(SANDLOT_MODEL_TIMEOUT_MS)",
            )
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(
                "model_unreachable",
                f"could not connect to {where}; check SANDLOT_OPENAI_BASE_URL and that the "
                "server is running",
            )
        if isinstance(exc, openai.APIStatusError):
            return _status_error(exc.status_code, where, self.config.model)
        return ModelError(
            "model_bad_response",
            f"{where} sent an answer that is not a chat-completions stream "
            f"({type(exc).__name__}); check that SANDLOT_OPENAI_BASE_URL ends in /v1",
        )


def _status_error(status: int, where: str, model: str) -> ModelError:
    if status in (401, 403):
        return ModelError(
            "model_unauthorized",
            f"{where} refused the API key (HTTP {status}); check SANDLOT_OPENAI_API_KEY",
        )
    if status == 404:
        return ModelError(
            "model_not_found",
            f"{where} answered HTTP 404 for model {model!r}; check SANDLOT_MODEL and "
            "SANDLOT_OPENAI_BASE_URL",
        )
    if status == 429:
        return ModelError("model_rate_limited", f"{where} is rate limiting (HTTP 429); retry later")
    if status >= 500:
        return ModelError("model_server_error", f"{where} failed (HTTP {status}); retry later")
    return ModelError(
        "model_refused",
        f"{where} refused the request (HTTP {status}); check SANDLOT_MODEL and "
        "SANDLOT_MODEL_MAX_TOKENS",
    )


def _wire(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    wired: list[ChatCompletionMessageParam] = []
    for message in messages:
        match message["role"]:
            case "system":
                wired.append({"role": "system", "content": message["content"]})
            case "user":
                wired.append({"role": "user", "content": message["content"]})
            case "assistant":
                wired.append({"role": "assistant", "content": message["content"]})
    return wired
