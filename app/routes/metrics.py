"""GET /metrics: the service's Prometheus metrics (app/metrics.py).

Who may read them is SANDLOT_METRICS: ``admin`` (the default: the admin key),
``public`` (anyone who reaches the port), ``off`` (404).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import authenticate
from app.errors import ApiError
from app.metrics import Metrics
from app.schemas import ErrorResponse

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
        401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
        403: {"model": ErrorResponse, "description": "A namespace key: metrics need the admin key"},
        404: {"model": ErrorResponse, "description": "Metrics are off (SANDLOT_METRICS=off)"},
    },
)
async def metrics(request: Request) -> Response:
    """Runs, pools, egress, dispatches and sessions, in Prometheus text format."""
    access = request.app.state.settings.metrics
    if access == "off":
        raise ApiError(404, "not_found", "metrics are off on this server (SANDLOT_METRICS=off)")
    if access == "admin":
        caller = await authenticate(request.app, request.headers.get("authorization", ""))
        if not caller.is_admin:
            raise ApiError(
                403,
                "forbidden",
                "metrics need the admin key (or SANDLOT_METRICS=public), not a namespace's key",
            )
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
