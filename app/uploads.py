"""Uploads as a service: check a worker upload, build it, store the version, deploy it.

The worker routes (app/routes/workers.py), the deploy_worker tool and /v1/generate's
worker target all upload through :func:`upload_worker`, so a worker behaves the same
whichever door it came through. Also the wire views of workers and versions.
"""

from __future__ import annotations

import asyncio
import re

from app.auth import Principal, require_namespace
from app.builds import BuildFailed, build, describe
from app.deps import Services
from app.errors import ApiError, invalid_field
from app.policy import ceiling_of, checked_hosts, checked_limits
from app.runs import check_requirements, runner_for
from app.schemas import MODULE_PATH, TAG, ErrorDetail, Upload, VersionOut, WorkerIn, WorkerOut
from app.store import namespaces, workers

__all__ = [
    "check_tags",
    "deploy_worker",
    "tag_filter",
    "upload_worker",
    "version_out",
    "worker_out",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def version_out(version: workers.Version) -> VersionOut:
    return VersionOut(
        id=version.id,
        number=version.number,
        sha256=version.sha256,
        main_module=version.main_module,
        requirements=version.requirements,
        artifact_bytes=version.size,
        build_ms=version.build_ms,
        warnings=version.warnings,
        created_at=version.created_at.isoformat(),
    )


def worker_out(worker: workers.Worker) -> WorkerOut:
    return WorkerOut(
        namespace=worker.namespace,
        name=worker.name,
        runtime=worker.runtime,
        tags=worker.tags,
        limits=worker.limits,
        allowed_hosts=worker.allowed_hosts,
        vars=worker.vars,
        secrets=worker.secret_names,
        version=version_out(worker.current) if worker.current else None,
        created_at=worker.created_at.isoformat(),
        updated_at=worker.updated_at.isoformat(),
    )


def check_tags(tags: list[str]) -> list[str]:
    if len(tags) > 8:
        raise invalid_field("tags", f"{len(tags)} tags; at most 8")
    for tag in tags:
        if not re.match(TAG, tag):
            raise invalid_field("tags", f"{tag!r}: 1-64 letters, digits, '.', '_' or '-'")
    return sorted(set(tags))


def tag_filter(text: str | None) -> dict[str, bool]:
    """``a:yes,b:no`` → {a: True, b: False}; 422 naming the bad part."""
    wanted: dict[str, bool] = {}
    for part in (text or "").split(","):
        if not part:
            continue
        tag, _, answer = part.partition(":")
        if not re.match(TAG, tag) or answer not in ("yes", "no"):
            raise invalid_field("tags", f"{part!r}: write filters as tag:yes or tag:no")
        wanted[tag] = answer == "yes"
    return wanted


async def deploy_worker(
    services: Services, caller: Principal, namespace: str, name: str, body: WorkerIn
) -> Upload:
    """The upload route's work for a caller (403 outside its namespace); also the tool's."""
    require_namespace(caller, namespace)
    return await upload_worker(services, namespace, name, body)


async def upload_worker(services: Services, namespace: str, name: str, body: WorkerIn) -> Upload:
    """Check, build, store and deploy an upload (the caller checked the key).

    The worker's limits and allowed_hosts must be within its namespace's (app/policy.py),
    whoever uploads it. ApiError 422 for invalid fields, 422 ``build_failed`` (details
    name file and line); NamespaceNotFound, QuotaExceeded from the store.
    """
    settings, store = services.settings, services.store
    runtime = body.runtime or settings.default_runtime
    runner = runner_for(services.runners, runtime)
    for path in body.modules:
        if not re.match(MODULE_PATH, path):
            raise invalid_field(
                f"modules.{path}", "module paths look like 'main.py' or 'lib/util.py'"
            )
    if body.main_module not in body.modules:
        raise invalid_field("main_module", f"{body.main_module!r} is not among the modules")
    size = sum(len(source.encode()) for source in body.modules.values())
    if size > settings.max_code_bytes:
        raise invalid_field("modules", f"{size} bytes; at most {settings.max_code_bytes}")
    space = await asyncio.to_thread(namespaces.get, store, namespace)
    ceiling = ceiling_of(settings, space)
    limits = checked_limits(ceiling, body.limits.model_dump())
    checked_hosts(ceiling, body.allowed_hosts)
    for field, names in (("vars", body.vars or {}), ("secrets", body.secrets or {})):
        for key in names:
            if not _ENV_NAME.match(key):
                raise invalid_field(f"{field}.{key}", "names must match [A-Za-z_][A-Za-z0-9_]*")
    check_requirements(body.requirements, runner, services.runners)
    try:
        built = await build(
            runner,
            runtime=runtime,
            main_module=body.main_module,
            modules=body.modules,
            requirements=body.requirements,
        )
    except BuildFailed as exc:
        raise ApiError(
            422,
            "build_failed",
            f"the build failed: {exc}",
            [
                ErrorDetail(field=f"modules.{e['file']}", message=describe(e, file=False))
                for e in exc.errors
            ],
        ) from None
    spec = workers.WorkerSpec(
        runtime=runtime,
        tags=check_tags(body.tags),
        limits=limits,
        allowed_hosts=body.allowed_hosts,
        vars=body.vars,
        secrets=body.secrets,
    )
    saved = await asyncio.to_thread(
        workers.save_version,
        store,
        namespace,
        name,
        spec,
        artifacts=services.artifacts,
        bundle=built.bundle,
        main_module=body.main_module,
        requirements=body.requirements,
        build_ms=built.build_ms,
        warnings=built.warnings,
        defaults=workers.StorageDefaults(
            version_retention=settings.version_retention,
            quota_bytes=settings.namespace_storage_bytes,
        ),
    )
    worker = saved.worker
    if worker.current is None:
        raise RuntimeError("a saved worker has no deployed version")
    return Upload(
        worker=worker_out(worker),
        version=version_out(worker.current),
        created=saved.created,
        # Only this namespace's uploads count: the answer says nothing of others'.
        rebuilt=not saved.reused,
    )
