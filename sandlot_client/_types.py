"""The control plane's objects as frozen dataclasses (docs/api.md, docs/workers.md).

Each has ``from_json``, which reads the API's JSON object and ignores fields this
client does not know yet, so a newer server does not break an older client. The one
exception is ``Tool``: it is a plain dict because its purpose is to be handed as is to
a model's API (OpenAI's ``tools=``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self, TypedDict

__all__ = [
    "ApiKey",
    "Deployment",
    "Hostname",
    "Namespace",
    "Tool",
    "Version",
    "Worker",
]


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass(frozen=True, slots=True)
class Namespace:
    """A dispatch namespace: its policy (limits and allowed_hosts are ceilings) and use."""

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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A namespace's key. ``key`` (``sk_...``) is set only in the answer that issued it."""

    id: str
    namespace: str
    label: str
    created_at: str
    key: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class Version:
    """One built version of a worker's code. ``deployed`` is known in version lists only
    (None elsewhere)."""

    id: str
    number: int
    sha256: str
    main_module: str
    requirements: list[str]
    artifact_bytes: int
    build_ms: float
    warnings: list[str]
    created_at: str
    deployed: bool | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class Worker:
    """A user worker. ``secrets`` are names only; ``modules`` (path → source of the deployed
    version) is filled by ``get_worker`` only (None in lists)."""

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
    modules: dict[str, str] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        known = _known(cls, data)
        version = data.get("version")
        known["version"] = Version.from_json(version) if version else None
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Deployment:
    """An upload's answer: the worker as stored and the version just built and deployed."""

    worker: Worker
    version: Version
    created: bool  # the worker did not exist before
    rebuilt: bool  # False when this namespace had already built identical code

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            worker=Worker.from_json(data["worker"]),
            version=Version.from_json(data["version"]),
            created=bool(data["created"]),
            rebuilt=bool(data["rebuilt"]),
        )


@dataclass(frozen=True, slots=True)
class Hostname:
    """A custom hostname routed to a worker of a namespace."""

    hostname: str
    namespace: str
    worker: str
    created_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**_known(cls, data))


class ToolFunction(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]


class Tool(TypedDict):
    """A tool in OpenAI's function-calling format: pass a list of them as ``tools=``."""

    type: str
    function: ToolFunction
