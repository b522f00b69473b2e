"""The conformance suite runs every behaviour test against every engine.

Tests take the ``run`` fixture (code → response body, on the current engine)
and ``engine`` (its name). Where an engine can't do something, the test says
so with ``engine_gap(engine, "pyodide", reason)``, which skips with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import execute

ENGINES = ["wasmtime", "pyodide"]

Run = Callable[..., dict[str, Any]]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(client: httpx.Client, engine: str) -> Run:
    def run(code: str, **fields: object) -> dict[str, Any]:
        return execute(client, code, runtime=engine, **fields)

    return run


def engine_gap(engine: str, lacking: str, reason: str) -> None:
    """Skip (with the reason, shown in the report) when ``engine`` is the one lacking."""
    if engine == lacking:
        pytest.skip(f"{lacking}: {reason}")
