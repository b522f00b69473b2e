"""Private networks stay closed inside the sandbox itself, on both engines (issue 11, finding 5).

The service refuses a non-public literal before any run (tests/app/test_policy_routes.py);
these tests skip the service and hand each engine's runner a job directly, to show the
sandbox holds the line on its own: an allowlist entry naming a loopback or metadata literal
opens nothing unless the policy's ``private_networks`` contain the address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import EgressPolicy, Job, Runner, RunResult, Status, collect
from sandbox.egress import IPNetwork
from sandbox.engines import pyodide, stack, wasmtime
from tests.conformance.conftest import ENGINES
from tests.conftest import ARTIFACT_DIR
from tests.loopback import LOOPBACK_NETWORKS, LoopbackServer

FETCH = "from sandlot import fetch\nfetch('{url}/hello').status"


class EngineRunner:
    """One engine's runner on its own event loop, for synchronous tests."""

    def __init__(self, engine: str, request: pytest.FixtureRequest, scratch: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self.runner: Runner
        if engine == "component":
            self.runner = wasmtime.create_runner(
                request.getfixturevalue("artifacts"), size=1, scratch_dir=scratch
            )
        elif engine == "wasmtime":  # its default guest, the data stack
            self.runner = stack.create_runner(
                stack.build(ARTIFACT_DIR), size=1, scratch_dir=scratch
            )
        else:
            self.runner = pyodide.create_runner(
                request.getfixturevalue("pyodide_artifacts"),
                size=1,
                scratch_dir=scratch,
                deno_dir=scratch / "deno",
            )
        self._loop.run_until_complete(self.runner.start())

    def run(self, job: Job) -> RunResult:
        return self._loop.run_until_complete(collect(self.runner.run(job)))

    def close(self) -> None:
        self._loop.run_until_complete(self.runner.close())
        self._loop.close()


@pytest.fixture(scope="module", params=ENGINES)
def engine_runner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineRunner]:
    runner = EngineRunner(str(request.param), request, tmp_path_factory.mktemp("scratch"))
    yield runner
    runner.close()


def _job(url: str, entries: list[str], networks: tuple[IPNetwork, ...]) -> Job:
    egress = EgressPolicy.from_strings(entries, private_networks=networks)
    return Job(code=FETCH.format(url=url), egress=egress)


def test_literal_entry_opens_nothing_without_the_network(
    engine_runner: EngineRunner, canary: LoopbackServer
) -> None:
    result = engine_runner.run(_job(canary.url, [canary.host], ()))
    assert result.status is Status.ERROR
    assert result.error is not None and result.error.type == "FetchError"
    [sub] = result.subrequests
    assert (sub.allowed, sub.reason) == (False, "private_address")
    assert canary.hit_count == 0


def test_literal_entry_inside_the_opened_network_is_reached(
    engine_runner: EngineRunner, loopback: LoopbackServer
) -> None:
    # The same job with the network opened: proves the refusal above is the network's doing.
    result = engine_runner.run(_job(loopback.url, [loopback.host], LOOPBACK_NETWORKS))
    assert result.status is Status.OK, result.error
    assert result.result is not None and result.result.json == 200
    assert loopback.hit_count == 1
