"""/v1/namespaces/{ns}/workers: upload (build → new version → deploy), read, tags, versions."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.auth import CallerDep, Principal, require_namespace
from app.builds import BuildFailed, build, describe
from app.config import Settings
from app.deps import ArtifactsDep, Services, ServicesDep, StoreDep
from app.errors import CONTROL_PLANE_ERRORS, ApiError, invalid_field
from app.policy import ceiling_of, checked_hosts, checked_limits
from app.routes.execute import check_requirements
from app.schemas import (
    MODULE_PATH,
    TAG,
    WORKER_NAME,
    Deleted,
    ErrorDetail,
    ErrorResponse,
    TagsIn,
    Upload,
    VersionOut,
    WorkerDetail,
    WorkerIn,
    WorkerList,
    WorkerOut,
)
from app.store import ArtifactStore, Store, namespaces, workers
from sandbox import Runner

router = APIRouter(prefix="/v1/namespaces/{namespace}/workers", tags=["workers"])

_ERRORS = CONTROL_PLANE_ERRORS
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WorkerName = Annotated[str, Path(pattern=WORKER_NAME)]


def _version_out(version: workers.Version) -> VersionOut:
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


def _out(worker: workers.Worker) -> WorkerOut:
    return WorkerOut(
        namespace=worker.namespace,
        name=worker.name,
        runtime=worker.runtime,
        tags=worker.tags,
        limits=worker.limits,
        allowed_hosts=worker.allowed_hosts,
        vars=worker.vars,
        secrets=worker.secret_names,
        version=_version_out(worker.current) if worker.current else None,
        created_at=worker.created_at.isoformat(),
        updated_at=worker.updated_at.isoformat(),
    )


def _missing(exc: Exception, namespace: str, name: str) -> ApiError:
    if isinstance(exc, namespaces.NamespaceNotFound):
        return ApiError(404, "not_found", f"namespace {namespace!r} was not found")
    if isinstance(exc, workers.VersionNotFound):
        return ApiError(404, "not_found", f"version {exc} of worker {name!r} was not found")
    return ApiError(404, "not_found", f"worker {name!r} was not found in {namespace!r}")


def _check_tags(tags: list[str]) -> list[str]:
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


_MULTIPART_SCHEMA = {
    "type": "object",
    "description": "One part per module, named by its path (main.py, lib/util.py), and an "
    "optional 'metadata' part: a JSON object of the other upload fields",
    "properties": {"metadata": {"type": "string", "contentMediaType": "application/json"}},
    "additionalProperties": {"type": "string", "format": "binary"},
}


def _upload_body_openapi() -> dict[str, Any]:
    # The models WorkerIn refers to (LimitsIn) are in the document's components already.
    schema = WorkerIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }


def _invalid(exc: ValidationError, prefix: tuple[str, ...] = ()) -> RequestValidationError:
    """Pydantic's errors as the API's 422 (fields named as in the JSON body)."""
    return RequestValidationError(
        [{**error, "loc": ("body", *prefix, *error["loc"])} for error in exc.errors()]
    )


async def upload_body(request: Request) -> WorkerIn:
    """The upload, from a JSON body or from a multipart form."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "multipart/form-data":
        return await _from_form(request)
    if media not in ("", "application/json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"a worker upload is application/json or multipart/form-data, not {media!r}",
        )
    try:
        return WorkerIn.model_validate_json(await request.body() or b"null")
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _from_form(request: Request) -> WorkerIn:
    """Modules as parts named by their path; the other fields as JSON in a 'metadata' part."""
    form = await request.form(max_files=101, max_fields=101)
    metadata: dict[str, Any] = {}
    modules: dict[str, str] = {}
    for part, value in form.multi_items():
        raw = await value.read() if isinstance(value, UploadFile) else value.encode()
        where = "metadata" if part == "metadata" else f"modules.{part}"
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise invalid_field(where, "not UTF-8 text") from None
        if part == "metadata":
            try:
                fields = json.loads(text)
            except ValueError as exc:
                raise invalid_field("metadata", f"not JSON: {exc}") from None
            if not isinstance(fields, dict) or "modules" in fields:
                raise invalid_field(
                    "metadata", "a JSON object of upload fields; send modules as parts"
                )
            metadata = fields
        elif part in modules:
            raise invalid_field(where, "sent twice")
        else:
            modules[part] = text
    await form.close()
    if not modules:
        raise invalid_field("modules", "send each module as a part named by its path")
    try:
        return WorkerIn.model_validate({**metadata, "modules": modules})
    except ValidationError as exc:
        raise _invalid(exc) from None


UploadBody = Annotated[WorkerIn, Depends(upload_body)]


@router.put(
    "/{name}",
    response_model=Upload,
    responses={
        **_ERRORS,
        413: {"model": ErrorResponse, "description": "Over the namespace's storage quota"},
        415: {"model": ErrorResponse, "description": "Neither JSON nor multipart"},
        422: {"model": ErrorResponse, "description": "Invalid or no build"},
    },
    openapi_extra={"requestBody": _upload_body_openapi()},
)
async def upload(
    namespace: str, name: WorkerName, body: UploadBody, caller: CallerDep, services: ServicesDep
) -> Upload:
    """Upload or replace a worker: build it, store a new version and deploy it.

    The body is JSON, or a multipart form with one part per module (named by its
    path) and an optional ``metadata`` part holding the other fields as JSON.
    A failed build changes nothing: the previous version keeps serving.
    """
    return await deploy_worker(services, caller, namespace, name, body)


async def deploy_worker(
    services: Services, caller: Principal, namespace: str, name: str, body: WorkerIn
) -> Upload:
    """The upload route's work for a caller (403 outside its namespace); also the tool's."""
    require_namespace(caller, namespace)
    return await upload_worker(
        namespace,
        name,
        body,
        store=services.store,
        settings=services.settings,
        runners=services.runners,
        artifacts=services.artifacts,
        lock_file=services.pyodide_lock_file,
    )


async def upload_worker(
    namespace: str,
    name: str,
    body: WorkerIn,
    *,
    store: Store,
    settings: Settings,
    runners: dict[str, Runner],
    artifacts: ArtifactStore,
    lock_file: FilePath | None,
) -> Upload:
    """Check, build, store and deploy an upload (the caller checked the key).

    The worker's limits and allowed_hosts must be within its namespace's (app/policy.py),
    whoever uploads it. ApiError 422 for invalid fields, 422 ``build_failed`` (details
    name file and line), 404 for an unknown namespace.
    """
    runtime = body.runtime or settings.default_runtime
    runner = runners.get(runtime)
    if runner is None:
        raise invalid_field("runtime", f"the {runtime} engine is not enabled on this server")
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
    try:
        space = await asyncio.to_thread(namespaces.get, store, namespace)
    except namespaces.NamespaceNotFound as exc:
        raise _missing(exc, namespace, name) from None
    ceiling = ceiling_of(settings, space)
    limits = checked_limits(ceiling, body.limits.model_dump())
    checked_hosts(ceiling, body.allowed_hosts)
    for field, names in (("vars", body.vars), ("secrets", body.secrets)):
        for key in names:
            if not _ENV_NAME.match(key):
                raise invalid_field(f"{field}.{key}", "names must match [A-Za-z_][A-Za-z0-9_]*")
    check_requirements(body.requirements, runtime, settings, lock_file)
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
        tags=_check_tags(body.tags),
        limits=limits,
        allowed_hosts=body.allowed_hosts,
        vars=body.vars,
        secrets=body.secrets,
    )
    try:
        saved = await asyncio.to_thread(
            workers.save_version,
            store,
            namespace,
            name,
            spec,
            artifacts=artifacts,
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
    except namespaces.NamespaceNotFound as exc:
        raise _missing(exc, namespace, name) from None
    except workers.QuotaExceeded as exc:
        raise _over_quota(exc) from None
    worker = saved.worker
    if worker.current is None:
        raise RuntimeError("a saved worker has no deployed version")
    return Upload(
        worker=_out(worker),
        version=_version_out(worker.current),
        created=saved.created,
        # Only this namespace's uploads count: the answer says nothing of others'.
        rebuilt=not saved.reused,
    )


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _over_quota(exc: workers.QuotaExceeded) -> ApiError:
    message = (
        f"namespace {exc.namespace!r} stores {_mib(exc.used_bytes)} ({exc.used_bytes} bytes) "
        f"of its {_mib(exc.quota_bytes)} storage quota and this upload adds "
        f"{exc.adding_bytes} bytes: delete workers you no longer need, or ask the admin to "
        "raise the namespace's storage_mb (default: SANDLOT_NAMESPACE_STORAGE_MB)"
    )
    return ApiError(
        413, "storage_quota_exceeded", message, [ErrorDetail(field="modules", message=message)]
    )


@router.get("/{name}", response_model=WorkerDetail, responses=_ERRORS)
def get_worker(
    namespace: str, name: str, store: StoreDep, artifacts: ArtifactsDep, caller: CallerDep
) -> WorkerDetail:
    """The worker, its deployed version and that version's modules (never secrets)."""
    require_namespace(caller, namespace)
    try:
        worker = workers.get(store, namespace, name)
    except (namespaces.NamespaceNotFound, workers.WorkerNotFound) as exc:
        raise _missing(exc, namespace, name) from None
    modules: dict[str, str] = {}
    if worker.current is not None:
        bundle = json.loads(artifacts.get(worker.current.sha256))
        modules = bundle["modules"]
    return WorkerDetail(**_out(worker).model_dump(), modules=modules)


@router.delete("/{name}", status_code=204, responses=_ERRORS)
def delete_worker(
    namespace: str, name: str, store: StoreDep, artifacts: ArtifactsDep, caller: CallerDep
) -> Response:
    """Delete the worker, its versions and the artifacts nothing else refers to."""
    require_namespace(caller, namespace)
    try:
        workers.remove(store, namespace, name, artifacts=artifacts)
    except (namespaces.NamespaceNotFound, workers.WorkerNotFound) as exc:
        raise _missing(exc, namespace, name) from None
    return Response(status_code=204)


@router.get("", response_model=WorkerList, responses=_ERRORS)
def list_workers(
    namespace: str,
    store: StoreDep,
    caller: CallerDep,
    tags: Annotated[str | None, Query(description="Filter: a:yes,b:no")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=WORKER_NAME)] = None,
) -> WorkerList:
    """Workers by name, a page at a time, filtered by tags."""
    require_namespace(caller, namespace)
    try:
        items, next_cursor = workers.page(
            store, namespace, tags=tag_filter(tags), limit=limit, after=cursor
        )
    except namespaces.NamespaceNotFound as exc:
        raise _missing(exc, namespace, "") from None
    return WorkerList(workers=[_out(item) for item in items], next_cursor=next_cursor)


@router.delete("", response_model=Deleted, responses=_ERRORS)
def delete_workers(
    namespace: str,
    store: StoreDep,
    artifacts: ArtifactsDep,
    caller: CallerDep,
    tags: Annotated[str, Query(description="Required filter: a:yes,b:no")],
) -> Deleted:
    """Delete every worker that matches the tag filter."""
    require_namespace(caller, namespace)
    wanted = tag_filter(tags)
    if not wanted:
        raise invalid_field("tags", "give a filter such as customer-1:yes")
    try:
        return Deleted(
            deleted=workers.delete_by_tags(store, namespace, wanted, artifacts=artifacts)
        )
    except namespaces.NamespaceNotFound as exc:
        raise _missing(exc, namespace, "") from None


@router.put("/{name}/tags", response_model=WorkerOut, responses=_ERRORS)
def replace_tags(
    namespace: str, name: str, body: TagsIn, store: StoreDep, caller: CallerDep
) -> WorkerOut:
    require_namespace(caller, namespace)
    try:
        return _out(workers.set_tags(store, namespace, name, _check_tags(body.tags)))
    except (namespaces.NamespaceNotFound, workers.WorkerNotFound) as exc:
        raise _missing(exc, namespace, name) from None


@router.get("/{name}/versions", response_model=list[VersionOut], responses=_ERRORS)
def list_versions(
    namespace: str, name: str, store: StoreDep, caller: CallerDep
) -> list[VersionOut]:
    require_namespace(caller, namespace)
    try:
        return [_version_out(v) for v in workers.versions(store, namespace, name)]
    except (namespaces.NamespaceNotFound, workers.WorkerNotFound) as exc:
        raise _missing(exc, namespace, name) from None


@router.post("/{name}/versions/{version_id}/deploy", response_model=WorkerOut, responses=_ERRORS)
def deploy_version(
    namespace: str, name: str, version_id: str, store: StoreDep, caller: CallerDep
) -> WorkerOut:
    """Serve an earlier version again (rollback)."""
    require_namespace(caller, namespace)
    try:
        return _out(workers.deploy(store, namespace, name, version_id))
    except (
        namespaces.NamespaceNotFound,
        workers.WorkerNotFound,
        workers.VersionNotFound,
    ) as exc:
        raise _missing(exc, namespace, name) from None
