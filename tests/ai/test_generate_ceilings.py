"""POST /v1/generate with a namespace's key: its namespace's ceilings hold (issue 11, 5 and 6).

Every refusal comes before the model is asked anything.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.ai.fake_model import FakeModel
from tests.conftest import Service


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        pytest.param({"limits": {"cpu_ms": 60_000}}, "limits.cpu_ms", "at most 1000", id="cpu"),
        pytest.param(
            {"allowed_hosts": ["169.254.169.254"]}, "allowed_hosts", "cloud metadata", id="metadata"
        ),
        pytest.param(
            {"allowed_hosts": ["127.0.0.1:9"]}, "allowed_hosts", "private_egress", id="loopback"
        ),
        pytest.param({"allowed_hosts": ["evil.test"]}, "allowed_hosts", "no egress", id="host"),
    ],
)
@pytest.mark.parametrize("target", ["run", "worker"])
def test_generate_stays_within_the_namespace(
    ai: httpx.Client,
    ai_service: Service,
    fake_model: FakeModel,
    body: dict[str, Any],
    field: str,
    says: str,
    target: str,
) -> None:
    namespace = "gen-" + secrets.token_hex(4)
    made = ai.post("/v1/namespaces", json={"name": namespace, "limits": {"cpu_ms": 1000}})
    assert made.status_code == 201, made.text
    key = ai.post(f"/v1/namespaces/{namespace}/keys", json={}).json()["key"]
    where = {"namespace": namespace, "worker": "w"} if target == "worker" else {}
    response = httpx.post(
        f"{ai_service.url}/v1/generate",
        json={"task": "anything", **where, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == field
    assert says in error["message"]
    assert fake_model.requests == []
