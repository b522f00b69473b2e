"""How many wasmtime fuel units are one millisecond of guest CPU on this machine?

Runs CPU-bound workloads in the real guest until their fuel runs out and
divides the fuel given by the CPU time they took. The median is what
``SANDLOT_FUEL_PER_MS`` (``DEFAULT_FUEL_PER_MS``) should be on machines like
this one. Prints a Markdown table.

    .venv/bin/python bench/fuel_calibration.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import Job, Limits  # noqa: E402
from sandbox.engines.wasmtime import builder, host  # noqa: E402

GIVEN_FUEL_PER_MS = 1_000_000
BUDGET_MS = 2_000  # of the given fuel: about 200 ms of real CPU
WORKLOADS = {
    "empty loop": "while True: pass",
    "integer arithmetic": "x = 0\nwhile True:\n    x = (x * 31 + 7) % 1000003",
    "string building": "while True:\n    s = ''.join(str(i) for i in range(200))",
    "dict churn": "while True:\n    d = {i: str(i) for i in range(500)}\n    d.clear()",
    "regex backtracking": "import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')",
    "big integers": "import sys\nsys.set_int_max_str_digits(0)\nx = 7 ** (10 ** 8)",
    "sorting": "import random\nwhile True:\n    sorted(random.random() for _ in range(2000))",
}


class _Sink:
    def output(self, stream: str, text: str) -> None:
        pass

    def subrequest(self, record: object) -> None:
        pass

    def flush(self) -> None:
        pass


def main() -> None:
    artifacts = builder.build(ROOT / ".artifacts")
    with tempfile.TemporaryDirectory() as workdir:
        runtime = host.GuestRuntime(
            artifacts.precompiled,
            artifacts.stdlib_mount,
            Path(workdir),
            fuel_per_ms=GIVEN_FUEL_PER_MS,
        )
        limits = Limits(cpu_ms=BUDGET_MS, wall_ms=60_000)
        rows = []
        for name, code in WORKLOADS.items():
            rates = []
            for _ in range(3):
                job = Job(code=code, limits=limits)
                report = runtime.run(job, _Sink())
                if report.status.value != "cpu_limit":
                    raise SystemExit(f"{name}: ended {report.status.value}, expected cpu_limit")
                rates.append(BUDGET_MS * GIVEN_FUEL_PER_MS / report.usage.cpu_ms)
            rows.append((name, statistics.median(rates)))
        runtime.close()
    median = statistics.median(rate for _, rate in rows)
    print(f"fuel per ms of guest CPU ({os.cpu_count()} CPUs; median of 3 runs each)\n")
    print("| workload | fuel units per ms |")
    print("|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate / 1e6:.2f} M |")
    print(f"| **median** | **{median / 1e6:.2f} M** |")
    sys.stdout.flush()
    os._exit(0)  # skip wasmtime teardown at exit


if __name__ == "__main__":
    main()
