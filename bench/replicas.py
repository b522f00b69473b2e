"""Several replicas on one database: how soon a write on one is seen on another.

Starts two real service processes (``python -m app``) on loopback, on a fresh
PostgreSQL database (the bus: LISTEN/NOTIFY), with dispatch caches kept for a minute,
and, side by side, two on one SQLite file (no bus between processes: the 1 s cache TTL
is all there is). For each kind of write it makes the write through replica A and
times, from A's answer, until replica B's next calls show it (B is polled as fast as it
answers, so the figure includes one call's time; B has the old value cached each time):
p50 / p99 / max. Then a session turn
on its owner against the same turn proxied through the other replica.

    .venv/bin/python bench/replicas.py [--rounds 100] [--sqlite-rounds 20]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and built artifacts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "bench-admin-key-" + "0123456789abcdef" * 2
SECRETS_KEY = "e8Q0qZ6cQ7oWkq0nQbq8gTH5Bm0R6gW3nQp3c2VnL1o="
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
WORKER = """
from workers import Response

def on_fetch(request, env):
    return Response.json({"version": VERSION, "token": getattr(env, "TOKEN", None)})
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def replica(database_url: str, data_dir: Path, cache_ms: int) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SANDLOT_PORT": str(port),
        "SANDLOT_DATA_DIR": str(data_dir),
        "SANDLOT_DATABASE_URL": database_url,
        "SANDLOT_ADMIN_KEY": ADMIN_KEY,
        "SANDLOT_SECRETS_KEY": SECRETS_KEY,
        "SANDLOT_BUILD_ON_START": "false",
        "SANDLOT_PYODIDE_ENABLED": "false",
        "SANDLOT_POOL_SIZE": "1",
        "SANDLOT_DISPATCH_CACHE_MS": str(cache_ms),
        "SANDLOT_REPLICA_URL": f"http://127.0.0.1:{port}",
        "SANDLOT_LOG_LEVEL": "warning",
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "service.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"replica did not start; see {data_dir / 'service.log'}")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(15)


def until(check: Callable[[], bool], limit_s: float = 5.0) -> float:
    began = time.perf_counter()
    while not check():
        if time.perf_counter() - began > limit_s:
            return float("inf")
    return (time.perf_counter() - began) * 1000


def row(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"| {label} | {len(samples)} | {statistics.median(ordered):,.1f} | {p99:,.1f} | "
        f"{ordered[-1]:,.1f} |"
    )


def measure(a: str, b: str, rounds: int) -> dict[str, list[float]]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with (
        httpx.Client(base_url=a, headers=headers, timeout=60) as on_a,
        httpx.Client(base_url=b, headers=headers, timeout=60) as on_b,
    ):
        namespace = "bench-" + secrets.token_hex(4)
        on_a.post("/v1/namespaces", json={"name": namespace}).raise_for_status()
        worker = f"/v1/namespaces/{namespace}/workers/site"
        path = f"/dispatch/{namespace}/site/"
        found: dict[str, list[float]] = {"upload": [], "secret": [], "delete": [], "call": []}
        # Warm-up: B makes its runtime and caches the target.
        on_a.put(
            worker, json={"modules": {"main.py": f"VERSION = -1\n{WORKER}"}}
        ).raise_for_status()
        until(lambda: on_b.get(path).json().get("version") == -1, limit_s=30)
        for n in range(rounds):
            # A new version replaces the one B has cached.
            on_a.put(
                worker, json={"modules": {"main.py": f"VERSION = {n}\n{WORKER}"}}
            ).raise_for_status()
            found["upload"].append(until(lambda n=n: on_b.get(path).json().get("version") == n))
            value = secrets.token_hex(4)
            on_a.put(f"{worker}/secrets/TOKEN", json={"value": value}).raise_for_status()
            found["secret"].append(until(lambda v=value: on_b.get(path).json().get("token") == v))
            # What one of B's calls costs by itself (nothing changed): the polling's step.
            began = time.perf_counter()
            on_b.get(path).raise_for_status()
            found["call"].append((time.perf_counter() - began) * 1000)
        for n in range(rounds):
            other = f"/v1/namespaces/{namespace}/workers/gone-{n}"
            on_a.put(
                other, json={"modules": {"main.py": f"VERSION = {n}\n{WORKER}"}}
            ).raise_for_status()
            gone = f"/dispatch/{namespace}/gone-{n}/"
            until(lambda g=gone: on_b.get(g).status_code == 200, limit_s=30)  # B caches it
            on_a.delete(other).raise_for_status()
            found["delete"].append(until(lambda g=gone: on_b.get(g).status_code == 404))
        return found


def sessions(a: str, b: str, rounds: int) -> dict[str, list[float]]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    times: dict[str, list[float]] = {"owner": [], "proxied": []}
    with httpx.Client(headers=headers, timeout=60) as client:
        sid = client.post(f"{a}/v1/sessions", json={}).json()["id"]
        for _ in range(rounds):
            for label, base in (("owner", a), ("proxied", b)):
                began = time.perf_counter()
                client.post(
                    f"{base}/v1/sessions/{sid}/execute", json={"code": "1 + 1"}
                ).raise_for_status()
                times[label].append((time.perf_counter() - began) * 1000)
        client.delete(f"{a}/v1/sessions/{sid}")
    return times


def bus_delay(database_url: str, rounds: int) -> list[float]:
    """From a commit that writes a cached table to the message reaching another bus
    (its own LISTEN connection, as another replica's), in ms: the bus alone."""
    sys.path.insert(0, str(ROOT))
    from cryptography.fernet import Fernet

    from app.bus import Bus
    from app.store import SecretBox, Store, migrate, namespaces

    store = Store(database_url, secrets=SecretBox([Fernet.generate_key().decode()]))
    migrate(store)

    async def scenario() -> list[float]:
        bus = Bus.for_database(database_url)
        arrived: asyncio.Queue[float] = asyncio.Queue()
        await bus.subscribe("cache", lambda _: arrived.put_nowait(time.perf_counter()))
        await bus.start()
        delays = []
        for n in range(rounds):
            name = f"bus-{n}-{secrets.token_hex(2)}"
            began = time.perf_counter()
            await asyncio.to_thread(
                namespaces.create,
                store,
                name,
                mode="untrusted",
                limits={},
                allowed_hosts=[],
                dispatch_public=True,
            )
            delays.append((await asyncio.wait_for(arrived.get(), 5) - began) * 1000)
        await bus.close()
        return delays

    try:
        return asyncio.run(scenario())
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--sqlite-rounds", type=int, default=20)
    args = parser.parse_args()
    name = f"sandlot_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    results: dict[str, dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sandlot-bench-") as tmp:
            pg = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            delays = bus_delay(pg, args.rounds)
            with (
                replica(pg, Path(tmp) / "a", 60_000) as a,
                replica(pg, Path(tmp) / "b", 60_000) as b,
            ):
                results["PostgreSQL + bus, cache TTL 60 s"] = measure(a, b, args.rounds)
                turns = sessions(a, b, args.rounds)
            lite = f"sqlite:///{tmp}/shared.db"
            with (
                replica(lite, Path(tmp) / "c", 1_000) as a,
                replica(lite, Path(tmp) / "d", 1_000) as b,
            ):
                results["SQLite shared, no bus, cache TTL 1 s"] = measure(a, b, args.sqlite_rounds)
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("\n| write on A, seen on B (from A's answer) | n | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for setup, found in results.items():
        for kind, samples in found.items():
            label = "B's dispatch call alone (no change)" if kind == "call" else kind
            print(row(f"{setup}: {label}", samples))
    print(row("PostgreSQL bus alone: commit start → message on another connection", delays))
    print("\n| session turn `1 + 1` | n | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    print(row("on the owner replica", turns["owner"]))
    print(row("through the other replica (proxied)", turns["proxied"]))
    ratio = statistics.median(turns["proxied"]) / statistics.median(turns["owner"])
    print(f"\nproxied / owner p50: {ratio:.2f}x")


if __name__ == "__main__":
    main()
