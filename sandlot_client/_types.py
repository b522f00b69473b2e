"""The JSON objects of the control plane, as TypedDicts (docs/api.md, docs/workers.md)."""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["ApiKey", "Deployment", "Namespace", "Tool", "Version", "Worker"]


class Namespace(TypedDict):
    name: str
    mode: str
    limits: dict[str, int]
    allowed_hosts: list[str]
    dispatch_public: bool
    private_egress: bool
    created_at: str
    workers: int
    custom_hostname_suffixes: list[str]
    storage_mb: int | None
    version_retention: int | None
    storage_bytes: int


class ApiKey(TypedDict):
    id: str
    namespace: str
    label: str
    created_at: str
    key: str


class Version(TypedDict):
    id: str
    number: int
    sha256: str
    main_module: str
    requirements: list[str]
    artifact_bytes: int
    build_ms: float
    warnings: list[str]
    created_at: str


class Worker(TypedDict):
    namespace: str
    name: str
    runtime: str
    tags: list[str]
    limits: dict[str, int]
    allowed_hosts: list[str]
    vars: dict[str, str]
    secrets: list[str]
    version: Version | None
    created_at: str
    updated_at: str


class Deployment(TypedDict):
    worker: Worker
    version: Version
    created: bool
    rebuilt: bool


class ToolFunction(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]


class Tool(TypedDict):
    """A tool in OpenAI's function-calling format: pass a list of them as ``tools=``."""

    type: str
    function: ToolFunction
