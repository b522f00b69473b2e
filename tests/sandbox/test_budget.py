"""sandbox/budget.py: runs are admitted by the memory they ask for, in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from sandbox import PoolBusy
from sandbox.budget import MemoryBudget


def _soon(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def test_runs_fit_until_the_budget_then_wait_for_memory_back() -> None:
    async def main() -> None:
        budget = MemoryBudget(512)
        await budget.reserve(256, _soon(1), 1000)
        await budget.reserve(256, _soon(1), 1000)
        assert budget.in_use_mb == 512
        waiting = asyncio.create_task(budget.reserve(128, _soon(5), 5000))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        budget.release(256)
        await waiting
        assert budget.in_use_mb == 384

    asyncio.run(main())


def test_past_the_wait_the_refusal_names_the_memory() -> None:
    async def main() -> None:
        budget = MemoryBudget(300)
        await budget.reserve(256, _soon(1), 1000)
        with pytest.raises(PoolBusy) as refused:
            await budget.reserve(256, _soon(0.1), 100)
        assert refused.value.reason == "memory"
        assert "256 of the 300 MiB" in str(refused.value)
        assert "limits.memory_mb" in str(refused.value)
        assert budget.in_use_mb == 256  # the refused run holds nothing

    asyncio.run(main())


def test_a_run_larger_than_the_whole_budget_is_refused_at_once() -> None:
    async def main() -> None:
        budget = MemoryBudget(300)
        with pytest.raises(PoolBusy) as refused:
            await budget.reserve(512, _soon(10), 10_000)
        assert refused.value.reason == "memory"

    asyncio.run(main())


def test_a_large_run_first_in_line_is_not_overtaken() -> None:
    async def main() -> None:
        budget = MemoryBudget(512)
        await budget.reserve(384, _soon(1), 1000)
        large = asyncio.create_task(budget.reserve(512, _soon(5), 5000))
        await asyncio.sleep(0.02)
        small = asyncio.create_task(budget.reserve(64, _soon(5), 5000))
        await asyncio.sleep(0.02)
        assert not small.done()  # it would fit, but the large one came first
        budget.release(384)
        await large
        assert not small.done()
        budget.release(512)
        await small
        assert budget.in_use_mb == 64

    asyncio.run(main())


def test_a_caller_that_gives_up_while_waiting_holds_nothing() -> None:
    async def main() -> None:
        budget = MemoryBudget(256)
        await budget.reserve(256, _soon(1), 1000)
        waiting = asyncio.create_task(budget.reserve(128, _soon(5), 5000))
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        budget.release(256)
        assert budget.in_use_mb == 0

    asyncio.run(main())


def test_no_budget_admits_everything() -> None:
    async def main() -> None:
        budget = MemoryBudget(None)
        for _ in range(10):
            await budget.reserve(4096, _soon(1), 1000)
        assert budget.in_use_mb == 40960

    asyncio.run(main())
