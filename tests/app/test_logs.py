"""Log lines: redaction, the JSON format, and a run's ids on every line it logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from app.config import Settings
from app.draining import Drain
from app.logs import JsonFormatter, TextFormatter, redact
from app.main import create_app
from app.metrics import OTHER_LABEL, Metrics
from app.request_context import request_id_of
from sandbox import End, Event, Started, Status, Subrequest, Usage

ADMIN_KEY = "admin-key-0123456789-abcdefghijklmnop"


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        pytest.param(f"key is {ADMIN_KEY}", ADMIN_KEY, id="configured-secret"),
        pytest.param("Authorization: Bearer sk-live-abcdef123456", "sk-live", id="bearer"),
        pytest.param("GET /dispatch/a/b?api_key=hunter22&x=1", "hunter22", id="query-api-key"),
        pytest.param("token=abc123456789 next", "abc123456789", id="token"),
        pytest.param('{"password": "p4ssw0rd!"}', "p4ssw0rd", id="json-password"),
    ],
)
def test_credentials_are_redacted(text: str, leaked: str) -> None:
    assert leaked not in redact(text, [ADMIN_KEY])
    assert "REDACTED" in redact(text, [ADMIN_KEY])


def test_request_ids_are_taken_only_when_sane() -> None:
    assert request_id_of([(b"x-request-id", b"abc-1.2:3_4")]) == "abc-1.2:3_4"
    for bad in (b"has space", b"x" * 129, b"", b"new\nline"):
        fresh = request_id_of([(b"x-request-id", bad)])
        assert fresh != bad.decode() and len(fresh) == 32


class _Lines(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _engine(log: logging.Logger) -> AsyncIterator[Event]:
    yield Started(run_id="run-7", engine="wasmtime")
    log.info("engine step with %s", f"Bearer {ADMIN_KEY}")
    yield Subrequest("GET", "http://10.0.0.1/", None, 0, 1.0, allowed=False, reason="private")
    yield End(status=Status.OK, usage=Usage(cpu_ms=5, wall_ms=9))


def test_a_runs_log_lines_carry_its_ids_and_the_metrics_count_it() -> None:
    log = logging.getLogger("sandlot.test-run")
    handler = _Lines(JsonFormatter([ADMIN_KEY]))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    metrics = Metrics(max_namespaces=1)

    async def main() -> None:
        events = Drain().bounded(
            metrics.observe(_engine(log), engine="wasmtime", kind="execute", namespace="acme")
        )
        async for _ in events:
            pass
        log.info("after the run")

    try:
        asyncio.run(main())
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in handler.lines]
    assert [(line["run_id"], line["namespace"]) for line in lines] == [("run-7", "acme")] * 2
    assert ADMIN_KEY not in handler.lines[0] and lines[0]["level"] == "info"
    sample = metrics.registry.get_sample_value
    runs = {"engine": "wasmtime", "kind": "execute", "status": "ok"}
    assert sample("sandlot_runs_total", runs) == 1
    assert sample("sandlot_egress_requests_total", {"outcome": "denied"}) == 1
    assert sample("sandlot_runs_in_flight") == 0
    assert sample("sandlot_namespace_cpu_seconds_total", {"namespace": "acme"}) == 0.005


def test_namespace_labels_are_bounded() -> None:
    metrics = Metrics(max_namespaces=2)
    labels = [metrics.namespace_label(f"ns{i}") for i in range(5)]
    assert labels == ["ns0", "ns1", OTHER_LABEL, OTHER_LABEL, OTHER_LABEL]
    assert metrics.namespace_label("ns1") == "ns1"


def test_text_lines_show_the_ids_when_there_are_some() -> None:
    record = logging.LogRecord("sandlot", logging.INFO, __file__, 1, "plain %s", ("x",), None)
    assert TextFormatter().format(record).endswith(" INFO sandlot: plain x")


@pytest.mark.parametrize(
    ("access", "key", "status"),
    [
        pytest.param("off", ADMIN_KEY, 404, id="off"),
        pytest.param("admin", None, 401, id="admin-without-key"),
        pytest.param("admin", ADMIN_KEY, 200, id="admin-with-key"),
        pytest.param("public", None, 200, id="public"),
    ],
)
def test_metrics_access_follows_the_setting(
    tmp_path: Path, access: str, key: str | None, status: int
) -> None:
    app = create_app(Settings(data_dir=tmp_path, metrics=access, admin_key=ADMIN_KEY))  # type: ignore[arg-type]
    app.state.admin_key = SecretStr(ADMIN_KEY)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    # No lifespan (no engines); an address as Host skips the hostname lookup.
    answer = TestClient(app, base_url="http://127.0.0.1").get("/metrics", headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["x-request-id"]
    if status == 200:
        assert "sandlot_runs_in_flight 0.0" in answer.text
    else:
        assert answer.json()["error"]["message"]
