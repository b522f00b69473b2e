"""Sessions against fresh runs: a turn, creating a session, and 50 idle sessions' memory.

Starts the real service on loopback and measures one engine's sessions (``--runtime``:
``wasmtime``, the data-stack guest, with Pyodide off; or ``pyodide``), sequentially over
HTTP with one keep-alive connection:

* a turn in a live session (`print(x)`) against a fresh run of `/v1/execute` doing the same
  (`x = 1; print(x)`), in blocks, interleaved, and paced (a pause before each, so that a
  run finds its next interpreter ready: Pyodide's take a restore): issue 14's target is
  turn p50 <= fresh-run p50;
* creating a session (`POST /v1/sessions`) against a fresh run of `print(1+1)`: target
  create p50 <= 2x the fresh run;
* 50 sessions each holding a pandas DataFrame (10,000 x 4 floats; on Pyodide, which has no
  pandas, the same numbers as a list of lists), left idle: every one still answers, and
  what they cost the worker processes and their children (Pyodide's Deno): resident
  memory, and the private memory (Private_Clean + Private_Dirty of
  /proc/PID/smaps_rollup: the snapshot's shared pages counted once, not per session).
  Target: at most 64 MiB per idle session.

    .venv/bin/python bench/sessions.py [--runtime wasmtime] [--runs 200] [--sessions 50]
        [--pool-size 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any

from execute import BENCH_KEY as KEY  # the service's key in bench/execute.py's service()
from execute import service

MIB = 1024 * 1024
FRAMES = {
    "wasmtime": (
        "import numpy as np, pandas as pd\ndf = pd.DataFrame(np.random.rand(10_000, 4))",
        "df.shape == (10_000, 4)",
    ),
    "pyodide": (
        "import random\ndf = [[random.random() for _ in range(4)] for _ in range(10_000)]",
        "len(df) == 10_000",
    ),
}


class Api:
    def __init__(self, port: int, runtime: str) -> None:
        self.runtime = runtime
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        data = None if body is None else json.dumps(body).encode()
        started = time.perf_counter()
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        raw = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, (json.loads(raw) if raw else None), elapsed

    def run(self, path: str, code: str) -> float:
        body = {"code": code}
        if path == "/v1/execute":
            body["runtime"] = self.runtime
        status, answer, elapsed = self.call("POST", path, body)
        if status != 200 or answer["status"] != "ok":
            raise SystemExit(f"{path}: {status} {answer}")
        return elapsed

    def create(self) -> tuple[str, float]:
        status, answer, elapsed = self.call(
            "POST", "/v1/sessions", {"memory_mb": 256, "runtime": self.runtime}
        )
        if status != 201:
            raise SystemExit(f"create: {status} {answer}")
        return str(answer["id"]), elapsed


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def workers_of(pid: int) -> list[int]:
    """Every process below ``pid``: the worker processes and what they run (Deno)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.append(int(child))
            found.extend(workers_of(int(child)))
    return found


def memory(pids: list[int]) -> tuple[int, int]:
    """Resident and private bytes summed over ``pids``."""
    rss = private = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "Rss":
                rss += int(value.split()[0]) * 1024
            elif name in ("Private_Clean", "Private_Dirty"):
                private += int(value.split()[0]) * 1024
    return rss, private


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--runtime", choices=sorted(FRAMES), default="wasmtime")
    parser.add_argument("--paced", type=int, default=30, help="paced runs and turns")
    parser.add_argument("--pause-s", type=float, default=1.5, help="the pause before each")
    args = parser.parse_args()
    settings = {
        "build_on_start": "false",
        "pool_size": str(args.pool_size),
        "sessions_max_per_key": str(args.sessions + 10),
    }
    if args.runtime == "pyodide":
        # The data-stack guest still starts (one worker): the numbers are Pyodide's.
        settings |= {"pool_size": "1", "pyodide_pool_size": str(args.pool_size)}
    else:
        settings["pyodide_enabled"] = "false"
    frame, check = FRAMES[args.runtime]
    rows: list[tuple[str, list[float]]] = []
    with service(**settings) as (port, proc):
        api = Api(port, args.runtime)
        for _ in range(5):  # warm-up
            api.run("/v1/execute", "print(1+1)")
        session_id, _ = api.create()
        turn_path = f"/v1/sessions/{session_id}/execute"
        api.run(turn_path, "x = 1")
        # One after the other: a turn with nothing else on the box but the service.
        block_fresh = [api.run("/v1/execute", "x = 1\nprint(x)") for _ in range(args.runs)]
        block_turns = [api.run(turn_path, "print(x)") for _ in range(args.runs)]
        # Interleaved: a noisy neighbour slows both sides alike, and each turn follows a
        # run, whose worker gets its next instance ready (a warm-up turn) meanwhile.
        fresh, turns, plain, creates = [], [], [], []
        for _ in range(args.runs):
            fresh.append(api.run("/v1/execute", "x = 1\nprint(x)"))
            turns.append(api.run(turn_path, "print(x)"))
        paced_fresh, paced_turns = [], []
        for _ in range(args.paced):
            time.sleep(args.pause_s)
            paced_fresh.append(api.run("/v1/execute", "x = 1\nprint(x)"))
            time.sleep(args.pause_s)
            paced_turns.append(api.run(turn_path, "print(x)"))
        api.call("DELETE", f"/v1/sessions/{session_id}")
        for _ in range(min(args.runs, 100)):
            plain.append(api.run("/v1/execute", "print(1+1)"))
            made, elapsed = api.create()
            creates.append(elapsed)
            api.call("DELETE", f"/v1/sessions/{made}")
        rows.append(("fresh run: x = 1; print(x) (interleaved)", fresh))
        rows.append(("session turn: print(x) (interleaved)", turns))
        rows.append(("fresh run: print(1+1)", plain))
        rows.append(("create a session (POST /v1/sessions), interleaved with the above", creates))
        rows.append(("fresh run: x = 1; print(x) (a block of runs)", block_fresh))
        rows.append(("session turn: print(x) (a block of turns)", block_turns))
        if args.paced:
            pause = f"{args.pause_s:g} s"
            rows.append((f"fresh run: x = 1; print(x) (paced, {pause} before each)", paced_fresh))
            rows.append((f"session turn: print(x) (paced, {pause} before each)", paced_turns))

        time.sleep(1)
        pids = workers_of(proc.pid)
        before = memory(pids)
        held = []
        for _ in range(args.sessions):
            made, _ = api.create()
            api.run(f"/v1/sessions/{made}/execute", frame)
            held.append(made)
        time.sleep(1)
        after = memory(workers_of(proc.pid))
        answers = [api.run(f"/v1/sessions/{made}/execute", check) for made in held]
        rows.append(
            (f"a turn in each of {args.sessions} idle sessions holding a DataFrame", answers)
        )
        for made in held:
            api.call("DELETE", f"/v1/sessions/{made}")

    print(f"{args.runtime}, sequential over HTTP; pool of {args.pool_size} workers\n")
    print("| scenario | p50 ms | p90 ms | n |")
    print("|---|---:|---:|---:|")
    for name, values in rows:
        print(f"| {name} | {statistics.median(values):.2f} | {p(values, 90):.2f} | {len(values)} |")
    fresh = statistics.median(rows[0][1])
    turn = statistics.median(rows[1][1])
    one = statistics.median(rows[2][1])
    create = statistics.median(rows[3][1])
    blocks = statistics.median(rows[5][1]) / statistics.median(rows[4][1])
    paced = ""
    if args.paced:
        ratio = statistics.median(rows[7][1]) / statistics.median(rows[6][1])
        paced = f", {ratio:.2f}x paced"
    print(
        f"\nturn p50 / fresh-run p50: {turn / fresh:.2f}x interleaved, "
        f"{blocks:.2f}x in blocks{paced}"
    )
    print(f"create p50 / fresh print(1+1) p50: {create / one:.2f}x (target <= 2)")
    rss = (after[0] - before[0]) / args.sessions / MIB
    private = (after[1] - before[1]) / args.sessions / MIB
    print(
        f"{args.sessions} idle sessions with a DataFrame: all answered; per session "
        f"{rss:.1f} MiB resident, {private:.1f} MiB private (target <= 64 MiB); workers "
        f"{before[0] / MIB:.0f} -> {after[0] / MIB:.0f} MiB resident, "
        f"{before[1] / MIB:.0f} -> {after[1] / MIB:.0f} MiB private"
    )


if __name__ == "__main__":
    main()
