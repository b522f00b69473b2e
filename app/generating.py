"""Starting a generation: check the request, pick its target, write its system prompt.

POST /v1/generate (app/routes/generate.py) calls :func:`start` and speaks HTTP for
the events it returns; the loop itself is app/ai/generation.py and the targets are
app/targets.py. Every check happens here, before any stream starts: ApiError 422
naming the field, NamespaceNotFound, 403 for a key of another namespace.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from app.ai import GenerationEvent, ModelClient, PromptLog, generate
from app.auth import Principal, require_namespace
from app.deps import Services
from app.errors import invalid_field
from app.policy import caller_ceiling
from app.runs import build_job, runner_for
from app.schemas import ExecuteRequest, GenerateRequest
from app.targets import RunTarget, WorkerTarget
from sandbox import Limits, Runner, Runtime

__all__ = ["start"]


async def start(
    services: Services,
    caller: Principal,
    body: GenerateRequest,
    *,
    model: ModelClient,
    log: PromptLog,
) -> AsyncGenerator[GenerationEvent]:
    """The generation's events (not started yet: iterate them to run it)."""
    settings = services.settings
    runtime: Runtime = body.runtime or settings.default_runtime
    runner = runner_for(services.runners, runtime)
    max_attempts = body.max_attempts or settings.generate_attempts
    if max_attempts > settings.max_generate_attempts:
        raise invalid_field(
            "max_attempts",
            f"{max_attempts}; this server allows at most {settings.max_generate_attempts} "
            "(SANDLOT_MAX_GENERATE_ATTEMPTS)",
        )
    # The same checks as /v1/execute, within the caller's ceiling, before any stream starts.
    ceiling = await caller_ceiling(settings, services.store, caller)
    probe = ExecuteRequest(
        code="pass", runtime=runtime, limits=body.limits, allowed_hosts=body.allowed_hosts
    )
    limits = build_job(probe, settings, ceiling).limits
    engine_notes = _engine_notes(log, runner, runtime, settings.wasmtime_guest)
    target: RunTarget | WorkerTarget
    if body.namespace is None and body.worker is None:
        target = RunTarget(services, caller, runner, probe, ceiling)
        system = log.render(
            "system",
            runtime=runtime,
            engine_notes=engine_notes,
            allowed_hosts=_hosts(body.allowed_hosts),
            **_limit_values(limits),
        )
    elif body.namespace is None or body.worker is None:
        missing = "namespace" if body.namespace is None else "worker"
        raise invalid_field(missing, "give both namespace and worker to deploy a worker")
    else:
        require_namespace(caller, body.namespace)
        target = await WorkerTarget.prepare(body, runtime, services, caller)
        system = log.render(
            "worker",
            runtime=runtime,
            engine_notes=engine_notes,
            env_names=", ".join(target.env_names) or "none",
            allowed_hosts=_hosts(target.allowed_hosts),
            **_limit_values(target.limits),
        )
    return generate(
        model=model,
        log=log,
        system=system,
        task=body.task,
        target=target,
        max_attempts=max_attempts,
    )


def _engine_notes(log: PromptLog, runner: Runner, runtime: Runtime, wasmtime_guest: str) -> str:
    """What the model should know of the engine: its template, and the packages it loads."""
    if runner.packages is not None:
        installed = ", ".join(sorted(runner.packages.installed())) or "none"
        return log.render(f"engine_{runtime}", packages=installed)
    component = runtime == "wasmtime" and wasmtime_guest == "component"
    return log.render("engine_wasmtime_component" if component else f"engine_{runtime}")


def _hosts(allowed: list[str]) -> str:
    return ", ".join(allowed) if allowed else "none (the code has no network access)"


def _limit_values(limits: Limits) -> dict[str, str]:
    names = ("cpu_ms", "wall_ms", "memory_mb", "output_bytes", "subrequests")
    return {name: str(getattr(limits, name)) for name in names}
