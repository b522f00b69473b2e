"""The FastAPI application: create_app() wires settings, the sandbox runner and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import errors
from app.config import Settings
from app.limits_middleware import BodySizeLimit
from app.routes import execute, health
from sandbox.engines import wasmtime as wasmtime_engine

log = logging.getLogger("sandlot")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        artifacts = wasmtime_engine.locate(settings.artifact_dir)
        if settings.build_on_start:
            # Quick when already built (a hash of the guest sources).
            artifacts = await asyncio.to_thread(wasmtime_engine.build, settings.artifact_dir)
        runner = wasmtime_engine.create_runner(
            artifacts,
            size=settings.pool_size,
            scratch_dir=settings.scratch_dir,
            fuel_per_ms=settings.fuel_per_ms,
            queue_timeout_ms=settings.queue_timeout_ms,
            kill_grace_ms=settings.kill_grace_ms,
        )
        await runner.start()
        app.state.runner = runner
        log.info("sandlot ready: %s engine, %d workers", runner.name, settings.pool_size)
        try:
            yield
        finally:
            await runner.close()

    app = FastAPI(
        title="Sandlot",
        summary="Run untrusted, AI-generated Python in WebAssembly sandboxes",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(execute.router)
    return app
