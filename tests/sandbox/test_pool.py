"""sandbox/pool.py against fake workers: every run ends, every fault is translated."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from sandbox import (
    End,
    EngineUnavailable,
    Event,
    Job,
    Limits,
    Output,
    PoolBusy,
    RunnerClosed,
    Started,
    Status,
    collect,
)
from sandbox.errors import SessionEnded, SessionsUnsupported
from sandbox.pool import PoolConfig, WorkerPool

FAKE = str(Path(__file__).with_name("fake_worker.py"))


def pool_of(mode: str, tmp_path: Path, **config: int) -> WorkerPool:
    settings = {
        "size": 1,
        "queue_timeout_ms": 200,
        "kill_grace_ms": 100,
        "start_timeout_ms": 2_000,
        **config,
    }
    return WorkerPool(
        "fake", PoolConfig(command=(sys.executable, FAKE, mode), scratch_dir=tmp_path, **settings)
    )


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def job(code: str = "hello", wall_ms: int = 500) -> Job:
    return Job(code=code, limits=Limits(wall_ms=wall_ms))


async def worker_pid(events: AsyncIterator[Event]) -> str:
    """The pid a hang or slow-cancel worker reports when its run starts."""
    assert isinstance(await anext(events), Started)
    said = await anext(events)
    assert isinstance(said, Output) and said.text.startswith("pid "), said
    return said.text


def test_events_are_relayed_and_end_last(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("ok", tmp_path)
        await pool.start()
        try:
            assert pool.ready
            result = await collect(pool.run(job("hi there")))
            assert (result.status, result.stdout) == (Status.OK, "hi there")
            assert result.run_id.startswith("run_")
            assert result.engine == "fake"
        finally:
            await pool.close()
        assert not pool.ready

    run(main)


@pytest.mark.parametrize("mode", ["exit-at-start", "never-ready", "garbage-at-start"])
def test_workers_that_cannot_start_raise_engine_unavailable(tmp_path: Path, mode: str) -> None:
    async def main() -> None:
        pool = pool_of(mode, tmp_path)
        with pytest.raises(EngineUnavailable):
            await pool.start()
        await pool.close()

    run(main)


def test_missing_worker_executable_raises_engine_unavailable(tmp_path: Path) -> None:
    async def main() -> None:
        pool = WorkerPool(
            "fake",
            PoolConfig(command=(str(tmp_path / "no-such-binary"),), size=1, scratch_dir=tmp_path),
        )
        with pytest.raises(EngineUnavailable, match="can't start"):
            await pool.start()

    run(main)


def test_silent_worker_is_killed_at_the_hard_deadline(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("hang", tmp_path, queue_timeout_ms=5_000)
        await pool.start()
        try:
            started = time.monotonic()
            first = pool.run(job(wall_ms=300))
            killed = await worker_pid(first)
            result = await collect(first)
            elapsed = time.monotonic() - started
            assert result.status is Status.WALL_LIMIT
            assert 0.35 < elapsed < 1.5  # wall 300 ms + grace 100 ms
            # The replacement comes up and takes the next job.
            second = pool.run(job(wall_ms=300))
            assert await worker_pid(second) != killed
            assert (await collect(second)).status is Status.WALL_LIMIT
        finally:
            await pool.close()

    run(main)


@pytest.mark.parametrize("mode", ["die-mid-run", "bad-frame-mid-run"])
def test_worker_that_breaks_mid_run_ends_it_as_internal_error(tmp_path: Path, mode: str) -> None:
    async def main() -> None:
        pool = pool_of(mode, tmp_path)
        await pool.start()
        try:
            events = [e async for e in pool.run(job(wall_ms=5_000))]
            end = events[-1]
            assert isinstance(end, End)
            assert end.status is Status.INTERNAL_ERROR
            assert end.error is not None and end.error.type == "WorkerCrashed"
        finally:
            await pool.close()

    run(main)


def test_busy_pool_raises_pool_busy_after_the_queue_wait(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("hang", tmp_path, queue_timeout_ms=200)
        await pool.start()
        try:
            first = pool.run(job(wall_ms=5_000))
            await anext(first)  # holds the only worker
            started = time.monotonic()
            with pytest.raises(PoolBusy):
                await anext(pool.run(job()))
            assert 0.15 < time.monotonic() - started < 1.0
            await first.aclose()
        finally:
            await pool.close()

    run(main)


def test_a_caller_that_stops_reading_holds_no_worker(tmp_path: Path) -> None:
    # Issue 11, finding 7: the run goes on to its end without the caller, and the events
    # wait for it in this process; the worker is back in the pool meanwhile.
    async def main() -> None:
        pool = pool_of("ok", tmp_path, queue_timeout_ms=2_000)
        await pool.start()
        try:
            unread = pool.run(job("kept for later"))
            await anext(unread)  # Started, then the caller reads nothing more
            other = await collect(pool.run(job("meanwhile")))
            assert (other.status, other.stdout) == (Status.OK, "meanwhile")
            rest = await collect(unread)
            assert (rest.status, rest.stdout) == (Status.OK, "kept for later")
        finally:
            await pool.close()

    run(main)


def test_the_hard_deadline_holds_while_nobody_reads(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("hang", tmp_path, queue_timeout_ms=5_000, kill_grace_ms=100)
        await pool.start()
        try:
            unread = pool.run(job(wall_ms=200))
            await anext(unread)
            started = time.monotonic()
            # Killed at wall_ms + grace and replaced: the next run gets the new worker.
            second = pool.run(job(wall_ms=200))
            await anext(second)
            assert time.monotonic() - started < 3.0
            assert (await collect(second)).status is Status.WALL_LIMIT
            assert (await collect(unread)).status is Status.WALL_LIMIT
        finally:
            await pool.close()

    run(main)


def test_closing_the_stream_cancels_and_returns_the_worker(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("slow-cancel", tmp_path, queue_timeout_ms=2_000)
        await pool.start()
        try:
            stream = pool.run(job(wall_ms=10_000))
            first = await worker_pid(stream)
            await stream.aclose()
            # The worker answers the cancel and is reused (not replaced): the next run, which
            # waits for it, is the same process.
            second = pool.run(job(wall_ms=10_000))
            assert await worker_pid(second) == first
            await second.aclose()
        finally:
            await pool.close()

    run(main)


def test_worker_that_ignores_cancel_is_replaced(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("hang", tmp_path, queue_timeout_ms=5_000)
        await pool.start()
        try:
            stream = pool.run(job(wall_ms=200))
            ignored = await worker_pid(stream)
            await stream.aclose()
            # It never answers the cancel: it is killed and the next run gets a new process.
            second = pool.run(job(wall_ms=200))
            assert await worker_pid(second) != ignored
            assert (await collect(second)).status is Status.WALL_LIMIT
        finally:
            await pool.close()

    run(main)


def test_closed_pool_refuses_jobs(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("ok", tmp_path)
        await pool.start()
        await pool.close()
        await pool.close()  # idempotent
        with pytest.raises(RunnerClosed):
            await anext(pool.run(job()))

    run(main)


@pytest.mark.parametrize(
    ("field", "value"), [("size", 0), ("kill_grace_ms", 0), ("start_timeout_ms", -1)]
)
def test_pool_config_validates(tmp_path: Path, field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        PoolConfig(command=("x",), scratch_dir=tmp_path, **{"size": 1, field: value})


# -- sessions ---------------------------------------------------------------------


def session_pool(tmp_path: Path, **config: Any) -> WorkerPool:
    settings = {
        "size": 2,
        "queue_timeout_ms": 2_000,
        "kill_grace_ms": 100,
        "start_timeout_ms": 2_000,
        **config,
    }
    return WorkerPool(
        "fake",
        PoolConfig(
            command=(sys.executable, FAKE, "ok"), scratch_dir=tmp_path, sessions=True, **settings
        ),
    )


def test_turns_go_to_the_process_holding_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path)
        await pool.start()
        try:
            first = await pool.open_session("ses_a", tmp_path, 64)
            second = await pool.open_session("ses_b", tmp_path, 64)
            # Spread: each session in the process holding the fewest.
            assert first.worker is not second.worker
            seen = set()
            for turn in (1, 2, 3):
                result = await collect(pool.turn(first, job("x")))
                pid, name, count = result.stdout.split()
                seen.add(pid)
                assert (result.status, name, count) == (Status.OK, "ses_a", str(turn))
                # Runs in between take any worker; the session stays where it is.
                await collect(pool.run(job("run")))
            assert len(seen) == 1
            other = await collect(pool.turn(second, job("x")))
            assert other.stdout.split()[0] not in seen
            assert first.ended is None
        finally:
            await pool.close()

    run(main)


@pytest.mark.parametrize("together", [True, False], ids=["session-tenants", "by-load"])
def test_a_tenants_sessions_go_to_the_process_holding_its_others(
    tmp_path: Path, together: bool
) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path, session_tenants=together)
        await pool.start()
        try:

            async def where(session: Any) -> list[str]:
                said: list[str] = (await collect(pool.turn(session, job("tenant")))).stdout.split()
                return said

            first = await pool.open_session("ses_a1", tmp_path, 64, tenant="namespace:a")
            pid, tenant = await where(first)
            assert tenant == "namespace:a"  # the open frame named it
            # Fewest sessions says the other process; the tenant's says this one.
            second = await pool.open_session("ses_a2", tmp_path, 64, tenant="namespace:a")
            assert ((await where(second))[0] == pid) is together
            # Another tenant goes by load; so does a session of no tenant.
            other = await pool.open_session("ses_b", tmp_path, 64, tenant="namespace:b")
            untold = await pool.open_session("ses_x", tmp_path, 64)
            assert (await where(untold))[1] == "-"
            if together:
                assert (await where(other))[0] != pid
            # Its last session closed a moment ago: the process is still the tenant's.
            await pool.close_session(first)
            await pool.close_session(second)
            third = await pool.open_session("ses_a3", tmp_path, 64, tenant="namespace:a")
            if together:
                assert (await where(third))[0] == pid
        finally:
            await pool.close()

    run(main)


def test_a_turn_waits_for_its_busy_process_then_runs_there(tmp_path: Path) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path, size=1, queue_timeout_ms=2_000)
        await pool.start()
        try:
            session = await pool.open_session("ses_a", tmp_path, 64)
            busy = asyncio.create_task(collect(pool.turn(session, job("sleep:0.3"))))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            result = await collect(pool.turn(session, job("x")))
            assert time.monotonic() - started >= 0.2
            assert (await busy).stdout.split()[2] == "1"
            assert result.stdout.split()[2] == "2"
        finally:
            await pool.close()

    run(main)


def test_a_turn_whose_process_stays_busy_gets_pool_busy(tmp_path: Path) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path, size=1, queue_timeout_ms=100)
        await pool.start()
        try:
            session = await pool.open_session("ses_a", tmp_path, 64)
            busy = asyncio.create_task(collect(pool.turn(session, job("sleep:0.4"))))
            await asyncio.sleep(0.05)
            with pytest.raises(PoolBusy):
                await collect(pool.turn(session, job("x")))
            await busy
            assert session.ended is None
        finally:
            await pool.close()

    run(main)


@pytest.mark.parametrize("status", ["cpu_limit", "wall_limit", "memory_limit", "output_limit"])
def test_a_turn_ending_past_a_limit_ends_the_session(tmp_path: Path, status: str) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path)
        await pool.start()
        try:
            session = await pool.open_session("ses_a", tmp_path, 64)
            result = await collect(pool.turn(session, job(f"status:{status}")))
            assert result.status.value == status
            assert session.ended == status
            with pytest.raises(SessionEnded) as raised:
                await collect(pool.turn(session, job("x")))
            assert raised.value.reason == status
        finally:
            await pool.close()

    run(main)


def test_an_error_turn_keeps_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path)
        await pool.start()
        try:
            session = await pool.open_session("ses_a", tmp_path, 64)
            assert (await collect(pool.turn(session, job("status:error")))).status is Status.ERROR
            assert session.ended is None
            assert (await collect(pool.turn(session, job("x")))).stdout.endswith(" 2")
        finally:
            await pool.close()

    run(main)


def test_a_dying_process_takes_its_sessions_with_it(tmp_path: Path) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path, size=1)
        await pool.start()
        try:
            doomed = await pool.open_session("ses_a", tmp_path, 64)
            neighbour = await pool.open_session("ses_b", tmp_path, 64)
            result = await collect(pool.turn(doomed, job("die")))
            assert result.status is Status.INTERNAL_ERROR
            assert doomed.ended == "crashed"
            for _ in range(100):
                if neighbour.ended is not None:
                    break
                await asyncio.sleep(0.02)
            assert neighbour.ended == "crashed"
            with pytest.raises(SessionEnded):
                await collect(pool.turn(neighbour, job("x")))
            # The pool itself carries on with a new process.
            assert (await collect(pool.run(job("after")))).status is Status.OK
        finally:
            await pool.close()

    run(main)


def test_a_closed_session_is_gone_in_its_worker(tmp_path: Path) -> None:
    async def main() -> None:
        pool = session_pool(tmp_path, size=1)
        await pool.start()
        try:
            session = await pool.open_session("ses_a", tmp_path, 64)
            await pool.close_session(session)
            await pool.close_session(session)  # idempotent
            assert session.ended == "closed"
            with pytest.raises(SessionEnded):
                await collect(pool.turn(session, job("x")))
            # The worker dropped it too: a turn sent anyway finds nothing.
            session.ended = None
            result = await collect(pool.turn(session, job("x")))
            assert result.status is Status.INTERNAL_ERROR
            assert session.ended == "crashed"
        finally:
            await pool.close()

    run(main)


def test_pools_without_sessions_refuse_them(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("ok", tmp_path)
        await pool.start()
        try:
            with pytest.raises(SessionsUnsupported):
                await pool.open_session("ses_a", tmp_path, 64)
        finally:
            await pool.close()

    run(main)


def test_a_worker_takes_runs_up_to_its_slots_then_callers_queue(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("hang", tmp_path, runs_per_worker=2)
        await pool.start()
        try:
            first, second = pool.run(job(wall_ms=5_000)), pool.run(job(wall_ms=5_000))
            # Both runs are in the one process at once.
            assert await worker_pid(first) == await worker_pid(second)
            with pytest.raises(PoolBusy):
                await anext(pool.run(job()))
            await first.aclose()
            await second.aclose()
        finally:
            await pool.close()

    run(main)


def test_back_to_back_runs_go_to_the_worker_that_answered_longest_ago(tmp_path: Path) -> None:
    # A worker that has just answered is making its next instance: the next run goes to
    # the other one, though both have free slots.
    async def main() -> None:
        pool = pool_of("ok", tmp_path, size=2, runs_per_worker=4)
        await pool.start()
        try:
            pids = [(await collect(pool.run(job("pid")))).stdout for _ in range(6)]
            assert len(set(pids)) == 2
            assert all(a != b for a, b in itertools.pairwise(pids)), pids
        finally:
            await pool.close()

    run(main)


def test_each_run_gets_its_own_frames_back(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("ok", tmp_path, runs_per_worker=3)
        await pool.start()
        try:
            results = await asyncio.gather(*(collect(pool.run(job(f"run {n}"))) for n in range(9)))
            assert [r.stdout for r in results] == [f"run {n}" for n in range(9)]
            assert {r.status for r in results} == {Status.OK}
        finally:
            await pool.close()

    run(main)


def test_a_run_past_its_hard_deadline_costs_its_neighbours_nothing(tmp_path: Path) -> None:
    """The overrun run ends wall_limit; the other run in its process ends as it would have;
    new runs go to a replacement as soon as it is ready, and the old process goes once it
    has no runs."""

    async def main() -> None:
        pool = pool_of("ok", tmp_path, runs_per_worker=3, queue_timeout_ms=2_000)
        await pool.start()
        try:
            old = (await collect(pool.run(job("pid")))).stdout
            neighbour = asyncio.create_task(collect(pool.run(job("after:1.5", wall_ms=5_000))))
            started = time.monotonic()
            overrun = await collect(pool.run(job("hang", wall_ms=300)))
            assert overrun.status is Status.WALL_LIMIT
            assert time.monotonic() - started < 1.2  # wall 300 ms + grace 100 ms
            # The old process is retired: once the replacement is ready, runs start there.
            for _ in range(100):
                fresh = (await collect(pool.run(job("pid")))).stdout
                if fresh != old:
                    break
                await asyncio.sleep(0.02)
            assert fresh != old
            assert not neighbour.done()
            done = await neighbour
            assert (done.status, done.stdout) == (Status.OK, "late")
            # Once its last run has ended, the retired process is killed.
            deadline = time.monotonic() + 5
            while Path(f"/proc/{old}").exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not Path(f"/proc/{old}").exists() or _zombie(int(old))
            assert {(await collect(pool.run(job("pid")))).stdout for _ in range(3)} == {fresh}
        finally:
            await pool.close()

    run(main)


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_runs_past_the_memory_budget_wait_then_get_pool_busy_for_memory(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("ok", tmp_path, runs_per_worker=4, memory_budget_mb=300)
        await pool.start()
        try:
            big = Limits(wall_ms=5_000, memory_mb=256)
            holding = asyncio.create_task(collect(pool.run(Job(code="after:1", limits=big))))
            await asyncio.sleep(0.2)
            assert pool.memory_in_use_mb == 256
            # A slot is free, the memory is not: refused after the queue wait, for memory.
            with pytest.raises(PoolBusy) as refused:
                await collect(pool.run(Job(code="x", limits=big)))
            assert refused.value.reason == "memory"
            # A small run fits beside it.
            small = Limits(wall_ms=5_000, memory_mb=32)
            assert (await collect(pool.run(Job(code="x", limits=small)))).status is Status.OK
            assert (await holding).status is Status.OK
            assert pool.memory_in_use_mb == 0
            assert (await collect(pool.run(Job(code="x", limits=big)))).status is Status.OK
        finally:
            await pool.close()

    run(main)


def test_a_retiring_worker_that_dies_is_replaced_once(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_of("ok", tmp_path, size=2, runs_per_worker=2, queue_timeout_ms=2_000)
        await pool.start()
        try:
            overrun = await collect(pool.run(job("hang", wall_ms=200)))
            assert overrun.status is Status.WALL_LIMIT
            # Its process dies (a crash, a SIGKILL) while it is being retired.
            (retiring,) = pool._retiring
            assert retiring._proc is not None
            retiring._proc.kill()
            await asyncio.sleep(1.5)
            assert len(pool._workers) == 2  # one replacement, not two
            assert all(w.alive for w in pool._workers)
            assert (await collect(pool.run(job("x")))).status is Status.OK
        finally:
            await pool.close()

    run(main)
