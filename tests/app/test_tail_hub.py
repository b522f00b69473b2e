"""The tail hub (app/tail.py): bounded per subscriber, drop notices where the gap is,
publish never waits, tails capped per namespace; and the invocation event: no query, no
headers, clipped to fit one NOTIFY payload."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from app.bus import PostgresBus
from app.tail import EVENT_MAX_BYTES, Dropped, Invocation, TailHub, TooManyTails, invocation
from sandbox import End, GuestError, Output, RunResult, Started, Status, Subrequest, Usage


def _event(n: int, namespace: str = "acme", worker: str = "site") -> Invocation:
    return Invocation(namespace, worker, {"n": n})


def test_a_subscriber_gets_its_workers_invocations_only() -> None:
    async def main() -> None:
        hub = TailHub(queue_size=10)
        with hub.subscribe("acme", "site") as mine, hub.subscribe("acme", "other") as theirs:
            hub.publish(_event(1))
            hub.publish(_event(2, worker="other"))
            hub.publish(_event(3, namespace="beta"))
            assert await mine.next() == _event(1)
            assert await theirs.next() == _event(2, worker="other")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(mine.next(), 0.05)

    asyncio.run(main())


def test_a_full_queue_drops_and_says_how_many_where_the_gap_is() -> None:
    async def main() -> None:
        hub = TailHub(queue_size=3)
        with hub.subscribe("acme", "site") as tail:
            for n in range(10):
                hub.publish(_event(n))
            # 0, 1, 2 were queued; 3..9 dropped. Taking one makes room for a notice only
            # together with an event, so 10 is dropped too; 11 lands after the notice.
            assert await tail.next() == _event(0)
            hub.publish(_event(10))
            assert await tail.next() == _event(1)
            hub.publish(_event(11))
            seen = [await tail.next() for _ in range(3)]
            assert seen == [_event(2), Dropped(8), _event(11)]
            assert tail.dropped_total == 8
            # A gap at the end is reported once the queue is empty.
            for n in range(12, 20):
                hub.publish(_event(n))
            got = [await tail.next() for _ in range(4)]
            assert got == [_event(12), _event(13), _event(14), Dropped(5)]

    asyncio.run(main())


def test_publish_never_waits_for_a_subscriber_that_never_reads() -> None:
    async def main() -> None:
        hub = TailHub(queue_size=100)
        with hub.subscribe("acme", "site") as tail:
            started = time.perf_counter()
            for n in range(20_000):
                hub.publish(_event(n))
            elapsed = time.perf_counter() - started
            assert tail.dropped_total == 19_900
            # 20,000 publishes to a stuck subscriber: microseconds each, no waiting.
            assert elapsed < 1.0, elapsed

    asyncio.run(main())


def test_tails_are_capped_per_namespace_and_closing_frees_a_place() -> None:
    async def main() -> None:
        hub = TailHub(max_per_namespace=2)
        first = hub.open("acme", "a")
        hub.open("acme", "b")
        with pytest.raises(TooManyTails):
            hub.open("acme", "c")
        other = hub.open("beta", "a")  # another namespace has its own places
        hub.close(first)
        hub.close(first)  # idempotent
        assert hub.open_count("acme") == 1
        hub.open("acme", "c")
        hub.close(other)
        assert hub.open_count("beta") == 0
        hub.publish(_event(1, worker="a"))  # nobody tails acme/a any more: nothing queued

    asyncio.run(main())


def _result(stdout: str = "", error: GuestError | None = None, subrequests: int = 0) -> RunResult:
    result = RunResult()
    result.add(Started("run_1", "wasmtime"))
    if stdout:
        result.add(Output("stdout", stdout))
    for n in range(subrequests):
        result.add(Subrequest("GET", f"https://api{n}.example/x?token=s3cret", 200, 10, 1.0, True))
    status = Status.ERROR if error else Status.OK
    result.add(End(status, Usage(cpu_ms=1.25, wall_ms=2.5), error=error))
    return result


def test_the_invocation_names_path_outcome_logs_exception_and_subrequests() -> None:
    error = GuestError("ValueError", "boom", 'Traceback...\n  File "main.py"\nValueError: boom')
    result = _result("hello\nworld\n", error, subrequests=1)
    event = invocation(
        "acme",
        "site",
        method="POST",
        url="/orders/7?api_key=hunter2",
        result=result,
        outcome="error",
        status=500,
    )
    data = event.data
    assert data["request"] == {"method": "POST", "path": "/orders/7"}
    assert "hunter2" not in event.to_json()
    assert data["outcome"] == "error" and data["status"] == 500
    assert data["logs"] == [
        {"stream": "stdout", "text": "hello"},
        {"stream": "stdout", "text": "world"},
    ]
    assert data["exception"]["type"] == "ValueError"
    assert data["exception"]["traceback"].endswith("ValueError: boom")
    assert data["subrequests"] == [
        {"method": "GET", "host": "api0.example", "status": 200, "blocked": False, "reason": None}
    ]
    assert (data["cpu_ms"], data["wall_ms"]) == (1.25, 2.5)
    assert "s3cret" not in event.to_json()


def test_a_huge_invocation_still_fits_one_notify_payload() -> None:
    # Non-ASCII output: three bytes a character, so character caps alone would not do.
    noisy = ("€" * 400 + "\n") * 500
    error = GuestError("E" * 1000, "m" * 5000, "line\n" * 5000 + "E: boom")
    event = invocation(
        "acme",
        "site",
        method="GET",
        url="/" + "p" * 5000,
        result=_result(noisy, error, subrequests=100),
        outcome="error",
        status=500,
    )
    encoded = event.to_json().encode()
    assert len(encoded) <= EVENT_MAX_BYTES
    data = json.loads(encoded)
    assert data["logs_truncated"] and data["subrequests_truncated"]
    assert data["exception"]["traceback"].endswith("E: boom")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_tails_see_invocations_from_every_replica_through_the_bus(database_url: str) -> None:
    """Two replicas' hubs on one PostgreSQL: B sends nothing while nobody tails its worker;
    once A tails it, B's invocations reach A's tail, once each, and A's own do too."""

    async def main() -> None:
        buses = [PostgresBus(database_url), PostgresBus(database_url), PostgresBus(database_url)]
        for bus in buses:
            await bus.start()
        a, b = TailHub(queue_size=50), TailHub(queue_size=50)
        await a.connect(buses[0])
        await b.connect(buses[1])
        sent: list[dict[str, object]] = []
        await buses[2].subscribe("tail", sent.append)
        try:
            b.publish(_event(0))
            await asyncio.sleep(0.3)
            assert sent == [], "a replica sent invocations nobody tails"
            with a.subscribe("acme", "site") as tail:
                # Until A's announcement reaches B, B's invocations stay with B.
                deadline = time.monotonic() + 5
                n = 1
                while True:
                    b.publish(_event(n))
                    try:
                        first = await asyncio.wait_for(tail.next(), 0.1)
                        break
                    except TimeoutError:
                        assert time.monotonic() < deadline, "B's invocations never reached A"
                        n += 1
                assert first == _event(n)
                b.publish(_event(100, worker="other"))
                b.publish(_event(101))
                a.publish(_event(102))
                got = [await asyncio.wait_for(tail.next(), 5) for _ in range(2)]
                assert sorted(event.data["n"] for event in got) == [101, 102]  # type: ignore[union-attr]
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(tail.next(), 0.3)
        finally:
            await a.disconnect()
            await b.disconnect()
            for bus in buses:
                await bus.close()

    asyncio.run(main())
