"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready; the body says why"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when every engine is loaded and has at least one worker that can take a job,
    and the service is not shutting down (status ``draining``)."""
    runners = getattr(request.app.state, "runners", {})
    engines = {
        name: {"ready": runner.ready, "workers": getattr(runner, "size", None)}
        for name, runner in runners.items()
    }
    ready = bool(engines) and all(e["ready"] for e in engines.values())
    drain = getattr(request.app.state, "drain", None)
    draining = drain is not None and drain.draining
    status = "draining" if draining else "ready" if ready else "not_ready"
    ready = ready and not draining
    return JSONResponse(
        {"status": status, "engines": engines},
        status_code=200 if ready else 503,
    )
