"""POST /v1/generate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.ai.generation import GenerationStatus
from app.schemas.common import Flag, LimitsIn, NonEmpty, _Strict
from app.schemas.namespaces import NAMESPACE_NAME
from app.schemas.runs import ExecuteResponse
from app.schemas.workers import WORKER_NAME
from sandbox import Runtime, Status

TASK_CHARS = 20_000


class GenerateRequest(_Strict):
    task: str = Field(
        min_length=1,
        max_length=TASK_CHARS,
        description="What the code should do, in natural language",
    )
    runtime: Runtime | None = Field(
        default=None, description="Engine to run on; the server's default when omitted"
    )
    limits: LimitsIn = Field(default_factory=LimitsIn, description="Limits of every run")
    allowed_hosts: list[NonEmpty] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist of every run, as in /v1/execute",
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="The first answer plus repairs; SANDLOT_GENERATE_ATTEMPTS when omitted, "
        "at most SANDLOT_MAX_GENERATE_ATTEMPTS",
    )
    namespace: str | None = Field(
        default=None, pattern=NAMESPACE_NAME, description="Deploy as a worker in this namespace"
    )
    worker: str | None = Field(
        default=None, pattern=WORKER_NAME, description="The worker's name (with namespace)"
    )
    stream: Flag = Field(
        default=False, description="Stream events over SSE (or send Accept: text/event-stream)"
    )

    @field_validator("task")
    @classmethod
    def _not_blank(cls, task: str) -> str:
        if not task.strip():
            raise ValueError("describe what the code should do")
        return task


class GenerateErrorOut(BaseModel):
    type: str
    message: str


class DeployOut(BaseModel):
    namespace: str
    worker: str
    version: str | None = Field(description="The version deployed; null when the build failed")
    status: int | None = Field(description="The HTTP status GET / answered; null if no version")
    error: GenerateErrorOut | None = None


class GenerateAttemptOut(BaseModel):
    attempt: int
    kind: Literal["generate", "repair"]
    answer: str = Field(description="The model's whole answer")
    code: str | None = Field(description="The code extracted from it; null when none")
    run: ExecuteResponse | None = Field(description="The code's run (worker mode: GET /)")
    deploy: DeployOut | None = None


class GenerateResponse(BaseModel):
    status: GenerationStatus
    code: str | None = Field(description="The last code extracted; null when there was none")
    attempts: int
    run_status: Status | None
    error: GenerateErrorOut | None
    prompt_version: str = Field(description="name@version of every prompt template used")
    history: list[GenerateAttemptOut]
