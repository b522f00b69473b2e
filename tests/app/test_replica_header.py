"""X-Sandlot-Replica: which replica answered, from SANDLOT_REPLICA_NAME, on every response."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from app.config import Settings
from app.request_context import RequestIds


async def _forging(request: Request) -> PlainTextResponse:
    # What a worker's response could try: claim another replica, another request id.
    return PlainTextResponse(
        "hi", headers={"x-sandlot-replica": "replica-9", "x-request-id": "forged"}
    )


def _client(replica: str | None) -> TestClient:
    app = Starlette(routes=[Route("/", _forging)])
    return TestClient(RequestIds(app, replica=replica))


def test_every_response_names_the_replica_and_the_app_cannot_forge_it() -> None:
    answer = _client("sandlot-7d9f-x2x4k").get("/", headers={"x-request-id": "abc"})
    assert answer.headers.get_list("x-sandlot-replica") == ["sandlot-7d9f-x2x4k"]
    assert answer.headers.get_list("x-request-id") == ["abc"]
    missing = _client("replica-1").get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["x-sandlot-replica"] == "replica-1"


def test_without_a_name_there_is_no_replica_header_at_all() -> None:
    answer = _client(None).get("/")
    assert "x-sandlot-replica" not in answer.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("sandlot-7d9f-x2x4k", "sandlot-7d9f-x2x4k", id="pod-name"),
        pytest.param("10.0.3.7:8000", "10.0.3.7:8000", id="address"),
        pytest.param("  ", None, id="blank-is-unset"),
    ],
)
def test_replica_name_setting(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("SANDLOT_REPLICA_NAME", value)
    assert Settings().replica_name == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("two words", id="space"),
        pytest.param("a\r\nSet-Cookie: x=1", id="header-injection"),
        pytest.param("x" * 129, id="too-long"),
    ],
)
def test_a_replica_name_that_cannot_be_a_header_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SANDLOT_REPLICA_NAME", value)
    with pytest.raises(ValidationError, match="SANDLOT_REPLICA_NAME is 1-128"):
        Settings()
