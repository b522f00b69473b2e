"""Many runs per worker process: concurrent sleeping runs on the data-stack guest.

Starts the data-stack pool as the service would (``pool_size`` processes, each taking
``runs_per_worker`` runs at once on threads), then, at the same moment, N runs of
``time.sleep(1)`` plus a trivial ``print(1+1)`` every 50 ms while they sleep, and prints
a table: how many ended ``ok``, the slowest sleeping run, the trivial runs' p50/max.
A last row sends one run more than the pool holds, with a short queue wait: only that
one is refused (``PoolBusy``, the service's 429).

    .venv/bin/python bench/concurrency.py [--runs 64] [--size 2] [--per-worker N]

``--per-worker`` defaults to the service's default ``runs_per_worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import default_runs_per_worker
from sandbox import End, Job, Limits, PoolBusy
from sandbox.engines import stack as stack_engine
from sandbox.pool import WorkerPool

LIMITS = Limits(cpu_ms=5_000, wall_ms=10_000, memory_mb=256, output_bytes=1 << 20)


async def one(pool: WorkerPool, code: str) -> tuple[str, float]:
    started = time.monotonic()
    status = "?"
    try:
        async for event in pool.run(Job(code=code, limits=LIMITS)):
            if isinstance(event, End):
                status = event.status.value
    except PoolBusy:
        status = "busy"
    return status, (time.monotonic() - started) * 1000


async def wave(pool: WorkerPool, sleepers: int) -> tuple[list[tuple[str, float]], list[float]]:
    started = time.monotonic()
    sleeping = [
        asyncio.create_task(one(pool, "import time; time.sleep(1)")) for _ in range(sleepers)
    ]
    trivial: list[float] = []
    while not all(t.done() for t in sleeping):
        await asyncio.sleep(0.05)
        status, ms = await one(pool, "print(1+1)")
        if status == "ok":
            trivial.append(ms)
    results = await asyncio.gather(*sleeping)
    print(
        f"  wave of {sleepers} took {(time.monotonic() - started) * 1000:.0f} ms", file=sys.stderr
    )
    return results, trivial


def worker_rss_mib(pool: WorkerPool) -> tuple[float, float]:
    """Resident memory of the pool's worker processes now: private (anon) and file-backed
    (the guest image's pages, shared through the page cache), MiB summed."""
    anon = file = 0
    for worker in pool._workers:
        proc = worker._proc
        if proc is None:
            continue
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                anon += int(line.split()[1])
            elif line.startswith("RssFile:"):
                file += int(line.split()[1])
    return anon / 1024, file / 1024


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--size", type=int, default=2)
    parser.add_argument("--per-worker", type=int, default=default_runs_per_worker())
    parser.add_argument("--artifacts", type=Path, default=Path(".artifacts"))
    args = parser.parse_args()
    artifacts = stack_engine.locate(args.artifacts)
    with tempfile.TemporaryDirectory(prefix="sandlot-bench-") as scratch:
        pool = stack_engine.create_runner(
            artifacts,
            size=args.size,
            scratch_dir=Path(scratch),
            queue_timeout_ms=500,
            runs_per_worker=args.per_worker,
        )
        await pool.start()
        try:
            idle_anon, idle_file = worker_rss_mib(pool)
            await wave(pool, args.runs)  # warm every runtime once
            warm_anon, warm_file = worker_rss_mib(pool)
            rows = []
            for n in (args.runs,):
                began = time.monotonic()
                results, trivial = await wave(pool, n)
                took = (time.monotonic() - began) * 1000
                ok = sum(1 for s, _ in results if s == "ok")
                slowest = max(ms for _, ms in results)
                rows.append(
                    (
                        f"{n} x sleep(1)",
                        f"{ok}/{n} ok",
                        f"{slowest:.0f}",
                        f"{took:.0f}",
                        f"{statistics.median(trivial):.1f}" if trivial else "-",
                        f"{max(trivial):.1f}" if trivial else "-",
                    )
                )
            capacity = args.size * args.per_worker
            over = [
                asyncio.create_task(one(pool, "import time; time.sleep(1)"))
                for _ in range(capacity + 1)
            ]
            statuses = [s for s, _ in await asyncio.gather(*over)]
            rows.append(
                (
                    f"{capacity + 1} x sleep(1), queue 0.5 s",
                    f"{statuses.count('ok')} ok, {statuses.count('busy')} busy",
                    "-",
                    "-",
                    "-",
                    "-",
                )
            )
        finally:
            await pool.close()
    print(
        f"workers' RSS: at start {idle_anon:.0f} MiB anon + {idle_file:.0f} MiB file; "
        f"with a runtime per slot used {warm_anon:.0f} MiB anon + {warm_file:.0f} MiB file"
    )
    header = ("load", "outcome", "slowest run ms", "wave ms", "trivial p50 ms", "trivial max ms")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    asyncio.run(main())
