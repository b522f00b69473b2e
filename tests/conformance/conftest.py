"""The conformance suite runs every behaviour test against every engine.

Tests take the ``run`` fixture (code → response body, on the current engine)
and ``engine`` (its name). Where an engine can't do something, the test says
so with ``engine_gap(engine, "pyodide", reason)``, which skips with the reason.

"wasmtime" is that runtime with its default guest, the data stack; "component" is
runtime "wasmtime" with the CPython 3.14 component guest (a service of its own,
``SANDLOT_WASMTIME_GUEST=component``). Tests that call the API themselves take
``engine_client`` and ``runtime`` rather than ``client`` and ``engine``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.engines.wasmtime import Artifacts
from tests.conftest import Service, execute

ENGINES = ["wasmtime", "pyodide", "component"]

Run = Callable[..., dict[str, Any]]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def component_service(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts
) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("component-service"),
        wasmtime_guest="component",
        pyodide_enabled="false",
        pool_size="2",
        queue_timeout_ms="30000",
        build_on_start="false",
    )
    yield svc
    svc.close()


@pytest.fixture
def engine_client(engine: str, request: pytest.FixtureRequest) -> httpx.Client:
    """The client of the service that runs ``engine``."""
    client: httpx.Client = request.getfixturevalue(
        "_component_client" if engine == "component" else "client"
    )
    return client


@pytest.fixture(scope="session")
def _component_client(component_service: Service) -> Iterator[httpx.Client]:
    with component_service.client() as c:
        yield c


@pytest.fixture
def runtime(engine: str) -> str:
    """The request's ``runtime`` for ``engine``."""
    return "wasmtime" if engine == "component" else engine


@pytest.fixture
def run(engine_client: httpx.Client, runtime: str) -> Run:
    def run(code: str, **fields: object) -> dict[str, Any]:
        return execute(engine_client, code, runtime=runtime, **fields)

    return run


def engine_gap(engine: str, lacking: str, reason: str) -> None:
    """Skip (with the reason, shown in the report) when ``engine`` is the one lacking."""
    if engine == lacking:
        pytest.skip(f"{lacking}: {reason}")
