"""What clients of three replicas behind HAProxy see when one of them goes away.

Three real service processes on a fresh PostgreSQL database on loopback, Debian's HAProxy
in front with deploy/haproxy.cfg (the harness of tests/deploy/), and runs
(``time.sleep(0.1)``) sent through it at a fixed concurrency. Midway, one replica goes:

* ``SIGKILL``: a crash; its runs in flight are lost;
* ``SIGTERM``, ``SANDLOT_DRAIN_DELAY_MS=0``: a stop that refuses new requests at once;
* ``SIGTERM``, ``SANDLOT_DRAIN_DELAY_MS=3000``: a stop that keeps serving while
  HAProxy's health checks take it out (deploy/'s setting).

Between scenarios the replica is started again on its port. Prints one row a scenario:
the requests that failed and how (HAProxy's 502, a connection closed unanswered, the
replica's own 503 ``shutting_down``), how long HAProxy took to mark it down, and the
latency of the requests that succeeded.

    .venv/bin/python bench/failover.py [--requests 240] [--concurrency 12] [--rounds 1]
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import ADMIN_KEY
from tests.deploy.cluster import LoadBalancer, Replica, deployment

SETTINGS = {
    "pool_size": "1",
    "runs_per_worker": "8",
    "pyodide_enabled": "false",
    "build_on_start": "false",
    "queue_timeout_ms": "20000",
    "log_format": "json",
}
SCENARIOS = [
    ("SIGKILL", signal.SIGKILL, "0"),
    ("SIGTERM, drain delay 0", signal.SIGTERM, "0"),
    ("SIGTERM, drain delay 3 s", signal.SIGTERM, "3000"),
]


def _request(client: httpx.Client, index: int) -> tuple[str, float]:
    """('ok' | '502' | 'closed' | '503 shutting_down' | other, seconds)."""
    started = time.monotonic()
    code = f"import time\ntime.sleep(0.1)\nprint('ok-{index}')"
    try:
        answer = client.post("/v1/execute", json={"code": code})
    except httpx.TransportError:
        return "closed", time.monotonic() - started
    elapsed = time.monotonic() - started
    if answer.status_code == 200 and f"ok-{index}" in answer.text:
        return "ok", elapsed
    if answer.status_code == 503 and "shutting_down" in answer.text:
        return "503 shutting_down", elapsed
    return str(answer.status_code), elapsed


def _scenario(
    lb: LoadBalancer, victim: Replica, how: signal.Signals, requests: int, concurrency: int
) -> dict[str, object]:
    done = itertools.count(1)
    local = threading.local()
    clients: list[httpx.Client] = []
    down: list[float] = []
    watchers: list[threading.Thread] = []

    def watch(since: float) -> None:
        lb.wait_until({victim.name: "DOWN"}, timeout_s=60)
        down.append(time.monotonic() - since)

    def one(index: int) -> tuple[str, float]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(
                base_url=lb.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
            )
            clients.append(local.client)
        outcome = _request(local.client, index)
        if next(done) == requests // 3:
            watcher = threading.Thread(target=watch, args=(time.monotonic(),))
            victim.service.proc.send_signal(how)
            watcher.start()
            watchers.append(watcher)
        return outcome

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            outcomes = list(pool.map(one, range(requests)))
    finally:
        for client in clients:
            client.close()
        for watcher in watchers:
            watcher.join()
    victim.service.proc.wait(60)
    ok = sorted(seconds for kind, seconds in outcomes if kind == "ok")
    return {
        "failed": Counter(kind for kind, _ in outcomes if kind != "ok"),
        "down_s": down[0],
        "p50": statistics.median(ok) * 1000,
        "p99": ok[min(len(ok) - 1, int(len(ok) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="sandlot-failover-") as tmp,
        deployment(Path(tmp), 3, **SETTINGS) as (replicas, lb),
    ):
        restarts = itertools.count()
        for _ in range(args.rounds):
            for label, how, delay in SCENARIOS:
                # The victim, started with this scenario's drain delay.
                old = replicas[0]
                old.service.proc.send_signal(signal.SIGKILL)
                old.service.proc.wait(30)
                old.close()
                where = Path(tmp) / f"restart-{next(restarts)}"
                where.mkdir()
                replicas[0] = Replica(
                    where,
                    old.name,
                    old.database_url,
                    port=old.service.port,
                    **{**old.settings, "drain_delay_ms": delay},
                )
                lb.wait_until({r.name: "UP" for r in replicas}, timeout_s=60)
                result = _scenario(lb, replicas[0], how, args.requests, args.concurrency)
                rows.append((label, result))
    print(
        f"\n{args.requests} runs (sleep 0.1 s) at concurrency {args.concurrency} through "
        f"HAProxy to 3 replicas; one goes after {args.requests // 3}\n"
    )
    print("| replica goes by | failed | how | marked down after | ok p50 ms | ok p99 ms |")
    print("|---|---:|---|---:|---:|---:|")
    for label, r in rows:
        failed: Counter[str] = r["failed"]  # type: ignore[assignment]
        how = ", ".join(f"{n} {kind}" for kind, n in sorted(failed.items())) or "-"
        print(
            f"| {label} | {sum(failed.values())} | {how} | {r['down_s']:.2f} s "
            f"| {r['p50']:.0f} | {r['p99']:.0f} |"
        )


if __name__ == "__main__":
    main()
