"""Custom hostnames: /v1/namespaces/{ns}/hostnames."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.schemas.common import _Strict
from app.schemas.workers import WORKER_NAME


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
