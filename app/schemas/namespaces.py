"""Namespaces and their API keys: /v1/namespaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.common import Flag, LimitsIn, NonEmpty, _Strict

NAMESPACE_NAME = r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"


class QuotasIn(_Strict):
    """Rate limits and quotas (admin key); each one left out or null: none."""

    requests_per_second: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Requests that run code (runs, worker calls, session creations and "
        "turns, tool calls that run code) per second",
    )
    concurrent_runs: int | None = Field(
        default=None, ge=1, le=100_000, description="Runs in flight at once (session turns too)"
    )
    cpu_ms_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="CPU milliseconds its runs may use per clock minute (their usage.cpu_ms); "
        "once spent, runs wait for the next minute",
    )
    sessions: int | None = Field(
        default=None, ge=1, le=100_000, description="Sessions open at once"
    )

    def stored(self) -> dict[str, int]:
        """The quotas set, as stored."""
        return self.model_dump(exclude_none=True)


class QuotasOut(BaseModel):
    """The quotas set; a name left out has no quota."""

    requests_per_second: int | None = None
    concurrent_runs: int | None = None
    cpu_ms_per_minute: int | None = None
    sessions: int | None = None


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
    allowed_hosts: list[NonEmpty] = Field(
        default_factory=list,
        max_length=100,
        description="Egress ceiling: every allowlist of its keys and workers must fall under "
        "these entries (also its workers' default); empty: no egress",
    )
    dispatch_public: Flag = Field(
        default=True, description="Dispatch to its workers without an API key"
    )
    custom_hostname_suffixes: list[NonEmpty] = Field(
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
    private_egress: Flag = Field(
        default=False,
        description="Its keys and workers may list IP literals in the operator's private "
        "networks (SANDLOT_EGRESS_PRIVATE_NETWORKS)",
    )
    quotas: QuotasIn = Field(
        default_factory=QuotasIn,
        description="Rate limits and quotas of all its keys and workers together; none by "
        "default (429 with Retry-After once one is reached)",
    )


class NamespacePatch(_Strict):
    """A change to a namespace (admin key): only the fields sent change."""

    mode: Literal["untrusted", "trusted"] | None = Field(default=None)
    limits: LimitsIn | None = Field(
        default=None, description="Replaces the namespace's limits as a whole"
    )
    allowed_hosts: list[NonEmpty] | None = Field(default=None, max_length=100)
    dispatch_public: Flag | None = Field(default=None)
    private_egress: Flag | None = Field(default=None)
    custom_hostname_suffixes: list[NonEmpty] | None = Field(default=None, max_length=100)
    storage_mb: int | None = Field(default=None, ge=1, le=1_048_576)
    version_retention: int | None = Field(default=None, ge=1, le=10_000)
    quotas: QuotasIn | None = Field(
        default=None, description="Replaces the namespace's quotas as a whole ({}: none)"
    )


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
    quotas: QuotasOut = Field(description="Its rate limits and quotas; those left out: none")


class NamespaceList(BaseModel):
    namespaces: list[NamespaceOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )


class KeyIn(_Strict):
    label: str = Field(default="", max_length=100, description="What the key is for")
    quotas: QuotasIn = Field(
        default_factory=QuotasIn,
        description="This key's own rate limits and quotas, counted besides its namespace's",
    )


class KeyPatch(_Strict):
    """A change to a key (admin key): only the fields sent change."""

    label: str | None = Field(default=None, max_length=100)
    quotas: QuotasIn | None = Field(
        default=None, description="Replaces the key's quotas as a whole ({}: none)"
    )


class KeyOut(BaseModel):
    id: str
    namespace: str
    label: str
    created_at: str
    quotas: QuotasOut


class IssuedKey(KeyOut):
    key: str = Field(description="The key itself: shown in this answer only, store it now")


class KeyList(BaseModel):
    keys: list[KeyOut]
