"""The data-stack guest against the component guest and a clean `python3 -c`, side by side.

Starts the real service twice on loopback (SANDLOT_WASMTIME_GUEST=component, then
=stack), and in the same run times a `python3 -c` of the base interpreter behind the
venv (a clean CPython, not one with many site-packages). Prints a Markdown table: p50 and
p90 of each snippet over HTTP, and the ratio to the baseline's p50.

    .venv/bin/python bench/stack.py [--runs 100]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from execute import BENCH_KEY as KEY  # the service's key in bench/execute.py's service()
from execute import service

SNIPPETS = {
    "print(1+1)": "print(1+1)",
    "numpy + pandas group-by": (
        "import numpy as np, pandas as pd, matplotlib.pyplot as plt\n"
        "df = pd.DataFrame({'k': list('abcab'), 'v': np.arange(5)})\n"
        "df.groupby('k').v.sum().to_dict()"
    ),
    "matplotlib chart to PNG": (
        "import io, matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3))\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\n"
        "buf = io.BytesIO()\n"
        "fig.savefig(buf, format='png')\n"
        "len(buf.getvalue())"
    ),
}


@contextlib.contextmanager
def stack_service(guest: str) -> Iterator[int]:
    with service(wasmtime_guest=guest, pyodide_enabled="false", build_on_start="false") as (
        port,
        _,
    ):
        yield port


def over_http(port: int, code: str, runs: int) -> list[float] | str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"code": code, "limits": {"memory_mb": 512}}).encode()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    times: list[float] = []
    for _ in range(runs + 3):  # three warm-ups
        started = time.perf_counter()
        conn.request("POST", "/v1/execute", body=body, headers=headers)
        answer = json.loads(conn.getresponse().read())
        times.append((time.perf_counter() - started) * 1000)
        if answer["status"] != "ok":
            return f"{answer['status']}: {(answer.get('error') or {}).get('type', '')}"
    return times[3:]


def python_c(runs: int) -> list[float]:
    python = getattr(sys, "_base_executable", sys.executable)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", "print(1+1)"], check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    base = python_c(args.runs)
    base_p50 = statistics.median(base)
    rows = [("`python3 -c 'print(1+1)'` (the base interpreter behind the venv)", base)]
    for guest in ("component", "stack"):
        with stack_service(guest) as port:
            for name, code in SNIPPETS.items():
                rows.append((f"{guest}: {name}", over_http(port, code, args.runs)))
    python = getattr(sys, "_base_executable", sys.executable)
    print(f"baseline: {python}; {args.runs} runs per row, sequential, over HTTP\n")
    print("| scenario | p50 ms | p90 ms | p50 vs `python3 -c` |")
    print("|---|---:|---:|---:|")
    for name, times in rows:
        if isinstance(times, str):
            print(f"| {name} | - | - | {times} |")
            continue
        ordered = sorted(times)
        p50, p90 = statistics.median(ordered), ordered[int(0.9 * (len(ordered) - 1))]
        print(f"| {name} | {p50:.2f} | {p90:.2f} | {p50 / base_p50:.3f}x |")


if __name__ == "__main__":
    main()
