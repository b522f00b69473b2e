"""What the sync and async clients share: settings, request bodies, reading answers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from sandlot_client._errors import SandlotError, from_response
from sandlot_client._results import WorkerResponse

__all__ = [
    "DEFAULT_URL",
    "execute_body",
    "invoke_request",
    "namespace_body",
    "read_json",
    "settings",
    "tool_arguments",
    "worker_body",
    "worker_response",
]

DEFAULT_URL = "http://127.0.0.1:8000"

Limits = Mapping[str, int]
FileContent = str | bytes | Mapping[str, str]


def settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers: from the arguments, else SANDLOT_URL / SANDLOT_API_KEY."""
    url = base_url or os.environ.get("SANDLOT_URL") or DEFAULT_URL
    key = api_key or os.environ.get("SANDLOT_API_KEY")
    headers = {"user-agent": "sandlot-client"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return url.rstrip("/"), headers


def _file(content: FileContent) -> str | dict[str, str]:
    if isinstance(content, bytes):
        return {"content": base64.b64encode(content).decode(), "encoding": "base64"}
    if isinstance(content, str):
        return content
    return dict(content)


def execute_body(
    code: str,
    *,
    runtime: str | None,
    limits: Limits | None,
    allowed_hosts: Sequence[str] | None,
    stdin: str | None,
    files: Mapping[str, FileContent] | None,
    env: Mapping[str, str] | None,
    requirements: Sequence[str] | None,
    figure_format: str | None = None,
    return_files: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The /v1/execute body, streaming; fields left as None take the server's defaults."""
    body: dict[str, Any] = {"code": code, "stream": True}
    if runtime is not None:
        body["runtime"] = runtime
    if limits:
        body["limits"] = dict(limits)
    if allowed_hosts:
        body["allowed_hosts"] = list(allowed_hosts)
    if stdin is not None:
        body["stdin"] = stdin
    if files:
        body["files"] = {path: _file(content) for path, content in files.items()}
    if env:
        body["env"] = dict(env)
    if requirements:
        body["requirements"] = list(requirements)
    if figure_format is not None:
        body["figure_format"] = figure_format
    if return_files:
        body["return_files"] = list(return_files)
    return body


def worker_body(
    modules: Mapping[str, str] | str,
    *,
    main_module: str,
    runtime: str | None,
    requirements: Sequence[str] | None,
    tags: Sequence[str] | None,
    limits: Limits | None,
    allowed_hosts: Sequence[str] | None,
    vars: Mapping[str, str] | None,
    secrets: Mapping[str, str] | None,
) -> dict[str, Any]:
    """An upload's body; a lone string is the source of ``main_module``."""
    sources = {main_module: modules} if isinstance(modules, str) else dict(modules)
    body: dict[str, Any] = {"modules": sources, "main_module": main_module}
    if runtime is not None:
        body["runtime"] = runtime
    for name, value in (
        ("requirements", requirements),
        ("tags", tags),
        ("allowed_hosts", allowed_hosts),
    ):
        if value:
            body[name] = list(value)
    for name, mapping in (("limits", limits), ("vars", vars), ("secrets", secrets)):
        if mapping:
            body[name] = dict(mapping)
    return body


def namespace_body(
    name: str,
    *,
    mode: str,
    limits: Limits | None,
    allowed_hosts: Sequence[str] | None,
    dispatch_public: bool,
) -> dict[str, Any]:
    return {
        "name": name,
        "mode": mode,
        "limits": dict(limits or {}),
        "allowed_hosts": list(allowed_hosts or []),
        "dispatch_public": dispatch_public,
    }


def invoke_request(
    namespace: str,
    worker: str,
    path: str,
    *,
    headers: Mapping[str, str] | None,
    limits: Limits | None,
) -> tuple[str, dict[str, str]]:
    """The dispatch URL (path may carry a query) and headers, per-call limits included."""
    sent = dict(headers or {})
    if limits:
        sent["x-sandlot-limits"] = json.dumps(dict(limits))
    return f"/dispatch/{namespace}/{worker}/{path.lstrip('/')}", sent


def read_json(response: httpx.Response) -> Any:
    """The answer's JSON; SandlotError with the API's message for an error status."""
    if response.status_code >= 400:
        raise from_response(response)
    if response.status_code == 204:
        return None
    return response.json()


def worker_response(response: httpx.Response) -> WorkerResponse:
    """A dispatch answer: the worker's (outcome set), or SandlotError when dispatch refused."""
    outcome = response.headers.get("x-sandlot-outcome")
    if outcome is None:
        raise (
            from_response(response)
            if response.status_code >= 400
            else SandlotError(
                response.status_code, "bad_answer", "dispatch answered without X-Sandlot-Outcome"
            )
        )
    headers = {k: v for k, v in response.headers.items() if k != "x-sandlot-outcome"}
    return WorkerResponse(response.status_code, headers, response.content, outcome)


def tool_arguments(arguments: Mapping[str, Any] | str) -> dict[str, Any] | str:
    """A tool call's arguments as an object, or the reason they aren't one (for the model).

    Models send arguments as a JSON string; a string that doesn't parse to an
    object is answered with text the model can act on, not an exception.
    """
    if not isinstance(arguments, str):
        return dict(arguments)
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError as exc:
        return f"error (invalid_request): the arguments are not valid JSON: {exc}"
    if not isinstance(parsed, dict):
        return "error (invalid_request): the arguments must be a JSON object"
    return parsed
