"""Execute latency and throughput, side by side with a plain `python3 -c` on the same box.

Starts the real service on loopback (default settings: one worker per CPU), then measures,
in one run:

* `python3 -c 'print(1+1)'` as a subprocess: the baseline an agent would otherwise use;
* `exec()` in-process: the floor (no isolation at all);
* `POST /v1/execute` with `print(1+1)` on each engine, sequentially and at concurrency 8;
* for Pyodide also: a cold start in Deno without snapshot or pool (what a sandbox without
  them pays per run) and restores from our snapshot in fresh Web Workers (what each run
  costs in the background), linked by Emscripten and by our recorded plan, alternating.

Prints a Markdown table (ratios against the baseline's p50) for BENCHMARKS.md.

    .venv/bin/python bench/execute.py [--runs 300]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = "print(1+1)"
BENCH_KEY = "bench-" + "k" * 40
CONCURRENCY = 8


@dataclass
class Row:
    name: str
    latencies_ms: list[float]
    runs_per_s: float
    rss_per_run: str

    def p(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(q * (len(data) - 1)))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def service(**settings: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The service on loopback with its defaults, or ``settings`` (SANDLOT_<NAME>) over them."""
    port = _free_port()
    data = tempfile.mkdtemp(prefix="sandlot-bench-")
    env = {
        **os.environ,
        **{f"SANDLOT_{name.upper()}": value for name, value in settings.items()},
        "SANDLOT_PORT": str(port),
        "SANDLOT_DATA_DIR": data,
        "SANDLOT_LOG_LEVEL": "warning",
        "SANDLOT_QUEUE_TIMEOUT_MS": "30000",
        "SANDLOT_ADMIN_KEY": BENCH_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("the service did not become ready")
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)


class Client:
    """A keep-alive HTTP/1.1 client: as little client CPU per request as possible."""

    def __init__(self, port: int, runtime: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.body = json.dumps({"code": CODE, "runtime": runtime}).encode()
        self.peaks: list[int] = []

    def execute(self) -> float:
        started = time.perf_counter()
        headers = {"content-type": "application/json", "authorization": f"Bearer {BENCH_KEY}"}
        self.conn.request("POST", "/v1/execute", self.body, headers)
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or payload["status"] != "ok" or payload["stdout"] != "2\n":
            raise SystemExit(f"unexpected answer: {response.status} {payload}")
        self.peaks.append(payload["usage"]["memory_peak_bytes"])
        return elapsed


def measure(fn: Callable[[], float], runs: int) -> tuple[list[float], float]:
    started = time.perf_counter()
    latencies = [fn() for _ in range(runs)]
    return latencies, runs / (time.perf_counter() - started)


def measure_concurrent(
    make: Callable[[], Callable[[], float]], runs: int, workers: int
) -> tuple[list[float], float]:
    fns = [make() for _ in range(workers)]
    per_worker = runs // workers
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        chunks = list(pool.map(lambda fn: [fn() for _ in range(per_worker)], fns))
    elapsed = time.perf_counter() - started
    return [x for chunk in chunks for x in chunk], per_worker * workers / elapsed


def python_c(python: str) -> float:
    started = time.perf_counter()
    out = subprocess.run([python, "-c", CODE], capture_output=True, check=True).stdout
    elapsed = (time.perf_counter() - started) * 1000
    if out != b"2\n":
        raise SystemExit(f"python3 -c printed {out!r}")
    return elapsed


def in_process_exec() -> float:
    code = compile(CODE, "<bench>", "exec")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, {})
    return (time.perf_counter() - started) * 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def descendants(pid: int) -> list[int]:
    found = worker_pids(pid)
    for child in list(found):
        found += descendants(child)
    return found


def is_deno(pid: int) -> bool:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"deno")


def pyodide_start(mode: str, rounds: int) -> tuple[float, float]:
    """(median ms, process CPU ms per start) of one Deno process of bench/pyodide_start.mjs."""
    from sandbox.engines.pyodide import builder
    from sandbox.engines.pyodide.deno import V8_FLAGS, allow_read

    layout = builder.locate(ROOT / ".artifacts", ROOT / "pyodide-runtime").layout
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            str(layout.deno),
            "run",
            "--no-prompt",
            "--no-remote",
            V8_FLAGS,
            allow_read(ROOT, *layout.built, layout.lock_file.parent),
            str(ROOT / "bench" / "pyodide_start.mjs"),
            mode,
            str(rounds),
            str(layout.snapshot),
            str(layout.lock_file),
            str(layout.loader),
            str(layout.link_plan),
        ],
        capture_output=True,
        check=True,
        env={"DENO_NO_UPDATE_CHECK": "1", "DENO_DIR": str(layout.snapshot.parent / "deno-dir")},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_ms = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return float(json.loads(done.stdout.splitlines()[-1])["ms"]), cpu_ms / rounds


def _ms(value: float) -> str:
    return f"{value:.2f}" if value >= 1 else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400, help="requests per measurement")
    args = parser.parse_args()
    # Resolve wrappers (pyenv shims are shell scripts) to the real interpreter.
    python = subprocess.run(
        ["python3", "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows: list[Row] = []

    for _ in range(5):
        python_c(python)
    latencies, rate = measure(lambda: python_c(python), max(50, args.runs // 4))
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows.append(Row("`python3 -c` subprocess, sequential", latencies, rate, f"{child_rss:.0f} MB"))
    latencies, rate = measure_concurrent(
        lambda: lambda: python_c(python), max(48, args.runs // 4), CONCURRENCY
    )
    rows.append(Row(f"`python3 -c` subprocess, concurrency {CONCURRENCY}", latencies, rate, "same"))
    latencies, rate = measure(in_process_exec, args.runs)
    rows.append(Row("in-process `exec` (no isolation)", latencies, rate, "0"))

    with service() as (port, proc):
        notes = []
        for runtime, runs in (("wasmtime", args.runs), ("pyodide", max(40, args.runs // 4))):
            client = Client(port, runtime)
            for _ in range(10):
                client.execute()
            latencies, rate = measure(client.execute, runs)
            peak = statistics.median(client.peaks) / 2**20
            rows.append(
                Row(f"`/v1/execute` {runtime}, sequential", latencies, rate, f"{peak:.0f} MB")
            )
            clients: list[Client] = []

            def make(
                runtime: str = runtime, clients: list[Client] = clients
            ) -> Callable[[], float]:
                c = Client(port, runtime)
                clients.append(c)
                return c.execute

            if runtime == "pyodide":
                # An agent's pace: a request whenever the previous one was answered
                # plus half a second, so the spare interpreter is restored in between.
                paced = []
                for _ in range(20):
                    time.sleep(0.5)
                    paced.append(client.execute())
                rows.append(
                    Row(
                        f"`/v1/execute` {runtime}, one request every ~0.5 s",
                        paced,
                        0,
                        f"{peak:.0f} MB",
                    )
                )
            latencies, rate = measure_concurrent(make, runs, CONCURRENCY)
            peaks = [p for c in clients for p in c.peaks]
            rows.append(
                Row(
                    f"`/v1/execute` {runtime}, concurrency {CONCURRENCY}",
                    latencies,
                    rate,
                    f"{statistics.median(peaks) / 2**20:.0f} MB",
                )
            )
        everything = descendants(proc.pid)
        wasmtime_workers = [
            p for p in worker_pids(proc.pid) if not any(is_deno(c) for c in descendants(p))
        ]
        denos = [p for p in everything if is_deno(p)]
        wasmtime_rss = statistics.mean(rss_mb(p) for p in wasmtime_workers)
        deno_rss = statistics.mean(rss_mb(p) for p in denos)
        notes.append(
            f"Resident memory: each idle wasmtime worker process {wasmtime_rss:.0f} MB; each "
            f"Deno process (its spare interpreters included) {deno_rss:.0f} MB; the API process "
            f"{rss_mb(proc.pid):.0f} MB."
        )
    cold_ms, _ = pyodide_start("cold", 1)
    rows.append(
        Row("Pyodide cold start in Deno, no snapshot, no pool", [cold_ms], 1000 / cold_ms, "-")
    )
    # Side by side, alternating, so that the machine's drift hits both alike.
    restores: dict[str, tuple[list[float], list[float]]] = {
        "emscripten": ([], []),
        "plan": ([], []),
    }
    for _ in range(3):
        for mode, (walls, cpus) in restores.items():
            wall, cpu = pyodide_start(mode, 8)
            walls.append(wall)
            cpus.append(cpu)
    for mode, label in (("emscripten", "Emscripten's linking"), ("plan", "our link plan")):
        walls, cpus = restores[mode]
        rows.append(
            Row(
                f"Pyodide restore in a fresh worker, {label} "
                f"({statistics.median(cpus):.0f} ms of process CPU each)",
                walls,
                1000 / statistics.median(walls),
                "-",
            )
        )

    baseline = rows[0].p(0.5)
    baseline_version = subprocess.run(
        [python, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    cpus = os.cpu_count()
    print(f"Machine: {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}; ")
    print(f"baseline: {python} ({baseline_version}); service defaults (per engine one worker")
    print(f"process per CPU); {args.runs} wasmtime and {max(40, args.runs // 4)} pyodide")
    print(
        "requests per row; the Pyodide start rows are Deno-side timings (restores: medians"
        " of 3 processes x 8 workers, the two kinds alternating).\n"
    )
    print("| scenario | p50 ms | p99 ms | runs/s | memory per run | p50 vs `python3 -c` |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        ratio = row.p(0.5) / baseline
        print(
            f"| {row.name} | {_ms(row.p(0.5))} | {_ms(row.p(0.99))} "
            f"| {f'{row.runs_per_s:.0f}' if row.runs_per_s else '-'} "
            f"| {row.rss_per_run} | {ratio:.3f}x |"
        )
    print(
        "\nMemory per run: peak RSS of the `python3 -c` process; for `/v1/execute`, the median "
        "`usage.memory_peak_bytes` (wasmtime: resident memory the run added to its worker; "
        "pyodide: how much the run grew its interpreter's heap). " + " ".join(notes)
    )


if __name__ == "__main__":
    main()
