"""Usage per namespace and day in the store (app/store/usage.py) and the meter that flushes
it (app/usage.py): upserts that add, on SQLite and on the real PostgreSQL, with two
writers at once; a failed flush keeps its counts; the day range a request may ask for."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from app.errors import ApiError
from app.routes.usage import MAX_DAYS, day_range
from app.store import ArtifactCache, ArtifactStore, Store, migrate, namespaces
from app.store import usage as stored
from app.usage import DayUsage, UsageMeter
from sandbox import End, Event, Started, Status, Subrequest, Usage

DAY = date(2026, 12, 5)


def _store(url: str, *names: str) -> Store:
    store = Store(url)
    migrate(store)
    for name in names:
        namespaces.create(
            store, name, mode="untrusted", limits={}, allowed_hosts=[], dispatch_public=True
        )
    return store


def test_add_adds_to_the_days_row(database_url: str, tmp_path: Path) -> None:
    store = _store(database_url, "acme", "beta")
    try:
        stored.add(store, {("acme", DAY): DayUsage(runs=2, cpu_ms=1.5, egress_sent_bytes=10)})
        stored.add(
            store,
            {
                ("acme", DAY): DayUsage(runs=3, dispatches=1, cpu_ms=1.0, wall_ms=4.0),
                ("acme", DAY + timedelta(days=1)): DayUsage(subrequests=7),
                ("beta", DAY): DayUsage(runs=1),
                # A namespace deleted meanwhile: nothing is written, nothing fails.
                ("gone", DAY): DayUsage(runs=9),
            },
        )
        found = stored.days(store, "acme", DAY, DAY + timedelta(days=1))
        assert found == {
            DAY: DayUsage(runs=5, dispatches=1, cpu_ms=2.5, wall_ms=4.0, egress_sent_bytes=10),
            DAY + timedelta(days=1): DayUsage(subrequests=7),
        }
        assert stored.days(store, "acme", DAY + timedelta(days=2), DAY + timedelta(days=9)) == {}
        # Usage goes with its namespace: a namespace made again under the name starts at 0.
        namespaces.remove(
            store, "beta", artifacts=ArtifactStore(store, ArtifactCache(tmp_path / "artifacts"))
        )
        namespaces.create(
            store, "beta", mode="untrusted", limits={}, allowed_hosts=[], dispatch_public=True
        )
        assert stored.days(store, "beta", DAY, DAY) == {}
    finally:
        store.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_writers_add_up_on_postgresql(database_url: str) -> None:
    """Two replicas (two Stores, two connection pools) flushing the same rows at once."""
    first = _store(database_url, "acme")
    second = Store(database_url)
    rounds = 40
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer(store: Store) -> None:
        try:
            barrier.wait(10)
            for n in range(rounds):
                # Each flush carries both days, in the same order the meter sorts them.
                stored.add(
                    store,
                    {
                        ("acme", DAY): DayUsage(runs=1, cpu_ms=0.5, egress_received_bytes=n),
                        ("acme", DAY + timedelta(days=1)): DayUsage(dispatches=2),
                    },
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert not failures, failures
        found = stored.days(first, "acme", DAY, DAY + timedelta(days=1))
        assert found[DAY] == DayUsage(
            runs=2 * rounds,
            cpu_ms=rounds * 1.0,
            egress_received_bytes=2 * sum(range(rounds)),
        )
        assert found[DAY + timedelta(days=1)] == DayUsage(dispatches=4 * rounds)
    finally:
        second.close()
        first.close()


async def _run(meter: UsageMeter, namespace: str | None, kind: str, *, ended: bool = True) -> None:
    async def events() -> AsyncIterator[Event]:
        yield Started("run_1", "wasmtime")
        yield Subrequest("POST", "https://x.example/", 200, 100, 1.0, True, sent_bytes=40)
        yield Subrequest("GET", "https://y.example/", None, 0, 1.0, False, "not_allowlisted")
        if ended:
            yield End(Status.OK, Usage(cpu_ms=3.0, wall_ms=5.0))

    async for _ in meter.observe(events(), namespace=namespace, kind=kind):
        pass


def test_the_meter_counts_runs_dispatches_and_egress_then_flushes(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'db'}", "acme")
    now = [1_796_428_800.0]  # 2026-12-05 00:00 UTC

    async def main() -> None:
        meter = UsageMeter(store, flush_ms=60_000, clock=lambda: now[0])
        await _run(meter, "acme", "execute")
        await _run(meter, "acme", "dispatch")
        await _run(meter, None, "execute")  # the admin's own run: no namespace
        await _run(meter, "acme", "session", ended=False)  # closed before its end
        # Not flushed yet: a read still sees it (this process's counts).
        today = await meter.days("acme", DAY, DAY)
        assert today[DAY].runs == 3 and today[DAY].dispatches == 1
        assert today[DAY].cpu_ms == 6.0
        assert today[DAY].subrequests == 6
        assert (today[DAY].egress_sent_bytes, today[DAY].egress_received_bytes) == (120, 300)
        assert stored.days(store, "acme", DAY, DAY) == {}
        now[0] += 86_400  # the next run ends on the next day
        await _run(meter, "acme", "execute")
        await meter.close()
        both = stored.days(store, "acme", DAY, DAY + timedelta(days=1))
        assert both[DAY].runs == 3 and both[DAY + timedelta(days=1)].runs == 1
        # Flushed means moved, not copied: reading again counts nothing twice.
        assert await meter.days("acme", DAY, DAY) == {DAY: both[DAY]}

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_a_failed_flush_keeps_its_counts_for_the_next(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'db'}", "acme")
    now = 1_796_428_800.0

    async def main() -> None:
        meter = UsageMeter(store, clock=lambda: now)
        await _run(meter, "acme", "execute")
        # Make the next write fail: the table is gone for a moment.
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE usage_days RENAME TO usage_days_away")
        await meter.flush()
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE usage_days_away RENAME TO usage_days")
        await _run(meter, "acme", "execute")
        await meter.flush()
        assert stored.days(store, "acme", DAY, DAY)[DAY].runs == 2

    try:
        asyncio.run(main())
    finally:
        store.close()


@pytest.mark.parametrize(
    ("first", "last", "field", "words"),
    [
        ("2026-13-01", None, "from", "YYYY-MM-DD"),
        (None, "yesterday", "to", "YYYY-MM-DD"),
        ("2026-12-06", "2026-12-05", "from", "after to"),
        ("2025-01-01", "2026-12-05", "from", f"at most {MAX_DAYS}"),
    ],
    ids=["bad-from", "bad-to", "from-after-to", "too-long"],
)
def test_bad_day_ranges_name_the_field(
    first: str | None, last: str | None, field: str, words: str
) -> None:
    with pytest.raises(ApiError) as caught:
        day_range(first, last, DAY)
    assert caught.value.status_code == 422
    assert caught.value.details[0].field == field
    assert words in caught.value.message


def test_day_range_defaults_to_the_last_30_days_and_allows_366() -> None:
    assert day_range(None, None, DAY) == (DAY - timedelta(days=29), DAY)
    assert day_range("2025-12-05", "2026-12-05", DAY) == (date(2025, 12, 5), DAY)
