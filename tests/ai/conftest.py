"""A service whose model is a scripted chat-completions server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.engines.pyodide import PyodideArtifacts
from sandbox.engines.wasmtime import Artifacts
from tests.ai.fake_model import FakeModel
from tests.conftest import Service

MODEL_KEY = "sk-test-" + "k3y" * 10
MODEL_TIMEOUT_MS = 2_000


@pytest.fixture(scope="session")
def fake_model_server() -> Iterator[FakeModel]:
    server = FakeModel()
    yield server
    server.close()


@pytest.fixture
def fake_model(fake_model_server: FakeModel) -> Iterator[FakeModel]:
    """The fake, its script and record empty at the start of each test."""
    fake_model_server.reset()
    yield fake_model_server
    fake_model_server.reset()


@pytest.fixture(scope="session")
def ai_service(
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: Artifacts,
    pyodide_artifacts: PyodideArtifacts,
    fake_model_server: FakeModel,
) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("ai-service"),
        pool_size="2",
        pyodide_pool_size="1",
        queue_timeout_ms="30000",
        build_on_start="false",
        openai_base_url=fake_model_server.base_url,
        openai_api_key=MODEL_KEY,
        model="fake-coder",
        model_timeout_ms=str(MODEL_TIMEOUT_MS),
    )
    yield svc
    svc.close()


@pytest.fixture
def ai(ai_service: Service) -> Iterator[httpx.Client]:
    with ai_service.client(timeout=120) as client:
        yield client
