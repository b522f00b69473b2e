"""sandbox/engines/fairshare.py: CPU-heavy run threads are demoted, short ones never."""

from __future__ import annotations

import os
import threading
import time

import pytest

from sandbox.engines.fairshare import Demotion, FairShare


def _nice(native_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, native_id)


def _in_thread(fair: FairShare, work: float, *, busy: bool) -> int:
    """Run ``work`` seconds (of CPU when ``busy``, else asleep) on a watched thread; its
    nice value at the end."""
    seen: list[int] = []

    def body() -> None:
        fair.watch()
        try:
            ends = time.thread_time() + work if busy else time.monotonic() + work
            while (time.thread_time() if busy else time.monotonic()) < ends:
                if not busy:
                    time.sleep(0.01)
            time.sleep(0.1)  # a few ticks of the sampler after the work
            seen.append(_nice(threading.get_native_id()))
        finally:
            fair.forget()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(30)
    return seen[0]


@pytest.mark.parametrize(
    ("after_ms", "nice"), [(-1, 10), (50, 0), (50, 20)], ids=["negative", "nice0", "nice20"]
)
def test_a_demotion_is_checked_at_construction(after_ms: int, nice: int) -> None:
    with pytest.raises(ValueError):
        Demotion(after_ms=after_ms, nice=nice)


def test_a_run_past_its_cpu_share_is_demoted_and_a_waiting_one_is_not() -> None:
    fair = FairShare(Demotion(after_ms=30, nice=7), tick_s=0.005)
    try:
        assert _in_thread(fair, 0.2, busy=True) == 7
        assert _in_thread(fair, 0.2, busy=False) == 0  # sleeping costs no CPU
        assert fair.demoted == 1
        # The caller's own thread (and so the next run's, made by it) keeps its weight.
        assert _nice(threading.get_native_id()) == 0
    finally:
        fair.close()


def test_demotion_off_leaves_every_thread_alone() -> None:
    fair = FairShare(Demotion(after_ms=0))
    try:
        assert _in_thread(fair, 0.1, busy=True) == 0
        assert fair.demoted == 0
    finally:
        fair.close()


def test_the_worker_flags_carry_the_policy() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    Demotion.add_arguments(parser)
    policy = Demotion(after_ms=120, nice=12)
    assert Demotion.from_arguments(parser.parse_args(policy.argv())) == policy


def test_only_the_current_runs_cpu_counts_and_forget_says_who_was_demoted() -> None:
    # Run threads take one run after another: the CPU of earlier runs must not count.
    fair = FairShare(Demotion(after_ms=50, nice=7), tick_s=0.005)
    said: list[bool] = []

    def thread() -> None:
        ends = time.thread_time() + 0.2
        while time.thread_time() < ends:  # an earlier run's CPU, unwatched
            pass
        fair.watch()
        time.sleep(0.1)  # a short run: 0 ms of CPU, many ticks
        said.append(fair.forget())
        fair.watch()
        ends = time.thread_time() + 0.2
        while time.thread_time() < ends:
            pass
        time.sleep(0.05)
        said.append(fair.forget())

    try:
        runner = threading.Thread(target=thread)
        runner.start()
        runner.join(30)
        assert said == [False, True]
        assert fair.demoted == 1
    finally:
        fair.close()
