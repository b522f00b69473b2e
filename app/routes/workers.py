"""/v1/namespaces/{ns}/workers: upload (build → new version → deploy), read, tags, versions.

Handlers only: the upload's work is app/uploads.py's, its body app/routes/worker_bodies.py's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.auth import CallerDep, require_namespace
from app.bundles import read_modules
from app.deps import ArtifactsDep, ServicesDep, StoreDep
from app.errors import CONTROL_PLANE_ERRORS, invalid_field
from app.routes.worker_bodies import UploadBody, upload_body_openapi
from app.schemas import (
    TAG_FILTER,
    WORKER_NAME,
    Deleted,
    ErrorResponse,
    TagsIn,
    Upload,
    VersionItem,
    VersionList,
    WorkerDetail,
    WorkerList,
    WorkerOut,
)
from app.store import workers
from app.uploads import check_tags, deploy_worker, tag_filter, version_out, worker_out

router = APIRouter(prefix="/v1/namespaces/{namespace}/workers", tags=["workers"])

_ERRORS = CONTROL_PLANE_ERRORS
WorkerName = Annotated[str, Path(pattern=WORKER_NAME)]


@router.put(
    "/{name}",
    response_model=Upload,
    responses={
        **_ERRORS,
        413: {"model": ErrorResponse, "description": "Over the namespace's storage quota"},
        415: {"model": ErrorResponse, "description": "Neither JSON nor multipart"},
        422: {"model": ErrorResponse, "description": "Invalid or no build"},
    },
    openapi_extra={"requestBody": upload_body_openapi()},
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


@router.get("/{name}", response_model=WorkerDetail, responses=_ERRORS)
def get_worker(
    namespace: str, name: str, store: StoreDep, artifacts: ArtifactsDep, caller: CallerDep
) -> WorkerDetail:
    """The worker, its deployed version and that version's modules (never secrets)."""
    require_namespace(caller, namespace)
    worker = workers.get(store, namespace, name)
    modules = read_modules(artifacts.get(worker.current.sha256)) if worker.current else {}
    return WorkerDetail(**worker_out(worker).model_dump(), modules=modules)


@router.delete("/{name}", status_code=204, responses=_ERRORS)
def delete_worker(
    namespace: str, name: str, store: StoreDep, artifacts: ArtifactsDep, caller: CallerDep
) -> Response:
    """Delete the worker, its versions and the artifacts nothing else refers to."""
    require_namespace(caller, namespace)
    workers.remove(store, namespace, name, artifacts=artifacts)
    return Response(status_code=204)


@router.get("", response_model=WorkerList, responses=_ERRORS)
def list_workers(
    namespace: str,
    store: StoreDep,
    caller: CallerDep,
    tags: Annotated[str | None, Query(pattern=TAG_FILTER, description="Filter: a:yes,b:no")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=WORKER_NAME)] = None,
) -> WorkerList:
    """Workers by name, a page at a time, filtered by tags."""
    require_namespace(caller, namespace)
    items, next_cursor = workers.page(
        store, namespace, tags=tag_filter(tags), limit=limit, after=cursor
    )
    return WorkerList(workers=[worker_out(item) for item in items], next_cursor=next_cursor)


@router.delete("", response_model=Deleted, responses=_ERRORS)
def delete_workers(
    namespace: str,
    store: StoreDep,
    artifacts: ArtifactsDep,
    caller: CallerDep,
    tags: Annotated[
        str, Query(pattern=TAG_FILTER, min_length=1, description="Required filter: a:yes,b:no")
    ],
) -> Deleted:
    """Delete every worker that matches the tag filter."""
    require_namespace(caller, namespace)
    wanted = tag_filter(tags)
    if not wanted:
        raise invalid_field("tags", "give a filter such as customer-1:yes")
    return Deleted(deleted=workers.delete_by_tags(store, namespace, wanted, artifacts=artifacts))


@router.put("/{name}/tags", response_model=WorkerOut, responses=_ERRORS)
def replace_tags(
    namespace: str, name: str, body: TagsIn, store: StoreDep, caller: CallerDep
) -> WorkerOut:
    require_namespace(caller, namespace)
    return worker_out(workers.set_tags(store, namespace, name, check_tags(body.tags)))


@router.get("/{name}/versions", response_model=VersionList, responses=_ERRORS)
def list_versions(namespace: str, name: str, store: StoreDep, caller: CallerDep) -> VersionList:
    """Every version kept, oldest first; ``deployed`` names the one that serves."""
    require_namespace(caller, namespace)
    found = workers.history(store, namespace, name)
    return VersionList(
        versions=[
            VersionItem(**version_out(v).model_dump(), deployed=v.id == found.deployed)
            for v in found.versions
        ],
        deployed=found.deployed,
    )


@router.post("/{name}/versions/{version_id}/deploy", response_model=WorkerOut, responses=_ERRORS)
def deploy_version(
    namespace: str,
    name: str,
    version_id: Annotated[str, Path(description="The version's id (ver_...) or its number (3)")],
    store: StoreDep,
    caller: CallerDep,
) -> WorkerOut:
    """Serve an earlier version again (rollback); the worker's vars and secrets stay."""
    require_namespace(caller, namespace)
    return worker_out(workers.deploy(store, namespace, name, version_id))
