"""/dispatch/{namespace}/{worker}/{path}: run a user worker's on_fetch for a request.

The work is app/dispatching.py's; this route reads the per-call ``X-Sandlot-Limits``
header (callers holding a key), the routing and the request, and answers with what
the worker returned. A worker that raises or hits a limit answers 500/503 with the
outcome in the JSON body and in ``X-Sandlot-Outcome``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.auth import current_caller, require_namespace
from app.deps import ServicesDep
from app.dispatching import WorkerAnswer, find_target, run_target
from app.errors import invalid_field
from app.hostnames import ROUTE_KEY, Route
from app.policy import caller_ceiling, checked_limits
from app.quotas import Subject
from sandbox import RunResult

log = logging.getLogger(__name__)
router = APIRouter(tags=["dispatch"])

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
# Path routing serves tenants' pages on the API's own origin, where the playground runs.
# This policy makes the browser give them an opaque origin instead (no allow-same-origin):
# no access to the origin's storage, cookies or pages, and no credentialed reads of the API.
# It is sent next to any policy the worker sets: browsers enforce every policy they get, so
# the worker's own can only narrow this one.
SANDBOX_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"


async def dispatch(
    namespace: str, worker: str, path: str, request: Request, services: ServicesDep
) -> Response:
    target = await find_target(services, namespace, worker)
    per_call: dict[str, int] = {}
    caller_quotas: tuple[Subject, ...] = ()
    # Only callers holding a key of the namespace (or the admin key) see why a run failed.
    keyed = not target.dispatch_public or "authorization" in request.headers
    if keyed:
        caller = await current_caller(request)
        require_namespace(caller, namespace)
        caller_quotas = caller.quotas
        raw = _per_call_limits(request)
        if raw:
            ceiling = await caller_ceiling(services.settings, services.store, caller)
            per_call = checked_limits(ceiling, raw, field="X-Sandlot-Limits")
    route: Route | None = getattr(request.state, ROUTE_KEY, None)
    query = request.url.query
    result = await run_target(
        services,
        target,
        method=request.method,
        url="/" + path + (f"?{query}" if query else ""),
        headers=list(request.headers.items()),
        body=await request.body(),
        per_call=per_call,
        route=route,
        metadata=_metadata(request, route),
        caller_quotas=caller_quotas,
    )
    response = worker_response(result, path_routed=route is None, detailed=keyed)
    outcome = response.headers["x-sandlot-outcome"]
    services.metrics.dispatched(namespace, outcome)
    if outcome != "ok":
        # Ids at INFO; what the worker said (it may quote its secrets) at DEBUG only.
        log.info("dispatch %s/%s run %s: %s", namespace, worker, result.run_id, outcome)
        log.debug(
            "dispatch run %s: %s", result.run_id, WorkerAnswer.of(result, detailed=True).message
        )
    return response


def worker_response(
    result: RunResult, *, path_routed: bool = False, detailed: bool = True
) -> Response:
    """The worker's own response, or 500/502/503 with the run's outcome when it has none.

    Browsers never sniff a type from it (``nosniff`` replaces the worker's value), and a
    path-routed one, served on the API's origin, is sandboxed into an opaque origin.
    ``detailed`` False (anonymous callers): an outcome's message doesn't quote the worker.
    """
    answer = WorkerAnswer.of(result, detailed=detailed)
    response: Response
    if answer.outcome == "ok":
        response = Response(content=answer.body, status_code=answer.status)
        # Raw pairs: a worker may send a header more than once (Set-Cookie).
        response.raw_headers.extend(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in answer.header_pairs
        )
    else:
        response = JSONResponse(
            {
                "error": {"code": answer.outcome, "message": answer.message, "details": []},
                "run_id": answer.run_id,
            },
            status_code=answer.status,
            headers=answer.headers,
        )
    response.headers["x-content-type-options"] = "nosniff"
    if path_routed:
        response.headers.append("content-security-policy", SANDBOX_CSP)
    return response


# One route per method, so each has its own operation id in the OpenAPI document.
for _method in _METHODS:
    router.add_api_route(
        "/dispatch/{namespace}/{worker}/{path:path}",
        dispatch,
        methods=[_method],
        operation_id=f"dispatch_{_method.lower()}",
        responses={
            200: {"description": "The worker's response"},
            404: {"description": "worker_not_found: no such worker (or namespace)"},
            500: {"description": "The worker raised (outcome error)"},
            502: {"description": "The worker's response can't be sent (invalid_response)"},
            503: {"description": "The worker hit a limit, or nothing is deployed"},
        },
    )


def _metadata(request: Request, route: Route | None) -> dict[str, str]:
    """What a trusted namespace's worker learns about the request beyond its headers."""
    return {
        "client_address": request.client.host if request.client else "",
        "original_host": route.host if route else request.headers.get("host", ""),
        "routed_by": route.routed_by if route else "path",
    }


def _per_call_limits(request: Request) -> dict[str, Any]:
    raw = request.headers.get("x-sandlot-limits")
    if not raw:
        return {}
    try:
        limits = json.loads(raw)
        if not isinstance(limits, dict):
            raise TypeError("not an object")
    except (TypeError, ValueError) as exc:
        raise invalid_field(
            "X-Sandlot-Limits", f'a JSON object of limits like {{"cpu_ms": 100}}: {exc}'
        ) from None
    return limits
