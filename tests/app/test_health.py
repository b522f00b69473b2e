"""Health, readiness and the OpenAPI description."""

from __future__ import annotations

import httpx


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    engines = ready.json()["engines"]
    assert engines["wasmtime"]["ready"] is True
    assert engines["pyodide"]["ready"] is True


def test_openapi_describes_execute(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/execute" in spec["paths"]
    schema = spec["components"]["schemas"]["ExecuteRequest"]["properties"]
    assert {"code", "runtime", "limits", "allowed_hosts", "requirements"} <= set(schema)
    assert client.get("/docs").status_code == 200
