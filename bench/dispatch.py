"""Workers for Platforms numbers: deploying a worker, and dispatching to it beside /v1/execute.

Starts the real service on loopback (defaults), creates a namespace, then measures in one run:

* deploy: PUT of a one-file worker whose code was already built (content-addressed, no
  rebuild), and of new code (a full build: compiled in a sandbox);
* a hello-world worker dispatched at concurrency 1 and 16, beside `/v1/execute` of the same
  code, on the wasmtime engine.

Prints a Markdown table for BENCHMARKS.md.

    .venv/bin/python bench/dispatch.py [--runs 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from execute import BENCH_KEY, measure, measure_concurrent, service

HELLO = 'from workers import Response\n\ndef on_fetch(request, env):\n    return Response("hi")\n'
EXECUTE = 'from workers import Response\nResponse("hi")._wire()'
AUTH = {"authorization": f"Bearer {BENCH_KEY}", "content-type": "application/json"}


class Caller:
    def __init__(self, port: int, method: str, path: str, body: object | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.method, self.path = method, path
        self.body = None if body is None else json.dumps(body).encode()

    def __call__(self) -> float:
        started = time.perf_counter()
        self.conn.request(self.method, self.path, self.body, AUTH)
        response = self.conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status >= 300:
            raise SystemExit(f"{self.method} {self.path}: {response.status} {payload[:300]!r}")
        return elapsed


def row(name: str, latencies: list[float], rate: float) -> str:
    data = sorted(latencies)
    p50 = data[len(data) // 2]
    p99 = data[min(len(data) - 1, round(0.99 * (len(data) - 1)))]
    return f"| {name} | {p50:.2f} | {p99:.2f} | {rate:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    lines = []
    with service() as (port, _proc):
        Caller(port, "POST", "/v1/namespaces", {"name": "bench"})()
        worker = "/v1/namespaces/bench/workers/hello"
        deploy_new: list[float] = []
        for i in range(10):
            body = {"modules": {"main.py": HELLO + f"# {i}\n"}, "runtime": "wasmtime"}
            deploy_new.append(Caller(port, "PUT", worker, body)())
        same = Caller(port, "PUT", worker, {"modules": {"main.py": HELLO}, "runtime": "wasmtime"})
        same()
        deploy_same, _ = measure(same, 30)
        lines.append(row("deploy, new code (build in a sandbox)", deploy_new, 0))
        lines.append(row("deploy, already-built code", deploy_same, 0))
        dispatch_path = "/dispatch/bench/hello/"
        execute_body = {"code": EXECUTE, "runtime": "wasmtime"}
        for concurrency in (1, 16):
            for name, make in (
                ("dispatch hello-world", lambda: Caller(port, "GET", dispatch_path)),
                (
                    "`/v1/execute` same code",
                    lambda: Caller(port, "POST", "/v1/execute", execute_body),
                ),
            ):
                warm = make()
                for _ in range(10):
                    warm()
                if concurrency == 1:
                    latencies, rate = measure(make(), args.runs)
                else:
                    latencies, rate = measure_concurrent(make, args.runs, concurrency)
                lines.append(row(f"{name}, concurrency {concurrency}", latencies, rate))
    print(f"Service defaults, wasmtime engine; {args.runs} requests per dispatch/execute row.\n")
    print("| scenario | p50 ms | p99 ms | req/s |")
    print("|---|---:|---:|---:|")
    for line in lines:
        print(line.replace("| 0 |", "| - |"))
    print(f"\nmedian deploy of already-built code: {statistics.median(deploy_same):.1f} ms")


if __name__ == "__main__":
    main()
