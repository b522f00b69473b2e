"""The hostile load test, small (bench/load.py has the full one): 300 runs from 16 clients,
a tenth hostile, two worker processes SIGKILLed meanwhile. Every run answers, none with a
5xx, each in its defined status (or internal_error if its process was killed under it), and
the service recovers. No timing asserts: the latency targets are measured by the bench."""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ADMIN_KEY, ROOT, Service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_300_runs_with_hostile_code_and_two_kills(tmp_path: Path) -> None:
    load = _bench()
    service = Service(tmp_path, pool_size="2", build_on_start="false", pyodide_enabled="false")
    try:
        pool_size = len(load.worker_pids(service.proc.pid))
        assert pool_size == 2
        rng = random.Random(15)
        # Drawn as the bench draws them; then every hostile kind twice more among the last
        # runs, after both kills, so each is seen ending in its own status.
        tail = [kind for kind in load.HOSTILE for _ in range(2)] + list(load.BENIGN) * 10
        rng.shuffle(tail)
        plan = [
            rng.choice(load.HOSTILE) if rng.random() < 0.1 else rng.choice(load.BENIGN)
            for _ in range(300 - len(tail))
        ] + tail
        killer = load.Killer(service.proc.pid, [80, 160], seed=15)
        outcomes = load.drive(service.url, ADMIN_KEY, plan, 16, 120, killer.progress)

        assert len(outcomes) == 300
        assert len(killer.kills) == 2
        statuses = Counter(o.status for o in outcomes)
        assert statuses["lost"] == 0, [o for o in outcomes if o.status == "lost"]
        assert statuses["5xx"] == 0, [o for o in outcomes if o.status == "5xx"]
        wrong = [
            o
            for o in outcomes
            if not load.defined(o)
            and not (load.killed_defined(o) and load.affected_by_a_kill(o, killer.kills))
        ]
        assert wrong == []
        # Every hostile kind was seen ending in its own status at least once.
        for kind in load.HOSTILE:
            assert any(o.kind == kind.name and load.defined(o) for o in outcomes), kind.name

        # Recovery: both processes back, and a benign run ok.
        deadline = time.monotonic() + 60
        while len(load.worker_pids(service.proc.pid)) < pool_size:
            assert time.monotonic() < deadline, "the pool did not come back to its size"
            time.sleep(0.2)
        after = load.drive(service.url, ADMIN_KEY, [load.KINDS["print"]] * 3, 1, 60)
        assert [o.status for o in after] == ["ok"] * 3
    finally:
        service.close()


def test_runs_are_admitted_by_memory_and_refused_with_a_body_naming_it(tmp_path: Path) -> None:
    service = Service(
        tmp_path,
        pool_size="1",
        run_memory_budget_mb="320",
        queue_timeout_ms="500",
        build_on_start="false",
        pyodide_enabled="false",
    )
    try:
        big = {"memory_mb": 256, "wall_ms": 20_000}
        with service.client(timeout=60) as client, ThreadPoolExecutor(1) as pool:
            holding = pool.submit(
                client.post,
                "/v1/execute",
                json={"code": "import time\ntime.sleep(3)", "limits": big},
            )
            time.sleep(1)  # it holds 256 of the 320 MiB
            refused = client.post("/v1/execute", json={"code": "print(1)", "limits": big})
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "1"
            error = refused.json()["error"]
            assert error["code"] == "busy"
            assert "256 of the 320 MiB" in error["message"]
            assert [d["field"] for d in error["details"]] == ["limits.memory_mb"]
            # A run asking for less fits beside it; a slot was free all along.
            small = client.post(
                "/v1/execute", json={"code": "print(1)", "limits": {"memory_mb": 64}}
            )
            assert small.status_code == 200 and small.json()["status"] == "ok"
            assert holding.result().json()["status"] == "ok"
            again = client.post("/v1/execute", json={"code": "print(1)", "limits": big})
            assert again.status_code == 200 and again.json()["status"] == "ok"
    finally:
        service.close()
