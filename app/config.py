"""Service settings: one place, environment variables with the ``SANDLOT_`` prefix.

Nothing below ``app/`` reads the environment; these values are passed down.
Defaults are the embedded, single-machine set-up: local files, no external
services, listening on loopback.
"""

from __future__ import annotations

import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sandbox import Limits, Runtime
from sandbox.egress import IPNetwork, parse_networks

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_DNS_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")
# A browser origin: scheme, host (a name or a bracketed IPv6 address), optional port.
# A replica's name goes into a response header as is.
_REPLICA_NAME = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")


def default_runs_per_worker() -> int:
    """Runs per wasmtime worker process when unset: up to 64, fewer on a small machine.

    A run waiting on a sleep or a fetch holds no CPU, so the bound is memory: one run per
    256 MiB of physical memory (the default per-run cap), shared by one process per core.
    """
    cores = os.cpu_count() or 1
    try:
        memory_mib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        return 1
    return max(1, min(64, memory_mib // 256 // cores))


def default_memory_budget_mb() -> int:
    """The memory the runs in progress may ask for together when unset: physical memory.

    A run's ``memory_mb`` caps what it may really take (the guest's image is shared), so
    this is the most runs can hold at once without the machine running out.
    """
    try:
        return max(64, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20)
    except (ValueError, OSError):
        return 4_096


class Settings(BaseSettings):
    # Errors never echo the input: it may be a key.
    model_config = SettingsConfigDict(
        env_prefix="SANDLOT_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Operations (docs/operations.md): the log's format; who may read GET /metrics (admin:
    # the admin key's holder); namespaces with their own metric labels (later ones count
    # as _other); how long SIGTERM waits for runs in flight before canceling them.
    log_format: Literal["text", "json"] = "text"
    metrics: Literal["off", "admin", "public"] = "admin"
    metrics_max_namespaces: int = Field(default=100, ge=0, le=10_000)
    drain_timeout_ms: int = Field(default=30_000, ge=0, le=3_600_000)
    # After SIGTERM, how long new requests are still served while /readyz already says 503:
    # long enough for a load balancer's health checks to take this replica out.
    drain_delay_ms: int = Field(default=0, ge=0, le=60_000)
    # This replica's name, sent back in X-Sandlot-Replica on every response so a client or
    # a load balancer's log can tell which replica answered (deploy/README.md). Unset: no
    # header.
    replica_name: str | None = None
    # OpenTelemetry traces (docs/operations.md, "Traces"): off (the default; no provider,
    # no middleware), otlp (needs the opentelemetry-exporter-otlp package; the endpoint,
    # headers and sampler come from the standard OTEL_* variables), or console (stdout).
    tracing: Literal["off", "otlp", "console"] = "off"
    tracing_service_name: str = Field(
        default="sandlot",
        min_length=1,
        max_length=256,
        validation_alias=AliasChoices("SANDLOT_TRACING_SERVICE_NAME", "OTEL_SERVICE_NAME"),
    )
    otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        default="http/protobuf",
        validation_alias=AliasChoices(
            "SANDLOT_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    )
    # Live tails of workers (docs/operations.md, "Tail"): open at once per namespace (per
    # process); invocations a slow tail may have queued before new ones are dropped; the
    # heartbeat comment that keeps proxies from closing a quiet tail.
    tail_max_per_namespace: int = Field(default=10, ge=1, le=1_000)
    tail_queue_events: int = Field(default=100, ge=2, le=10_000)
    tail_heartbeat_ms: int = Field(default=15_000, ge=100, le=300_000)
    # Usage per namespace and day (docs/operations.md, "Usage"): how often this process adds
    # what it counted to the database (and once more at shutdown).
    usage_flush_ms: int = Field(default=10_000, ge=100, le=3_600_000)

    data_dir: Path = PROJECT_ROOT / "var"
    # SQLite under data_dir when unset; a postgresql+psycopg:// URL for PostgreSQL.
    database_url: str | None = None
    # The control plane's admin key (Bearer). Unset: the control plane answers 401.
    admin_key: SecretStr | None = None
    # Requests for {worker}.{namespace}.<this domain> dispatch to that worker
    # (point a wildcard DNS record at the service). Unset: path routing and
    # custom hostnames only.
    dispatch_domain: str | None = None
    # The API's own hostnames (comma-separated, e.g. api.example.com): never routed to a
    # worker, and no one can claim them, or names under them, as custom hostnames.
    api_hostnames: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Browser front ends on these origins may call the API (comma-separated, like
    # https://app.example.com; "*" for any). Empty: no CORS headers, as for a same-origin
    # page or a server-side client. Keys travel in the Authorization header, never cookies.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long dispatch may reuse a worker lookup (and, on SQLite, app/auth.py a namespace
    # key's). Writes through this process invalidate it at once; this bounds how late
    # another process's writes are seen.
    dispatch_cache_ms: int = Field(default=1_000, ge=0, le=60_000)
    # Quotas and rate limits are counted here when set (redis://host:port/db), shared by
    # every replica; unset: in this process's memory (one replica's view).
    redis_url: str | None = None
    artifact_dir: Path = PROJECT_ROOT / ".artifacts"
    # Build missing guest artifacts at start-up instead of refusing to start.
    build_on_start: bool = True
    # Encrypts worker secrets at rest: Fernet keys, comma-separated (the first encrypts, all
    # decrypt, for rotation). In development, generated once into <data dir>/secrets-key
    # when unset; required in production.
    secrets_key: SecretStr | None = None
    # Per namespace: versions kept per worker (the newest ones, plus the deployed one),
    # and the artifact storage its versions may use; the admin may override both.
    version_retention: int = Field(default=20, ge=1, le=10_000)
    namespace_storage_mb: int = Field(default=256, ge=1)

    pool_size: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    # Runs each wasmtime worker process takes at once (threads, one instance each): a run
    # waiting on a sleep or a fetch holds no CPU. Total = pool_size x runs_per_worker.
    runs_per_worker: int = Field(default_factory=lambda: default_runs_per_worker(), ge=1, le=256)
    # The sum of memory_mb of the wasmtime runs in progress may not pass this (MiB); the
    # next run waits like one past the slots, then 429 busy naming the memory.
    run_memory_budget_mb: int = Field(
        default_factory=lambda: default_memory_budget_mb(), ge=64, le=16_777_216
    )
    queue_timeout_ms: int = Field(default=2_000, ge=0, le=60_000)
    # Past wall_ms + this, the pool ends a run itself (wall_limit) and retires its process:
    # for guests blocked where the host cannot interrupt them. Runs on a loaded box report
    # their own wall_limit up to ~1 s late (bench/load.py), hence 2 s.
    kill_grace_ms: int = Field(default=2_000, ge=50, le=60_000)
    # Fair shares of the cores (sandbox/engines/fairshare.py): a run past this much CPU
    # (0, the default: never) gets its thread's nice value raised to cpu_heavy_nice, so
    # short runs go first while busy ones finish their cpu_ms later in wall time.
    cpu_heavy_after_ms: int = Field(default=0, ge=0, le=3_600_000)
    cpu_heavy_nice: int = Field(default=10, ge=1, le=19)
    # The guest behind runtime "wasmtime": the data stack (CPython 3.15 with numpy, pandas,
    # matplotlib, scikit-learn, ...), or the CPython 3.14 component (stdlib only).
    wasmtime_guest: Literal["stack", "component"] = "stack"

    # Which engine a request gets when it names none, and the Pyodide engine's pool.
    default_runtime: Runtime = "wasmtime"
    pyodide_enabled: bool = True
    pyodide_runtime_dir: Path = PROJECT_ROOT / "pyodide-runtime"
    pyodide_pool_size: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    pyodide_spares: int = Field(default=1, ge=1, le=8)
    # Whether each namespace's own Deno (its sessions') keeps a restored worker ready for
    # its next session: opens stay fast, at ~125 MiB more per namespace (docs/sessions.md).
    pyodide_tenant_spare: bool = True
    pyodide_memory_backstop_mb: int = Field(default=4096, ge=256)

    # Per-run limits: the default a request gets, and the most it may ask for.
    default_cpu_ms: int = Field(default=5_000, ge=1)
    default_wall_ms: int = Field(default=10_000, ge=1)
    default_memory_mb: int = Field(default=256, ge=64)
    default_output_bytes: int = Field(default=1024 * 1024, ge=1)
    default_subrequests: int = Field(default=50, ge=0)
    max_cpu_ms: int = Field(default=60_000, ge=1)
    max_wall_ms: int = Field(default=120_000, ge=1)
    max_memory_mb: int = Field(default=2_048, ge=64, le=4_096)
    max_output_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    max_subrequests: int = Field(default=1_000, ge=0)
    max_code_bytes: int = Field(default=1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # An event stream's client must take each event (or ping) within this; else it is dropped.
    stream_send_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    # return_files: what may come back of a run's work dir (all files, one file). At most 24 MiB:
    # in base64, with the outputs, that still fits one line of the Pyodide host's protocol (64 MiB).
    return_files_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=24 * 1024 * 1024)
    return_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=24 * 1024 * 1024)
    # A dispatched request's body (anonymous callers may send it to public workers).
    dispatch_max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=0)

    # Sessions (docs/sessions.md): open at once server-wide and per API key; the memory
    # their memory_mb may add up to server-wide; expiry defaults and ceilings; the disk
    # quota of each session's files. Over a server-wide cap, sessions idle at least
    # sessions_shed_idle_s are ended, longest-idle first, to make room.
    sessions_max_open: int = Field(default=200, ge=0)
    sessions_max_per_key: int = Field(default=20, ge=0)
    sessions_memory_mb: int = Field(default=16_384, ge=64)
    sessions_shed_idle_s: int = Field(default=60, ge=0)
    session_idle_timeout_s: int = Field(default=600, ge=1)
    session_max_idle_timeout_s: int = Field(default=86_400, ge=1)
    session_max_lifetime_s: int = Field(default=86_400, ge=1)
    session_disk_mb: int = Field(default=512, ge=1)
    # The most a wasmtime run's working directory and /tmp may hold while it runs (MiB):
    # past it the run is stopped (error, DiskQuotaExceeded). Pyodide runs write to memory.
    run_disk_mb: int = Field(default=512, ge=1)
    session_sweep_ms: int = Field(default=1_000, ge=10, le=60_000)
    # Several replicas on one database (docs/operations.md, Replicas): this replica's
    # internal base URL, where the others proxy calls for its sessions (unset: one
    # process, sessions in its memory only); how often it renews its heartbeat, and how
    # long a silent replica has until it is lost (its sessions then answer 410).
    replica_url: str | None = None
    replica_heartbeat_ms: int = Field(default=1_000, ge=50, le=60_000)
    replica_lost_ms: int = Field(default=5_000, ge=200, le=600_000)

    egress_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    egress_timeout_ms: int = Field(default=10_000, ge=1)
    egress_max_redirects: int = Field(default=5, ge=0, le=20)
    # The only non-public networks (loopback, RFC 1918, link-local and cloud metadata, ...)
    # an allowlist may open, as CIDRs separated by commas (or a JSON list); empty: none.
    # Even then only the admin key, and namespaces the admin allows (private_egress), may.
    egress_private_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()

    # POST /v1/generate's model: any OpenAI-compatible chat-completions server (docs/ai.md).
    # Each falls back to the variable the openai client itself reads; empty means unset.
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SANDLOT_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SANDLOT_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    model: str | None = Field(
        default=None, validation_alias=AliasChoices("SANDLOT_MODEL", "OPENAI_MODEL")
    )
    # The whole answer of one attempt, first token to last.
    model_timeout_ms: int = Field(default=120_000, ge=1_000, le=600_000)
    model_max_tokens: int = Field(default=4_096, ge=256, le=128_000)
    # Attempts per generation (the first answer plus repairs): the default and the most a
    # request may ask for.
    generate_attempts: int = Field(default=3, ge=1)
    max_generate_attempts: int = Field(default=5, ge=1, le=20)
    prompts_dir: Path = PROJECT_ROOT / "prompts"

    @field_validator("openai_base_url", "openai_api_key", "model", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("replica_name", mode="before")
    @classmethod
    def _header_safe(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or None
        if isinstance(value, str) and not _REPLICA_NAME.fullmatch(value):
            raise ValueError(
                "SANDLOT_REPLICA_NAME is 1-128 letters, digits and ._:- (a pod or host "
                "name such as sandlot-7d9f-x2x4k)"
            )
        return value

    @field_validator("egress_private_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    raise ValueError(
                        f"SANDLOT_EGRESS_PRIVATE_NETWORKS is not JSON: {exc}"
                    ) from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            try:
                return parse_networks(value)
            except ValueError as exc:
                raise ValueError(f"SANDLOT_EGRESS_PRIVATE_NETWORKS: {exc}") from None
        return value

    @field_validator("api_hostnames", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower().rstrip(".") for part in value.split(",") if part.strip()]
        return value

    @field_validator("api_hostnames")
    @classmethod
    def _dns_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _DNS_NAME.fullmatch(name):
                raise ValueError(
                    "SANDLOT_API_HOSTNAMES is a comma-separated list of DNS names like "
                    f"api.example.com (got {name!r})"
                )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origin_syntax(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    "SANDLOT_CORS_ORIGINS is a comma-separated list of origins like "
                    f"https://app.example.com or http://localhost:5173, or * (got {origin!r})"
                )
        return value

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for number, key in enumerate(value.get_secret_value().split(","), 1):
            try:
                Fernet(key.strip())
            except ValueError:
                # Never echo the key itself.
                raise ValueError(
                    f"SANDLOT_SECRETS_KEY: key {number} is not a Fernet key (32 bytes, "
                    "url-safe base64); make one with python -c 'from cryptography.fernet "
                    "import Fernet; print(Fernet.generate_key().decode())'"
                ) from None
        return value

    @field_validator("openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(
                "SANDLOT_OPENAI_BASE_URL must be an http:// or https:// URL such as "
                "http://127.0.0.1:11434/v1"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        # Fails at start-up, with the variable to change, instead of at the first request.
        self.default_limits.check_within(self.max_limits)
        if self.dispatch_domain is not None and not _DNS_NAME.fullmatch(self.dispatch_domain):
            raise ValueError(
                "SANDLOT_DISPATCH_DOMAIN must be a lower-case DNS name with at least two "
                f"labels, like workers.example.com (got {self.dispatch_domain!r})"
            )
        if self.default_runtime == "pyodide" and not self.pyodide_enabled:
            raise ValueError(
                "SANDLOT_DEFAULT_RUNTIME is pyodide but SANDLOT_PYODIDE_ENABLED is false"
            )
        if self.session_idle_timeout_s > self.session_max_idle_timeout_s:
            raise ValueError(
                f"SANDLOT_SESSION_IDLE_TIMEOUT_S is {self.session_idle_timeout_s}; "
                f"SANDLOT_SESSION_MAX_IDLE_TIMEOUT_S allows at most "
                f"{self.session_max_idle_timeout_s}"
            )
        if self.replica_url is not None and not re.fullmatch(
            r"https?://[^/?#\s]+/?", self.replica_url
        ):
            raise ValueError(
                "SANDLOT_REPLICA_URL must be a base URL such as http://10.0.0.5:8000 "
                "(scheme, host and port; no path)"
            )
        if self.replica_url is not None and (self.secrets_key is None or self.admin_key is None):
            raise ValueError(
                "SANDLOT_REPLICA_URL is set: set SANDLOT_SECRETS_KEY and SANDLOT_ADMIN_KEY too, "
                "the same on every replica (keys generated per data dir differ between "
                "replicas: one could not open the secrets another sealed)"
            )
        if self.replica_lost_ms < 2 * self.replica_heartbeat_ms:
            raise ValueError(
                f"SANDLOT_REPLICA_LOST_MS is {self.replica_lost_ms}; it must be at least twice "
                f"SANDLOT_REPLICA_HEARTBEAT_MS ({self.replica_heartbeat_ms})"
            )
        if self.generate_attempts > self.max_generate_attempts:
            raise ValueError(
                f"SANDLOT_GENERATE_ATTEMPTS is {self.generate_attempts}; "
                f"SANDLOT_MAX_GENERATE_ATTEMPTS allows at most {self.max_generate_attempts}"
            )
        if self.environment == "production" and (
            self.admin_key is None or len(self.admin_key.get_secret_value()) < 32
        ):
            raise ValueError(
                "SANDLOT_ADMIN_KEY must be set in production, at least 32 random characters"
            )
        if self.environment == "production" and self.secrets_key is None:
            raise ValueError(
                "SANDLOT_SECRETS_KEY must be set in production (worker secrets are encrypted "
                "with it): python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            )
        if self.environment == "production" and self.build_on_start:
            raise ValueError(
                "SANDLOT_BUILD_ON_START must be false in production: build the guest "
                "artifacts at image build time (make build) so start-up never compiles"
            )
        return self

    @cached_property
    def default_limits(self) -> Limits:
        return Limits(
            cpu_ms=self.default_cpu_ms,
            wall_ms=self.default_wall_ms,
            memory_mb=self.default_memory_mb,
            output_bytes=self.default_output_bytes,
            subrequests=self.default_subrequests,
            code_bytes=self.max_code_bytes,
        )

    @cached_property
    def max_limits(self) -> Limits:
        return Limits(
            cpu_ms=self.max_cpu_ms,
            wall_ms=self.max_wall_ms,
            memory_mb=self.max_memory_mb,
            output_bytes=self.max_output_bytes,
            subrequests=self.max_subrequests,
            code_bytes=self.max_code_bytes,
        )

    def missing_model_settings(self) -> list[str]:
        """The settings POST /v1/generate still needs; empty when a model is configured."""
        wanted = {
            "SANDLOT_OPENAI_BASE_URL": self.openai_base_url,
            "SANDLOT_OPENAI_API_KEY": self.openai_api_key,
            "SANDLOT_MODEL": self.model,
        }
        return [name for name, value in wanted.items() if value is None]

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sandlot.db'}"

    @property
    def namespace_storage_bytes(self) -> int:
        return self.namespace_storage_mb * 1024 * 1024

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir / "scratch"
