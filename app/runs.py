"""One-shot runs: a request's code checked against the caller's ceiling and made a Job.

Used by POST /v1/execute, the execute_code tool and /v1/generate's one-shot target,
so the same request runs the same way whichever door it came through. ApiError 422
names the field when a request can't run.

:func:`start_run` is how every run but a session's turn starts: admitted by the quotas,
counted in the metrics and in its namespace's usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from app.config import Settings
from app.deps import Services
from app.errors import invalid_field
from app.policy import Ceiling, checked_hosts, egress_policy, run_limits
from app.quotas import Subject, run_hold_ms
from app.schemas import RunIn
from sandbox import Event, InvalidJob, Job, Runner, Runtime
from sandbox.outputs import FileCaps

__all__ = ["build_job", "check_requirements", "prepare_run", "runner_for", "start_run"]


def runner_for(runners: Mapping[str, Runner], runtime: Runtime) -> Runner:
    """The runner of ``runtime``; 422 when that engine is off on this server."""
    runner = runners.get(runtime)
    if runner is None:
        raise invalid_field("runtime", f"the {runtime} engine is not enabled on this server")
    return runner


def prepare_run(
    services: Services, body: RunIn, ceiling: Ceiling, *, live_output: bool
) -> tuple[Runner, Job]:
    """The runner and the job for a run within the caller's ``ceiling``; ``live_output``:
    whether its output is streamed to the caller as it comes (Job.live_output)."""
    runner = runner_for(services.runners, body.runtime or services.settings.default_runtime)
    job = build_job(body, services.settings, ceiling, live_output=live_output)
    check_requirements(job.requirements, runner, services.runners)
    return runner, job


async def start_run(
    services: Services,
    runner: Runner,
    job: Job,
    *,
    subjects: tuple[Subject, ...],
    kind: str,
    namespace: str | None,
) -> AsyncIterator[Event]:
    """``job``'s events on ``runner``, admitted against ``subjects``' quotas (429 now, or
    at the first event), counted in the metrics as ``kind`` (execute, tool, dispatch,
    generate) and in ``namespace``'s usage (None: the admin's own run, no namespace).
    Closing the events cancels a run still going."""
    hold_ms = run_hold_ms(services.settings, job)
    allowed = await services.quotas.run(subjects, hold_ms, lambda: runner.run(job))
    used = services.usage.observe(allowed, namespace=namespace, kind=kind)
    if services.tracing is not None:
        used = services.tracing.run_spans(used, engine=runner.name, kind=kind, namespace=namespace)
    return services.metrics.observe(used, engine=runner.name, kind=kind, namespace=namespace)


def check_requirements(
    requirements: tuple[str, ...] | list[str], runner: Runner, runners: Mapping[str, Runner]
) -> None:
    """422 unless ``runner`` loads packages and has every requirement installed."""
    if not requirements:
        return
    if runner.packages is None:
        loaders = [name for name, other in runners.items() if other.packages is not None]
        hint = (
            f"set runtime to {' or '.join(loaders)}"
            if loaders
            else "packages load on runtime pyodide and on wasmtime's data-stack guest "
            "(SANDLOT_WASMTIME_GUEST=stack, the default), which this server doesn't run"
        )
        raise invalid_field(
            "requirements", f"the {runner.name} runtime loads no packages here; {hint}"
        )
    missing = runner.packages.missing(requirements)
    if missing:
        raise invalid_field(
            "requirements",
            f"not installed on this server: {', '.join(missing)}; an operator adds pure-Python "
            "packages with `make packages PACKAGES=...` (compiled packages can't run here)",
        )


def build_job(
    body: RunIn, settings: Settings, ceiling: Ceiling, *, live_output: bool = True
) -> Job:
    """Validate a request against the caller's ceiling (app/policy.py) and make it a Job."""
    limits = run_limits(ceiling, body.limits.model_dump())
    egress = egress_policy(settings, ceiling, checked_hosts(ceiling, body.allowed_hosts))
    files: dict[str, bytes] = {}
    for path, item in body.files.items():
        try:
            files[path] = item.encode() if isinstance(item, str) else item.data()
        except ValueError as exc:
            raise invalid_field(f"files.{path}", str(exc)) from None
    try:
        return Job(
            code=body.code,
            limits=limits,
            egress=egress,
            stdin=body.stdin,
            files=files,
            env=body.env,
            requirements=tuple(body.requirements),
            figure_format=body.figure_format,
            return_files=tuple(body.return_files),
            file_caps=FileCaps(
                max_bytes=settings.return_files_max_bytes,
                max_file_bytes=settings.return_file_max_bytes,
            ),
            live_output=live_output,
        )
    except InvalidJob as exc:
        raise invalid_field(exc.field, exc.message) from None
