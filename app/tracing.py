"""Optional OpenTelemetry traces (``SANDLOT_TRACING``): a server span per request, and
child spans for the runs it starts, their queue wait, their egress and dispatch lookups.

:class:`Tracing` owns the service's tracer provider: made in the lifespan
(:meth:`Tracing.start`), flushed and shut down at its end (:meth:`Tracing.close`). The
provider is this app's own, never the global one, so libraries that trace through the
global provider (FastAPI's native telemetry, the MCP SDK) record nothing of requests:
their spans would carry query strings, validation errors with the request's values and
tool arguments, i.e. the code. With tracing off there is no provider, no middleware and
no span; the run hooks are one ``is None`` test.

What a span may carry is chosen here, attribute by attribute: ids, the route template,
statuses, engine, limits used, host names. Never code, secrets, header values, bodies,
query strings, raw paths or URLs.

:class:`ServerSpans` is the pure-ASGI middleware (outside everything but
:class:`~app.request_context.RequestIds`), :class:`RouteNames` the innermost one that
names the span after the route template once the router has matched it.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from sandbox import End, Event, Started, Subrequest

__all__ = ["RouteNames", "ServerSpans", "Tracing"]

SCOPE = "sandlot"
# The OTLP exporters of the opentelemetry-exporter-otlp package, by protocol.
_OTLP_EXPORTERS = {
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
}
# Only W3C trace context (traceparent, tracestate) is read from a request: baggage and
# other propagators could carry anything into spans.
_PROPAGATOR = TraceContextTextMapPropagator()


def otlp_exporter(protocol: str) -> SpanExporter:
    """The OTLP span exporter of ``protocol``; it reads OTEL_EXPORTER_OTLP_* itself.

    Raises RuntimeError naming the package to install when it is missing.
    """
    module_name, package = _OTLP_EXPORTERS[protocol]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise RuntimeError(
            f"SANDLOT_TRACING=otlp ({protocol}) needs the {package} package: install "
            "opentelemetry-exporter-otlp in the service's environment, or set "
            "SANDLOT_TRACING=off"
        ) from None
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


class Tracing:
    """The tracer provider of one app, from its settings.

    ``exporter``: where spans go instead of the setting's exporter (tests pass an
    in-memory one); it gets each span as it ends. The setting's exporters get them in
    batches, off the request path.
    """

    def __init__(self, settings: Settings, exporter: SpanExporter | None = None) -> None:
        if settings.tracing == "off":
            raise ValueError("Tracing is for SANDLOT_TRACING=otlp or console, not off")
        self.settings = settings
        self._exporter = exporter
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()

    def start(self) -> None:
        """Make the provider; raises RuntimeError when the OTLP exporter is not installed."""
        settings = self.settings
        attributes: dict[str, str] = {"service.name": settings.tracing_service_name}
        if settings.replica_name is not None:
            attributes["service.instance.id"] = settings.replica_name
        # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; ours win over it.
        provider = TracerProvider(resource=Resource.create(attributes))
        if self._exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        elif settings.tracing == "otlp":
            provider.add_span_processor(BatchSpanProcessor(otlp_exporter(settings.otlp_protocol)))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        self._provider = provider
        self.tracer = provider.get_tracer(SCOPE)

    async def close(self) -> None:
        """Export what is left and stop; idempotent. Blocks on the exporter, so off the loop."""
        provider, self._provider = self._provider, None
        self.tracer = trace.NoOpTracer()
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)

    @contextmanager
    def span(self, name: str, **attributes: str | int | bool) -> Iterator[Span]:
        """A child span of the current one around a block (not for async generators)."""
        with self.tracer.start_as_current_span(
            name, kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            yield span

    async def run_spans(
        self,
        events: AsyncIterator[Event],
        *,
        engine: str,
        kind: str,
        namespace: str | None,
    ) -> AsyncIterator[Event]:
        """``events`` unchanged, traced: a ``sandlot.run`` span from now to the run's end,
        with its ``sandlot.queue`` wait and one ``sandlot.egress`` span per subrequest.

        The spans are never made current (a generator may be iterated from another task);
        their parent is the span current when iteration begins (the request's).
        """
        parent = trace.get_current_span()
        if namespace is not None:
            parent.set_attribute("sandlot.namespace", namespace)
        run = self.tracer.start_span(
            "sandlot.run",
            kind=SpanKind.INTERNAL,
            attributes={
                "sandlot.engine": engine,
                "sandlot.kind": kind,
                **({"sandlot.namespace": namespace} if namespace is not None else {}),
            },
        )
        within = trace.set_span_in_context(run)
        queue: Span | None = self.tracer.start_span("sandlot.queue", context=within)
        subrequests = 0
        ended = False
        try:
            async for event in events:
                if isinstance(event, Started):
                    if queue is not None:
                        queue.end()
                        queue = None
                    run.set_attribute("sandlot.run_id", event.run_id)
                elif isinstance(event, Subrequest):
                    subrequests += 1
                    self._egress_span(event, within)
                elif isinstance(event, End):
                    ended = True
                    _end_attributes(run, event, subrequests)
                yield event
        finally:
            if queue is not None:
                # Never started: refused, canceled or failed while queued.
                queue.end()
            if not ended:
                run.set_attribute("sandlot.status", "canceled")
            run.end()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _egress_span(self, event: Subrequest, within: otel_context.Context) -> None:
        # The gate reports a subrequest once done: the span ends now and began ms ago.
        end_ns = time.time_ns()
        attributes: dict[str, str | int | bool] = {
            "http.request.method": event.method,
            "sandlot.egress.allowed": event.allowed,
            "sandlot.egress.response_bytes": event.bytes,
            "sandlot.egress.sent_bytes": event.sent_bytes,
        }
        host = _host_of(event.url)
        if host:
            attributes["server.address"] = host
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.reason is not None:
            attributes["sandlot.egress.reason"] = event.reason
        span = self.tracer.start_span(
            "sandlot.egress",
            context=within,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end_ns - int(event.ms * 1_000_000),
        )
        span.end(end_time=end_ns)


def _end_attributes(run: Span, end: End, subrequests: int) -> None:
    run.set_attribute("sandlot.status", end.status.value)
    run.set_attribute("sandlot.cpu_ms", end.usage.cpu_ms)
    run.set_attribute("sandlot.wall_ms", end.usage.wall_ms)
    run.set_attribute("sandlot.subrequests", subrequests)
    # Not the guest's exception, not even its type's name: the guest names its classes.
    if end.status.value == "internal_error":
        # A host fault; what the guest does wrong is data, not a span error.
        run.set_status(StatusCode.ERROR)


def _host_of(url: str) -> str:
    """The host of an egress URL, nothing else (a path or query may hold a token)."""
    rest = url.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0].lower()


class _HeaderGetter(Getter[Mapping[str, list[str]]]):
    """W3C trace context headers of an ASGI scope, for the propagator."""

    def get(self, carrier: Mapping[str, list[str]], key: str) -> list[str] | None:
        return carrier.get(key)

    def keys(self, carrier: Mapping[str, list[str]]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def incoming_context(scope: Scope) -> otel_context.Context:
    """The caller's trace (``traceparent``), or an empty context when it sent none."""
    carrier: dict[str, list[str]] = {}
    for name, value in scope.get("headers", ()):
        if name in _TRACE_HEADERS:
            carrier.setdefault(name.decode(), []).append(value.decode("latin-1"))
    if not carrier:
        return otel_context.Context()
    return _PROPAGATOR.extract(carrier, context=otel_context.Context(), getter=_GETTER)


class ServerSpans:
    """ASGI middleware: a server span per HTTP request, current while the app answers.

    Named ``METHOD route-template`` (:class:`RouteNames` fills in the route), with the
    method, status, request id and namespace; continues the caller's W3C trace.
    """

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
        }
        request_id = scope.get("state", {}).get("request_id")
        if request_id is not None:
            attributes["sandlot.request_id"] = request_id
        span = self.tracing.tracer.start_span(
            method,
            context=incoming_context(scope),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))

        async def status_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            await send(message)

        try:
            await self.app(scope, receive, status_send)
        except BaseException as exc:
            span.set_status(StatusCode.ERROR)
            # The type only: an exception's message may quote the request.
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            otel_context.detach(token)
            span.end()


class RouteNames:
    """ASGI middleware, innermost: once the router has matched, the server span gets the
    route template (``/v1/namespaces/{namespace}``, never the raw path) and the
    namespace from the path parameters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        named = False

        def name() -> None:
            nonlocal named
            route = getattr(scope.get("route"), "path", None)
            if named or not isinstance(route, str):
                return
            named = True
            span = trace.get_current_span()
            span.set_attribute("http.route", route)
            span.update_name(f"{scope['method']} {route}")
            namespace = scope.get("path_params", {}).get("namespace")
            if isinstance(namespace, str):
                span.set_attribute("sandlot.namespace", namespace)

        async def naming_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                name()
            await send(message)

        try:
            await self.app(scope, receive, naming_send)
        finally:
            name()
