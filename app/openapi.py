"""The published contract: the OpenAPI document with every status a route can answer.

FastAPI documents what a route declares. What middleware and dependencies answer (a
missing key, a body over the cap or not UTF-8, a busy pool) is added here by rule, 422
everywhere names the one error shape (``ErrorResponse``).
tests/app/test_contract.py fuzzes the service against the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install"]

_ERROR = {"$ref": "#/components/schemas/ErrorResponse"}
_WORKER_ANSWERS = (
    "The worker's own response: any status, any content type. A run that failed answers "
    "500 (error), 502 (invalid_response) or 503 (a limit) with the JSON error shape, the "
    "outcome in X-Sandlot-Outcome and the run's id in run_id"
)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Operation = dict[str, Any]
Rule = tuple[Callable[[str, str, Operation], bool], dict[int, str]]


def _keyed(path: str, method: str, operation: Operation) -> bool:
    return path.startswith(("/v1/", "/dispatch/"))


def _scoped(path: str, method: str, operation: Operation) -> bool:
    return path.startswith(("/v1/namespaces", "/v1/generate", "/dispatch/"))


def _has_body(path: str, method: str, operation: Operation) -> bool:
    return "requestBody" in operation or path.startswith("/dispatch/")


def _runs_code(path: str, method: str, operation: Operation) -> bool:
    upload = path.endswith("/workers/{name}") and method == "put"
    return path == "/v1/execute" or upload or path.startswith("/dispatch/")


def _validated(path: str, method: str, operation: Operation) -> bool:
    return "requestBody" in operation or bool(operation.get("parameters"))


# Which operations may answer which status, besides what their routes declare.
RULES: tuple[Rule, ...] = (
    (_keyed, {401: "Missing or unknown API key", 500: "Internal error; see the service log"}),
    (_scoped, {403: "A key of another namespace, or not the admin key"}),
    (
        _has_body,
        {
            400: "The body is not UTF-8",
            413: "The body is over the size limit (SANDLOT_MAX_REQUEST_BYTES)",
        },
    ),
    (
        _runs_code,
        {
            429: "Every sandbox worker is busy; retry (Retry-After)",
            503: "The engine is not available; retry (Retry-After)",
        },
    ),
    (_validated, {422: "Invalid request; details name the fields"}),
)


def contract(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with the rules applied."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for applies, statuses in RULES:
                if applies(path, method, operation):
                    for status, description in statuses.items():
                        responses.setdefault(str(status), {"description": description})
            if _keyed(path, method, operation):
                # Dispatch to a public namespace's worker needs no key.
                optional: list[dict[str, list[str]]] = [{}] if path.startswith("/dispatch/") else []
                operation["security"] = [*optional, {"apiKey": []}]
            if path.startswith("/dispatch/"):
                # The worker answers what it likes, the platform's errors included.
                responses.setdefault("default", {"description": _WORKER_ANSWERS})
                for response in responses.values():
                    response["content"] = {"*/*": {"schema": {}}}
                    response.pop("model", None)
            else:
                for status, response in responses.items():
                    error = status.startswith(("4", "5")) and _keyed(path, method, operation)
                    if status == "422" or (error and "content" not in response):
                        response["content"] = {"application/json": {"schema": _ERROR}}
    schema.setdefault("components", {})["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "The admin key or a namespace's key",
        }
    }
    components = schema["components"].get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`contract` at /openapi.json (made once, at the first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
