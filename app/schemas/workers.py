"""Workers, their versions and tags: /v1/namespaces/{ns}/workers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from app.schemas.common import LimitsIn, NonEmpty, _Strict
from app.schemas.namespaces import NAMESPACE_NAME
from sandbox import Runtime

WORKER_NAME = NAMESPACE_NAME
TAG = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MODULE_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*\.py$"
# A tag filter: tag:yes or tag:no, comma-separated (GET and DELETE .../workers?tags=).
_TAG_TEST = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}:(yes|no)"
TAG_FILTER = rf"^(,*{_TAG_TEST})*,*$"

Tag = Annotated[str, Field(pattern=TAG)]
ModulePath = Annotated[str, Field(pattern=MODULE_PATH)]


class WorkerIn(_Strict):
    modules: dict[ModulePath, str] = Field(
        min_length=1,
        max_length=100,
        description="Module path (like 'main.py' or 'lib/util.py') → Python source",
    )
    main_module: str = Field(
        default="main.py",
        pattern=MODULE_PATH,
        description="The module defining on_fetch; one of the modules",
    )
    runtime: Runtime | None = Field(
        default=None, description="The server's default runtime when omitted"
    )
    requirements: list[NonEmpty] = Field(
        default_factory=list,
        max_length=50,
        description="Installed pure-Python packages to load first (pyodide runtime only)",
    )
    tags: list[Tag] = Field(
        default_factory=list,
        max_length=8,
        description="At most 8 labels to find workers by: letters, digits, '.', '_', '-'",
    )
    limits: LimitsIn = Field(
        default_factory=LimitsIn,
        description="Limits of each request's run, within the server's maximums",
    )
    allowed_hosts: list[NonEmpty] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist ('host', 'host:port', '*.example.com'); the "
        "namespace's when empty",
    )
    vars: dict[str, str] | None = Field(
        default=None,
        description="Plain bindings in env. Omitted: the worker keeps the ones it has; "
        "sent: they replace them all ({} clears them)",
    )
    secrets: dict[str, str] | None = Field(
        default=None,
        description="Write-only bindings in env, never returned. Omitted: the worker keeps "
        "the ones it has; sent: they replace them all ({} clears them). One at a time: "
        "PUT .../secrets/{name}",
    )


class VersionOut(BaseModel):
    id: str
    number: int
    sha256: str
    main_module: str
    requirements: list[str]
    artifact_bytes: int
    build_ms: float
    warnings: list[str]
    created_at: str


class WorkerOut(BaseModel):
    namespace: str
    name: str
    runtime: str
    tags: list[str]
    limits: dict[str, int]
    allowed_hosts: list[str]
    vars: dict[str, str]
    secrets: list[str] = Field(description="Names only: values are never returned")
    version: VersionOut | None
    created_at: str
    updated_at: str


class WorkerDetail(WorkerOut):
    modules: dict[ModulePath, str] = Field(description="The deployed version's modules")


class Upload(BaseModel):
    worker: WorkerOut
    version: VersionOut
    created: bool = Field(description="The worker did not exist before this upload")
    rebuilt: bool = Field(description="False when identical code was already built")


class WorkerList(BaseModel):
    workers: list[WorkerOut]
    next_cursor: str | None


class TagsIn(_Strict):
    tags: list[Tag] = Field(max_length=8)


class Deleted(BaseModel):
    deleted: list[str]


class VersionItem(VersionOut):
    deployed: bool = Field(description="This version serves the worker's requests")


class VersionList(BaseModel):
    versions: list[VersionItem] = Field(description="Oldest first")
    deployed: str | None = Field(description="The id of the version that serves")


class SecretIn(_Strict):
    value: str = Field(description="The secret's value: write-only, sealed at rest")


class SecretOut(BaseModel):
    name: str
    created: bool = Field(description="The worker had no secret of this name before")


class SecretList(BaseModel):
    secrets: list[str] = Field(description="Names only: values are never returned")
