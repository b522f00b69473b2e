"""The service's Prometheus metrics: one registry per app, made in create_app.

Runs are counted where app/ starts them (:func:`Metrics.observe`), never in the
engines: by engine, kind (execute, dispatch, session, tool) and status, with duration,
CPU and queue-wait histograms, the runs in flight and the egress requests their code
made. Pool sizes and open sessions are read at scrape time (:class:`_StateCollector`).

Namespace labels are bounded: the first ``max_namespaces`` namespaces seen get their
own label value, every later one is counted as ``_other``; the admin key's runs are
``_admin`` and anonymous dispatches are counted under the worker's namespace.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.request_context import set_run
from sandbox import End, Event, Runner, Started, Subrequest

if TYPE_CHECKING:
    from app.bus import Bus

__all__ = ["ADMIN_LABEL", "OTHER_LABEL", "Metrics"]

ADMIN_LABEL = "_admin"
OTHER_LABEL = "_other"

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def egress_outcome(request: Subrequest) -> str:
    """denied (the gate refused), error (no response), or the status class (2xx, 4xx, ...)."""
    if not request.allowed:
        return "denied"
    if request.status is None:
        return "error"
    return f"{request.status // 100}xx"


class Metrics:
    """Every metric of one app, in its own registry (tests make many apps)."""

    def __init__(self, *, max_namespaces: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.max_namespaces = max_namespaces
        self._namespaces: set[str] = set()
        r = self.registry
        self.runs = Counter(
            "sandlot_runs", "Finished runs", ["engine", "kind", "status"], registry=r
        )
        self.namespace_runs = Counter(
            "sandlot_namespace_runs", "Finished runs per namespace", ["namespace"], registry=r
        )
        self.namespace_cpu = Counter(
            "sandlot_namespace_cpu_seconds", "Guest CPU per namespace", ["namespace"], registry=r
        )
        self.duration = Histogram(
            "sandlot_run_duration_seconds",
            "Wall time of a run, from start to end",
            ["engine"],
            buckets=_SECONDS,
            registry=r,
        )
        self.cpu = Histogram(
            "sandlot_run_cpu_seconds",
            "Guest CPU of a run",
            ["engine"],
            buckets=_SECONDS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "sandlot_run_queue_wait_seconds",
            "From asking for a worker to the run's start",
            ["engine"],
            buckets=_SECONDS,
            registry=r,
        )
        self.in_flight = Gauge("sandlot_runs_in_flight", "Runs started, not ended", registry=r)
        self.egress = Counter(
            "sandlot_egress_requests", "Guests' outbound requests", ["outcome"], registry=r
        )
        self.dispatches = Counter(
            "sandlot_dispatches", "Dispatched requests by outcome", ["outcome"], registry=r
        )
        self.namespace_dispatches = Counter(
            "sandlot_namespace_dispatches",
            "Dispatched requests per namespace",
            ["namespace"],
            registry=r,
        )
        self.refused = Counter(
            "sandlot_requests_refused_draining",
            "Requests answered 503 while draining",
            registry=r,
        )

    def watch(
        self, runners: Callable[[], Mapping[str, Runner]], sessions_open: Callable[[], int]
    ) -> None:
        """Read pool sizes and open sessions from app state at each scrape."""
        self.registry.register(_StateCollector(runners, sessions_open))

    def watch_tails(self, open_now: Callable[[], int], dropped: Callable[[], int]) -> None:
        """Read the tails open and the invocations dropped for slow tails at each scrape."""
        self.registry.register(_TailCollector(open_now, dropped))

    def watch_bus(self, bus: Callable[[], Bus | None]) -> None:
        """Read whether the replicas' bus is connected, and its reconnections, at each scrape."""
        self.registry.register(_BusCollector(bus))

    def namespace_label(self, namespace: str | None) -> str:
        if namespace is None:
            return ADMIN_LABEL
        if namespace in self._namespaces:
            return namespace
        if len(self._namespaces) < self.max_namespaces:
            self._namespaces.add(namespace)
            return namespace
        return OTHER_LABEL

    def dispatched(self, namespace: str, outcome: str) -> None:
        self.dispatches.labels(outcome).inc()
        self.namespace_dispatches.labels(self.namespace_label(namespace)).inc()

    async def observe(
        self, events: AsyncIterator[Event], *, engine: str, kind: str, namespace: str | None
    ) -> AsyncIterator[Event]:
        """``events``, counted; the run's id and namespace are in the log context meanwhile.

        Closing this generator closes ``events`` (which cancels a run still going).
        """
        asked = time.monotonic()
        started: float | None = None
        ended = False
        set_run(namespace=namespace if namespace is not None else ADMIN_LABEL)
        try:
            async for event in events:
                if isinstance(event, Started):
                    started = time.monotonic()
                    set_run(run_id=event.run_id)
                    self.queue_wait.labels(engine).observe(started - asked)
                    self.in_flight.inc()
                elif isinstance(event, Subrequest):
                    self.egress.labels(egress_outcome(event)).inc()
                elif isinstance(event, End):
                    ended = True
                    self._ended(event, engine, kind, namespace)
                yield event
        finally:
            if started is not None:
                self.in_flight.dec()
                if not ended:
                    # Closed before its end: the caller went away or the service stopped.
                    self.runs.labels(engine, kind, "canceled").inc()
                    self.namespace_runs.labels(self.namespace_label(namespace)).inc()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _ended(self, end: End, engine: str, kind: str, namespace: str | None) -> None:
        self.runs.labels(engine, kind, end.status.value).inc()
        label = self.namespace_label(namespace)
        self.namespace_runs.labels(label).inc()
        self.namespace_cpu.labels(label).inc(end.usage.cpu_ms / 1000)
        self.duration.labels(engine).observe(end.usage.wall_ms / 1000)
        self.cpu.labels(engine).observe(end.usage.cpu_ms / 1000)


class _TailCollector(Collector):
    def __init__(self, open_now: Callable[[], int], dropped: Callable[[], int]) -> None:
        self._open = open_now
        self._dropped = dropped

    def collect(self) -> Iterable[Any]:
        yield GaugeMetricFamily("sandlot_tails_open", "Live tails open", self._open())
        yield CounterMetricFamily(
            "sandlot_tail_events_dropped",
            "Invocations dropped because a tail read too slowly",
            self._dropped(),
        )


class _BusCollector(Collector):
    def __init__(self, bus: Callable[[], Bus | None]) -> None:
        self._bus = bus

    def collect(self) -> Iterable[Any]:
        bus = self._bus()
        if bus is None:
            return
        yield GaugeMetricFamily(
            "sandlot_bus_connected",
            "1 while messages from other replicas arrive (app/bus.py); 0 while reconnecting",
            int(bus.connected),
        )
        yield CounterMetricFamily(
            "sandlot_bus_reconnects",
            "Times the bus came back after losing its connection (caches were dropped)",
            bus.reconnects,
        )


class _StateCollector(Collector):
    def __init__(
        self, runners: Callable[[], Mapping[str, Runner]], sessions_open: Callable[[], int]
    ) -> None:
        self._runners = runners
        self._sessions_open = sessions_open

    def collect(self) -> Iterable[Any]:
        workers = GaugeMetricFamily(
            "sandlot_pool_workers", "Worker processes of each engine's pool", labels=["engine"]
        )
        ready = GaugeMetricFamily(
            "sandlot_engine_ready", "1 when the engine can take a run", labels=["engine"]
        )
        for name, runner in self._runners().items():
            size = getattr(runner, "size", None)
            if isinstance(size, int):
                workers.add_metric([name], size)
            ready.add_metric([name], 1 if runner.ready else 0)
        yield workers
        yield ready
        yield GaugeMetricFamily("sandlot_sessions_open", "Open sessions", self._sessions_open())
