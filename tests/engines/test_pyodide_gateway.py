"""sandbox/engines/pyodide/gateway.py: the gate's loopback face, driven like Deno drives it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.egress import EgressPolicy, SubrequestRecord
from sandbox.engines.pyodide.gateway import GateServer
from tests.loopback import LOOPBACK_NETWORKS, LoopbackServer


@pytest.fixture
def gate() -> Iterator[GateServer]:
    server = GateServer()
    yield server
    server.close()


def _via_gate(gate: GateServer, token: str, target: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"http://{gate.address}/fetch",
        headers={
            "x-sandlot-run": token,
            "x-sandlot-target": target,
            "x-sandlot-method": "GET",
            **headers,
        },
        timeout=10,
    )


def test_registered_run_reaches_its_allowed_host(
    gate: GateServer, loopback: LoopbackServer
) -> None:
    records: list[SubrequestRecord] = []
    policy = EgressPolicy.from_strings([loopback.host], private_networks=LOOPBACK_NETWORKS)
    with gate.register(
        "tok", policy, deadline=time.monotonic() + 10, budget=lambda: True, on_record=records.append
    ):
        reply = _via_gate(gate, "tok", f"{loopback.url}/hello")
    assert reply.status_code == 200
    assert reply.text == "hello from loopback"
    assert reply.headers["x-sandlot-url"] == f"{loopback.url}/hello"
    assert [r.allowed for r in records] == [True]


def test_unknown_token_is_refused_without_a_packet(
    gate: GateServer, canary: LoopbackServer
) -> None:
    reply = _via_gate(gate, "nobody", f"{canary.url}/hello")
    assert reply.headers["x-sandlot-refused"] == "1"
    assert "not registered" in reply.text
    assert canary.hit_count == 0


def test_token_stops_working_when_the_run_ends(gate: GateServer, canary: LoopbackServer) -> None:
    policy = EgressPolicy.from_strings([canary.host], private_networks=LOOPBACK_NETWORKS)
    with gate.register(
        "tok", policy, deadline=time.monotonic() + 10, budget=lambda: True, on_record=lambda r: None
    ):
        pass
    assert _via_gate(gate, "tok", f"{canary.url}/hello").headers["x-sandlot-refused"] == "1"
    assert canary.hit_count == 0


def test_policy_and_budget_are_the_runs(gate: GateServer, canary: LoopbackServer) -> None:
    with gate.register(
        "tok",
        EgressPolicy.from_strings([]),
        deadline=time.monotonic() + 10,
        budget=lambda: True,
        on_record=lambda r: None,
    ):
        assert "allowlist" in _via_gate(gate, "tok", f"{canary.url}/hello").text
    with gate.register(
        "tok2",
        EgressPolicy.from_strings([canary.host], private_networks=LOOPBACK_NETWORKS),
        deadline=time.monotonic() + 10,
        budget=lambda: False,
        on_record=lambda r: None,
    ):
        assert _via_gate(gate, "tok2", f"{canary.url}/hello").headers["x-sandlot-refused"] == "1"
    assert canary.hit_count == 0


def test_gate_listens_on_loopback_only(gate: GateServer) -> None:
    assert gate.address.startswith("127.0.0.1:")
