"""/dispatch/{namespace}/{worker}/{path}: run a user worker's on_fetch for a request.

Like a Workers for Platforms dispatch worker: find the worker, run its deployed
version in a fresh sandbox within its namespace's current policy (app/policy.py:
the lowest of the namespace's limits, the worker's own and, for callers holding a
key, the per-call ``X-Sandlot-Limits`` header, which may not exceed the caller's
ceiling), and answer with what it returned. A
worker that raises or hits a limit answers 500/503 with the outcome in the
JSON body and in ``X-Sandlot-Outcome``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.auth import current_caller, require_namespace
from app.config import Settings
from app.deps import Services, ServicesDep
from app.dispatch import InvalidReply, WorkerBundle, entry_job_fields, reply_from_result
from app.errors import ApiError, invalid_field
from app.hostnames import ROUTE_KEY, Route
from app.policy import caller_ceiling, checked_limits, target_ceiling, worker_run
from app.store import namespaces, workers
from sandbox import Job, RunResult, Status, collect

log = logging.getLogger(__name__)
router = APIRouter(tags=["dispatch"])

# Never passed to a worker: credentials for Sandlot, framing, hop-by-hop headers.
_NEVER_PASSED = frozenset(
    {
        "authorization",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "transfer-encoding",
        "upgrade",
        "x-sandlot-limits",
    }
)
# Path routing shares the platform's origin: its Host and cookies are the platform's.
_PLATFORM_ORIGIN = frozenset({"host", "cookie"})
# What proxies in front of the platform say about the client: trusted namespaces only.
_PROXY_METADATA = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip"})
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_RESPONSE_BYTES = 10 * 1024 * 1024
# Path routing serves tenants' pages on the API's own origin, where the playground runs.
# This policy makes the browser give them an opaque origin instead (no allow-same-origin):
# no access to the origin's storage, cookies or pages, and no credentialed reads of the API.
# It is sent next to any policy the worker sets: browsers enforce every policy they get, so
# the worker's own can only narrow this one.
SANDBOX_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"


@router.api_route("/dispatch/{namespace}/{worker}/{path:path}", methods=_METHODS)
async def dispatch(
    namespace: str, worker: str, path: str, request: Request, services: ServicesDep
) -> Response:
    target = await find_target(services, namespace, worker)
    per_call: dict[str, int] = {}
    # Only callers holding a key of the namespace (or the admin key) see why a run failed.
    keyed = not target.dispatch_public or "authorization" in request.headers
    if keyed:
        caller = await current_caller(request)
        require_namespace(caller, namespace)
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
    )
    response = worker_response(result, path_routed=route is None, detailed=keyed)
    outcome = response.headers["x-sandlot-outcome"]
    if outcome != "ok":
        # Ids at INFO; what the worker said (it may quote its secrets) at DEBUG only.
        log.info("dispatch %s/%s run %s: %s", namespace, worker, result.run_id, outcome)
        log.debug(
            "dispatch run %s: %s", result.run_id, WorkerAnswer.of(result, detailed=True).message
        )
    return response


async def find_target(services: Services, namespace: str, worker: str) -> workers.Target:
    """The worker and its namespace's defaults; 404 naming both when either is missing."""
    try:
        return await services.targets.get(
            (namespace, worker), lambda: workers.target(services.store, namespace, worker)
        )
    except (namespaces.NamespaceNotFound, workers.WorkerNotFound):
        raise ApiError(
            404, "worker_not_found", f"worker {worker!r} was not found in namespace {namespace!r}"
        ) from None


async def run_target(
    services: Services,
    target: workers.Target,
    *,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    per_call: dict[str, int],
    route: Route | None = None,
    metadata: dict[str, str] | None = None,
) -> RunResult:
    """Run the worker's deployed on_fetch for one request (path and query in ``url``).

    ``headers`` are the caller's: what the worker may see of them depends on the
    routing (``route`` None is path routing) and the namespace's mode, and so does
    ``metadata`` (trusted namespaces only). ``per_call`` limits, checked against the
    caller's ceiling (:func:`app.policy.checked_limits`), can only lower the worker's.
    Shared by the dispatch route and the invoke_worker tool; 503 when nothing is
    deployed.
    """
    found = target.worker
    if found.current is None or found.runtime not in services.runners:
        raise ApiError(503, "worker_unavailable", f"worker {found.name!r} has nothing deployed")
    bundle = await services.bundles.get(found.current.sha256)
    trusted = target.namespace_mode == "trusted"
    dropped = _NEVER_PASSED | (_PLATFORM_ORIGIN if route is None else frozenset())
    if not trusted:
        dropped |= _PROXY_METADATA
    job = worker_job(
        services.settings,
        target,
        bundle,
        method=method,
        url=url,
        headers=[(k, v) for k, v in headers if k.lower() not in dropped],
        body=body,
        per_call=per_call,
        metadata=metadata if trusted else None,
    )
    return await collect(services.runners[found.runtime].run(job))


def worker_job(
    settings: Settings,
    target: workers.Target,
    bundle: WorkerBundle,
    *,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    per_call: dict[str, int],
    metadata: dict[str, str] | None = None,
) -> Job:
    """The run that serves one request with the worker's deployed ``bundle``, within its
    namespace's current policy."""
    found = target.worker
    fields_ = entry_job_fields(
        main_module=bundle.main_module,
        method=method,
        url=url,
        headers=headers,
        body=body,
        bindings=target.bindings,
        metadata=metadata,
    )
    limits, egress = worker_run(
        settings,
        target_ceiling(settings, target),
        worker_limits=found.limits,
        worker_hosts=found.allowed_hosts,
        per_call=per_call,
    )
    return Job(
        code=fields_["code"],
        limits=limits.replace(code_bytes=settings.max_code_bytes),
        egress=egress,
        stdin=fields_["stdin"],
        files=bundle.files,
        env=fields_["env"],
        requirements=bundle.requirements,
        result_bytes=_RESPONSE_BYTES,
    )


@dataclass(frozen=True, slots=True)
class WorkerAnswer:
    """What dispatch answers for a finished run: the worker's response, or its outcome.

    ``outcome`` is ok, or why there is no response to send: the run's status (error,
    cpu_limit, ...; ``status`` 500 when the worker failed, 503 when it hit a limit) or
    ``invalid_response`` (502: it answered something HTTP can't carry). ``message`` says
    why; with ``detailed`` False (anonymous callers) it never repeats what the worker
    said, which may hold its secrets, and names the run id to look up instead.
    """

    status: int
    header_pairs: tuple[tuple[str, str], ...]
    body: bytes
    outcome: str
    message: str
    run_id: str

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.header_pairs)

    @classmethod
    def of(cls, result: RunResult, *, detailed: bool = True) -> WorkerAnswer:
        if result.status is Status.OK:
            try:
                reply = reply_from_result(result.result.json if result.result else None)
            except InvalidReply as exc:
                message = f"the worker's response can't be sent: {exc}"
                return cls._failed(result, "invalid_response", 502, message, detailed)
            return cls(
                status=reply.status,
                header_pairs=(*reply.headers, ("x-sandlot-outcome", "ok")),
                body=reply.body,
                outcome="ok",
                message="",
                run_id=result.run_id,
            )
        status = result.status.value
        error = result.error
        message = f"{error.type}: {error.message}" if error else f"the worker ended with {status}"
        return cls._failed(
            result, status, 503 if status.endswith("_limit") else 500, message, detailed
        )

    @classmethod
    def _failed(
        cls, result: RunResult, outcome: str, status: int, message: str, detailed: bool
    ) -> WorkerAnswer:
        if not detailed:
            message = (
                f"the worker ended with {outcome} (run {result.run_id}); a key of its "
                "namespace sees the details"
            )
        return cls(
            status=status,
            header_pairs=(("x-sandlot-outcome", outcome),),
            body=b"",
            outcome=outcome,
            message=message,
            run_id=result.run_id,
        )


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
