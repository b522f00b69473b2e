"""Where generated code goes: a one-shot run, or a user worker deployed and called once.

Both take each attempt's code through the services the HTTP routes use
(app/runs.py, app/uploads.py, app/dispatching.py), so a generated program or
worker behaves exactly as one sent by hand.
Each attempt yields the run's events and ends with a Verdict for the loop in
app/ai/generation.py. Every attempt's run starts as the routes' do (app/runs.py's
start_run): within the caller's quotas (a 429 ends the generation), counted in the metrics
(kind ``generate``) and in the namespace's usage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from app.ai import Deployed, Feedback, RunEvent, Verdict
from app.auth import Principal
from app.bundles import WorkerBundle
from app.deps import Services
from app.dispatching import finished, worker_job
from app.errors import ApiError, as_api_error, from_sandbox_error
from app.policy import Ceiling, ceiling_of, checked_hosts, run_limits
from app.quotas import dispatch_subjects
from app.runs import build_job, start_run
from app.schemas import ExecuteRequest, GenerateRequest, WorkerIn
from app.store import StoreError, namespaces, workers
from app.uploads import upload_worker
from sandbox import Event, Limits, Runner, RunResult, Runtime, SandboxError, Status

__all__ = ["RunTarget", "WorkerTarget"]

# What a status means, for the repair message.
_STATUS_MEANING = {
    Status.ERROR: "an uncaught exception",
    Status.CPU_LIMIT: "the code used all its CPU time",
    Status.WALL_LIMIT: "the code ran out of wall-clock time (sleeping, waiting or looping)",
    Status.MEMORY_LIMIT: "the code ran out of memory",
    Status.OUTPUT_LIMIT: "the code printed more than the output limit",
    Status.SUBREQUEST_LIMIT: "the code made more HTTP requests than allowed",
    Status.INTERNAL_ERROR: "the sandbox failed",
}


class RunTarget:
    """Each attempt's code runs once, exactly as POST /v1/execute would run it."""

    def __init__(
        self,
        services: Services,
        caller: Principal,
        runner: Runner,
        request: ExecuteRequest,
        ceiling: Ceiling,
    ) -> None:
        self._services = services
        self._caller = caller
        self._runner = runner
        self._request = request
        self._ceiling = ceiling

    async def attempt(self, number: int, code: str) -> AsyncGenerator[RunEvent | Verdict]:
        services, caller = self._services, self._caller
        try:
            job = build_job(
                self._request.model_copy(update={"code": code}), services.settings, self._ceiling
            )
        except ApiError as exc:
            error = {"type": "invalid_code", "message": exc.message}
            yield Verdict(False, None, error, Feedback("the code was refused", exc.message))
            return

        def start() -> Awaitable[AsyncIterator[Event]]:
            return start_run(
                services,
                self._runner,
                job,
                subjects=caller.quotas,
                kind="generate",
                namespace=caller.namespace,
            )

        result = RunResult()
        async for item in _run_events(start, number, result):
            if isinstance(item, ApiError):
                yield Verdict(False, None, {"type": item.code, "message": item.message}, fatal=True)
                return
            yield item
        yield _run_verdict(result, "the run")

    async def settle(self, ok: bool) -> None:
        return None


@dataclass
class WorkerTarget:
    """Each attempt's code is uploaded as the worker (build → version → deploy), then
    answers one GET / through the dispatch code. A generation that does not end ok puts
    the worker's previous version back (or removes the worker it created)."""

    namespace: str
    name: str
    runtime: Runtime
    body: GenerateRequest
    services: Services
    caller: Principal
    limits: Limits
    allowed_hosts: list[str]
    tags: list[str]
    env_names: list[str]  # the worker's vars and secrets, which its code reads from env
    existed: bool
    previous_version: str | None
    deployed: bool = False

    @classmethod
    async def prepare(
        cls, body: GenerateRequest, runtime: Runtime, services: Services, caller: Principal
    ) -> WorkerTarget:
        """NamespaceNotFound for an unknown namespace; 422 for limits or hosts above the
        namespace's ceiling. An existing worker keeps its tags, vars and secrets (uploads
        that send none keep them: a secret set while this runs isn't overwritten)."""
        namespace, name = body.namespace or "", body.worker or ""
        store = services.store
        space = await asyncio.to_thread(namespaces.get, store, namespace)
        ceiling = ceiling_of(services.settings, space)
        limits = run_limits(ceiling, body.limits.model_dump())
        checked_hosts(ceiling, body.allowed_hosts)
        try:
            found = await asyncio.to_thread(workers.target, store, namespace, name)
        except workers.WorkerNotFound:
            found = None
        existing = found.worker if found else None
        return cls(
            namespace=namespace,
            name=name,
            runtime=runtime,
            body=body,
            services=services,
            caller=caller,
            limits=limits,
            allowed_hosts=body.allowed_hosts or space.allowed_hosts,
            tags=existing.tags if existing else [],
            env_names=sorted({*existing.vars, *existing.secret_names}) if existing else [],
            existed=existing is not None,
            previous_version=existing.current.id if existing and existing.current else None,
        )

    async def attempt(
        self, number: int, code: str
    ) -> AsyncGenerator[RunEvent | Deployed | Verdict]:
        upload = WorkerIn(
            modules={"main.py": code},
            main_module="main.py",
            runtime=self.runtime,
            tags=self.tags,
            limits=self.body.limits,
            allowed_hosts=self.body.allowed_hosts,
        )
        services = self.services
        try:
            uploaded = await upload_worker(services, self.namespace, self.name, upload)
        except (ApiError, StoreError, SandboxError, RuntimeError) as exc:
            failure = _upload_failure(exc)
            yield Deployed(number, self.namespace, self.name, None, None, failure.error)
            yield failure
            return
        self.deployed = True
        target = await asyncio.to_thread(workers.target, services.store, self.namespace, self.name)
        bundle = WorkerBundle.parse(
            await asyncio.to_thread(services.artifacts.get, uploaded.version.sha256)
        )
        job = worker_job(
            services.settings,
            target,
            bundle,
            method="GET",
            url="/",
            headers=[("user-agent", "sandlot-generate")],
            body=b"",
            per_call={},
        )
        # The worker's namespace and the caller's key: as a dispatch by that key counts.
        subjects = dispatch_subjects(self.namespace, target.namespace_quotas, self.caller.quotas)

        def start() -> Awaitable[AsyncIterator[Event]]:
            return start_run(
                services,
                services.runners[self.runtime],
                job,
                subjects=subjects,
                kind="generate",
                namespace=self.namespace,
            )

        result = RunResult()
        async for item in _run_events(start, number, result):
            if isinstance(item, ApiError):
                error = {"type": item.code, "message": item.message}
                yield Deployed(number, self.namespace, self.name, uploaded.version.id, None, error)
                yield Verdict(False, None, error, fatal=True)
                return
            yield item
        # An invocation of the worker like any other: its tails see it.
        answer = finished(services, self.namespace, self.name, method="GET", url="/", result=result)
        status = answer.status
        yield Deployed(number, self.namespace, self.name, uploaded.version.id, status)
        if result.status is not Status.OK or status >= 500:
            if result.status is Status.OK:
                said = answer.body if answer.outcome == "ok" else answer.message.encode()
                body = said[:1000].decode("utf-8", "replace")
                outcome = f"GET / answered HTTP {status}"
                error = {"type": f"http_{status}", "message": f"{outcome}: {body}"}
                feedback = Feedback(outcome, error["message"], "", result.stdout, result.stderr)
                yield Verdict(False, result.status, error, feedback)
            else:
                yield _run_verdict(result, f"GET / (HTTP {status})")
            return
        yield Verdict(True, result.status)

    async def settle(self, ok: bool) -> None:
        if ok or not self.deployed:
            return
        if self.previous_version is not None:
            await asyncio.to_thread(
                workers.deploy,
                self.services.store,
                self.namespace,
                self.name,
                self.previous_version,
            )
        elif not self.existed:
            with contextlib.suppress(workers.WorkerNotFound, namespaces.NamespaceNotFound):
                await asyncio.to_thread(
                    workers.remove,
                    self.services.store,
                    self.namespace,
                    self.name,
                    artifacts=self.services.artifacts,
                )


@contextlib.asynccontextmanager
async def _closing(events: AsyncIterator[Event]) -> AsyncIterator[AsyncIterator[Event]]:
    """Close a run's events on the way out: closing early cancels the run."""
    try:
        yield events
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _run_events(
    start: Callable[[], Awaitable[AsyncIterator[Event]]], number: int, result: RunResult
) -> AsyncIterator[RunEvent | ApiError]:
    """The run's events (also added to ``result``); a refusal (a quota's 429) or a sandbox
    fault comes last, as ApiError."""
    try:
        events = await start()
    except ApiError as exc:
        yield exc
        return
    async with _closing(events) as run:
        try:
            async for event in run:
                result.add(event)
                yield RunEvent(number, event, result.run_id)
        except ApiError as exc:
            yield exc
        except SandboxError as exc:
            yield from_sandbox_error(exc)


def _upload_failure(exc: Exception) -> Verdict:
    """A failed upload: a build error is the code's to fix; anything else is fatal."""
    refused = as_api_error(exc)
    if refused is not None and refused.code == "build_failed":
        lines = [f"{d.field.removeprefix('modules.')}: {d.message}" for d in refused.details]
        message = "\n".join(lines) or refused.message
        error = {"type": "build_failed", "message": refused.message}
        return Verdict(False, None, error, Feedback("the build failed (a syntax error)", message))
    if refused is not None:
        return Verdict(False, None, {"type": refused.code, "message": refused.message}, fatal=True)
    return Verdict(False, None, {"type": "internal_error", "message": str(exc)}, fatal=True)


def _run_verdict(result: RunResult, what: str) -> Verdict:
    status = result.status.value
    if result.status is Status.OK:
        return Verdict(True, result.status)
    if result.error is not None:
        error = {"type": result.error.type, "message": result.error.message}
        described = f"{result.error.type}: {result.error.message}"
    else:
        error = {"type": status, "message": f"{what} ended with status {status}"}
        described = error["message"]
    meaning = _STATUS_MEANING.get(result.status, status)
    feedback = Feedback(
        f"{what} ended with status {status} ({meaning})",
        described,
        result.error.traceback if result.error else "",
        result.stdout,
        result.stderr,
    )
    return Verdict(
        False, result.status, error, feedback, fatal=result.status is Status.INTERNAL_ERROR
    )
