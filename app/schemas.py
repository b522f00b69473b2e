"""Wire models of the HTTP API (requests and responses)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.ai.generation import GenerationStatus
from sandbox import Runtime, Status


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(_Strict):
    """Per-run limits; each omitted field takes the server default."""

    cpu_ms: int | None = Field(default=None, ge=1, description="Guest CPU time, ms")
    wall_ms: int | None = Field(default=None, ge=1, description="Wall-clock time, ms")
    memory_mb: int | None = Field(default=None, ge=64, description="Guest memory, MiB")
    output_bytes: int | None = Field(
        default=None, ge=1, description="stdout + stderr + outputs, bytes"
    )
    subrequests: int | None = Field(default=None, ge=0, description="Outbound HTTP requests")


class FileIn(_Strict):
    content: str = Field(description="The file's text, or its bytes in base64")
    encoding: Literal["utf-8", "base64"] = Field(
        default="utf-8", description="base64 for binary files"
    )

    def data(self) -> bytes:
        if self.encoding == "utf-8":
            return self.content.encode()
        try:
            return base64.b64decode(self.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"content is not valid base64: {exc}") from exc


class RunIn(_Strict):
    """What one run of code is: the body of /v1/execute without its transport options."""

    code: str = Field(
        description="Python source, run as main.py in a fresh interpreter; if it ends in an "
        "expression, that value comes back as the result. Top-level await works"
    )
    runtime: Runtime | None = Field(
        default=None, description="Engine to run on; the server's default when omitted"
    )
    limits: LimitsIn = Field(default_factory=LimitsIn)
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist: 'host', 'host:port', '*.example.com'",
    )
    stdin: str | None = Field(default=None, description="What input() reads; none means EOF")
    files: dict[str, str | FileIn] = Field(
        default_factory=dict,
        description="Files written to the working directory first: path -> text, "
        "or {content, encoding: 'base64'}",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables: the whole os.environ"
    )
    requirements: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Installed pure-Python packages to load first (pyodide runtime only); "
        "imports of installed packages also load them",
    )
    figure_format: Literal["png", "svg"] = Field(
        default="png",
        description="How matplotlib figures come back in outputs: image/png or image/svg+xml",
    )
    return_files: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Globs over the run's working directory ('*.csv', 'charts/**/*.png'); "
        "the matching files come back in files, within the server's size caps",
    )


class ExecuteRequest(RunIn):
    stream: bool = Field(
        default=False, description="Stream events over SSE (or send Accept: text/event-stream)"
    )


class ResultOut(BaseModel):
    repr: str
    json_value: Any = Field(default=None, alias="json", serialization_alias="json")
    has_json: bool = False
    truncated: bool = False

    model_config = ConfigDict(populate_by_name=True)


class OutputOut(BaseModel):
    """One rich output: a chart, a table, anything sandlot.display() sent."""

    mime_type: str = Field(description="image/png, image/svg+xml, text/html, ...")
    data: str = Field(description="base64 for image/png, image/jpeg, image/gif; text otherwise")


class FileOut(BaseModel):
    """A file of the run's working directory that matched return_files."""

    path: str = Field(description="Relative to the working directory")
    size: int = Field(description="Bytes")
    mime_type: str
    data: str | None = Field(description="The content in base64; null when truncated")
    truncated: bool = Field(
        default=False, description="Over the size caps: listed without its data"
    )


class ErrorOut(BaseModel):
    type: str
    message: str
    traceback: str = ""


class UsageOut(BaseModel):
    cpu_ms: float
    wall_ms: float
    memory_peak_bytes: int
    subrequests: int
    output_bytes: int


class SubrequestOut(BaseModel):
    method: str
    url: str
    status: int | None
    bytes: int
    ms: float
    allowed: bool
    reason: str | None = None


class ExecuteResponse(BaseModel):
    id: str
    engine: str
    status: Status
    stdout: str
    stderr: str
    result: ResultOut | None = None
    error: ErrorOut | None = None
    exit_code: int | None = None
    output_truncated: bool = False
    usage: UsageOut
    subrequests: list[SubrequestOut] = Field(default_factory=list)
    outputs: list[OutputOut] = Field(
        default_factory=list, description="Charts, tables and sandlot.display() outputs, in order"
    )
    files: list[FileOut] = Field(
        default_factory=list, description="The files return_files matched, sorted by path"
    )


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


NAMESPACE_NAME = r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"


class NamespaceIn(_Strict):
    name: str = Field(
        pattern=NAMESPACE_NAME,
        description="1-63 characters: lowercase letters, digits and '-', starting with a "
        "letter and not ending with '-' (it becomes a DNS label in hostname routing)",
    )
    mode: Literal["untrusted", "trusted"] = Field(
        default="untrusted",
        description="untrusted: workers learn nothing of the platform; trusted: may get "
        "request metadata",
    )
    limits: LimitsIn = Field(
        default_factory=LimitsIn,
        description="Defaults and ceilings of this namespace's runs (the server default for "
        "each one left out): its keys and workers may only ask for less",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Egress ceiling: every allowlist of its keys and workers must fall under "
        "these entries (also its workers' default); empty: no egress",
    )
    dispatch_public: bool = Field(
        default=True, description="Dispatch to its workers without an API key"
    )
    custom_hostname_suffixes: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Its keys may claim custom hostnames equal to or under these DNS names "
        "(e.g. shop.example.com); none by default. The admin key can claim any hostname "
        "for it.",
    )
    storage_mb: int | None = Field(
        default=None,
        ge=1,
        le=1_048_576,
        description="Storage quota for its workers' artifacts, MiB "
        "(default: SANDLOT_NAMESPACE_STORAGE_MB)",
    )
    version_retention: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Versions kept per worker: the newest ones and the deployed one "
        "(default: SANDLOT_VERSION_RETENTION)",
    )
    private_egress: bool = Field(
        default=False,
        description="Its keys and workers may list IP literals in the operator's private "
        "networks (SANDLOT_EGRESS_PRIVATE_NETWORKS)",
    )


class NamespacePatch(_Strict):
    """A change to a namespace (admin key): only the fields sent change."""

    mode: Literal["untrusted", "trusted"] | None = Field(default=None)
    limits: LimitsIn | None = Field(
        default=None, description="Replaces the namespace's limits as a whole"
    )
    allowed_hosts: list[str] | None = Field(default=None, max_length=100)
    dispatch_public: bool | None = Field(default=None)
    private_egress: bool | None = Field(default=None)
    custom_hostname_suffixes: list[str] | None = Field(default=None, max_length=100)
    storage_mb: int | None = Field(default=None, ge=1, le=1_048_576)
    version_retention: int | None = Field(default=None, ge=1, le=10_000)


class NamespaceOut(BaseModel):
    name: str
    mode: str
    limits: dict[str, int]
    allowed_hosts: list[str]
    dispatch_public: bool
    private_egress: bool
    created_at: str
    workers: int
    custom_hostname_suffixes: list[str]
    storage_mb: int | None = Field(description="null: the server's default")
    version_retention: int | None = Field(description="null: the server's default")
    storage_bytes: int = Field(description="Bytes of the artifacts its versions refer to")


class NamespaceList(BaseModel):
    namespaces: list[NamespaceOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )


class KeyIn(_Strict):
    label: str = Field(default="", max_length=100, description="What the key is for")


class KeyOut(BaseModel):
    id: str
    namespace: str
    label: str
    created_at: str


class IssuedKey(KeyOut):
    key: str = Field(description="The key itself: shown in this answer only, store it now")


class KeyList(BaseModel):
    keys: list[KeyOut]


WORKER_NAME = NAMESPACE_NAME
TAG = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MODULE_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*\.py$"


class WorkerIn(_Strict):
    modules: dict[str, str] = Field(
        min_length=1,
        max_length=100,
        description="Module path (like 'main.py' or 'lib/util.py') → Python source",
    )
    main_module: str = Field(default="main.py", description="The module defining on_fetch")
    runtime: Runtime | None = Field(
        default=None, description="The server's default runtime when omitted"
    )
    requirements: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Installed pure-Python packages to load first (pyodide runtime only)",
    )
    tags: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="At most 8 labels to find workers by: letters, digits, '.', '_', '-'",
    )
    limits: LimitsIn = Field(
        default_factory=LimitsIn,
        description="Limits of each request's run, within the server's maximums",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist ('host', 'host:port', '*.example.com'); the "
        "namespace's when empty",
    )
    vars: dict[str, str] = Field(default_factory=dict, description="Plain bindings in env")
    secrets: dict[str, str] = Field(
        default_factory=dict, description="Write-only bindings in env: never returned"
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
    modules: dict[str, str] = Field(description="The deployed version's modules")


class Upload(BaseModel):
    worker: WorkerOut
    version: VersionOut
    created: bool = Field(description="The worker did not exist before this upload")
    rebuilt: bool = Field(description="False when identical code was already built")


class WorkerList(BaseModel):
    workers: list[WorkerOut]
    next_cursor: str | None


class TagsIn(_Strict):
    tags: list[str] = Field(max_length=8)


class Deleted(BaseModel):
    deleted: list[str]


class HostnameIn(_Strict):
    worker: str = Field(
        pattern=WORKER_NAME, description="The worker of this namespace the hostname serves"
    )


class HostnameOut(BaseModel):
    hostname: str
    namespace: str
    worker: str
    created_at: str


class HostnameList(BaseModel):
    hostnames: list[HostnameOut]


TASK_CHARS = 20_000


class GenerateRequest(_Strict):
    task: str = Field(
        min_length=1,
        max_length=TASK_CHARS,
        description="What the code should do, in natural language",
    )
    runtime: Runtime | None = Field(
        default=None, description="Engine to run on; the server's default when omitted"
    )
    limits: LimitsIn = Field(default_factory=LimitsIn, description="Limits of every run")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist of every run, as in /v1/execute",
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        description="The first answer plus repairs; SANDLOT_GENERATE_ATTEMPTS when omitted, "
        "at most SANDLOT_MAX_GENERATE_ATTEMPTS",
    )
    namespace: str | None = Field(
        default=None, pattern=NAMESPACE_NAME, description="Deploy as a worker in this namespace"
    )
    worker: str | None = Field(
        default=None, pattern=WORKER_NAME, description="The worker's name (with namespace)"
    )
    stream: bool = Field(
        default=False, description="Stream events over SSE (or send Accept: text/event-stream)"
    )

    @field_validator("task")
    @classmethod
    def _not_blank(cls, task: str) -> str:
        if not task.strip():
            raise ValueError("describe what the code should do")
        return task


class GenerateErrorOut(BaseModel):
    type: str
    message: str


class DeployOut(BaseModel):
    namespace: str
    worker: str
    version: str | None = Field(description="The version deployed; null when the build failed")
    status: int | None = Field(description="The HTTP status GET / answered; null if no version")
    error: GenerateErrorOut | None = None


class GenerateAttemptOut(BaseModel):
    attempt: int
    kind: Literal["generate", "repair"]
    answer: str = Field(description="The model's whole answer")
    code: str | None = Field(description="The code extracted from it; null when none")
    run: ExecuteResponse | None = Field(description="The code's run (worker mode: GET /)")
    deploy: DeployOut | None = None


class GenerateResponse(BaseModel):
    status: GenerationStatus
    code: str | None = Field(description="The last code extracted; null when there was none")
    attempts: int
    run_status: Status | None
    error: GenerateErrorOut | None
    prompt_version: str = Field(description="name@version of every prompt template used")
    history: list[GenerateAttemptOut]


# Tools for AI agents (app/tools.py): each tool's arguments are a request model
# of the API, plus the path parameters it needs.


class _WorkerAt(_Strict):
    namespace: str = Field(
        pattern=NAMESPACE_NAME, description="The namespace that holds the worker, like 'acme'"
    )
    worker: str = Field(
        pattern=WORKER_NAME,
        description="The worker's name: lowercase letters, digits and '-', like 'hello-api'",
    )


class DeployWorkerIn(WorkerIn, _WorkerAt):
    """Arguments of the deploy_worker tool: PUT /v1/namespaces/{namespace}/workers/{worker}."""


class InvokeWorkerIn(_WorkerAt):
    """Arguments of the invoke_worker tool: one request to /dispatch/{namespace}/{worker}/..."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        default="GET", description="HTTP method"
    )
    path: str = Field(
        default="/",
        max_length=4096,
        pattern=r"^[^\s#]*$",
        description="Path and query string the worker sees, like '/items/1?sort=asc'",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers")
    body: str | None = Field(
        default=None,
        max_length=10 * 1024 * 1024,
        description="Request body as text (for JSON, a JSON string plus a content-type "
        "header of application/json)",
    )
    limits: LimitsIn = Field(
        default_factory=LimitsIn,
        description="Per-call limits: these can only lower the worker's own",
    )


class ToolFunction(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="The arguments' JSON Schema")


class ToolOut(BaseModel):
    """A tool in OpenAI's function-calling format."""

    type: Literal["function"] = "function"
    function: ToolFunction


class ToolCallOut(BaseModel):
    tool: str
    is_error: bool = Field(
        description="The call was refused (bad arguments, unknown worker, busy server); "
        "code that ran and failed is not an error: its status says so"
    )
    text: str = Field(description="The outcome rendered for a model to read")
    result: dict[str, Any] = Field(
        description="The outcome as JSON: the endpoint's answer, or {error, status}"
    )
