"""SANDLOT_CORS_ORIGINS: browser front ends on the origins an operator names may call the API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from sandbox.engines.wasmtime import Artifacts
from tests.conftest import Service

pytestmark = pytest.mark.slow

FRONT_END = "http://localhost:5173"


@pytest.fixture(scope="module")
def cors(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("cors"),
        cors_origins=f"{FRONT_END}, https://app.example.com",
        pyodide_enabled="false",
        build_on_start="false",
    )
    yield svc
    svc.close()


def preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{url}/v1/execute",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )


def test_a_preflight_from_a_named_origin_is_answered_without_a_key(cors: Service) -> None:
    response = preflight(cors.url, FRONT_END)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_a_preflight_from_another_origin_gets_no_grant(cors: Service) -> None:
    response = preflight(cors.url, "https://evil.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_a_call_from_a_named_origin_can_read_the_answer(cors: Service) -> None:
    with cors.client() as client:
        response = client.post(
            "/v1/execute", json={"code": "print(1+1)"}, headers={"origin": FRONT_END}
        )
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == "2\n"
    assert response.headers["access-control-allow-origin"] == FRONT_END


def test_without_the_setting_there_is_no_cors(client: httpx.Client) -> None:
    response = client.post("/v1/execute", json={"code": "1"}, headers={"origin": FRONT_END})
    assert "access-control-allow-origin" not in response.headers
    answer = client.options("/v1/execute", headers={"origin": FRONT_END})
    assert answer.status_code == 405


@pytest.mark.parametrize("value", ["localhost:5173", "ftp://x.test", "https://x.test/app"])
def test_an_origin_that_is_not_one_is_refused_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="SANDLOT_CORS_ORIGINS"):
        Settings(cors_origins=value)  # type: ignore[arg-type]
