"""`print(1+1)` over HTTP against a clean `python3 -c`, interleaved, with CPU per request.

Issue 12's target: `POST /v1/execute` with `print(1+1)` (JSON answer, default engine) at a
p50 of at most 0.25x that of `python3 -c 'print(1+1)'` run by the base interpreter behind
the venv (no site-packages). Both are measured in the same minutes, the baseline sampled
every fourth request, so that a busy box moves both. Each round starts the service on
loopback with its defaults (Pyodide off), sends warm-ups, then the measured requests on
one keep-alive connection. Also printed: the CPU the service process and its worker
processes spent per request (from /proc), steadier than wall time on a shared box; and
10,000 ``print`` calls answered as JSON (the data-stack guest holds the output until the
end) against the same streamed over SSE (each line written through WASI as printed); and
``print(1+1)`` with the admin key against a namespace's key (the rounds use the admin's).

    .venv/bin/python bench/hello.py [--rounds 3] [--requests 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

from execute import BENCH_KEY, Client, service

# The interpreter the venv was made from: no site-packages to load.
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)
WARM_UPS = 50
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_ms(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / _TICK * 1000


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def python_c() -> float:
    started = time.perf_counter()
    subprocess.run([BASE_PYTHON, "-c", "print(1+1)"], check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def one_round(requests: int) -> tuple[float, float, float, float, float]:
    """HTTP p50, HTTP p10, python3 -c p50, service and workers' CPU ms per request."""
    with service(pyodide_enabled="false") as (port, proc):
        client = Client(port, "wasmtime")
        for _ in range(WARM_UPS):
            client.execute()
        workers = _children(proc.pid)
        service_cpu, workers_cpu = _cpu_ms([proc.pid]), _cpu_ms(workers)
        ours, base = [], []
        for i in range(requests):
            ours.append(client.execute())
            if i % 4 == 0:
                # Not counted in the CPU columns: the subprocess is no child of the service.
                base.append(python_c())
        service_cpu = (_cpu_ms([proc.pid]) - service_cpu) / requests
        workers_cpu = (_cpu_ms(workers) - workers_cpu) / requests
    ours.sort()
    return (
        statistics.median(ours),
        ours[len(ours) // 10],
        statistics.median(base),
        service_cpu,
        workers_cpu,
    )


PRINTS = "for i in range(10000):\n    print(i)\n"


def printing(runs: int = 5) -> tuple[float, float]:
    """p50 ms of 10,000 print() calls, answered as JSON (output held in the guest) and
    streamed as SSE (each line written through as it is printed)."""
    held, live = [], []
    with service(pyodide_enabled="false") as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"content-type": "application/json", "authorization": f"Bearer {BENCH_KEY}"}
        for stream, times in ((False, held), (True, live), (False, held), (True, live)):
            for _ in range(runs):
                body = json.dumps({"code": PRINTS, "stream": stream})
                started = time.perf_counter()
                conn.request("POST", "/v1/execute", body, headers)
                answer = conn.getresponse().read().decode()
                times.append((time.perf_counter() - started) * 1000)
                if ("event: end" if stream else '"status":"ok"') not in answer:
                    raise SystemExit(f"unexpected answer: {answer[-300:]}")
    return statistics.median(held), statistics.median(live)


def by_key(requests: int = 300) -> tuple[float, float]:
    """p50 ms of print(1+1) with the admin key and with a namespace's key (what agents
    send: the key and its namespace are looked up), alternating in one service."""
    with service(pyodide_enabled="false") as (port, _):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        admin = {"content-type": "application/json", "authorization": f"Bearer {BENCH_KEY}"}
        conn.request("POST", "/v1/namespaces", json.dumps({"name": "hello-bench"}), admin)
        conn.getresponse().read()
        conn.request("POST", "/v1/namespaces/hello-bench/keys", "{}", admin)
        key = json.loads(conn.getresponse().read())["key"]
        tenant = {**admin, "authorization": f"Bearer {key}"}
        body = json.dumps({"code": "print(1+1)"})

        def once(headers: dict[str, str]) -> float:
            started = time.perf_counter()
            conn.request("POST", "/v1/execute", body, headers)
            answer = json.loads(conn.getresponse().read())
            if answer.get("stdout") != "2\n":
                raise SystemExit(f"unexpected answer: {answer}")
            return (time.perf_counter() - started) * 1000

        for _ in range(WARM_UPS):
            once(admin), once(tenant)
        admins, tenants = [], []
        for _ in range(requests):
            admins.append(once(admin))
            tenants.append(once(tenant))
    return statistics.median(admins), statistics.median(tenants)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    print(f"baseline: {BASE_PYTHON} -c 'print(1+1)'; {args.requests} requests a round after")
    print(f"{WARM_UPS} warm-ups; load average at start: {os.getloadavg()[0]:.2f}\n")
    print(
        "| round | HTTP p50 ms | HTTP p10 ms | `python3 -c` p50 ms | ratio (p50) "
        "| service CPU ms/request | workers CPU ms/request |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in range(1, args.rounds + 1):
        p50, p10, base, service_cpu, workers_cpu = one_round(args.requests)
        print(
            f"| {n} | {p50:.2f} | {p10:.2f} | {base:.2f} | {p50 / base:.3f}x "
            f"| {service_cpu:.2f} | {workers_cpu:.2f} |"
        )
    admin, tenant = by_key()
    print("\n| `print(1+1)` over HTTP, alternating in one service | p50 ms |\n|---|---:|")
    print(f"| the admin key | {admin:.2f} |\n| a namespace's key | {tenant:.2f} |")
    held, live = printing()
    print("\n| 10,000 `print(i)` over HTTP | p50 ms |\n|---|---:|")
    print(f"| JSON answer (output held in the guest until the end) | {held:.1f} |")
    print(f"| SSE stream (each line written through as printed) | {live:.1f} |")


if __name__ == "__main__":
    main()
