"""Shared fixtures: the built guest, a live service on loopback, loopback HTTP targets.

Only the internet is faked: tests run the real engine, the real service and
real HTTP servers, all on 127.0.0.1.
"""

from __future__ import annotations

import functools
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.engines.pyodide import PyodideArtifacts
from sandbox.engines.pyodide import build as build_pyodide
from sandbox.engines.wasmtime import Artifacts, build
from tests.loopback import LOOPBACK_CIDR, LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT_DIR = Path(os.environ.get("SANDLOT_ARTIFACT_DIR", ROOT / ".artifacts"))
# Prints a line, computes for half a second (no sleep: nothing that flushes), prints again:
# whether output reaches the host as it is printed or only at the end.
PRINT_THEN_BUSY = (
    "import time\n"
    "print('first')\n"
    "t = time.monotonic()\n"
    "while time.monotonic() - t < 0.5:\n"
    "    pass\n"
    "print('last')\n"
)
ADMIN_KEY = "test-admin-key-" + "0123456789abcdef" * 2
# Worker hostnames in tests: sent as Host headers to 127.0.0.1, never looked up.
DISPATCH_DOMAIN = "workers.test"
# The API's own hostname in tests (SANDLOT_API_HOSTNAMES): nobody may claim it.
API_HOSTNAME = "api.sandlot.test"
# Task files that tests/app/test_data_tasks.py sends to the sandbox, not tests of ours.
collect_ignore = ["data_tasks"]


@functools.cache
def _starts_a_service(function: object) -> bool:
    try:
        return "Service(" in inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that starts a service, itself or through a fixture.

    A service costs seconds (worker pools, the engines' start-up), so ``-m "not slow"``
    leaves exactly the tests that don't need one.
    """
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker("slow"):
            continue
        definitions = item._fixtureinfo.name2fixturedefs.values()
        functions = [item.function, *(d.func for defs in definitions for d in defs)]
        if any(_starts_a_service(function) for function in functions):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    return build(ARTIFACT_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A real `python -m app` process on loopback.

    ``{port}`` in a setting's value is its port (e.g. ``replica_url="http://127.0.0.1:{port}"``).
    """

    def __init__(self, tmp: Path, *, port: int | None = None, **settings: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp
        # The developer's own model settings never reach a service under test: tests
        # that need a model point it at a loopback fake (tests/ai/).
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env = {
            **inherited,
            "SANDLOT_PORT": str(self.port),
            "SANDLOT_HOST": "127.0.0.1",
            "SANDLOT_DATA_DIR": str(tmp),
            "SANDLOT_ARTIFACT_DIR": str(ARTIFACT_DIR),
            "SANDLOT_LOG_LEVEL": "info",
            "SANDLOT_ADMIN_KEY": ADMIN_KEY,
            # Tests reach their loopback servers by IP literal: the operator's opt-in.
            "SANDLOT_EGRESS_PRIVATE_NETWORKS": LOOPBACK_CIDR,
            **{
                f"SANDLOT_{k.upper()}": v.replace("{port}", str(self.port))
                for k, v in settings.items()
            },
        }
        self.log_path = tmp / "service.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.close()
        raise RuntimeError(f"service did not become ready:\n{self.log()}")

    def client(self, timeout: float = 60) -> httpx.Client:
        """A client that sends the admin key (close it, or use it in a with block)."""
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts) -> Iterator[Service]:
    # A long queue wait: the suite sends bursts (32 concurrent runs) at small pools.
    svc = Service(
        tmp_path_factory.mktemp("service"),
        pool_size="4",
        queue_timeout_ms="30000",
        build_on_start="false",
        dispatch_domain=DISPATCH_DOMAIN,
        api_hostnames=API_HOSTNAME,
    )
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


@pytest.fixture
def canary() -> Iterator[LoopbackServer]:
    """A server that must never be reached: tests assert it saw zero requests."""
    server = LoopbackServer()
    yield server
    server.close()


def execute(client: httpx.Client, code: str, **fields: object) -> dict[str, object]:
    """POST /v1/execute and return the JSON body (asserting a 200)."""
    response = client.post("/v1/execute", json={"code": code, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture(scope="session")
def pyodide_artifacts() -> PyodideArtifacts:
    return build_pyodide(ARTIFACT_DIR, ROOT / "pyodide-runtime")
