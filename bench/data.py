"""The data suite: each task in bench/data_tasks/ over HTTP against native CPython.

Each task is a plain script. The baseline row of a task is ``python task.py`` in a fresh
process of the base interpreter behind the venv, with the same releases of numpy,
pandas, matplotlib, scipy, scikit-learn and statsmodels as the data-stack guest
(bench/requirements-native.txt, installed into ``.bench-venv`` by ``--setup``). The
sandbox row is the same file's text sent to ``POST /v1/execute`` on the real service
(runtime wasmtime, the data-stack guest), one request at a time over keep-alive HTTP.
Both must print the same thing, or the row says so.

Also in the same run: ``print(1+1)`` against ``python3 -c 'print(1+1)'``, and each task's
memory, measured in this process with the engine's own runtime at the moment the run
hands back its outcome: the private memory the run added (``RssAnon``: pages it wrote,
its own) and the image pages it mapped (``RssFile``: the snapshot's pages in the page
cache, shared by every instance and worker process).

    .venv/bin/python bench/data.py --setup          # once: make .bench-venv
    .venv/bin/python bench/data.py [--runs 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from execute import BENCH_KEY, service

from sandbox import Job
from sandbox.engines.stack.builder import locate
from sandbox.engines.stack.host import StackRuntime
from sandbox.engines.wasmtime.host import _CollectingSink
from sandbox.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "bench" / "data_tasks"
NATIVE_VENV = ROOT / ".bench-venv"
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)
WARM_UPS = 2


def setup() -> None:
    """Make .bench-venv with the base interpreter and the pinned native packages."""
    subprocess.run([BASE_PYTHON, "-m", "venv", str(NATIVE_VENV)], check=True)
    pip = [str(NATIVE_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    requirements = ROOT / "bench" / "requirements-native.txt"
    subprocess.run([*pip, "-r", str(requirements)], check=True)


def native(argv: list[str], runs: int, cwd: str) -> tuple[list[float], str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    times, output = [], ""
    for i in range(runs + WARM_UPS):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = (time.perf_counter() - started) * 1000
        if done.returncode != 0:
            raise SystemExit(f"{argv} failed natively:\n{done.stderr}")
        output = done.stdout
        if i >= WARM_UPS:
            times.append(elapsed)
    return times, output


def sandboxed(port: int, code: str, runs: int) -> tuple[list[float], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps(
        {"code": code, "limits": {"memory_mb": 512, "cpu_ms": 30_000, "wall_ms": 60_000}}
    ).encode()
    headers = {"authorization": f"Bearer {BENCH_KEY}", "content-type": "application/json"}
    times, output = [], ""
    for i in range(runs + WARM_UPS):
        started = time.perf_counter()
        conn.request("POST", "/v1/execute", body=body, headers=headers)
        answer = json.loads(conn.getresponse().read())
        elapsed = (time.perf_counter() - started) * 1000
        if answer["status"] != "ok":
            error = answer.get("error") or {}
            return [], f"{answer['status']}: {error.get('type')}: {error.get('message')}"
        output = answer["stdout"]
        if i >= WARM_UPS:
            times.append(elapsed)
    return times, output


class _MeasuredRuntime(StackRuntime):
    """Reads the process's memory when the guest hands back its outcome (still alive)."""

    at_outcome: dict[str, float]

    def _answer(self, frame: dict[str, object]) -> bytes:
        if frame.get("op") == "outcome":
            self.at_outcome = _memory()
        return super()._answer(frame)


def _memory() -> dict[str, float]:
    """RssAnon and RssFile of this process, in MiB."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("RssAnon", "RssFile")}


def memory_per_run(codes: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Per task: (private MiB, shared image MiB) that the run added, median of three."""
    runtime = _MeasuredRuntime(locate(ROOT / ".artifacts"), Path(tempfile.mkdtemp()))
    limits = Limits(cpu_ms=30_000, wall_ms=60_000, memory_mb=512, output_bytes=2**20)
    found = {}
    for name, code in codes.items():
        private, shared = [], []
        for _ in range(4):  # the first maps the task's image pages into the page cache
            runtime.prepare()
            before = _memory()
            runtime.run(Job(code=code, limits=limits), _CollectingSink())
            private.append(runtime.at_outcome["RssAnon"] - before["RssAnon"])
            shared.append(runtime.at_outcome["RssFile"] - before["RssFile"])
        found[name] = (statistics.median(private[1:]), statistics.median(shared[1:]))
    runtime.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--setup", action="store_true", help="make .bench-venv and exit")
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    python = NATIVE_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"no {python}: run `{sys.executable} bench/data.py --setup` first")
    scratch = tempfile.mkdtemp(prefix="sandlot-data-bench-")
    tasks = sorted(TASKS.glob("*.py"))
    rows: list[tuple[str, float, float, str]] = []
    with service(pyodide_enabled="false", build_on_start="false") as (port, _):
        base, _ = native([BASE_PYTHON, "-c", "print(1+1)"], args.runs, scratch)
        ours, out = sandboxed(port, "print(1+1)", args.runs)
        rows.append(("print(1+1)", *_compare(base, ours, out, "2\n")))
        for task in tasks:
            base, expected = native([str(python), str(task)], args.runs, scratch)
            ours, out = sandboxed(port, task.read_text(), args.runs)
            rows.append((task.stem, *_compare(base, ours, out, expected)))
    codes = {"print(1+1)": "print(1+1)", **{task.stem: task.read_text() for task in tasks}}
    memory = memory_per_run(codes)
    print(f"native: {python} ({BASE_PYTHON}); {args.runs} runs per row after {WARM_UPS}")
    print("warm-ups, sequential; sandbox: POST /v1/execute, runtime wasmtime (data stack)\n")
    print("baseline of print(1+1): `python3 -c`, the base interpreter without packages\n")
    print(
        "| task | native p50 ms | Sandlot p50 ms | ratio | private MiB per run "
        "| shared image MiB mapped | output |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, native_p50, ours_p50, note in rows:
        ratio = f"{ours_p50 / native_p50:.3f}x" if ours_p50 else "-"
        shown = f"{ours_p50:.1f}" if ours_p50 else "-"
        private, shared = memory[name]
        print(
            f"| {name} | {native_p50:.1f} | {shown} | {ratio} | {private:.1f} | {shared:.1f} "
            f"| {note} |"
        )


def _compare(
    base: list[float], ours: list[float], output: str, expected: str
) -> tuple[float, float, str]:
    if not ours:
        return statistics.median(base), 0.0, output  # the failure, as the note
    same = "same" if output == expected else f"DIFFERS: {output!r} vs {expected!r}"
    return statistics.median(base), statistics.median(ours), same


if __name__ == "__main__":
    main()
