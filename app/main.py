"""The FastAPI application: create_app() wires settings, the sandbox runner and routes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from app import errors, openapi
from app.ai import ModelClient, ModelConfig, Prompts
from app.auth import KeyBeforeBody, admin_key_for, secrets_key_for
from app.bundles import BundleCache
from app.bus import Bus, LocalBus
from app.config import Settings
from app.draining import Drain, DrainGate
from app.host_header import OneHost
from app.hostnames import HostRouting
from app.invalidation import follow
from app.limits_middleware import BodySizeLimit
from app.mcp_server import PATH as MCP_PATH
from app.mcp_server import McpEndpoint, serve_mcp
from app.metrics import Metrics
from app.quotas import LocalCounters, QuotaGate, RedisCounters
from app.replicas import Replica
from app.request_context import RequestIds
from app.routes import (
    apidocs,
    dispatch,
    execute,
    generate,
    health,
    hostnames,
    metrics,
    namespaces,
    playground,
    secrets,
    sessions,
    tail,
    tools,
    usage,
    workers,
)
from app.session_proxy import SessionProxy
from app.sessions import SessionManager
from app.store import ArtifactCache, ArtifactStore, ReadCache, SecretBox, Store, blobs, migrate
from app.tail import TailHub
from app.tracing import RouteNames, ServerSpans, Tracing
from app.usage import UsageMeter
from sandbox import Runner
from sandbox.engines import pyodide as pyodide_engine
from sandbox.engines import stack as stack_engine
from sandbox.engines import wasmtime as wasmtime_engine
from sandbox.engines.fairshare import Demotion

log = logging.getLogger("sandlot")


# What a worker process inherits: enough to run Python, nothing of the
# service's own settings or secrets.
_WORKER_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")


def worker_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _WORKER_ENV_NAMES if name in os.environ}


async def _wasmtime_runner(settings: Settings) -> Runner:
    if settings.wasmtime_guest == "stack":
        return await _stack_runner(settings)
    artifacts = wasmtime_engine.locate(settings.artifact_dir)
    if settings.build_on_start:
        # Quick when already built (a hash of the guest sources).
        artifacts = await asyncio.to_thread(wasmtime_engine.build, settings.artifact_dir)
    return wasmtime_engine.create_runner(
        artifacts,
        size=settings.pool_size,
        scratch_dir=settings.scratch_dir,
        queue_timeout_ms=settings.queue_timeout_ms,
        kill_grace_ms=settings.kill_grace_ms,
        env=worker_environment(),
        runs_per_worker=settings.runs_per_worker,
        demotion=Demotion(settings.cpu_heavy_after_ms, settings.cpu_heavy_nice),
        memory_budget_mb=settings.run_memory_budget_mb,
        run_disk_mb=settings.run_disk_mb,
    )


async def _stack_runner(settings: Settings) -> Runner:
    if settings.build_on_start:
        # Quick when already built; about two minutes the first time.
        stack = await asyncio.to_thread(stack_engine.build, settings.artifact_dir)
    else:
        stack = stack_engine.locate(settings.artifact_dir)
    return stack_engine.create_runner(
        stack,
        size=settings.pool_size,
        scratch_dir=settings.scratch_dir,
        queue_timeout_ms=settings.queue_timeout_ms,
        kill_grace_ms=settings.kill_grace_ms,
        env=worker_environment(),
        runs_per_worker=settings.runs_per_worker,
        demotion=Demotion(settings.cpu_heavy_after_ms, settings.cpu_heavy_nice),
        memory_budget_mb=settings.run_memory_budget_mb,
        session_disk_mb=settings.session_disk_mb,
        run_disk_mb=settings.run_disk_mb,
    )


async def _pyodide_runner(settings: Settings) -> Runner:
    runtime_dir = settings.pyodide_runtime_dir
    if settings.build_on_start:
        artifacts = await asyncio.to_thread(
            pyodide_engine.build, settings.artifact_dir, runtime_dir
        )
    else:
        artifacts = pyodide_engine.locate(settings.artifact_dir, runtime_dir)
    return pyodide_engine.create_runner(
        artifacts,
        size=settings.pyodide_pool_size,
        scratch_dir=settings.scratch_dir,
        deno_dir=settings.data_dir / "deno",
        spares=settings.pyodide_spares,
        tenant_spare=settings.pyodide_tenant_spare,
        queue_timeout_ms=settings.queue_timeout_ms,
        memory_backstop_mb=settings.pyodide_memory_backstop_mb,
        session_disk_mb=settings.session_disk_mb,
        env=worker_environment(),
    )


def model_client(settings: Settings) -> ModelClient | None:
    """The client of POST /v1/generate's model; None (the route answers 503) when unset."""
    if settings.missing_model_settings():
        return None
    if settings.openai_base_url is None or settings.openai_api_key is None or not settings.model:
        raise RuntimeError("missing_model_settings() and the settings disagree")
    return ModelClient(
        ModelConfig(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.model,
            timeout_ms=settings.model_timeout_ms,
            max_tokens=settings.model_max_tokens,
        )
    )


def create_app(
    settings: Settings | None = None, *, span_exporter: SpanExporter | None = None
) -> FastAPI:
    """The service. ``span_exporter``: where spans go when tracing is on, instead of
    the setting's exporter (tests)."""
    settings = settings or Settings()
    tracing = Tracing(settings, exporter=span_exporter) if settings.tracing != "off" else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runners: dict[str, Runner] = {}
        app.state.runners = runners
        if tracing is not None:
            # First: a missing OTLP exporter stops start-up here, naming the package.
            tracing.start()
        # A broken template stops start-up here, naming the file, not at the first request.
        app.state.prompts = Prompts.load(settings.prompts_dir)
        # The data dir holds the database, keys and tenants' code: this user's only.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings.data_dir.chmod(0o700)
        app.state.admin_key = admin_key_for(settings)
        secret_box = SecretBox.from_setting(secrets_key_for(settings).get_secret_value())
        store = Store(settings.database, secrets=secret_box)
        app.state.store = store
        artifact_dir = settings.data_dir / "artifacts"
        app.state.artifacts = ArtifactStore(store, ArtifactCache(artifact_dir))
        app.state.bundles = BundleCache(app.state.artifacts)
        app.state.targets = ReadCache(
            store,
            settings.dispatch_cache_ms,
            tables=("namespaces", "workers", "worker_versions"),
        )
        app.state.hostname_routes = ReadCache(
            store, settings.dispatch_cache_ms, tables=("namespaces", "hostnames")
        )
        # How replicas tell each other what changed (app/bus.py).
        bus = Bus.for_database(settings.database)
        app.state.bus = bus
        # Namespace keys with their namespaces' policies, by the key's digest (app/auth.py):
        # looked up on every request made with one. Kept only where this process is the
        # only one writing (a write here makes an entry stale at once): with replicas, a key
        # revoked on one must be refused by the others at once, before the bus could say so.
        app.state.key_holders = ReadCache(
            store,
            settings.dispatch_cache_ms if isinstance(bus, LocalBus) else 0,
            tables=("namespaces", "api_keys"),
        )
        store.on_notify = bus.publish_threadsafe
        app.state.model = model_client(settings)
        app.state.quotas = QuotaGate(
            RedisCounters(settings.redis_url) if settings.redis_url else LocalCounters()
        )
        app.state.usage = UsageMeter(store, flush_ms=settings.usage_flush_ms)
        if app.state.model is not None:
            log.info("generate: model %r at %s", settings.model, app.state.model.config.origin)
        try:
            await asyncio.to_thread(migrate, store, artifact_dir)
            await asyncio.to_thread(blobs.sweep, store, app.state.artifacts)
            await bus.start()
            await follow(
                bus,
                [app.state.targets, app.state.hostname_routes, app.state.key_holders],
                app.state.artifacts,
                app.state.bundles,
            )
            # Tails see invocations from every replica through the bus.
            await app.state.tails.connect(bus)
            app.state.usage.start()
            # Once requests are done at shutdown: what this process counted is stored.
            app.state.drain.on_drained(app.state.usage.flush)
            made = [_wasmtime_runner(settings)]
            if settings.pyodide_enabled:
                made.append(_pyodide_runner(settings))
            for runner in await asyncio.gather(*made):
                runners[runner.name] = runner
            await asyncio.gather(*(runner.start() for runner in runners.values()))
            replica = Replica.of(settings, store)
            app.state.replica = replica
            if replica is not None:
                await replica.start()
            app.state.sessions = SessionManager(
                settings, runners, app.state.quotas, replica, app.state.usage
            )
            await app.state.sessions.start()
            if replica is not None:
                app.state.session_proxy = SessionProxy(
                    app.state.sessions, replica, settings.max_wall_ms
                )
            app.state.drain.on_drained(lambda: app.state.sessions.end_all("shutdown"))
            async with serve_mcp(app):
                log.info("sandlot ready: engines %s", ", ".join(runners))
                yield
        finally:
            if getattr(app.state, "sessions", None) is not None:
                await app.state.sessions.close()
            if getattr(app.state, "session_proxy", None) is not None:
                await app.state.session_proxy.close()
            if getattr(app.state, "replica", None) is not None:
                await app.state.replica.close()
            await asyncio.gather(*(runner.close() for runner in runners.values()))
            if app.state.model is not None:
                await app.state.model.close()
            await app.state.quotas.close()
            await app.state.tails.disconnect()
            await bus.close()
            await app.state.usage.close()
            store.close()
            if tracing is not None:
                # Last: the spans of shutdown itself are exported too.
                await tracing.close()

    app = FastAPI(
        title="Sandlot",
        summary="Run untrusted, AI-generated Python in WebAssembly sandboxes",
        version="0.1.0",
        lifespan=lifespan,
        # /docs and /redoc are served from this service's own files (app/routes/apidocs.py).
        docs_url=None,
        redoc_url=None,
        # FastAPI's own telemetry traces through the global provider and records query
        # strings and validation errors with the request's values: never on. Ours is
        # app/tracing.py, with its own provider.
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
    )
    app.state.settings = settings
    app.state.tracing = tracing
    app.state.drain = Drain(settings.drain_timeout_ms, delay_ms=settings.drain_delay_ms)
    app.state.tails = TailHub(
        max_per_namespace=settings.tail_max_per_namespace, queue_size=settings.tail_queue_events
    )
    app.state.metrics = Metrics(max_namespaces=settings.metrics_max_namespaces)
    app.state.metrics.watch_bus(lambda: getattr(app.state, "bus", None))
    app.state.metrics.watch_tails(
        lambda: app.state.tails.open_total, lambda: app.state.tails.dropped_total
    )
    app.state.metrics.watch(
        lambda: getattr(app.state, "runners", {}),
        lambda: app.state.sessions.open_count if getattr(app.state, "sessions", None) else 0,
    )
    # Outermost last. OneHost refuses requests naming two hosts before HostRouting reads
    # Host; HostRouting turns worker hostnames into /dispatch/ paths before the body cap
    # and the key check look at the path; the key is checked before the body is read.
    if tracing is not None:
        # Innermost: it sees the scope the router fills in (the matched route).
        app.add_middleware(RouteNames)
    app.add_middleware(KeyBeforeBody)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        dispatch_max_bytes=settings.dispatch_max_body_bytes,
    )
    app.add_middleware(
        HostRouting,
        dispatch_domain=settings.dispatch_domain,
        api_hostnames=settings.api_hostnames,
    )
    app.add_middleware(OneHost)
    # While draining (SIGTERM), new requests get 503 before anything else reads them.
    app.add_middleware(DrainGate, drain=app.state.drain, on_refused=app.state.metrics.refused.inc)
    if settings.cors_origins:
        # Outside the key check: a preflight carries no key, so it is answered first.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type", "x-sandlot-limits"],
            expose_headers=[
                "retry-after",
                "x-sandlot-outcome",
                "x-request-id",
                "x-sandlot-replica",
            ],
            max_age=600,
        )
    if tracing is not None:
        # Inside RequestIds (the span carries the request id), outside the rest: refusals
        # (503 draining, 401, 413) have their span too.
        app.add_middleware(ServerSpans, tracing=tracing)
    # Outermost of all: every response, refusals included, carries X-Request-Id (and
    # X-Sandlot-Replica when this replica has a name).
    app.add_middleware(RequestIds, replica=settings.replica_name)
    errors.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(execute.router)
    app.include_router(sessions.router)
    app.include_router(namespaces.router)
    app.include_router(workers.router)
    app.include_router(tail.router)
    app.include_router(usage.router)
    app.include_router(secrets.router)
    app.include_router(hostnames.router)
    app.include_router(dispatch.router)
    app.include_router(generate.router)
    app.include_router(tools.router)
    app.include_router(playground.router())
    app.include_router(apidocs.router())
    # A plain ASGI app (the MCP transport answers POST, GET and DELETE itself).
    app.router.routes.append(Route(MCP_PATH, McpEndpoint(), include_in_schema=False))
    return app
