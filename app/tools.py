"""Tools for AI agents: execute_code, deploy_worker and invoke_worker, and the session
tools (app/session_tools.py).

Each tool's arguments are a request model of the API (app/schemas.py); its JSON
Schema is derived from that model, inlined and tidied for function calling, so
the tools can't drift from the endpoints. :func:`call_tool` runs a call through
the same functions as the HTTP routes, under the caller's key, and answers with
JSON and a short text for a model to read. ``GET /v1/tools``, ``POST
/v1/tools/{name}`` and the MCP server (app/mcp_server.py) all serve these.

A call is an error (``is_error``) when it was refused: bad arguments, a key of
another namespace, an unknown worker, a failed build, a busy server. Code that
ran and failed is not: the run's ``status`` (or the worker's ``outcome``) says so.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ValidationError

from app.auth import Principal, require_namespace
from app.deps import Services
from app.dispatching import WorkerAnswer, find_target, run_target
from app.errors import ApiError, as_api_error, from_validation_errors
from app.events import to_response
from app.policy import caller_ceiling, checked_limits
from app.runs import prepare_run, start_run
from app.schemas import DeployWorkerIn, ExecuteResponse, InvokeWorkerIn, RunIn, Upload, WorkerIn
from app.session_tools import SESSION_TOOLS
from app.uploads import deploy_worker
from sandbox import Status, collect

__all__ = ["TOOLS", "Tool", "ToolOutput", "call_tool", "openai_schema", "tool_named"]

# How much of each stream, body or traceback the text for a model keeps; the
# JSON result has everything.
TEXT_CHARS = 8_000

_STATUS_HINTS = {
    Status.CPU_LIMIT: "the code used all its CPU time (limits.cpu_ms)",
    Status.WALL_LIMIT: "the run took longer than limits.wall_ms",
    Status.MEMORY_LIMIT: "the code ran out of memory (limits.memory_mb)",
    Status.OUTPUT_LIMIT: (
        "stdout, stderr and outputs reached limits.output_bytes; they are cut there"
    ),
    Status.SUBREQUEST_LIMIT: "the code made more HTTP requests than limits.subrequests",
    Status.CANCELED: "the run was canceled",
    Status.INTERNAL_ERROR: "the sandbox failed; retrying may help",
}


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """One call's outcome: ``result`` is JSON-able, ``text`` is for a model to read."""

    result: dict[str, Any]
    text: str
    is_error: bool
    images: tuple[tuple[str, str], ...] = ()  # (mime type, base64): charts, for MCP clients


Runner = Callable[[Services, Principal, Any], Awaitable[ToolOutput]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    run: Runner

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The arguments' JSON Schema: an object, no $ref, no titles."""
        return openai_schema(self.arguments)

    def openai(self) -> dict[str, Any]:
        """The tool in OpenAI's function-calling format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def openai_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with every $ref inlined and titles dropped.

    An optional field whose default is None loses its ``null`` branch: leaving
    the field out means the same, and models write better arguments from a
    plain type.
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    # The tool's description speaks to the model; the model class's docstring doesn't.
    schema.pop("description", None)
    tidied: dict[str, Any] = _tidy(schema, defs)
    return tidied


def _tidy(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_tidy(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "properties":
            out[key] = {name: _tidy(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _tidy(value, defs)
    branches = out.get("anyOf")
    if isinstance(branches, list) and "default" in out and out["default"] is None:
        kept = [branch for branch in branches if branch != {"type": "null"}]
        if len(kept) == 1 and len(kept) < len(branches):
            del out["anyOf"], out["default"]
            out = {**kept[0], **out}
    return out


def _clip(text: str) -> str:
    if len(text) <= TEXT_CHARS:
        return text
    return text[:TEXT_CHARS] + f"\n[... {len(text) - TEXT_CHARS} more characters]"


def _section(title: str, text: str) -> str:
    return f"{title}:\n{_clip(text.rstrip())}" if text else ""


def render_run(run: ExecuteResponse) -> str:
    """status, then stdout, stderr, the result and the error: whichever there are."""
    head = f"status: {run.status}"
    if run.status in _STATUS_HINTS:
        head += f" ({_STATUS_HINTS[run.status]})"
    if run.exit_code is not None:
        head += f"\nexit code: {run.exit_code}"
    stderr = run.stderr
    if run.error is not None and run.error.traceback and stderr.endswith(run.error.traceback):
        # The guest printed the traceback as python does; the error section below has it.
        stderr = stderr.removesuffix(run.error.traceback)
    parts = [head, _section("stdout", run.stdout), _section("stderr", stderr)]
    if run.result is not None:
        parts.append(f"result: {_clip(run.result.repr)}")
    if run.error is not None:
        error = f"error: {run.error.type}: {run.error.message}"
        if run.error.traceback:
            error += "\n" + _clip(run.error.traceback.rstrip())
        parts.append(error)
    for output in run.outputs:
        if output.mime_type.startswith("image/") and output.mime_type != "image/svg+xml":
            parts.append(f"output: {output.mime_type} ({len(output.data) * 3 // 4} bytes)")
        else:
            parts.append(_section(f"output ({output.mime_type})", output.data))
    for item in run.files:
        note = ", truncated: over the size cap" if item.truncated else ""
        parts.append(f"file: {item.path} ({item.size} bytes, {item.mime_type}{note})")
    return "\n".join(part for part in parts if part)


async def _execute_code(services: Services, caller: Principal, args: RunIn) -> ToolOutput:
    ceiling = await caller_ceiling(services.settings, services.store, caller)
    runner, job = prepare_run(services, args, ceiling, live_output=False)
    metered = await start_run(
        services, runner, job, subjects=caller.quotas, kind="tool", namespace=caller.namespace
    )
    run = to_response(await collect(services.drain.bounded(metered)))
    images = tuple(
        (output.mime_type, output.data)
        for output in run.outputs
        if output.mime_type in ("image/png", "image/jpeg", "image/gif")
    )
    return ToolOutput(run.model_dump(mode="json", by_alias=True), render_run(run), False, images)


async def _deploy_worker(services: Services, caller: Principal, args: DeployWorkerIn) -> ToolOutput:
    body = WorkerIn.model_validate(args.model_dump(exclude={"namespace", "worker"}))
    upload: Upload = await deploy_worker(services, caller, args.namespace, args.worker, body)
    version = upload.version
    lines = [
        f"{'created' if upload.created else 'updated'} worker {args.worker!r} in namespace "
        f"{args.namespace!r}: version {version.number} is live on {upload.worker.runtime}"
        + ("" if upload.rebuilt else " (identical code: the build was reused)"),
        *(f"warning: {warning}" for warning in version.warnings),
        f"call it with invoke_worker(namespace={args.namespace!r}, worker={args.worker!r}, "
        "path='/')",
    ]
    return ToolOutput(upload.model_dump(mode="json"), "\n".join(lines), False)


async def _invoke_worker(services: Services, caller: Principal, args: InvokeWorkerIn) -> ToolOutput:
    require_namespace(caller, args.namespace)
    target = await find_target(services, args.namespace, args.worker)
    per_call = args.limits.model_dump(exclude_none=True)
    if per_call:
        ceiling = await caller_ceiling(services.settings, services.store, caller)
        per_call = checked_limits(ceiling, per_call)
    result = await run_target(
        services,
        target,
        method=args.method,
        url=args.path if args.path.startswith("/") else "/" + args.path,
        headers=list(args.headers.items()),
        body=(args.body or "").encode(),
        per_call=per_call,
        caller_quotas=caller.quotas,
    )
    answer = WorkerAnswer.of(result)
    headers = {k: v for k, v in answer.headers.items() if k != "x-sandlot-outcome"}
    out: dict[str, Any] = {
        "status": answer.status,
        "outcome": answer.outcome,
        "headers": headers,
        "body": None,
        "body_base64": None,
        "error": answer.message or None,
        "run_id": answer.run_id,
    }
    try:
        out["body"] = answer.body.decode()
    except UnicodeDecodeError:
        out["body_base64"] = base64.b64encode(answer.body).decode()
    if answer.outcome != "ok":
        text = f"HTTP {answer.status} (outcome {answer.outcome}): {answer.message}"
    else:
        lines = [f"HTTP {answer.status}", *(f"{k}: {v}" for k, v in headers.items())]
        if out["body"] is not None:
            shown = _clip(out["body"])
        else:
            shown = f"[{len(answer.body)} bytes of binary data, in body_base64]"
        text = "\n".join(lines) + "\n\n" + shown
    return ToolOutput(out, text, False)


TOOLS: tuple[Tool, ...] = (
    Tool(
        "execute_code",
        "Run Python code once in a fresh, isolated WebAssembly sandbox and get back its "
        "stdout, stderr, the value of a trailing expression (like a notebook cell: end with an "
        "expression to return it) and any exception with its traceback. Nothing survives "
        "between calls. The standard library works; threads, subprocesses and sockets don't. "
        "No network unless hosts are listed in allowed_hosts (then use urllib.request or "
        "`from sandlot import fetch`). The run stops at its CPU, wall-clock, memory and output "
        "limits and `status` says which (ok, error, cpu_limit, wall_limit, memory_limit, "
        "output_limit, subrequest_limit). Charts (matplotlib figures, on the data-stack "
        "guest) and sandlot.display() objects come back in outputs; return_files globs bring "
        "files the code wrote back in files.",
        RunIn,
        _execute_code,
    ),
    Tool(
        "deploy_worker",
        "Create or replace a worker: a small HTTP service written in Python, stored in a "
        "namespace and run in a fresh sandbox for every request. `modules` maps file paths "
        "(like 'main.py', 'lib/util.py') to source. The main module must define "
        "`on_fetch(request, env)` (sync or async) returning a Response: `from workers import "
        "Response`, then `Response('text', status=200, headers={...})` or "
        "`Response.json(data, status=200)`. `request` has method, url, path, query, headers "
        "and the body through text(), json() and bytes(); `env` has vars and secrets as "
        "attributes (env.NAME). The code is compiled, not run, before it goes live: a syntax "
        "error comes back with its file and line and the previous version keeps serving. Call "
        "the worker with invoke_worker.",
        DeployWorkerIn,
        _deploy_worker,
    ),
    Tool(
        "invoke_worker",
        "Send one HTTP request to a deployed worker and get its response: status, headers and "
        "body. If the worker raised or hit a limit, `outcome` says so (error, cpu_limit, "
        "wall_limit, memory_limit, ...) with the error message; ok otherwise.",
        InvokeWorkerIn,
        _invoke_worker,
    ),
)

TOOLS = (*TOOLS, *(Tool(*spec) for spec in SESSION_TOOLS))
_BY_NAME = {tool.name: tool for tool in TOOLS}


def tool_named(name: str) -> Tool:
    """The tool; ApiError 404 listing the tools when there is none of that name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ApiError(
            404, "not_found", f"no tool named {name!r}; the tools are {', '.join(_BY_NAME)}"
        ) from None


def refused(error: ApiError) -> ToolOutput:
    """A refused call: the API's error body and status, and its message for the model."""
    text = f"error ({error.code}): {error.message}"
    extra = [d for d in error.details if d.message not in error.message]
    text += "".join(f"\n{d.field}: {d.message}" for d in extra)
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "details": [d.model_dump() for d in error.details],
        },
        "status": error.status_code,
    }
    return ToolOutput(body, text, True)


async def call_tool(
    services: Services, caller: Principal, name: str, arguments: Mapping[str, Any]
) -> ToolOutput:
    """Run one tool call as ``caller``: what the HTTP endpoint would do, as a ToolOutput.

    Raises ApiError 404 for an unknown tool; every other failure is a refused
    ToolOutput (``is_error``) carrying the endpoint's error.
    """
    tool = tool_named(name)
    try:
        args = tool.arguments.model_validate(arguments)
        return await tool.run(services, caller, args)
    except ValidationError as exc:
        return refused(from_validation_errors(exc.errors()))
    except Exception as exc:
        error = as_api_error(exc)
        if error is None:
            raise
        return refused(error)
