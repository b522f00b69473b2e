"""Tools for AI agents (app/tools.py): each tool's arguments are a request model
of the API, plus the path parameters it needs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.schemas.common import LimitsIn, _Strict
from app.schemas.namespaces import NAMESPACE_NAME
from app.schemas.workers import WORKER_NAME, WorkerIn


class _WorkerAt(_Strict):
    namespace: str = Field(
        pattern=NAMESPACE_NAME, description="The namespace that holds the worker, like 'acme'"
    )
    worker: str = Field(
        pattern=WORKER_NAME,
        description="The worker's name: lowercase letters, digits and '-', like 'hello-api'",
    )


class DeployWorkerIn(WorkerIn, _WorkerAt):
    """Arguments of the deploy_worker tool: PUT /v1/namespaces/{namespace}/workers/{worker}."""


class InvokeWorkerIn(_WorkerAt):
    """Arguments of the invoke_worker tool: one request to /dispatch/{namespace}/{worker}/..."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        default="GET", description="HTTP method"
    )
    path: str = Field(
        default="/",
        max_length=4096,
        pattern=r"^[^\s#]*$",
        description="Path and query string the worker sees, like '/items/1?sort=asc'",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers")
    body: str | None = Field(
        default=None,
        max_length=10 * 1024 * 1024,
        description="Request body as text (for JSON, a JSON string plus a content-type "
        "header of application/json)",
    )
    limits: LimitsIn = Field(
        default_factory=LimitsIn,
        description="Per-call limits: these can only lower the worker's own",
    )


class ToolFunction(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="The arguments' JSON Schema")


class ToolOut(BaseModel):
    """A tool in OpenAI's function-calling format."""

    type: Literal["function"] = "function"
    function: ToolFunction


class ToolCallOut(BaseModel):
    tool: str
    is_error: bool = Field(
        description="The call was refused (bad arguments, unknown worker, busy server); "
        "code that ran and failed is not an error: its status says so"
    )
    text: str = Field(description="The outcome rendered for a model to read")
    result: dict[str, Any] = Field(
        description="The outcome as JSON: the endpoint's answer, or {error, status}"
    )
