"""What the sync and async clients share: settings, request bodies, reading answers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from sandlot_client._errors import SandlotError, from_response
from sandlot_client._results import WorkerResponse
from sandlot_client._retry import Retry
from sandlot_client._types import ApiKey, Hostname, Tool, Version

__all__ = [
    "DEFAULT_URL",
    "Call",
    "execute_body",
    "generate_body",
    "invoke_request",
    "namespace_body",
    "namespace_changes",
    "namespace_path",
    "read_json",
    "retry_wait",
    "segment",
    "settings",
    "tool_arguments",
    "worker_body",
    "worker_path",
    "worker_response",
    "workers_path",
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


@dataclass(frozen=True, slots=True)
class Call[T]:
    """One JSON call: what to send, and how to read the answer's JSON into a result."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str] | None = None


def segment(value: str | int) -> str:
    """A path segment, escaped (a name with '/' or '?' can't change the route)."""
    return quote(str(value), safe="")


def retry_wait(policy: Retry, method: str, response: httpx.Response, retry: int) -> float | None:
    """Seconds to wait before sending the call again, or None to take this answer.

    A worker's own answer (it carries ``X-Sandlot-Outcome``) is never retried: a worker
    that hit a limit answers 503, and would hit it again.
    """
    if not policy.applies_to(method) or "x-sandlot-outcome" in response.headers:
        return None
    return policy.wait_s(retry, response.status_code, response.headers)


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
    """An upload's body; a lone string is the source of ``main_module``. vars and secrets
    left as None are not sent, so the worker keeps its own; ``{}`` clears them."""
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
    if limits:
        body["limits"] = dict(limits)
    for name, mapping in (("vars", vars), ("secrets", secrets)):
        if mapping is not None:
            body[name] = dict(mapping)
    return body


def namespace_body(
    name: str,
    *,
    mode: str,
    limits: Limits | None,
    allowed_hosts: Sequence[str] | None,
    dispatch_public: bool,
    private_egress: bool = False,
    custom_hostname_suffixes: Sequence[str] | None = None,
    storage_mb: int | None = None,
    version_retention: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "mode": mode,
        "limits": dict(limits or {}),
        "allowed_hosts": list(allowed_hosts or []),
        "dispatch_public": dispatch_public,
        "private_egress": private_egress,
        "custom_hostname_suffixes": list(custom_hostname_suffixes or []),
    }
    if storage_mb is not None:
        body["storage_mb"] = storage_mb
    if version_retention is not None:
        body["version_retention"] = version_retention
    return body


_NAMESPACE_FIELDS = frozenset(
    {
        "mode",
        "limits",
        "allowed_hosts",
        "dispatch_public",
        "private_egress",
        "custom_hostname_suffixes",
        "storage_mb",
        "version_retention",
    }
)


def namespace_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH body; TypeError naming a field a namespace doesn't have (before sending)."""
    unknown = sorted(set(changes) - _NAMESPACE_FIELDS)
    if unknown:
        raise TypeError(
            f"update_namespace() got unknown fields {unknown}; it takes {sorted(_NAMESPACE_FIELDS)}"
        )
    if not changes:
        raise TypeError("update_namespace() needs at least one field to change")
    return {
        key: list(value) if isinstance(value, (list, tuple)) else value
        for key, value in changes.items()
    }


def generate_body(
    task: str,
    *,
    runtime: str | None,
    limits: Limits | None,
    allowed_hosts: Sequence[str] | None,
    max_attempts: int | None,
    namespace: str | None,
    worker: str | None,
) -> dict[str, Any]:
    """The /v1/generate body, streaming; with namespace and worker, worker mode."""
    if (namespace is None) != (worker is None):
        raise TypeError("generate() takes namespace and worker together (worker mode), or neither")
    body: dict[str, Any] = {"task": task, "stream": True}
    for name, value in (
        ("runtime", runtime),
        ("max_attempts", max_attempts),
        ("namespace", namespace),
        ("worker", worker),
    ):
        if value is not None:
            body[name] = value
    if limits:
        body["limits"] = dict(limits)
    if allowed_hosts:
        body["allowed_hosts"] = list(allowed_hosts)
    return body


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
    return f"/dispatch/{segment(namespace)}/{segment(worker)}/{path.lstrip('/')}", sent


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


# Paths and answer readers of the calls both clients make.


def namespace_path(name: str) -> str:
    return f"/v1/namespaces/{segment(name)}"


def workers_path(namespace: str) -> str:
    return namespace_path(namespace) + "/workers"


def worker_path(namespace: str, name: str) -> str:
    return f"{workers_path(namespace)}/{segment(name)}"


def read_nothing(_: Any) -> None:
    return None


def read_page(data: Any) -> dict[str, Any]:
    return dict(data)


def read_deleted(data: Any) -> list[str]:
    return [str(name) for name in data["deleted"]]


def read_versions(data: Any) -> list[Version]:
    return [Version.from_json(item) for item in data["versions"]]


def read_secret_names(data: Any) -> list[str]:
    return [str(name) for name in data["secrets"]]


def read_created(data: Any) -> bool:
    return bool(data["created"])


def read_keys(data: Any) -> list[ApiKey]:
    return [ApiKey.from_json(item) for item in data["keys"]]


def read_hostnames(data: Any) -> list[Hostname]:
    return [Hostname.from_json(item) for item in data["hostnames"]]


def read_tools(data: Any) -> list[Tool]:
    return list(data)


def read_text(data: Any) -> str:
    return str(data["text"])
