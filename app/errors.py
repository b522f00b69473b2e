"""Domain errors → HTTP: one JSON error shape for every failure.

``{"error": {"code": "...", "message": "...", "details": [{"field": ..., "message": ...}]}}``

The message says what to fix; ``details`` names the fields. Store errors
(app/store/errors.py) and sandbox faults map to status codes here, and nowhere else:
``install`` registers the handlers, and tools map with the same functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.schemas import (
    MODULE_PATH,
    NAMESPACE_NAME,
    TAG,
    TAG_FILTER,
    ErrorBody,
    ErrorDetail,
    ErrorResponse,
)
from app.store.errors import Conflict, NotFound, QuotaExceeded, StoreError
from sandbox import EngineUnavailable, PoolBusy, RunnerClosed, SandboxError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can fix (or must wait out), with its HTTP status."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


# OpenAPI descriptions of the errors every keyed control-plane route may answer.
CONTROL_PLANE_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "A key of another namespace"},
    404: {"model": ErrorResponse, "description": "Not found; the message says what"},
}


def invalid_field(field: str, message: str) -> ApiError:
    return ApiError(
        422, "invalid_request", f"{field}: {message}", [ErrorDetail(field=field, message=message)]
    )


def error_response(error: ApiError) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorBody(code=error.code, message=error.message, details=error.details)
    )
    return JSONResponse(body.model_dump(), status_code=error.status_code, headers=error.headers)


def from_sandbox_error(exc: SandboxError) -> ApiError:
    if isinstance(exc, PoolBusy):
        details = []
        if exc.reason == "memory":
            details = [
                ErrorDetail(
                    field="limits.memory_mb",
                    message="runs in progress hold the memory budget; ask for less or retry",
                )
            ]
        return ApiError(
            429,
            "busy",
            f"{exc}; retry shortly",
            details=details,
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, EngineUnavailable | RunnerClosed):
        return ApiError(503, "engine_unavailable", str(exc), headers={"Retry-After": "5"})
    log.exception("sandbox fault", exc_info=exc)
    return ApiError(500, "internal_error", "the sandbox failed; see the service log")


# Each branch of the store's tree (app/store/errors.py) and its status; the code and the
# message are the exception's own.
STORE_STATUS: dict[type[StoreError], int] = {NotFound: 404, Conflict: 409, QuotaExceeded: 413}


def from_store_error(exc: StoreError) -> ApiError:
    for kind, status in STORE_STATUS.items():
        if isinstance(exc, kind):
            details = [ErrorDetail(field=exc.field, message=exc.message)] if exc.field else []
            return ApiError(status, exc.code, exc.message, details)
    raise TypeError(f"no HTTP status for {type(exc).__name__}") from exc


def as_api_error(exc: Exception) -> ApiError | None:
    """The API's error for a domain exception (ApiError, store or sandbox); None otherwise."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreError):
        return from_store_error(exc)
    if isinstance(exc, SandboxError):
        return from_sandbox_error(exc)
    return None


def _field_path(location: tuple[int | str, ...]) -> str:
    # A dict key's own error ends in "[key]": the key names the field well enough.
    parts = [str(p) for p in location if p not in ("body", "[key]")]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


# Patterns of the API's names, in words (a raw regex says little to a newcomer).
_PATTERN_RULES = {
    NAMESPACE_NAME: "1-63 lowercase letters, digits and '-', starting with a letter and not "
    "ending with '-' (like 'acme' or 'team-42')",
    TAG: "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    MODULE_PATH: "a path like 'main.py' or 'lib/util.py': Python identifiers joined by '/', "
    "ending in .py",
    TAG_FILTER: "tag:yes or tag:no, comma-separated (like 'prod:yes,beta:no')",
}


def from_validation_errors(errors: Sequence[Any], content_type: str = "") -> ApiError:
    """A 422 naming each invalid field, from pydantic's (or FastAPI's) error list.

    ``content_type`` is the request's: a body that wasn't sent as JSON is told to be.
    """
    details = [_detail(e, content_type) for e in errors]
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
    return ApiError(422, "invalid_request", summary or "invalid request", details)


def _detail(error: Any, content_type: str) -> ErrorDetail:
    location = tuple(error.get("loc", ()))
    kind, context = error.get("type"), error.get("ctx") or {}
    message = str(error.get("msg", "invalid"))
    if kind == "json_invalid":
        # FastAPI puts the character offset where the field would be: ("body", 19).
        at = location[1] if len(location) > 1 else None
        where = f" at character {at}" if isinstance(at, int) else ""
        reason = context.get("error")
        return ErrorDetail(
            field="body",
            message=f"the body is not valid JSON{where}" + (f": {reason}" if reason else ""),
        )
    if location == ("body",) and "json" not in content_type.lower():
        sent = content_type.split(";")[0].strip() or "no content type"
        return ErrorDetail(
            field="body",
            message=f"send the body as JSON with content-type: application/json (it came as "
            f"{sent}; curl -d without -H 'content-type: application/json' sends a form)",
        )
    if kind == "string_pattern_mismatch" and context.get("pattern") in _PATTERN_RULES:
        message = f"must be {_PATTERN_RULES[context['pattern']]}"
    return ErrorDetail(field=_field_path(location), message=message)


_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path answers (Starlette's 405 names only
    the first route's): each method is tried against the routes as the router would."""
    routes = request.app.router.routes
    return [
        method
        for method in _HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return error_response(from_store_error(exc))

    @app.exception_handler(SandboxError)
    async def _sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        return error_response(from_sandbox_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        return error_response(from_validation_errors(exc.errors(), content_type))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return error_response(ApiError(exc.status_code, code, str(exc.detail), headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(
            ApiError(500, "internal_error", "internal error; see the service log")
        )
