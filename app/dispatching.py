"""Dispatch as a service: find a user worker and run its on_fetch for one request.

Like a Workers for Platforms dispatch worker: find the worker, run its deployed
version in a fresh sandbox within its namespace's current policy (app/policy.py:
the lowest of the namespace's limits, the worker's own and, for callers holding a
key, per-call limits, which may not exceed the caller's ceiling), and say what it
answered (:class:`WorkerAnswer`). The dispatch route (app/routes/dispatch.py), the
invoke_worker tool and /v1/generate's worker target all run workers through here.

Every finished invocation is handed to the tails of its worker (app/tail.py), and a
worker's exception is logged with its traceback at DEBUG on the run's line (run id,
namespace): its namespace sees it in the tail; an anonymous caller never does
(WorkerAnswer). Not at INFO: what a worker says may hold its secrets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.bundles import WorkerBundle
from app.config import Settings
from app.deps import Services
from app.dispatch import InvalidReply, entry_job_fields, reply_from_result
from app.errors import ApiError
from app.hostnames import Route
from app.policy import target_ceiling, worker_run
from app.quotas import Subject, dispatch_subjects
from app.runs import start_run
from app.store import workers
from app.store.errors import NotFound, TargetNotFound
from app.tail import invocation
from sandbox import Job, RunResult, Status, collect

__all__ = ["WorkerAnswer", "find_target", "finished", "run_target", "worker_job"]

log = logging.getLogger(__name__)
# What the log keeps of a worker's traceback (its end: where the exception is).
_LOGGED_TRACEBACK_CHARS = 4_000

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
_RESPONSE_BYTES = 10 * 1024 * 1024


async def find_target(services: Services, namespace: str, worker: str) -> workers.Target:
    """The worker and its namespace's defaults; TargetNotFound (404 naming both) when
    either is missing: which one is not said."""
    try:
        if services.tracing is None:
            return await _lookup(services, namespace, worker)
        # Not the worker's name: a caller may send anything there.
        with services.tracing.span("sandlot.dispatch.lookup"):
            return await _lookup(services, namespace, worker)
    except NotFound:
        raise TargetNotFound(namespace, worker) from None


async def _lookup(services: Services, namespace: str, worker: str) -> workers.Target:
    return await services.targets.get(
        (namespace, worker), lambda: workers.target(services.store, namespace, worker)
    )


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
    caller_quotas: tuple[Subject, ...] = (),
) -> RunResult:
    """Run the worker's deployed on_fetch for one request (path and query in ``url``).

    ``headers`` are the caller's: what the worker may see of them depends on the
    routing (``route`` None is path routing) and the namespace's mode, and so does
    ``metadata`` (trusted namespaces only). ``per_call`` limits, checked against the
    caller's ceiling (:func:`app.policy.checked_limits`), can only lower the worker's.
    Shared by the dispatch route and the invoke_worker tool; 503 when nothing is
    deployed. The call counts against the namespace's quotas and, when ``caller_quotas``
    (a key of the namespace) are given, the key's; 429 when one is reached.
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
    runner = services.runners[found.runtime]
    subjects = dispatch_subjects(found.namespace, target.namespace_quotas, caller_quotas)
    metered = await start_run(
        services,
        runner,
        job,
        subjects=subjects,
        kind="dispatch",
        namespace=found.namespace,
    )
    result = await collect(services.drain.bounded(metered))
    finished(services, found.namespace, found.name, method=method, url=url, result=result)
    return result


def finished(
    services: Services, namespace: str, worker: str, *, method: str, url: str, result: RunResult
) -> WorkerAnswer:
    """What an invocation of ``worker`` answered (detailed): handed to the worker's tails,
    and, when the worker raised, logged with its traceback at DEBUG on the run's line."""
    answer = WorkerAnswer.of(result, detailed=True)
    services.tails.publish(
        invocation(
            namespace,
            worker,
            method=method,
            url=url,
            result=result,
            outcome=answer.outcome,
            status=answer.status,
        )
    )
    error = result.error
    if error is not None and result.status is Status.ERROR:
        # The worker's own exception, for the operator who asks (DEBUG): it may hold the
        # worker's secrets, which the formatter's redaction of credentials can't know.
        traceback = error.traceback[-_LOGGED_TRACEBACK_CHARS:]
        log.debug(
            "worker %s/%s run %s raised %s: %s\n%s",
            namespace,
            worker,
            result.run_id,
            error.type,
            error.message[:500],
            traceback.rstrip(),
        )
    return answer


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
        # What a worker prints reaches its logs and tails once the call is over.
        live_output=False,
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
