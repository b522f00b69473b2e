"""Many runs in one worker process (the data-stack guest): each on its own thread in its
own instance, with its own limits, workdir, /tmp and cancel.

The real pool and worker process; only the internet is faked (a loopback server). That
the runs overlap is shown without timing: they meet at a barrier in the loopback server,
which only answers once every run has arrived (runs one after another would break it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import End, Job, Limits, Output, Started
from sandbox.egress import EgressPolicy
from sandbox.engines import stack as stack_engine
from sandbox.engines.fairshare import Demotion
from sandbox.engines.stack import StackArtifacts
from sandbox.pool import WorkerPool
from tests.conftest import ARTIFACT_DIR
from tests.loopback import LOOPBACK_NETWORKS, Handler, LoopbackServer, reply

pytestmark = pytest.mark.slow

PARTIES = 4


@pytest.fixture(scope="module")
def stack_artifacts() -> StackArtifacts:
    return stack_engine.build(ARTIFACT_DIR)


@pytest.fixture
def barrier_server() -> Iterator[LoopbackServer]:
    barrier = threading.Barrier(PARTIES, timeout=30)

    def meet(h: Handler) -> None:
        try:
            barrier.wait()
            reply(200, b"met")(h)
        except threading.BrokenBarrierError:
            reply(200, b"broken")(h)

    server = LoopbackServer({"/meet": meet})
    yield server
    barrier.abort()
    server.close()


Scenario = Callable[[WorkerPool], Coroutine[Any, Any, None]]


@pytest.fixture
def with_pool(stack_artifacts: StackArtifacts, tmp_path: Path) -> Callable[[Scenario], None]:
    """Runs a scenario against one worker process taking several runs at once."""

    async def main(scenario: Scenario) -> None:
        pool = stack_engine.create_runner(
            stack_artifacts,
            size=1,
            scratch_dir=tmp_path / "scratch",
            queue_timeout_ms=30_000,
            runs_per_worker=PARTIES + 2,
        )
        await pool.start()
        try:
            await scenario(pool)
        finally:
            await pool.close()

    return lambda scenario: asyncio.run(main(scenario))


def egress(server: LoopbackServer) -> EgressPolicy:
    return EgressPolicy.from_strings([server.host], private_networks=LOOPBACK_NETWORKS)


async def run(pool: WorkerPool, code: str, **job: Any) -> tuple[End, str]:
    end, stdout = None, ""
    async for event in pool.run(Job(code=code, **job)):
        if isinstance(event, Output) and event.stream == "stdout":
            stdout += event.text
        elif isinstance(event, End):
            end = event
    assert end is not None
    return end, stdout


def meet(server: LoopbackServer) -> str:
    return f"urllib.request.urlopen('{server.url}/meet').read().decode()"


def test_runs_in_one_process_overlap(
    with_pool: Callable[[Scenario], None], barrier_server: LoopbackServer
) -> None:
    with_pool(lambda pool: _overlap(pool, barrier_server))


async def _overlap(pool: WorkerPool, barrier_server: LoopbackServer) -> None:
    code = f"import urllib.request\nprint({meet(barrier_server)})"
    results = await asyncio.gather(
        *(run(pool, code, egress=egress(barrier_server)) for _ in range(PARTIES))
    )
    assert [(end.status.value, out.strip()) for end, out in results] == [("ok", "met")] * PARTIES
    assert len(pool._workers) == 1  # one process held them all


def test_each_run_keeps_its_own_workdir(
    with_pool: Callable[[Scenario], None], barrier_server: LoopbackServer
) -> None:
    with_pool(lambda pool: _own_workdirs(pool, barrier_server))


async def _own_workdirs(pool: WorkerPool, barrier_server: LoopbackServer) -> None:
    def code(n: int) -> str:
        return (
            "import os, urllib.request\n"
            f"open('mine.txt', 'w').write('{n}')\n"
            f"open('/tmp/mine.txt', 'w').write('{n}')\n"
            f"{meet(barrier_server)}\n"
            "print(open('mine.txt').read(), sorted(os.listdir()),\n"
            "      open('/tmp/mine.txt').read(), sorted(os.listdir('/tmp')))"
        )

    results = await asyncio.gather(
        *(run(pool, code(n), egress=egress(barrier_server)) for n in range(PARTIES))
    )
    assert [out.strip() for _, out in results] == [
        f"{n} ['mine.txt'] {n} ['mine.txt']" for n in range(PARTIES)
    ]


def test_limits_hold_per_run_while_others_run(with_pool: Callable[[Scenario], None]) -> None:
    with_pool(_limits_per_run)


async def _limits_per_run(pool: WorkerPool) -> None:
    # Three runs overrun their own limits while a fourth sleeps through them all.
    cases = {
        "cpu_limit": ("while True: pass", Limits(cpu_ms=300, wall_ms=20_000)),
        "wall_limit": ("import time\ntime.sleep(30)", Limits(wall_ms=500)),
        "memory_limit": ("b = bytearray(512 * 1024 * 1024)", Limits(memory_mb=64)),
        "ok": ("import time\ntime.sleep(1.5)\nprint('slept')", Limits(wall_ms=20_000)),
    }
    results = await asyncio.gather(
        *(run(pool, code, limits=limits) for code, limits in cases.values())
    )
    statuses = {
        expected: end.status.value for expected, (end, _) in zip(cases, results, strict=True)
    }
    assert statuses.pop("ok") == "ok"
    assert statuses["cpu_limit"] == "cpu_limit"
    assert statuses["wall_limit"] == "wall_limit"
    # Linear memory over the cap: the guest's MemoryError, or the trap.
    assert statuses["memory_limit"] in ("memory_limit", "error")
    assert results[3][1].strip() == "slept"
    assert len(pool._workers) == 1  # nothing was killed


def test_a_canceled_run_ends_alone(with_pool: Callable[[Scenario], None]) -> None:
    with_pool(_cancel_one)


async def _cancel_one(pool: WorkerPool) -> None:
    worker = next(iter(pool._workers))
    doomed = pool.run(Job(code="import time\ntime.sleep(30)", limits=Limits(wall_ms=60_000)))
    assert isinstance(await anext(doomed), Started)
    neighbour = asyncio.create_task(run(pool, "import time\ntime.sleep(1)\nprint('done')"))
    await asyncio.sleep(0.2)  # both are in the worker now
    await doomed.aclose()  # the caller went away: the pool cancels that run only
    end, out = await neighbour
    assert (end.status.value, out.strip()) == ("ok", "done")
    after, _ = await run(pool, "print(1 + 1)")
    assert after.status.value == "ok"
    assert pool._workers == {worker} and worker.alive  # the cancel killed no process


def test_a_cpu_heavy_run_is_demoted_beside_short_ones(
    stack_artifacts: StackArtifacts, tmp_path: Path
) -> None:
    async def main() -> None:
        pool = stack_engine.create_runner(
            stack_artifacts,
            size=1,
            scratch_dir=tmp_path / "scratch",
            queue_timeout_ms=30_000,
            runs_per_worker=3,
            demotion=Demotion(after_ms=50, nice=10),
        )
        await pool.start()
        try:
            await _demoted(pool)
        finally:
            await pool.close()

    asyncio.run(main())


def _thread_nices(pid: int) -> list[int]:
    """The nice value of each thread of process ``pid`` (field 19 of its stat)."""
    nices = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        nices.append(int(stat[stat.rindex(")") + 2 :].split()[16]))
    return nices


async def _demoted(pool: WorkerPool) -> None:
    (worker,) = pool._workers
    assert worker._proc is not None
    pid = worker._proc.pid
    limits = Limits(cpu_ms=3_000, wall_ms=20_000)
    busy = asyncio.create_task(run(pool, "while True:\n    pass", limits=limits))
    # Past 50 ms of CPU the run's thread goes to nice 10.
    for _ in range(200):
        if 10 in _thread_nices(pid):
            break
        await asyncio.sleep(0.02)
    assert _thread_nices(pid).count(10) == 1, _thread_nices(pid)
    # Short runs beside it keep the normal weight, and still end ok.
    end, out = await run(pool, "print('short')")
    assert (end.status.value, out) == ("ok", "short\n")
    end, _ = await busy
    assert end.status.value == "cpu_limit"  # all of its cpu_ms, at the lower weight
    assert end.usage.cpu_ms >= 3_000
    # Its thread ended with it (after preparing the next instance, at its lower weight):
    # nothing in the process stays demoted.
    for _ in range(500):
        if 10 not in _thread_nices(pid):
            break
        await asyncio.sleep(0.02)
    assert 10 not in _thread_nices(pid)
