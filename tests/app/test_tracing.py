"""OpenTelemetry traces (app/tracing.py), exported in memory: no collector, no network."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr
from starlette.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.tracing import ServerSpans, _host_of, otlp_exporter
from tests.conftest import ADMIN_KEY, ARTIFACT_DIR

SECRET = "sk-live-0b5e55ed-7ace-5ecr-e7e7"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _settings(tmp_path: Path, tracing: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path,
        artifact_dir=ARTIFACT_DIR,
        build_on_start=False,
        pyodide_enabled=False,
        pool_size=1,
        admin_key=ADMIN_KEY,
        replica_name="replica-7",
        tracing=tracing,
    )


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    spans = InMemorySpanExporter()
    app = create_app(_settings(tmp_path_factory.mktemp("traced"), "console"), span_exporter=spans)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    # An address as Host skips the hostname lookup.
    with TestClient(app, base_url="http://127.0.0.1", headers=headers) as client:
        yield client, spans


def _request_spans(
    spans: InMemorySpanExporter, request_id: str
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The server span of the request ``request_id`` and the spans of its trace."""
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.attributes.get("sandlot.request_id") == request_id]
    assert len(server) == 1, [s.name for s in finished]
    trace_id = server[0].context.trace_id
    return server[0], [s for s in finished if s.context.trace_id == trace_id]


def test_a_request_has_a_server_span_named_by_its_route_template(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, spans = traced
    answer = client.get("/v1/namespaces/no-such-ns/workers", headers={"x-request-id": "route-1"})
    assert answer.status_code == 404
    server, _ = _request_spans(spans, "route-1")
    assert server.kind is SpanKind.SERVER
    assert server.name == "GET /v1/namespaces/{namespace}/workers"
    assert server.attributes["http.route"] == "/v1/namespaces/{namespace}/workers"
    assert server.attributes["http.response.status_code"] == 404
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["sandlot.namespace"] == "no-such-ns"
    assert server.parent is None
    assert server.resource.attributes["service.name"] == "sandlot"
    assert server.resource.attributes["service.instance.id"] == "replica-7"


def test_an_unmatched_path_is_never_a_span_name(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, spans = traced
    answer = client.get(f"/no/route/{SECRET}", headers={"x-request-id": "unmatched-1"})
    assert answer.status_code == 404
    server, _ = _request_spans(spans, "unmatched-1")
    assert server.name == "GET"
    assert "http.route" not in server.attributes


def test_an_incoming_traceparent_becomes_the_parent(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, spans = traced
    client.get(
        "/healthz",
        headers={
            "x-request-id": "parent-1",
            "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        },
    )
    server, _ = _request_spans(spans, "parent-1")
    assert server.parent is not None and server.parent.is_remote
    assert server.context.trace_id == int(TRACE_ID, 16)
    assert server.parent.span_id == int(PARENT_ID, 16)


def test_a_malformed_traceparent_starts_a_new_trace(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, spans = traced
    client.get("/healthz", headers={"x-request-id": "bad-parent", "traceparent": "00-zz-yy-01"})
    server, _ = _request_spans(spans, "bad-parent")
    assert server.parent is None


def test_an_execute_run_is_a_child_span_with_engine_status_and_run_id(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, spans = traced
    answer = client.post(
        "/v1/execute",
        json={
            "code": "import urllib.request\n"
            "try:\n"
            "    urllib.request.urlopen('http://blocked.example/x?token=1', timeout=5)\n"
            "except Exception:\n"
            "    pass\n"
            "print(6 * 7)",
            "allowed_hosts": ["allowed.example"],
        },
        headers={"x-request-id": "run-1"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok", body
    server, family = _request_spans(spans, "run-1")
    assert server.name == "POST /v1/execute"
    (run,) = [s for s in family if s.name == "sandlot.run"]
    assert run.parent is not None and run.parent.span_id == server.context.span_id
    assert run.attributes["sandlot.engine"] == "wasmtime"
    assert run.attributes["sandlot.status"] == "ok"
    run_id = run.attributes["sandlot.run_id"]
    assert isinstance(run_id, str) and run_id
    assert run.attributes["sandlot.kind"] == "execute"
    assert isinstance(run.attributes["sandlot.wall_ms"], int | float)
    (queue,) = [s for s in family if s.name == "sandlot.queue"]
    assert queue.parent is not None and queue.parent.span_id == run.context.span_id
    (egress,) = [s for s in family if s.name == "sandlot.egress"]
    assert egress.parent is not None and egress.parent.span_id == run.context.span_id
    assert egress.attributes["server.address"] == "blocked.example"
    assert egress.attributes["sandlot.egress.allowed"] is False
    assert run.attributes["sandlot.subrequests"] == 1


def _every_value(span: ReadableSpan) -> list[str]:
    values = [span.name, *map(str, span.attributes.values())]
    values += [str(v) for v in span.resource.attributes.values()]
    for event in span.events:
        values += [event.name, *map(str, (event.attributes or {}).values())]
    return values


def test_no_secret_of_code_headers_or_query_reaches_a_span(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, spans = traced
    answer = client.post(
        f"/v1/execute?token={SECRET}",
        json={
            "code": f"key = {SECRET!r}\n"
            "import urllib.request\n"
            "try:\n"
            f"    urllib.request.urlopen('http://blocked.example/{SECRET}?k={SECRET}')\n"
            "except Exception:\n"
            "    pass\n"
            f"raise ValueError(key)",
            "env": {"API_KEY": SECRET},
        },
        headers={"x-request-id": "secret-1", "x-api-key": SECRET, "user-agent": SECRET},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "error"
    # A secret as a worker's name, looked up by dispatch.
    client.get(f"/dispatch/no-such-ns/{SECRET}/x?token={SECRET}", headers={"x-request-id": "s-2"})
    _, family = _request_spans(spans, "secret-1")
    _, dispatched = _request_spans(spans, "s-2")
    assert {s.name for s in family} >= {"POST /v1/execute", "sandlot.run", "sandlot.egress"}
    assert {s.name for s in dispatched} >= {"sandlot.dispatch.lookup"}
    for span in family + dispatched:
        for value in _every_value(span):
            assert SECRET not in value, (span.name, value)
            assert ADMIN_KEY not in value, (span.name, value)


def test_tracing_off_sets_no_provider_and_makes_no_spans(tmp_path: Path) -> None:
    global_provider = trace.get_tracer_provider()
    spans = InMemorySpanExporter()
    app = create_app(_settings(tmp_path, "off"), span_exporter=spans)
    assert app.state.tracing is None
    assert not any(m.cls is ServerSpans for m in app.user_middleware)
    app.state.admin_key = SecretStr(ADMIN_KEY)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    # No lifespan: nothing of tracing is made there either.
    answer = TestClient(app, base_url="http://127.0.0.1", headers=headers).get("/metrics")
    assert answer.status_code == 200
    assert spans.get_finished_spans() == ()
    assert trace.get_tracer_provider() is global_provider


def test_tracing_on_leaves_the_global_provider_alone(
    traced: tuple[TestClient, InMemorySpanExporter],
) -> None:
    # Libraries tracing through the global provider (FastAPI, MCP) record nothing.
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        pytest.param("https://api.example.com/v1?token=x", "api.example.com", id="query"),
        pytest.param("http://user:pw@Example.COM:8080/p", "example.com", id="userinfo-port"),
        pytest.param("http://[::1]:9000/x", "[::1]", id="ipv6"),
        pytest.param("http://h.example#frag", "h.example", id="fragment"),
    ],
)
def test_egress_spans_carry_the_host_only(url: str, host: str) -> None:
    assert _host_of(url) == host


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_without_the_exporter_package_fails_naming_it(protocol: str) -> None:
    if importlib.util.find_spec("opentelemetry.exporter") is not None:
        pytest.skip("an OTLP exporter is installed here")
    with pytest.raises(RuntimeError, match="opentelemetry-exporter-otlp"):
        otlp_exporter(protocol)
